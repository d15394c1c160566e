// SPDX-License-Identifier: GPL-2.0

//! The producer's bookkeeping, free of hardware, locks and time: which block
//! comes next, what is dropped, and what a consumer's `tail` may be. The
//! sensor calls it under its spinlock; KUnit tests it directly.
//!
//! Rules (the ring ABI's): the producer never overwrites unread data; when it
//! cannot write a block it drops it whole and counts it, and the next block
//! written carries the exact number of scans lost before it; counters only
//! grow, across streams too.

use crate::abi::ioctl::Stats;
use crate::abi::layout::{
    BlockHeader, StreamLayout, BLOCK_FLAG_AFTER_GAP, BLOCK_FLAG_LOSS_INFERRED,
    BLOCK_FLAG_TIME_MEASURED, BLOCK_MAGIC, STATUS_ERROR, STATUS_GONE, STATUS_RUNNING,
    STATUS_STOPPED,
};

/// The producer's own (authoritative) counters; the control area mirrors them.
#[derive(Default)]
pub(crate) struct Producer {
    pub(crate) running: bool,
    pub(crate) gone: bool,
    /// The source failed (a DMA transfer error): stopped until START.
    pub(crate) failed: bool,
    pub(crate) start_ns: u64,
    pub(crate) next_scan: u64,
    pub(crate) head: u64,
    pub(crate) tail: u64,
    pub(crate) block_seq: u64,
    pub(crate) dropped_blocks: u64,
    pub(crate) dropped_scans: u64,
    pub(crate) overruns: u64,
    pub(crate) discarded_blocks: u64,
    pub(crate) epoch: u32,
    pending_lost: u64,
    dropping: bool,
    /// Blocks the next due blocks drop by force (fault injection).
    pub(crate) fault_drop: u64,
    pub(crate) stall_until_ns: u64,
    pub(crate) jitter_us: u64,
    /// `read()` is copying from here: `tail` must not pass it.
    pub(crate) read_pin: Option<u64>,
    /// The DMA source's transfers of this stream (see [`Dma`]).
    pub(crate) dma: Dma,
}

/// How a DMA stream's blocks learn where they sit in the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The stream carries a scan counter (engine metadata): exact.
    Counted,
    /// Only the completion times are known: a gap is estimated from the
    /// sample clock, in whole blocks, and flagged as an estimate.
    Inferred,
}

/// The DMA source's bookkeeping: transfers queue into the slots after
/// `head`, one per slot, and complete in order.
#[derive(Default)]
pub(crate) struct Dma {
    /// Transfers queued this stream.
    pub(crate) queued: u64,
    /// Transfers completed and published this stream.
    pub(crate) published: u64,
    /// The scan counter of the stream's first scan (counted streams).
    base: Option<u64>,
    /// CLOCK_MONOTONIC time of scan 0 as the completions measure it: moved
    /// earlier whenever a block completes sooner than it predicts, so it
    /// tracks the smallest latency seen (inferred streams).
    anchor_ns: Option<u64>,
    /// Timestamp of the last published block's last scan.
    last_ns: Option<u64>,
}

/// A finished DMA transfer, as the engine reported it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Completion {
    /// CLOCK_MONOTONIC nanoseconds when the completion callback ran.
    pub(crate) done_ns: u64,
    /// The stream's scan counter for the transfer's first scan, if carried.
    pub(crate) counter: Option<u64>,
}

/// What the producer does next with the scans due.
pub(crate) enum Step {
    /// Nothing is due.
    Idle,
    /// Write this block at byte counter `pos`, then call [`Producer::published`].
    Write { pos: u64, header: BlockHeader },
    /// Blocks were dropped (and counted).
    Dropped,
}

impl Producer {
    /// The device's status as the ABI names it.
    pub(crate) fn status(&self) -> u32 {
        match (self.gone, self.running) {
            (true, _) => STATUS_GONE,
            (false, false) if self.failed => STATUS_ERROR,
            (false, true) => STATUS_RUNNING,
            (false, false) => STATUS_STOPPED,
        }
    }

    /// Accepts the consumer's `tail` if it lies in `[tail, head]` on a block
    /// boundary, and not past a block `read()` is copying. A scribbled value
    /// is ignored: the producer then sees the ring as full and drops.
    pub(crate) fn accept_tail(&mut self, t: u64, block_bytes: u64) -> bool {
        let limit = self.read_pin.unwrap_or(self.head).min(self.head);
        let aligned = t & (block_bytes - 1) == 0;
        let ok = t >= self.tail && t <= limit && aligned;
        if ok {
            self.tail = t;
        }
        ok
    }

    /// Starts stream `epoch + 1` at scan 0. Unread blocks are discarded and
    /// counted; `head` and `tail` keep growing. Returns the new `tail`.
    pub(crate) fn start(&mut self, now_ns: u64, block_bytes: u64) -> u64 {
        self.discard(block_bytes);
        self.epoch = self.epoch.wrapping_add(1);
        self.running = true;
        self.failed = false;
        self.start_ns = now_ns;
        self.next_scan = 0;
        self.pending_lost = 0;
        self.dropping = false;
        self.stall_until_ns = 0;
        self.dma = Dma::default();
        self.tail
    }

    /// RESET: discards unread blocks (counted) and clears injected faults.
    pub(crate) fn reset(&mut self, block_bytes: u64) {
        self.discard(block_bytes);
        self.fault_drop = 0;
        self.stall_until_ns = 0;
        self.jitter_us = 0;
    }

    /// Discards every unread block (counted in `discarded_blocks`).
    fn discard(&mut self, block_bytes: u64) {
        self.discarded_blocks += (self.head - self.tail) / block_bytes;
        self.tail = self.head;
    }

    /// Adds `n` forced drops, saturating.
    pub(crate) fn force_drops(&mut self, n: u64) {
        self.fault_drop = self.fault_drop.saturating_add(n);
    }

    /// Counts `n` dropped blocks of `per_block` scans each.
    fn drop_blocks(&mut self, n: u64, per_block: u64) {
        self.lose(n, n.saturating_mul(per_block));
    }

    /// Counts `scans` lost (in `blocks` blocks) before the next block, which
    /// reports them; consecutive losses are one loss event (overrun).
    fn lose(&mut self, blocks: u64, scans: u64) {
        self.dropped_blocks += blocks;
        self.dropped_scans += scans;
        self.pending_lost += scans;
        self.next_scan += scans;
        if !self.dropping {
            self.overruns += 1;
        }
        self.dropping = true;
    }

    /// Drops the oldest due blocks beyond `max_lag` blocks: a producer that
    /// fell behind (a stall, or a rate the CPU cannot write) catches up by
    /// losing data, counted, never by writing without bound in one tick.
    pub(crate) fn limit_lag(&mut self, due: u64, l: &StreamLayout, max_lag: u64) {
        let bs = u64::from(l.block_scans()).max(1);
        let lag = due.saturating_sub(self.next_scan) / bs;
        if lag > max_lag {
            self.drop_blocks(lag - max_lag, bs);
        }
    }

    /// Decides the next block of the scans due by now (`due` scans of the
    /// stream exist). `fresh_tail` is asked for the consumer's tail when the
    /// ring looks full.
    pub(crate) fn step(
        &mut self,
        due: u64,
        l: &StreamLayout,
        fault_period: u32,
        fresh_tail: impl FnOnce(&mut Self),
    ) -> Step {
        let bs = u64::from(l.block_scans()).max(1);
        if self.next_scan.saturating_add(bs) > due {
            return Step::Idle;
        }
        let block = self.next_scan / bs;
        let period = u64::from(fault_period);
        let periodic = period != 0 && block.checked_rem(period) == Some(period - 1);
        let forced = periodic || self.fault_drop > 0;
        self.fault_drop = self.fault_drop.saturating_sub(1);
        let block_bytes = u64::from(l.block_bytes);
        if forced {
            self.drop_blocks(1, bs);
            return Step::Dropped;
        }
        if self.head - self.tail + block_bytes > l.data_size {
            fresh_tail(self);
        }
        if self.head - self.tail + block_bytes > l.data_size {
            // Full: everything due now goes at once (O(1) work); the next
            // block written reports the whole gap.
            self.drop_blocks((due - self.next_scan) / bs, bs);
            return Step::Dropped;
        }
        let flags = if self.pending_lost > 0 {
            BLOCK_FLAG_AFTER_GAP
        } else {
            0
        };
        let t = l.scan_time_ns(self.start_ns, self.next_scan);
        let header = self.header(l, flags, t, self.pending_lost);
        Step::Write {
            pos: self.head,
            header,
        }
    }

    /// The block `step` asked for is written: publish it.
    pub(crate) fn published(&mut self, l: &StreamLayout) {
        self.head += u64::from(l.block_bytes);
        self.block_seq += 1;
        self.next_scan += u64::from(l.block_scans());
        self.pending_lost = 0;
        self.dropping = false;
    }

    /// Transfers that may be queued now: one per slot the consumer has
    /// released beyond those already queued, at most `max_queued` in all.
    /// The engine is never handed a slot that holds unread data.
    pub(crate) fn dma_room(&self, l: &StreamLayout, max_queued: u64) -> u64 {
        // Checked arithmetic: no panic path (objtool), whatever the state.
        let bb = u64::from(l.block_bytes);
        let queued = self.dma.queued.saturating_sub(self.dma.published);
        let free = self
            .tail
            .saturating_add(l.data_size)
            .saturating_sub(self.head)
            .checked_div(bb)
            .unwrap_or(0);
        free.saturating_sub(queued)
            .min(max_queued.saturating_sub(queued))
    }

    /// The header of the next DMA block (the one at `head`), from its
    /// completion; counts the scans lost upstream before it. Call
    /// [`Producer::published`] once the header is in the slot.
    ///
    /// Counted: lost = the counter's step beyond the previous block. A
    /// counter that steps backwards (a converter reset) is not a loss: the
    /// block continues the stream and the flag says the position was reset.
    /// Inferred: the block's lateness against the sample clock, in whole
    /// blocks (an engine keeps whole transfers), beyond the smallest
    /// latency seen; flagged [`BLOCK_FLAG_LOSS_INFERRED`].
    pub(crate) fn dma_block(
        &mut self,
        c: Completion,
        l: &StreamLayout,
        how: Position,
    ) -> BlockHeader {
        let bs = u64::from(l.block_scans()).max(1);
        let duration = l.scan_time_ns(0, bs);
        let mut flags = BLOCK_FLAG_TIME_MEASURED;
        let lost = match (how, c.counter) {
            (Position::Counted, Some(counter)) => {
                let base = *self.dma.base.get_or_insert(counter);
                counter
                    .checked_sub(base)
                    .and_then(|scan| scan.checked_sub(self.next_scan))
                    .unwrap_or(0)
            }
            _ => {
                let end = self.next_scan + bs;
                let predicted = self.dma.anchor_ns.map(|a| a + l.scan_time_ns(0, end));
                match predicted {
                    Some(t) if c.done_ns >= t => {
                        let late = (c.done_ns - t) / duration.max(1);
                        if late > 0 {
                            flags |= BLOCK_FLAG_LOSS_INFERRED;
                        }
                        late * bs
                    }
                    _ => {
                        // First block, or sooner than predicted: re-anchor.
                        self.dma.anchor_ns = Some(c.done_ns.saturating_sub(l.scan_time_ns(0, end)));
                        0
                    }
                }
            }
        };
        // The completion bounds the block's last scan from above. Blocks
        // that complete in a burst (an engine draining its FIFO) would
        // otherwise step back in time: never earlier than one period after
        // the previous block's last scan (and its gap).
        let period = l.scan_time_ns(0, 1).max(1);
        let mut first_ns = c.done_ns.saturating_sub(l.scan_time_ns(0, bs - 1));
        if let Some(prev) = self.dma.last_ns {
            first_ns = first_ns.max(prev + l.scan_time_ns(0, lost + 1).max(period));
        }
        self.dma.last_ns = Some(first_ns + l.scan_time_ns(0, bs - 1));
        if lost > 0 {
            self.lose(lost.div_ceil(bs), lost);
            flags |= BLOCK_FLAG_AFTER_GAP;
        }
        self.header(l, flags, first_ns, self.pending_lost)
    }

    /// The header of a full block starting at `next_scan`, the one place
    /// both sources fill one.
    fn header(&self, l: &StreamLayout, flags: u32, timestamp_ns: u64, lost: u64) -> BlockHeader {
        BlockHeader {
            magic: BLOCK_MAGIC,
            flags,
            first_scan: self.next_scan,
            timestamp_ns,
            lost_before: lost,
            block_seq: self.block_seq,
            scans: l.block_scans(),
            channels: l.channels,
            format: l.format as u16,
            period_ns_q16: l.period_ns_q16(),
            epoch: self.epoch,
            _reserved: 0,
        }
    }

    /// Every counter at this moment, as `IOC_STATS` reports them and the
    /// control area mirrors them.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            head: self.head,
            tail: self.tail,
            produced_blocks: self.block_seq,
            dropped_blocks: self.dropped_blocks,
            dropped_scans: self.dropped_scans,
            overruns: self.overruns,
            next_scan: self.next_scan,
            status: self.status(),
            epoch: self.epoch,
            discarded_blocks: self.discarded_blocks,
        }
    }
}

#[cfg(CONFIG_KUNIT)]
#[kernel::macros::kunit_tests(hsdaq_producer)]
mod tests {
    use super::*;
    use crate::abi::format::Format;

    fn layout() -> StreamLayout {
        // 4 ch x s16, 256 B blocks (24 scans), 8 slots.
        StreamLayout {
            channels: 4,
            format: Format::I16,
            data_size: 2048,
            block_bytes: 256,
            rate_hz: 1000,
        }
    }

    /// Runs `step` until idle, "writing" every block; returns blocks written.
    fn run(p: &mut Producer, due: u64, l: &StreamLayout, period: u32) -> u64 {
        let mut written = 0;
        loop {
            match p.step(due, l, period, |_| {}) {
                Step::Idle => return written,
                Step::Dropped => {}
                Step::Write { .. } => {
                    p.published(l);
                    written += 1;
                }
            }
        }
    }

    #[test]
    fn full_ring_drops_and_reports_the_gap() {
        let l = layout();
        let bs = u64::from(l.block_scans());
        let mut p = Producer::default();
        p.start(0, 256);
        // 20 blocks due, 8 fit: 12 dropped, counted once as one loss event.
        assert_eq!(run(&mut p, 20 * bs, &l, 0), 8);
        assert_eq!(p.dropped_blocks, 12);
        assert_eq!(p.dropped_scans, 12 * bs);
        assert_eq!(p.overruns, 1);
        // The consumer frees everything: the next block reports the loss.
        assert!(p.accept_tail(p.head, 256));
        let header = match p.step(21 * bs, &l, 0, |_| {}) {
            Step::Write { header, .. } => header,
            _ => BlockHeader::default(),
        };
        assert_eq!(header.lost_before, 12 * bs);
        assert_eq!(header.first_scan, 20 * bs);
        assert_eq!(header.flags, BLOCK_FLAG_AFTER_GAP);
    }

    #[test]
    fn forced_and_periodic_drops_are_counted() {
        let l = layout();
        let mut p = Producer::default();
        p.start(0, 256);
        p.force_drops(u64::MAX);
        p.force_drops(5); // Saturates, no overflow.
        assert_eq!(p.fault_drop, u64::MAX);
        p.fault_drop = 2;
        let bs = u64::from(l.block_scans());
        // Period 4: blocks 3 and 7 drop, plus the two forced ones (0, 1).
        assert_eq!(run(&mut p, 8 * bs, &l, 4), 4);
        assert_eq!(p.dropped_blocks, 4);
        assert_eq!(p.block_seq + p.dropped_blocks, 8);
    }

    #[test]
    fn lag_is_bounded() {
        let l = layout();
        let bs = u64::from(l.block_scans());
        let mut p = Producer::default();
        p.start(0, 256);
        p.limit_lag(1_000_000 * bs, &l, 8);
        assert_eq!(p.dropped_blocks, 1_000_000 - 8);
        assert_eq!(run(&mut p, 1_000_000 * bs, &l, 0), 8);
        assert_eq!(p.next_scan, 1_000_000 * bs);
    }

    #[test]
    fn tail_is_validated() {
        let l = layout();
        let mut p = Producer::default();
        p.start(0, 256);
        run(&mut p, 4 * u64::from(l.block_scans()), &l, 0);
        assert_eq!(p.head, 1024);
        assert!(!p.accept_tail(2048, 256)); // beyond head
        assert!(!p.accept_tail(100, 256)); // not block-aligned
        assert!(p.accept_tail(512, 256));
        assert!(!p.accept_tail(256, 256)); // backwards
        p.read_pin = Some(768);
        assert!(!p.accept_tail(1024, 256)); // past a read() in progress
        assert!(p.accept_tail(768, 256));
        assert_eq!(p.tail, 768);
    }

    #[test]
    fn dma_counted_loss_is_the_counter_step() {
        let l = layout();
        let bs = u64::from(l.block_scans());
        let mut p = Producer::default();
        p.start(0, 256);
        let c = |counter| Completion {
            done_ns: 1_000_000_000,
            counter: Some(counter),
        };
        // The converter was at 1000 when the stream began: that is scan 0.
        let h = p.dma_block(c(1000), &l, Position::Counted);
        assert_eq!((h.first_scan, h.lost_before), (0, 0));
        p.published(&l);
        // Three whole blocks dropped upstream, then the next block.
        let h = p.dma_block(c(1000 + 4 * bs), &l, Position::Counted);
        assert_eq!((h.first_scan, h.lost_before), (4 * bs, 3 * bs));
        assert_eq!(h.flags & BLOCK_FLAG_LOSS_INFERRED, 0);
        assert_eq!((p.dropped_scans, p.overruns), (3 * bs, 1));
    }

    #[test]
    fn dma_inferred_loss_is_flagged_whole_blocks() {
        let l = layout();
        let bs = u64::from(l.block_scans());
        let dur = l.scan_time_ns(0, bs);
        let mut p = Producer::default();
        p.start(0, 256);
        let at = |ns| Completion {
            done_ns: ns,
            counter: None,
        };
        let t0 = 5_000_000_000;
        assert_eq!(p.dma_block(at(t0), &l, Position::Inferred).lost_before, 0);
        p.published(&l);
        // On time (a little jitter): no gap.
        assert_eq!(
            p.dma_block(at(t0 + dur + dur / 3), &l, Position::Inferred)
                .lost_before,
            0
        );
        p.published(&l);
        // Two block durations late: two blocks lost, flagged as an estimate.
        let h = p.dma_block(at(t0 + 4 * dur + dur / 4), &l, Position::Inferred);
        assert_eq!(h.lost_before, 2 * bs);
        assert_ne!(h.flags & BLOCK_FLAG_LOSS_INFERRED, 0);
    }

    #[test]
    fn dma_room_never_hands_out_unread_slots() {
        let l = layout(); // 8 slots
        let mut p = Producer::default();
        p.start(0, 256);
        assert_eq!(p.dma_room(&l, 4), 4);
        p.dma.queued = 8;
        assert_eq!(p.dma_room(&l, 16), 0);
        // Two published, the consumer has not released them: still none.
        p.published(&l);
        p.published(&l);
        p.dma.published = 2;
        assert_eq!(p.dma_room(&l, 16), 0);
        assert!(p.accept_tail(512, 256));
        assert_eq!(p.dma_room(&l, 16), 2);
    }

    #[test]
    fn start_discards_counted_and_never_moves_backwards() {
        let l = layout();
        let mut p = Producer::default();
        p.start(0, 256);
        run(&mut p, 3 * u64::from(l.block_scans()), &l, 0);
        let head = p.head;
        assert_eq!(p.start(5, 256), head);
        assert_eq!(p.discarded_blocks, 3);
        assert_eq!((p.head, p.tail, p.epoch, p.next_scan), (head, head, 2, 0));
        assert_eq!(p.block_seq, 3);
    }
}
