//! Reads the machine's clocks for the clock-correlation table
//! (`hsdaq_format::clock`): the offsets of CLOCK_REALTIME, CLOCK_TAI and an
//! optional PTP hardware clock from CLOCK_MONOTONIC, bracketed by two
//! monotonic reads so each offset is known within half the bracket, and
//! the kernel's own word on how well REALTIME is disciplined (`adjtimex`,
//! read-only: what chrony, ntpd or phc2sys last told it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use hsdaq_format::clock::ClockSample;

/// The clocks a recording reads.
#[derive(Default)]
pub struct Clocks {
    /// `--phc`: the PTP hardware clock's device, open for its clock id.
    phc: Option<File>,
    /// The source's own time stamps, when it has them.
    source: Option<Arc<SourceClock>>,
}

/// A source's own clock as its stream stamps it (a VRT digitizer's packet
/// timestamps): the recent stamps, from which a table row's sample gets
/// its source time: the nearest stamp at or before it, carried forward by
/// the nominal period (so a jump of the source's time applies only from
/// the stamp that carries it).
#[derive(Debug)]
pub struct SourceClock {
    /// What the stamps are, in words (the manifest's `stream.source_clock`).
    pub name: String,
    rate_hz: u64,
    stamps: Mutex<std::collections::VecDeque<(u64, i64)>>,
}

/// Stamps kept: the drain is rarely more than a few hundred packets behind
/// the source (a row's sample older than all of them uses the oldest).
const SOURCE_STAMPS: usize = 1024;

impl SourceClock {
    /// A clock named `name` for a stream of `rate_hz`.
    pub fn new(name: impl Into<String>, rate_hz: u64) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            rate_hz: rate_hz.max(1),
            stamps: Mutex::new(std::collections::VecDeque::with_capacity(SOURCE_STAMPS)),
        })
    }

    /// The source stamped sample `seq` with `ns` (in stream order).
    pub fn note(&self, seq: u64, ns: i64) {
        let mut s = self.stamps.lock().unwrap();
        if s.len() == SOURCE_STAMPS {
            s.pop_front();
        }
        s.push_back((seq, ns));
    }

    /// Sample `seq`'s source time, from the nearest stamp at or before it
    /// (the oldest kept when all are after it); None before any stamp.
    pub fn at(&self, seq: u64) -> Option<i64> {
        let s = self.stamps.lock().unwrap();
        let i = s.partition_point(|&(s0, _)| s0 <= seq);
        let (s0, ns) = *s.get(i.saturating_sub(1))?;
        let dt = (i128::from(seq) - i128::from(s0)) * 1_000_000_000 / i128::from(self.rate_hz);
        i64::try_from(i128::from(ns) + dt).ok()
    }
}

/// Tries to read a clock, ns.
// time_t and c_long are i64 here but i32 on armv7: `from` serves both.
#[allow(clippy::useless_conversion)]
fn gettime(id: libc::clockid_t) -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; an unknown or closed
    // clock id makes the call fail with EINVAL, which is returned as None.
    let r = unsafe { libc::clock_gettime(id, &mut ts) };
    (r == 0).then(|| i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_nsec))
}

/// The dynamic clock id of an open PTP hardware clock (`FD_TO_CLOCKID` of
/// linux/posix-timers.h).
fn fd_clock(f: &File) -> libc::clockid_t {
    ((!f.as_raw_fd()) << 3) | 3
}

impl Clocks {
    /// The system clocks only.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clocks and the PTP hardware clock at `path`
    /// (`/dev/ptp0`); refused, by name, when it cannot be read.
    pub fn with_phc(path: &Path) -> Result<Self> {
        let f = File::open(path).with_context(|| {
            format!(
                "--phc {}: cannot open the PTP hardware clock (a NIC with hardware timestamping has one: `ethtool -T IFACE` names it)",
                path.display()
            )
        })?;
        if gettime(fd_clock(&f)).is_none() {
            bail!(
                "--phc {}: not a PTP hardware clock ({})",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Self {
            phc: Some(f),
            source: None,
        })
    }

    /// Adds the source's own clock (when the source stamps its samples).
    pub fn with_source(mut self, source: Option<Arc<SourceClock>>) -> Self {
        self.source = source;
        self
    }

    /// A table row for sample `seq`, stamped `mono_ns` by the producer.
    pub fn sample(&self, seq: u64, mono_ns: u64) -> ClockSample {
        let a = gettime(libc::CLOCK_MONOTONIC).unwrap_or(0);
        let real = gettime(libc::CLOCK_REALTIME).unwrap_or(0);
        let tai = gettime(libc::CLOCK_TAI).unwrap_or(real);
        let phc = self.phc.as_ref().and_then(|f| gettime(fd_clock(f)));
        let b = gettime(libc::CLOCK_MONOTONIC).unwrap_or(a);
        let mid = a + (b - a) / 2;
        let (sync, est, max, tai_offset) = discipline();
        let mono = mono_ns as i64;
        ClockSample {
            seq: seq as i64,
            mono_ns: mono,
            realtime_ns: mono + (real - mid),
            tai_ns: mono + (tai - mid),
            phc_ns: phc.map(|p| mono + (p - mid)),
            read_mono_ns: mid,
            uncertainty_ns: (b - a + 1) / 2,
            sync: sync.into(),
            sync_esterror_ns: est,
            sync_maxerror_ns: max,
            tai_offset_s: tai_offset,
            source_ns: self.source.as_ref().and_then(|s| s.at(seq)),
        }
    }
}

/// The kernel's discipline of CLOCK_REALTIME: state, estimated and
/// maximum error (ns), and TAI − UTC (s).
// c_long and int are i64/i32 here but i32 on armv7: `from` serves both.
#[allow(clippy::useless_conversion)]
fn discipline() -> (&'static str, Option<i64>, Option<i64>, i64) {
    // SAFETY: timex is plain data; all zeros (modes 0) asks adjtimex to
    // read, never to change, the kernel's clock state.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable timex; modes 0 needs no privilege.
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return ("unknown", None, None, 0);
    }
    let unsync = state == libc::TIME_ERROR || t.status & libc::STA_UNSYNC != 0;
    let us = |v: libc::c_long| Some(i64::from(v) * 1000);
    if unsync {
        ("unsynchronized", None, us(t.maxerror), i64::from(t.tai))
    } else {
        (
            "synchronized",
            us(t.esterror),
            us(t.maxerror),
            i64::from(t.tai),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_brackets_its_reads() {
        let c = Clocks::system();
        let now = crate::units::monotonic_ns();
        let s = c.sample(7, now);
        assert_eq!((s.seq, s.mono_ns), (7, now as i64));
        assert!(s.read_mono_ns >= now as i64);
        assert!(s.uncertainty_ns >= 0);
        // REALTIME is past 2020 on any machine that runs this.
        assert!(s.realtime_ns > 1_577_836_800_000_000_000, "{s:?}");
        // TAI − UTC as the kernel holds it, within the bracket.
        let d = s.tai_ns - s.realtime_ns - s.tai_offset_s * 1_000_000_000;
        assert!(d.abs() < 1_000_000, "{s:?}");
        assert!(["synchronized", "unsynchronized", "unknown"].contains(&s.sync.as_str()));
        assert_eq!(s.phc_ns, None);
    }

    #[test]
    fn an_absent_phc_is_named() {
        let e = Clocks::with_phc(Path::new("/dev/ptp-none-here"))
            .err()
            .expect("refused");
        assert!(
            format!("{e:#}").contains("--phc /dev/ptp-none-here"),
            "{e:#}"
        );
        // A file that is not a clock.
        let e = Clocks::with_phc(Path::new("/dev/null"))
            .err()
            .expect("refused");
        assert!(
            format!("{e:#}").contains("not a PTP hardware clock"),
            "{e:#}"
        );
    }
}
