//! The recorder's live counters: written by the drain and the writer,
//! read by the progress line, `health.csv`, the live view and the bench.
//! Their own module so that every reader depends on it, not on the
//! pipeline (the live view and the pipeline no longer import each other).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use hsdaq_format::clock::ClockSample;
use hsdaq_format::manifest::Event;

/// Live counters, read by the progress display.
#[derive(Default)]
pub struct Live {
    /// Scans drained.
    pub scans: AtomicU64,
    /// Scans lost (sum of block `lost_before`).
    pub lost: AtomicU64,
    /// Triggered recordings: scans between windows, not kept.
    pub outside_windows: AtomicU64,
    /// Of those, scans the source lost.
    pub lost_outside_windows: AtomicU64,
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
    /// The time base so far and what waits for the writer.
    pub timeline: Timeline,
}

/// What the drain learns of time and what users mark, on its way to the
/// writer (which puts it in the segment it belongs to). Locked once a
/// block at most; the writer and the control socket take turns with it.
#[derive(Default)]
pub struct Timeline {
    /// The latest block: (first scan, its CLOCK_MONOTONIC stamp, period in
    /// ns × 65536), from which a marker's moment becomes a sample index.
    pub last_block: Mutex<Option<(u64, u64, u64)>>,
    /// Clock-table rows not yet written, with their segment.
    pub clock_rows: Mutex<Vec<(u64, ClockSample)>>,
    /// Events (markers) not yet in the manifest.
    pub events: Mutex<Vec<Event>>,
    /// Markers taken so far (bounded by `control::MAX_MARKERS`).
    pub marked: AtomicU64,
    /// Markers not yet shown by the live view (at most
    /// [`LIVE_MARKERS_HELD`]; without a live view nobody takes them).
    pub live_markers: Mutex<Vec<Event>>,
    /// Set when markers fire windows (`record --trigger marker`).
    pub markers_trigger: std::sync::atomic::AtomicBool,
    /// Markers' sample indexes not yet taken by the trigger.
    pub marker_seqs: Mutex<Vec<u64>>,
}

/// Markers held for the live view between two of its frames.
pub const LIVE_MARKERS_HELD: usize = 100;

impl Timeline {
    /// The sample index the producer was at at `mono_ns`, from the latest
    /// block's stamp and period (None before the first block).
    pub fn seq_at(&self, mono_ns: u64) -> Option<u64> {
        let (seq, t, period_q16) = (*self.last_block.lock().unwrap())?;
        let dt = mono_ns.saturating_sub(t) as u128;
        Some(seq + (dt * 65536 / period_q16.max(1) as u128) as u64)
    }

    /// Takes the clock rows of segments up to `segment`.
    pub fn take_clock_rows(&self, segment: u64) -> Vec<ClockSample> {
        let mut q = self.clock_rows.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|(s, _)| *s <= segment);
        *q = rest;
        mine.into_iter().map(|(_, r)| r).collect()
    }

    /// Markers taken so far this run.
    pub fn markers(&self) -> usize {
        self.marked.load(Ordering::Relaxed) as usize
    }

    /// Hands an event to the live view (markers, triggers), within
    /// [`LIVE_MARKERS_HELD`] between two frames.
    pub fn show(&self, e: &Event) {
        let mut shown = self.live_markers.lock().unwrap();
        if shown.len() < LIVE_MARKERS_HELD {
            shown.push(e.clone());
        }
    }

    /// Adds a marker: for the manifest, and for the live view.
    pub fn mark(&self, e: Event) {
        self.marked.fetch_add(1, Ordering::Relaxed);
        self.show(&e);
        if self.markers_trigger.load(Ordering::Relaxed) {
            self.marker_seqs
                .lock()
                .unwrap()
                .push(e.at_seq.max(0) as u64);
        }
        self.events.lock().unwrap().push(e);
    }

    /// Takes the events waiting.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
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
