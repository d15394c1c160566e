//! The in-process simulator: a producer thread that writes the exact ring
//! ABI into anonymous shared memory, paced to the scan rate at block
//! granularity, with the reference waveform and injectable faults.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsdaq_abi::ioctl::{FaultArgs, FAULT_DROP_BLOCKS, FAULT_JITTER_US, FAULT_STALL_US};
use hsdaq_abi::layout::*;
use hsdaq_abi::{waveform, Format};

use crate::ring::{write_header, LocalRing, RingMap};
use crate::source::{Device, DeviceDescription};
use crate::units::monotonic_ns;

/// What the producer does when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the block and count it (what hardware does).
    Drop,
    /// Wait for space (benchmarks only: measures the consumer's ceiling).
    Block,
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Stream shape.
    pub layout: StreamLayout,
    /// Pace to `layout.rate_hz`; unpaced runs as fast as it can.
    pub paced: bool,
    /// Full-ring policy.
    pub overflow: Overflow,
    /// Benchmarks only: write the waveform on the first pass over the ring
    /// and afterwards only fresh block headers, so the payloads replay the
    /// first ring's samples (not the reference waveform of their scan
    /// numbers: such a recording does not verify). Measures the recorder
    /// without the cost of computing a waveform on the same cores.
    pub replay: bool,
    /// Tests of what a person sees: every channel carries a pure tone of
    /// this frequency (Hz; channel k a quarter cycle after k−1) instead of
    /// the reference waveform. The manifest then calls the signal external.
    pub tone: Option<f64>,
}

#[derive(Default)]
struct Knobs {
    stop: AtomicBool,
    drop_blocks: AtomicU64,
    stall_us: AtomicU64,
    jitter_us: AtomicU64,
    /// CPU the producer threads used, ns (added when each ends).
    cpu_ns: AtomicU64,
}

/// The simulator device.
pub struct SimDevice {
    ring: LocalRing,
    config: SimConfig,
    knobs: Arc<Knobs>,
    thread: Option<JoinHandle<()>>,
}

impl SimDevice {
    /// Allocates and initialises the ring.
    pub fn new(config: SimConfig) -> Result<Self> {
        let l = config.layout;
        let ring = LocalRing::new(&l, SOURCE_SIMULATOR, b"hsdaq-sim", "simulator")?;
        Ok(Self {
            ring,
            config,
            knobs: Arc::default(),
            thread: None,
        })
    }

    fn ring_map(&self) -> RingMap {
        // The producer thread is joined before `self` (and the ring) drops.
        self.ring.view()
    }
}

impl Device for SimDevice {
    fn ring(&self) -> RingMap {
        self.ring_map()
    }

    fn start(&mut self) -> Result<()> {
        if self.thread.is_some() {
            return Ok(());
        }
        let ring = self.ring_map();
        let knobs = self.knobs.clone();
        let config = self.config.clone();
        knobs.stop.store(false, Ordering::Relaxed);
        let t = std::thread::Builder::new()
            .name("hsdaq-sim".into())
            .spawn(move || {
                crate::sched::short_slices();
                produce(ring, config, &knobs);
                knobs
                    .cpu_ns
                    .fetch_add(crate::units::thread_cpu_ns(), Ordering::Relaxed);
            })
            .context("cannot start the simulator thread")?;
        self.thread = Some(t);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.knobs.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("simulator thread panicked"))?;
        }
        Ok(())
    }

    fn wait(&self, timeout: Duration) -> Result<()> {
        // The simulator has no interrupt to wait for: a short sleep costs
        // less than a wake-up per block at high rates.
        std::thread::sleep(timeout.min(Duration::from_micros(200)));
        Ok(())
    }

    fn inject(&self, fault: FaultArgs) -> Result<()> {
        match fault.kind {
            FAULT_DROP_BLOCKS => self
                .knobs
                .drop_blocks
                .fetch_add(fault.arg, Ordering::Relaxed),
            FAULT_STALL_US => self.knobs.stall_us.fetch_add(fault.arg, Ordering::Relaxed),
            FAULT_JITTER_US => self.knobs.jitter_us.swap(fault.arg, Ordering::Relaxed),
            k => bail!("unknown fault kind {k}"),
        };
        Ok(())
    }

    fn signal(&self) -> &'static str {
        match self.config.tone {
            Some(_) => hsdaq_format::manifest::SIGNAL_EXTERNAL,
            None => hsdaq_format::manifest::SIGNAL_REFERENCE,
        }
    }

    fn describe(&self) -> DeviceDescription {
        let l = &self.config.layout;
        let mut properties = std::collections::BTreeMap::new();
        properties.insert("rate-hz".into(), l.rate_hz.into());
        properties.insert("channels".into(), l.channels.into());
        properties.insert("format".into(), l.format.name().into());
        properties.insert("block-bytes".into(), l.block_bytes.into());
        properties.insert("buffer-bytes".into(), l.data_size.into());
        properties.insert("paced".into(), self.config.paced.into());
        DeviceDescription {
            path: "sim".into(),
            name: "hsdaq-sim".into(),
            compatible: String::new(),
            source: "simulator".into(),
            properties,
            module_version: None,
        }
    }
}

impl SimDevice {
    /// CPU the producer used in runs that have ended, ns: what `acquire
    /// bench` takes off the process's CPU to leave the recorder's own.
    pub fn producer_cpu_ns(&self) -> u64 {
        self.knobs.cpu_ns.load(Ordering::Relaxed)
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Fills a block payload with the reference waveform (the fast fills of
/// `hsdaq_abi::waveform`, which equal `value()` sample for sample).
pub fn fill_payload(
    payload: &mut [u8],
    format: Format,
    channels: u16,
    first_scan: u64,
    scans: u32,
) {
    let n = scans as usize * channels as usize;
    let bytes = &mut payload[..n * format.bytes()];
    // The payload follows a 64-byte header in a page-aligned slot, so it is
    // aligned for any sample type; a misaligned caller is a bug.
    assert_eq!(
        bytes.as_ptr() as usize % format.bytes(),
        0,
        "misaligned payload"
    );
    match format {
        Format::I16 => {
            // SAFETY: `bytes` is exclusively borrowed, 2-byte aligned (checked
            // above) and `n * 2` bytes long; every bit pattern is a valid i16.
            let v = unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), n) };
            waveform::fill_i16(v, channels as usize, first_scan);
        }
        Format::I32 => {
            // SAFETY: as above, 4-byte aligned and `n * 4` bytes long.
            let v = unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), n) };
            waveform::fill_i32(v, channels as usize, first_scan);
        }
    }
}

/// Fills a block payload with the test tone (`SimConfig::tone`): 16000
/// counts peak in either format.
fn fill_tone(payload: &mut [u8], l: StreamLayout, first_scan: u64, scans: u32, freq: f64) {
    let w = l.format.bytes();
    let ch = l.channels as usize;
    for s in 0..scans as usize {
        let t = (first_scan + s as u64) as f64 / l.rate_hz as f64;
        for c in 0..ch {
            let phase = std::f64::consts::TAU * freq * t + c as f64 * std::f64::consts::FRAC_PI_2;
            let v = (16000.0 * phase.sin()).round() as i32;
            let at = (s * ch + c) * w;
            match l.format {
                Format::I16 => payload[at..at + 2].copy_from_slice(&(v as i16).to_ne_bytes()),
                Format::I32 => payload[at..at + 4].copy_from_slice(&v.to_ne_bytes()),
            }
        }
    }
}

/// How long the unpaced producer sleeps when the ring is full: far below
/// the time the consumer needs to drain a full ring (≥ 1 MiB at GB/s).
const FULL_RING_NAP: Duration = Duration::from_micros(200);

/// Sleeps until `deadline`, waking early if asked to stop.
fn sleep_until(deadline: Instant, knobs: &Knobs) {
    loop {
        let now = Instant::now();
        if now >= deadline || knobs.stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// The producer loop (runs on its own thread).
fn produce(ring: RingMap, config: SimConfig, knobs: &Knobs) {
    let l = *ring.layout();
    let c = ring.control();
    let bs = l.block_scans();
    let block_bytes = l.block_bytes as u64;
    let mut cursor = ring.producer();
    let mut next_scan = c.next_scan.load(Ordering::Relaxed);
    let mut block_seq = c.produced_blocks.load(Ordering::Relaxed);
    let epoch = c.epoch.load(Ordering::Relaxed);
    let mut pending_lost = 0u64;
    let mut was_full = false;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    // Scan 0 happens "now"; later scans at their nominal times.
    let start = Instant::now();
    let start_ns = monotonic_ns() - l.scan_time_ns(0, next_scan);
    // SAFETY: start_ns is written before the first head publish (Release),
    // and read by the consumer only after an Acquire load of head.
    unsafe {
        std::ptr::addr_of!(c.start_ns)
            .cast_mut()
            .write_volatile(start_ns)
    };
    c.status.store(STATUS_RUNNING, Ordering::Release);
    let period_q16 = l.period_ns_q16();
    while !knobs.stop.load(Ordering::Relaxed) {
        if config.paced {
            let due_ns = l.scan_time_ns(0, next_scan + bs as u64) - l.scan_time_ns(0, 0);
            let mut due = start + Duration::from_nanos(due_ns);
            let jitter = knobs.jitter_us.load(Ordering::Relaxed);
            if jitter > 0 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                due += Duration::from_micros(rng % jitter);
            }
            sleep_until(due, knobs);
        }
        let stall = knobs.stall_us.swap(0, Ordering::Relaxed);
        if stall > 0 {
            sleep_until(Instant::now() + Duration::from_micros(stall), knobs);
        }
        let forced = knobs
            .drop_blocks
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let mut pos = if forced {
            None
        } else {
            cursor.reserve(block_bytes)
        };
        while pos.is_none() && !forced && config.overflow == Overflow::Block {
            if knobs.stop.load(Ordering::Relaxed) {
                break;
            }
            // The ring is full, so the consumer has a whole ring of work:
            // sleep instead of spinning, and leave the cores to the drain
            // and the encoders.
            std::thread::park_timeout(FULL_RING_NAP);
            pos = cursor.reserve(block_bytes);
        }
        match pos {
            Some(pos) => {
                // SAFETY: `pos` was reserved by our cursor and is published below.
                let slot = unsafe { ring.slot_mut(pos) };
                let header = hsdaq_abi::BlockHeader {
                    magic: BLOCK_MAGIC,
                    flags: if pending_lost > 0 {
                        BLOCK_FLAG_AFTER_GAP
                    } else {
                        0
                    },
                    first_scan: next_scan,
                    timestamp_ns: l.scan_time_ns(start_ns, next_scan),
                    lost_before: pending_lost,
                    block_seq,
                    scans: bs,
                    channels: l.channels,
                    format: l.format as u16,
                    period_ns_q16: period_q16,
                    epoch,
                    _reserved: 0,
                };
                write_header(slot, &header);
                let first_pass = block_seq < l.slots();
                if let Some(f) = config.tone {
                    fill_tone(&mut slot[BLOCK_HEADER_BYTES..], l, next_scan, bs, f);
                } else if !config.replay || first_pass {
                    fill_payload(
                        &mut slot[BLOCK_HEADER_BYTES..],
                        l.format,
                        l.channels,
                        next_scan,
                        bs,
                    );
                }
                cursor.publish(block_bytes);
                block_seq += 1;
                pending_lost = 0;
                was_full = false;
                c.produced_blocks.store(block_seq, Ordering::Release);
            }
            None => {
                if knobs.stop.load(Ordering::Relaxed) && !forced {
                    break;
                }
                pending_lost += bs as u64;
                c.dropped_blocks.fetch_add(1, Ordering::Release);
                c.dropped_scans.fetch_add(bs as u64, Ordering::Release);
                if !was_full {
                    c.overruns.fetch_add(1, Ordering::Release);
                }
                was_full = true;
            }
        }
        next_scan += bs as u64;
        c.next_scan.store(next_scan, Ordering::Release);
    }
    c.status.store(STATUS_STOPPED, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view outlives its device: the mapping stays until the last view
    /// goes (was a use-after-unmap in safe code while RingMap was two bare
    /// pointers).
    #[test]
    fn a_ring_view_keeps_its_mapping_alive() {
        let layout = StreamLayout {
            channels: 2,
            format: hsdaq_abi::Format::I16,
            data_size: 1 << 20,
            block_bytes: 4096,
            rate_hz: 1000,
        };
        let mut dev = SimDevice::new(SimConfig {
            layout,
            paced: true,
            overflow: Overflow::Drop,
            replay: false,
            tone: None,
        })
        .unwrap();
        dev.start().unwrap();
        dev.stop().unwrap();
        let ring = dev.ring();
        drop(dev);
        assert_eq!(ring.control().magic, hsdaq_abi::layout::CONTROL_MAGIC);
        assert_eq!(ring.layout().channels, 2);
    }
}
