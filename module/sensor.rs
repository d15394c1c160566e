// SPDX-License-Identifier: GPL-2.0

//! The virtual sensor: an hrtimer producer that writes due blocks into the
//! ring every millisecond, never overwrites unread data and counts every
//! dropped block exactly.
//!
//! The timer callback runs in hard-IRQ context, so producer state lives
//! under a `SpinLockIrq` and waiters sleep on a `CondVar` (whose notify is
//! IRQ-safe). Sample `n` of the stream has the nominal CLOCK_MONOTONIC time
//! `start_ns + n / rate`; a block is produced once its last scan is due.
//! The timer ticks every millisecond, or faster when the stream would fill
//! the ring within four ticks (down to 20 us).

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::{
    bindings, impl_has_hr_timer, new_condvar, new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{Arc, ArcBorrow, CondVar, CondVarTimeoutResult, Mutex, SpinLockIrq},
    time::{
        hrtimer::{
            ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart, RelativeMode,
        },
        msecs_to_jiffies, Delta, Monotonic,
    },
};

use crate::abi::{
    ioctl::{Stats, FAULT_DROP_BLOCKS, FAULT_JITTER_US, FAULT_STALL_US},
    layout::{
        BlockHeader, BLOCK_FLAG_AFTER_GAP, BLOCK_MAGIC, STATUS_GONE, STATUS_RUNNING, STATUS_STOPPED,
    },
};
use crate::config::{Config, Waveform};
use crate::ring::Ring;

/// Longest timer period; production catches up with wall time at every tick.
const MAX_TICK_NS: u64 = 1_000_000;
/// Shortest timer period, for fast streams in small rings.
const MIN_TICK_NS: u64 = 20_000;
/// Longest injected stall or jitter: 10 s.
const MAX_FAULT_US: u64 = 10_000_000;

/// The producer's own (authoritative) counters; the control page mirrors them.
#[derive(Default)]
struct Producer {
    running: bool,
    gone: bool,
    start_ns: u64,
    next_scan: u64,
    head: u64,
    tail: u64,
    block_seq: u64,
    dropped_blocks: u64,
    dropped_scans: u64,
    overruns: u64,
    pending_lost: u64,
    was_full: bool,
    fault_drop: u64,
    stall_until_ns: u64,
    jitter_us: u64,
    rng: u64,
}

/// One sensor: its ring, its producer and the consumer's wait queue.
#[pin_data]
pub(crate) struct Sensor {
    #[pin]
    timer: HrTimer<Sensor>,
    #[pin]
    state: SpinLockIrq<Producer>,
    #[pin]
    data_ready: CondVar,
    /// Serialises start/stop and owns the armed timer (its drop cancels).
    #[pin]
    control: Mutex<Option<ArcHrTimerHandle<Sensor>>>,
    /// At most one consumer (open file) at a time.
    pub(crate) busy: AtomicBool,
    pub(crate) ring: Ring,
    pub(crate) config: Config,
    /// Timer period: 1 ms, or less when the ring would fill within 4 ticks.
    tick_ns: u64,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Sensor {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

fn now_ns() -> u64 {
    // SAFETY: ktime_get reads CLOCK_MONOTONIC; callable from any context.
    unsafe { bindings::ktime_get() as u64 }
}

impl Sensor {
    pub(crate) fn new(ring: Ring, config: Config) -> Result<Arc<Self>> {
        let l = config.layout;
        // Nanoseconds until the stream fills the ring; tick 4x as often.
        let fill_ns = l.scan_time_ns(0, l.slots() * u64::from(l.block_scans()));
        let tick_ns = (fill_ns / 4).clamp(MIN_TICK_NS, MAX_TICK_NS);
        Arc::pin_init(
            pin_init!(Self {
                timer <- HrTimer::new(),
                state <- new_spinlock_irq!(Producer { rng: 0x2545_F491_4F6C_DD1D, ..Default::default() }),
                data_ready <- new_condvar!("hsdaq::data_ready"),
                control <- new_mutex!(None),
                busy: AtomicBool::new(false),
                ring,
                config,
                tick_ns,
            }),
            GFP_KERNEL,
        )
    }

    /// Starts streaming from scan 0 with an empty ring (idempotent while
    /// running): every recording's sample indices begin at zero.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut handle = self.control.lock();
        {
            let mut p = self.state.lock();
            if p.gone {
                return Err(ENODEV);
            }
            if p.running {
                return Ok(());
            }
            let rng = p.rng;
            *p = Producer {
                rng,
                running: true,
                start_ns: now_ns(),
                ..Default::default()
            };
            self.ring.control().tail.store(0, Ordering::Release);
            self.ring.set_start_ns(p.start_ns);
            self.mirror(&p);
        }
        *handle = Some(self.clone().start_timer());
        Ok(())
    }

    fn start_timer(self: Arc<Self>) -> ArcHrTimerHandle<Sensor> {
        let tick = Delta::from_nanos(self.tick_ns as i64);
        HrTimerPointer::start(self, tick)
    }

    /// Stops the producer (idempotent); published blocks stay readable.
    pub(crate) fn stop(&self) {
        let mut handle = self.control.lock();
        {
            let mut p = self.state.lock();
            p.running = false;
            self.mirror(&p);
        }
        // Dropping the handle cancels the timer and waits for a running
        // callback, so no block is written after this returns.
        *handle = None;
        self.data_ready.notify_all();
    }

    /// The device is going away (unbind or rmmod): stop for good and wake
    /// every waiter, which then sees `ENODEV`.
    pub(crate) fn shutdown(&self) {
        // Mark the device gone before stopping, in one step: a consumer must
        // never see a plain "stopped" in between and take it for the end of
        // the stream.
        {
            let mut p = self.state.lock();
            p.gone = true;
            p.running = false;
            self.mirror(&p);
        }
        // Cancels the timer, wakes every waiter (now ENODEV); the status
        // stays GONE because `gone` is set.
        self.stop();
    }

    /// Empties the ring and zeroes the counters (only while stopped).
    pub(crate) fn reset(&self) -> Result {
        let _handle = self.control.lock();
        let mut p = self.state.lock();
        if p.running {
            return Err(EBUSY);
        }
        let (rng, gone) = (p.rng, p.gone);
        *p = Producer {
            rng,
            gone,
            ..Default::default()
        };
        self.ring.control().tail.store(0, Ordering::Release);
        self.mirror(&p);
        Ok(())
    }

    pub(crate) fn stats(&self) -> Stats {
        let p = self.state.lock();
        Stats {
            head: p.head,
            tail: self.ring.consumer_tail(p.tail, p.head).unwrap_or(p.tail),
            produced_blocks: p.block_seq,
            dropped_blocks: p.dropped_blocks,
            dropped_scans: p.dropped_scans,
            overruns: p.overruns,
            next_scan: p.next_scan,
            status: status(&p),
            _pad: 0,
        }
    }

    /// Injects a fault; unknown kinds and out-of-range arguments are EINVAL.
    pub(crate) fn inject(&self, kind: u32, arg: u64) -> Result {
        let mut p = self.state.lock();
        match kind {
            FAULT_DROP_BLOCKS if arg <= 1 << 32 => p.fault_drop += arg,
            FAULT_STALL_US if arg <= MAX_FAULT_US => p.stall_until_ns = now_ns() + arg * 1000,
            FAULT_JITTER_US if arg <= MAX_FAULT_US => p.jitter_us = arg,
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// Waits until the ring holds a block the consumer has not released, the
    /// stream stops, or `timeout_ns` passes. Returns (head, status).
    pub(crate) fn wait(&self, timeout_ns: u64) -> Result<(u64, u32)> {
        let mut left = msecs_to_jiffies(timeout_ns.div_ceil(1_000_000).min(60_000) as u32).max(1);
        let mut p = self.state.lock();
        loop {
            if p.gone {
                return Err(ENODEV);
            }
            self.refresh_tail(&mut p);
            if p.head != p.tail || !p.running {
                return Ok((p.head, status(&p)));
            }
            match self.data_ready.wait_interruptible_timeout(&mut p, left) {
                CondVarTimeoutResult::Timeout => return Err(ETIMEDOUT),
                CondVarTimeoutResult::Signal { .. } => return Err(ERESTARTSYS),
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies.max(1),
            }
        }
    }

    /// Published, unreleased bytes `[tail, head)` as the consumer sees them
    /// (for `read()`), or `None` when the device is gone.
    pub(crate) fn readable(&self) -> Option<(u64, u64)> {
        let mut p = self.state.lock();
        if p.gone {
            return None;
        }
        self.refresh_tail(&mut p);
        Some((p.tail, p.head))
    }

    /// Adopts the consumer's `tail` from the control page if it is valid; a
    /// scribbled one is ignored (the producer then sees the ring as full).
    fn refresh_tail(&self, p: &mut Producer) {
        if let Some(t) = self.ring.consumer_tail(p.tail, p.head) {
            p.tail = t;
        }
    }

    /// Releases bytes up to `tail` on behalf of a `read()` consumer.
    pub(crate) fn release_to(&self, tail: u64) {
        let mut p = self.state.lock();
        if tail >= p.tail && tail <= p.head {
            p.tail = tail;
            self.ring.control().tail.store(tail, Ordering::Release);
        }
    }

    /// Produces every block due by now (timer context).
    fn tick(&self) -> u64 {
        let mut p = self.state.lock();
        if !p.running {
            return 0;
        }
        let now = now_ns();
        if now < p.stall_until_ns {
            return 0;
        }
        let l = *self.ring.layout();
        // A valid layout holds at least one scan per block; a NonZero
        // divisor keeps panic paths out of this hard-IRQ callback.
        let per_block = NonZeroU64::new(u64::from(l.block_scans())).unwrap_or(NonZeroU64::MIN);
        let bs = per_block.get();
        let block_bytes = u64::from(l.block_bytes);
        let due = l.scans_in_ns(now - p.start_ns);
        let mut published = false;
        while p.next_scan + bs <= due {
            let period = u64::from(self.config.fault_drop_period);
            let periodic =
                period != 0 && (p.next_scan / per_block).checked_rem(period) == Some(period - 1);
            let forced = periodic || p.fault_drop > 0;
            if p.fault_drop > 0 {
                p.fault_drop -= 1;
            }
            if !forced && p.head - p.tail + block_bytes > l.data_size {
                self.refresh_tail(&mut p);
            }
            if forced || p.head - p.tail + block_bytes > l.data_size {
                // Full (or forced): drop. When full, everything due now goes
                // at once; the next block written reports the whole gap.
                let n = if forced {
                    1
                } else {
                    (due - p.next_scan) / per_block
                };
                p.dropped_blocks += n;
                p.dropped_scans += n * bs;
                p.pending_lost += n * bs;
                p.next_scan += n * bs;
                if !p.was_full {
                    p.overruns += 1;
                }
                p.was_full = true;
                continue;
            }
            let header = BlockHeader {
                magic: BLOCK_MAGIC,
                flags: if p.pending_lost > 0 {
                    BLOCK_FLAG_AFTER_GAP
                } else {
                    0
                },
                first_scan: p.next_scan,
                timestamp_ns: l.scan_time_ns(p.start_ns, p.next_scan),
                lost_before: p.pending_lost,
                block_seq: p.block_seq,
                scans: bs as u32,
                channels: l.channels,
                format: l.format as u16,
                period_ns_q16: l.period_ns_q16(),
                _reserved: [0; 1],
            };
            self.ring
                .write_block(p.head, &header, self.config.waveform == Waveform::Zeros);
            p.head += block_bytes;
            p.block_seq += 1;
            p.next_scan += bs;
            p.pending_lost = 0;
            p.was_full = false;
            published = true;
        }
        self.mirror(&p);
        if published {
            self.data_ready.notify_all();
        }
        let jitter = p.jitter_us;
        if jitter == 0 {
            return 0;
        }
        p.rng ^= p.rng << 13;
        p.rng ^= p.rng >> 7;
        p.rng ^= p.rng << 17;
        p.rng % jitter
    }

    /// Copies the producer's counters to the control page; `head` last, with
    /// Release, so a consumer that sees it also sees the blocks and counters.
    fn mirror(&self, p: &Producer) {
        let c = self.ring.control();
        c.produced_blocks.store(p.block_seq, Ordering::Relaxed);
        c.dropped_blocks.store(p.dropped_blocks, Ordering::Relaxed);
        c.dropped_scans.store(p.dropped_scans, Ordering::Relaxed);
        c.overruns.store(p.overruns, Ordering::Relaxed);
        c.next_scan.store(p.next_scan, Ordering::Relaxed);
        c.status.store(status(p), Ordering::Relaxed);
        c.head.store(p.head, Ordering::Release);
    }
}

fn status(p: &Producer) -> u32 {
    match (p.gone, p.running) {
        (true, _) => STATUS_GONE,
        (false, true) => STATUS_RUNNING,
        (false, false) => STATUS_STOPPED,
    }
}

impl HrTimerCallback for Sensor {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let extra_us = this.tick();
        if !this.state.lock().running {
            return HrTimerRestart::NoRestart;
        }
        ctx.forward_now(Delta::from_nanos((this.tick_ns + extra_us * 1000) as i64));
        HrTimerRestart::Restart
    }
}
