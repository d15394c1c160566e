//! The recorder's own health, once a second, in `health.csv` beside the
//! segments: resident memory, open file descriptors, backlog, ring fill,
//! totals and CPU time. A soak reads it to show that memory, descriptors and
//! the cost per second stay flat; `analysis report` plots it. Lines are
//! flushed as written (not fsynced: telemetry, not data).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::counters::Live;

pub use hsdaq_format::health::{HEALTH_COLUMNS, HEALTH_FILE};

/// Samples the process every second.
pub struct Health {
    out: BufWriter<File>,
    started: Instant,
    next: Duration,
}

impl Health {
    /// Creates `health.csv` with its header.
    pub fn create(dir: &Path) -> Result<Self> {
        let p = dir.join(HEALTH_FILE);
        let f = File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
        let mut out = BufWriter::new(f);
        writeln!(out, "{}", HEALTH_COLUMNS.join(","))?;
        Ok(Self {
            out,
            started: Instant::now(),
            next: Duration::ZERO,
        })
    }

    /// Appends a sample if a second has passed since the last one. A write
    /// error (full disk) stops the sampling, never the recording.
    pub fn tick(&mut self, live: &Live) {
        let t = self.started.elapsed();
        if t < self.next {
            return;
        }
        self.next = Duration::from_secs(t.as_secs() + 1);
        let line = format!(
            "{:.3},{},{},{},{},{},{},{},{},{:.3}",
            t.as_secs_f64(),
            memory().0,
            open_fds().unwrap_or(0),
            live.backlog.load(Relaxed),
            live.ring_fill_permille.load(Relaxed),
            live.scans.load(Relaxed),
            live.lost.load(Relaxed),
            live.segments.load(Relaxed),
            live.bytes_written.load(Relaxed),
            crate::units::process_cpu_ns() as f64 / 1e9,
        );
        let _ = writeln!(self.out, "{line}").and_then(|_| self.out.flush());
    }
}

/// This process's resident set and its peak, bytes (`VmRSS`, `VmHWM` of
/// `/proc/self/status`; 0 where unreadable).
pub fn memory() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// This process's open file descriptors (`/proc/self/fd`, less the one
/// used to list it).
pub fn open_fds() -> Option<u64> {
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1) as u64,
    )
}
