//! The tap: a bounded, lock-free side channel from the drain to the live
//! view. Per block the drain hands over one point — the block's position
//! and each channel's minimum and maximum, taken from the columns it has
//! just transposed (still in cache) — with `try_push`: when the view falls
//! behind, points are dropped and counted, and the drain never waits. Losses
//! travel on their own small ring so a dropped point cannot hide one (the
//! totals on the page come from the recorder's counters, which are exact).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::HeapRb;

use crate::chunk::{Chunk, Column};

/// Channels the view shows (the first ones of a wider stream).
pub const TAP_CHANNELS: usize = 16;
/// Points the tap holds: at 64 KiB blocks and 35 M scans/s about 1 s.
const POINTS: usize = 4096;
/// Loss events the tap holds between two frames.
const LOSSES: usize = 1024;

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
}

/// The view's end.
pub struct TapRx {
    pub points: <HeapRb<Point> as Split>::Cons,
    pub losses: <HeapRb<Loss> as Split>::Cons,
    pub drops: Arc<TapDrops>,
}

/// A connected pair.
pub fn tap() -> (TapTx, TapRx) {
    let (pp, pc) = HeapRb::<Point>::new(POINTS).split();
    let (lp, lc) = HeapRb::<Loss>::new(LOSSES).split();
    let drops = Arc::new(TapDrops::default());
    let tx = TapTx {
        points: pp,
        losses: lp,
        drops: drops.clone(),
    };
    let rx = TapRx {
        points: pc,
        losses: lc,
        drops,
    };
    (tx, rx)
}

impl TapTx {
    /// Offers the block whose `scans` rows were just appended to `chunk`.
    /// Never blocks; a full tap drops the point and counts it.
    pub fn block(&mut self, chunk: &Chunk, first_scan: u64, scans: usize, lost_before: u64) {
        if lost_before > 0 {
            let loss = Loss {
                at_scan: first_scan,
                size: lost_before,
            };
            if self.losses.try_push(loss).is_err() {
                self.drops.losses.fetch_add(1, Ordering::Relaxed);
            }
        }
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
        for (i, col) in chunk.columns.iter().take(TAP_CHANNELS).enumerate() {
            (p.min[i], p.max[i]) = match col {
                Column::I16(v) => extent(&v[v.len() - scans..]),
                Column::I32(v) => extent(&v[v.len() - scans..]),
            };
        }
        let _ = self.points.try_push(p);
    }
}

/// Minimum and maximum of a slice in one pass; a fold over plain integers
/// that the compiler turns into vector min/max (the drain's data is still
/// in cache from the transpose).
fn extent<T: Copy + Ord + Into<i32> + Bounds>(v: &[T]) -> (i32, i32) {
    let (lo, hi) = v
        .iter()
        .fold((T::MAX, T::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    (lo.into(), hi.into())
}

/// The integer types' bounds, for [`extent`]'s starting values.
trait Bounds {
    const MIN: Self;
    const MAX: Self;
}

impl Bounds for i16 {
    const MIN: Self = i16::MIN;
    const MAX: Self = i16::MAX;
}

impl Bounds for i32 {
    const MIN: Self = i32::MIN;
    const MAX: Self = i32::MAX;
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
        c.transpose(&bytes, 3);
        tx.block(&c, 100, 3, 4);
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
            tx.block(&c, 0, 3, 0);
        }
        assert_eq!(rx.drops.points.load(Ordering::Relaxed), 5);
    }
}
