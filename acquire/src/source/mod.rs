//! Sample sources: what the recorder needs from one (a mapped ring plus a
//! few controls, the `Device` trait below), implemented by the kernel char
//! device (`chardev`), the in-process simulator (`sim`) and, for sources
//! acquire reads itself, a ring filled from a [`feed::Feed`] (`iio`);
//! `timegaps` infers losses from timestamps (fault plans: `crate::faults`).

pub mod chardev;
pub mod feed;
pub mod iio;
pub mod net;
pub mod sim;
pub mod timegaps;

use std::time::Duration;

use anyhow::Result;
use hsdaq_abi::ioctl::{FaultArgs, Stats};

use crate::ring::RingMap;

pub use hsdaq_format::manifest::DeviceDescription;

/// A sample source whose ring the recorder drains.
pub trait Device: Send {
    /// The mapped ring.
    fn ring(&self) -> RingMap;
    /// Starts producing.
    fn start(&mut self) -> Result<()>;
    /// Stops producing; blocks already published stay readable.
    fn stop(&mut self) -> Result<()>;
    /// Sleeps until a block may be readable, at most `timeout`.
    fn wait(&self, timeout: Duration) -> Result<()>;
    /// Injects a producer-side fault.
    fn inject(&self, fault: FaultArgs) -> Result<()>;
    /// Identity and settings.
    fn describe(&self) -> DeviceDescription;
    /// Whether the values are `abi/`'s reference waveform (the manifest's
    /// `stream.signal`: `verify` recomputes them only then).
    fn signal(&self) -> &'static str {
        hsdaq_format::manifest::SIGNAL_REFERENCE
    }
    /// Where `t_ns` comes from (the manifest's `stream.timestamps`).
    fn timestamps(&self) -> String {
        hsdaq_format::manifest::TIMESTAMPS_NOMINAL.into()
    }
    /// How losses are detected, in words (the manifest's
    /// `stream.loss_detection`): a ring producer counts every drop.
    fn loss_detection(&self) -> String {
        hsdaq_format::manifest::LOSS_COUNTED.into()
    }
    /// Channel names, units, scale and offset, when the source knows them
    /// (a board profile overrides them).
    fn channels(&self) -> Vec<hsdaq_format::manifest::ChannelInfo> {
        Vec::new()
    }
    /// The source's own counters that say where a loss happened (manifest
    /// `source_counters`): attribution, never the loss count.
    fn source_counters(&self) -> std::collections::BTreeMap<String, u64> {
        Default::default()
    }
    /// Events at a sample index the source saw (manifest `events`).
    fn events(&self) -> Vec<hsdaq_format::manifest::Event> {
        Vec::new()
    }
    /// Why the producer stopped with `STATUS_ERROR`, when it can say.
    fn failure(&self) -> Option<String> {
        None
    }
    /// The source's own clock, when it stamps its samples (the clock
    /// table's `source_ns`).
    fn source_clock(&self) -> Option<std::sync::Arc<crate::clock::SourceClock>> {
        None
    }

    /// All counters, read from the control page.
    fn stats(&self) -> Stats {
        use std::sync::atomic::Ordering::Acquire;
        let c = self.ring();
        let c = c.control();
        Stats {
            head: c.head.load(Acquire),
            tail: c.tail.load(Acquire),
            produced_blocks: c.produced_blocks.load(Acquire),
            dropped_blocks: c.dropped_blocks.load(Acquire),
            dropped_scans: c.dropped_scans.load(Acquire),
            overruns: c.overruns.load(Acquire),
            next_scan: c.next_scan.load(Acquire),
            status: c.status.load(Acquire),
            epoch: c.epoch.load(Acquire),
            discarded_blocks: c.discarded_blocks.load(Acquire),
        }
    }
}

/// Human name of a `SOURCE_*` constant.
pub fn source_name(source: u16) -> &'static str {
    match source {
        hsdaq_abi::layout::SOURCE_SIMULATOR => "simulator",
        hsdaq_abi::layout::SOURCE_VIRTUAL => "virtual",
        hsdaq_abi::layout::SOURCE_HARDWARE => "hardware",
        hsdaq_abi::layout::SOURCE_IIO => "iio",
        hsdaq_abi::layout::SOURCE_NETWORK => "network",
        _ => "unknown",
    }
}

/// Human name of a `STATUS_*` constant.
pub fn status_name(status: u32) -> &'static str {
    match status {
        hsdaq_abi::layout::STATUS_STOPPED => "stopped",
        hsdaq_abi::layout::STATUS_RUNNING => "running",
        hsdaq_abi::layout::STATUS_GONE => "gone",
        hsdaq_abi::layout::STATUS_ERROR => "error",
        _ => "unknown",
    }
}
