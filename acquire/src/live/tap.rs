//! The tap: a bounded, lock-free side channel from the drain to the live
//! view. Per block the drain hands over one point — the block's position
//! and each channel's minimum and maximum, taken from the columns it has
//! just transposed (still in cache) — with `try_push`: when the view falls
//! behind, points are dropped and counted, and the drain never waits. Losses
//! travel on their own small ring so a dropped point cannot hide one (the
//! totals on the page come from the recorder's counters, which are exact).
//!
//! The scope panel needs raw samples, not extents: while a page is open the
//! view asks for one capture at a time ([`Scope`]), and the drain copies
//! consecutive scans of the first [`SCOPE_CHANNELS`] channels into it with
//! `try_lock`, never waiting; with no page open that costs one atomic load
//! per block.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::HeapRb;

use crate::chunk::{Chunk, Column};

/// Channels the view shows (the first ones of a wider stream).
pub const TAP_CHANNELS: usize = 16;
/// Points the tap holds: at 64 KiB blocks and 35 M scans/s about 1 s.
const POINTS: usize = 4096;
/// Loss events the tap holds between two frames.
const LOSSES: usize = 1024;
/// Channels the scope and spectrum panels show.
pub const SCOPE_CHANNELS: usize = 4;
/// Most scans one capture holds (8 MiB at four channels).
pub const CAPTURE_MAX_SCANS: usize = 512 << 10;

const IDLE: u8 = 0;
const WANT: u8 = 1;
const READY: u8 = 2;

/// One capture handed from the drain to the view: up to `want`
/// consecutive scans (no gap inside) from `first_scan` on.
#[derive(Default)]
pub struct Capture {
    /// Scan index of the first value.
    pub first_scan: u64,
    /// Scans asked for.
    pub want: usize,
    /// Values of each scope channel, in counts.
    pub cols: Vec<Vec<i32>>,
}

impl Capture {
    /// Scans held.
    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    /// Whether it holds no scan.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn restart(&mut self, first_scan: u64) {
        self.first_scan = first_scan;
        self.cols.iter_mut().for_each(Vec::clear);
    }
}

/// The scope's side of the tap: a capture the view asks for and the drain
/// fills.
#[derive(Default)]
pub struct Scope {
    state: AtomicU8,
    capture: Mutex<Capture>,
}

impl Scope {
    /// Whether no capture is asked for or waiting.
    pub fn idle(&self) -> bool {
        self.state.load(Ordering::Acquire) == IDLE
    }

    /// Asks the drain for a capture of `want` scans (the view, when idle).
    pub fn ask(&self, want: usize) {
        if self.state.load(Ordering::Acquire) == IDLE {
            let mut c = self.capture.lock().unwrap();
            c.want = want.clamp(1, CAPTURE_MAX_SCANS);
            c.restart(0);
            // Room made here, on the view's thread: the drain never allocates.
            let want = c.want;
            c.cols.resize_with(SCOPE_CHANNELS, Vec::new);
            c.cols.iter_mut().for_each(|v| v.reserve(want));
            drop(c);
            self.state.store(WANT, Ordering::Release);
        }
    }

    /// A finished capture, swapped with `spare` (the view's own buffer), so
    /// no allocation follows the first; the scope is idle again after.
    pub fn take(&self, spare: &mut Capture) -> bool {
        if self.state.load(Ordering::Acquire) != READY {
            return false;
        }
        std::mem::swap(&mut *self.capture.lock().unwrap(), spare);
        self.state.store(IDLE, Ordering::Release);
        true
    }

    /// The drain's side: appends a block's rows while a capture is wanted.
    fn offer(&self, chunk: &Chunk, first_scan: u64, scans: usize, lost_before: u64) {
        if self.state.load(Ordering::Acquire) != WANT {
            return;
        }
        let Ok(mut c) = self.capture.try_lock() else {
            return;
        };
        // Fewer channels than the room made: drop the extra columns
        // (freeing never allocates).
        c.cols.truncate(chunk.columns.len().min(SCOPE_CHANNELS));
        // A capture is consecutive scans: a gap starts it again.
        let next = c.first_scan + c.len() as u64;
        if c.is_empty() || lost_before > 0 || next != first_scan {
            c.restart(first_scan);
        }
        let take = scans.min(c.want - c.len());
        for (col, out) in chunk.columns.iter().zip(c.cols.iter_mut()) {
            match col {
                Column::I16(v) => {
                    out.extend(v[v.len() - scans..][..take].iter().map(|&x| i32::from(x)))
                }
                Column::I32(v) => out.extend_from_slice(&v[v.len() - scans..][..take]),
            }
        }
        if c.len() >= c.want {
            self.state.store(READY, Ordering::Release);
        }
    }
}

/// One block as the view sees it.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub first_scan: u64,
    pub scans: u32,
    pub min: [i32; TAP_CHANNELS],
    pub max: [i32; TAP_CHANNELS],
}

/// A loss as it happened: `size` scans missing before `at_scan`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub at_scan: u64,
    pub size: u64,
}

/// Counters of what the tap had to drop (shared with the view).
#[derive(Default, Debug)]
pub struct TapDrops {
    /// Points dropped because the view was behind.
    pub points: AtomicU64,
    /// Loss events that did not fit (still in the recorder's totals).
    pub losses: AtomicU64,
}

/// The drain's end.
pub struct TapTx {
    points: <HeapRb<Point> as Split>::Prod,
    losses: <HeapRb<Loss> as Split>::Prod,
    drops: Arc<TapDrops>,
    scope: Arc<Scope>,
    /// Each channel's extent over the block being appended.
    extents: Vec<(i32, i32)>,
}

/// The view's end.
pub struct TapRx {
    pub points: <HeapRb<Point> as Split>::Cons,
    pub losses: <HeapRb<Loss> as Split>::Cons,
    pub drops: Arc<TapDrops>,
    pub scope: Arc<Scope>,
}

/// A connected pair.
pub fn tap() -> (TapTx, TapRx) {
    let (pp, pc) = HeapRb::<Point>::new(POINTS).split();
    let (lp, lc) = HeapRb::<Loss>::new(LOSSES).split();
    let drops = Arc::new(TapDrops::default());
    let scope = Arc::new(Scope::default());
    let tx = TapTx {
        points: pp,
        losses: lp,
        drops: drops.clone(),
        scope: scope.clone(),
        extents: Vec::new(),
    };
    let rx = TapRx {
        points: pc,
        losses: lc,
        drops,
        scope,
    };
    (tx, rx)
}

impl TapTx {
    /// Appends a block's first `scans` interleaved scans to `chunk` (as
    /// [`Chunk::transpose`] does) and offers them to the view: each
    /// channel's extent comes from the same pass over the values, so the
    /// tap costs the drain no second read. Never blocks; a full tap drops
    /// the point and counts it.
    pub fn append(
        &mut self,
        chunk: &mut Chunk,
        payload: &[u8],
        first_scan: u64,
        scans: usize,
        lost_before: u64,
    ) {
        self.extents.resize(chunk.columns.len(), (0, 0));
        chunk.transpose_measured(payload, scans, &mut self.extents);
        if lost_before > 0 {
            let loss = Loss {
                at_scan: first_scan,
                size: lost_before,
            };
            if self.losses.try_push(loss).is_err() {
                self.drops.losses.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.scope.offer(chunk, first_scan, scans, lost_before);
        if scans == 0 || self.points.is_full() {
            if scans > 0 {
                self.drops.points.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let mut p = Point {
            first_scan,
            scans: scans as u32,
            min: [0; TAP_CHANNELS],
            max: [0; TAP_CHANNELS],
        };
        for (i, &(lo, hi)) in self.extents.iter().take(TAP_CHANNELS).enumerate() {
            (p.min[i], p.max[i]) = (lo, hi);
        }
        let _ = self.points.try_push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsdaq_abi::Format;
    use ringbuf::traits::Consumer;

    #[test]
    fn points_carry_each_channels_extent_and_a_full_tap_counts_drops() {
        let (mut tx, mut rx) = tap();
        let mut c = Chunk::with_capacity(2, Format::I16, 8);
        let bytes: Vec<u8> = [5i16, -1, -7, 3, 2, 9]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        tx.append(&mut c, &bytes, 100, 3, 4);
        let p = rx.points.try_pop().unwrap();
        assert_eq!((p.first_scan, p.scans), (100, 3));
        assert_eq!((p.min[0], p.max[0], p.min[1], p.max[1]), (-7, 5, -1, 9));
        assert_eq!(
            rx.losses.try_pop(),
            Some(Loss {
                at_scan: 100,
                size: 4
            })
        );
        for _ in 0..POINTS + 5 {
            tx.append(&mut c, &bytes, 0, 3, 0);
        }
        assert_eq!(rx.drops.points.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_capture_is_consecutive_scans_and_a_gap_starts_it_again() {
        let (mut tx, rx) = tap();
        let mut c = Chunk::with_capacity(1, Format::I16, 64);
        let mut block = |c: &mut Chunk, first: i16, lost: u64| {
            let bytes: Vec<u8> = (first..first + 4).flat_map(|v| v.to_ne_bytes()).collect();
            tx.append(c, &bytes, first as u64, 4, lost);
        };
        let mut got = Capture::default();
        assert!(!rx.scope.take(&mut got), "nothing asked, nothing captured");
        block(&mut c, 0, 0);
        rx.scope.ask(6);
        block(&mut c, 4, 0);
        block(&mut c, 20, 16); // a gap: start again from scan 20
        block(&mut c, 24, 0);
        assert!(rx.scope.take(&mut got));
        assert_eq!(
            (got.first_scan, got.cols[0].clone()),
            (20, vec![20, 21, 22, 23, 24, 25])
        );
        block(&mut c, 28, 0);
        assert!(!rx.scope.take(&mut got), "idle until asked again");
    }
}
