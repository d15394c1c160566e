//! The recorder's live counters: written by the drain and the writer,
//! read by the progress line, `health.csv`, the live view and the bench.
//! Their own module so that every reader depends on it, not on the
//! pipeline (the live view and the pipeline no longer import each other).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Live counters, read by the progress display.
#[derive(Default)]
pub struct Live {
    /// Scans drained.
    pub scans: AtomicU64,
    /// Scans lost (sum of block `lost_before`).
    pub lost: AtomicU64,
    /// Gaps seen.
    pub gaps: AtomicU64,
    /// Ring fill at the last block, per mille.
    pub ring_fill_permille: AtomicU32,
    /// Highest ring fill seen, per mille.
    pub ring_fill_max_permille: AtomicU32,
    /// Parquet bytes in closed segments.
    pub bytes_written: AtomicU64,
    /// Closed segments.
    pub segments: AtomicU64,
    /// Chunks drained but not yet written (encoder and writer queues),
    /// when the drain last took an empty one: how far the disk is behind.
    pub backlog: AtomicU32,
    /// CLOCK_MONOTONIC ns of scan 0, read from the control page when the
    /// first block arrives (a kernel device's mapping is gone after unbind).
    pub start_ns: AtomicU64,
    /// The stream's first scan index (`ControlPage::first_scan`), read when
    /// the first block arrives: the manifest's `stream.first_seq`.
    pub first_scan: AtomicU64,
    /// Block latency: the nominal time of a block's last scan → drained.
    pub latency: Latency,
}

/// A histogram of block latencies in 10 µs bins up to 20 ms (and one bin
/// above): lock-free, fixed size, read by the bench for its p99.
pub struct Latency {
    bins: Vec<AtomicU64>,
}

impl Latency {
    const BIN_NS: u64 = 10_000;
    const BINS: usize = 2001;

    /// Counts one latency.
    pub fn record(&self, ns: u64) {
        let i = ((ns / Self::BIN_NS) as usize).min(Self::BINS - 1);
        self.bins[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper edge of the bin holding quantile `q` (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .bins
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if total > 0 && seen >= want {
                return (i as u64 + 1) * Self::BIN_NS;
            }
        }
        0
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            bins: (0..Self::BINS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}
