// SPDX-License-Identifier: GPL-2.0

//! The virtual sensor: an hrtimer producer that writes due blocks into the
//! ring, never overwrites unread data and counts every dropped block exactly
//! (the bookkeeping is [`Producer`]'s).
//!
//! The timer callback runs in hard-IRQ context, so producer state lives
//! under a `SpinLockIrq` and waiters sleep on a `CondVar` (whose notify is
//! IRQ-safe). Its work is bounded: one callback writes for at most
//! [`MAX_TICK_WORK_NS`] and the producer never lags real time by more than a
//! ring's worth of blocks (the rest is dropped and counted), so neither a
//! long stall nor a rate the CPU cannot write keeps interrupts off for long.
//!
//! Lock order: `control` (start/stop) → `io` (`read()`, START, RESET,
//! revocation; `read()` faults user pages under it, so it comes before
//! `mmap_lock`) → `mmap_lock` → `map` (mmap, revocation) → `state`
//! (spinlock, also taken by the timer). mmap runs under `mmap_lock` and so
//! never takes `io` (lockdep found that cycle in the `race` scenario).

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::{
    bindings, impl_has_hr_timer, new_condvar, new_mutex, new_spinlock_irq,
    prelude::*,
    revocable::Revocable,
    sync::{Arc, ArcBorrow, CondVar, CondVarTimeoutResult, Mutex, SpinLockIrq},
    time::{
        hrtimer::{
            ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart, RelativeMode,
        },
        msecs_to_jiffies, Delta, Monotonic,
    },
};

use crate::abi::ioctl::{Stats, FAULT_DROP_BLOCKS, FAULT_JITTER_US, FAULT_STALL_US};
use crate::config::{Config, Waveform};
use crate::producer::{Producer, Step};
use crate::ring::Ring;

/// Longest timer period; production catches up with wall time at every tick.
const MAX_TICK_NS: u64 = 1_000_000;
/// Shortest timer period, for fast streams in small rings and for catching up.
const MIN_TICK_NS: u64 = 20_000;
/// Longest a timer callback writes blocks (interrupts are off meanwhile).
const MAX_TICK_WORK_NS: u64 = 200_000;
/// Longest injected stall or jitter: 10 s.
const MAX_FAULT_US: u64 = 10_000_000;
/// How long unbind lets a consumer that saw `STATUS_GONE` close its mapping
/// before the mapping is revoked under it.
const UNBIND_GRACE_MS: u32 = 1000;

/// CLOCK_MONOTONIC in nanoseconds.
///
/// `kernel::time::Instant` keeps its raw value crate-private in 7.3, and block
/// timestamps must be comparable with user space's CLOCK_MONOTONIC.
fn now_ns() -> u64 {
    // SAFETY: ktime_get reads CLOCK_MONOTONIC; callable from any context.
    unsafe { bindings::ktime_get() as u64 }
}

/// What process-context users of the buffer share under `Sensor::io`.
pub(crate) struct Io {
    /// The `address_space` of the open file's mappings (null when no file is
    /// open), for revoking them at unbind.
    mapping: *mut bindings::address_space,
}

// SAFETY: `mapping` is only dereferenced by `unmap_mapping_range`, which may
// run on any thread; the pointer itself is plain data guarded by the mutex.
unsafe impl Send for Io {}

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
    /// The buffer, revoked (unmapped from user space and freed) at unbind.
    #[pin]
    ring: Revocable<Ring>,
    /// Held by the process-context users of the buffer (`read()`, START,
    /// RESET) and by revocation.
    #[pin]
    io: Mutex<Io>,
    /// Held by mmap (under `mmap_lock`) and by revocation: no mapping is made
    /// of a buffer being revoked.
    #[pin]
    map: Mutex<()>,
    /// Signalled when the open file is released.
    #[pin]
    released: CondVar,
    /// At most one consumer (open file) at a time.
    busy: AtomicBool,
    pub(crate) config: Config,
    /// Timer period: 1 ms, or less when the ring would fill within 4 ticks.
    tick_ns: u64,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Sensor {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
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
                state <- new_spinlock_irq!(Producer::default()),
                data_ready <- new_condvar!("hsdaq::data_ready"),
                control <- new_mutex!(None),
                ring <- Revocable::new(ring),
                io <- new_mutex!(Io { mapping: core::ptr::null_mut() }),
                map <- new_mutex!(()),
                released <- new_condvar!("hsdaq::released"),
                busy: AtomicBool::new(false),
                config,
                tick_ns,
            }),
            GFP_KERNEL,
        )
    }

    fn block_bytes(&self) -> u64 {
        u64::from(self.config.layout.block_bytes)
    }

    /// Claims the sensor for one open file, whose mappings live in `mapping`.
    pub(crate) fn claim(&self, mapping: *mut bindings::address_space) -> Result {
        let mut io = self.io.lock();
        if self.state.lock().gone {
            return Err(ENODEV);
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        io.mapping = mapping;
        Ok(())
    }

    /// The open file is released (no fd, no mapping left).
    pub(crate) fn unclaim(&self) {
        self.stop();
        let mut io = self.io.lock();
        io.mapping = core::ptr::null_mut();
        self.busy.store(false, Ordering::Release);
        self.released.notify_all();
        drop(io);
    }

    /// Starts a new stream at scan 0 (idempotent while running). Unread
    /// blocks are discarded and counted; no counter moves backwards.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut handle = self.control.lock();
        // `io` keeps a `read()` from copying a block START discards.
        let _io = self.io.lock();
        {
            let mut p = self.state.lock();
            if p.gone {
                return Err(ENODEV);
            }
            if p.running {
                return Ok(());
            }
            self.refresh_tail(&mut p);
            let now = now_ns();
            let tail = p.start(now, self.block_bytes());
            let ring = self.ring.try_access().ok_or(ENODEV)?;
            ring.set_tail(tail);
            ring.set_start_ns(now);
            ring.mirror(&p.stats());
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
            self.publish(&p);
        }
        // Dropping the handle cancels the timer and waits for a running
        // callback, so no block is written after this returns.
        *handle = None;
        self.data_ready.notify_all();
    }

    /// The device is going away (unbind or rmmod): stop for good, wake every
    /// waiter (which then sees `ENODEV`), give the consumer a moment to close
    /// its mapping, then unmap whatever is left and free the buffer, all
    /// while the device is still bound.
    pub(crate) fn shutdown(&self) {
        // Mark the device gone before stopping, in one step: a consumer must
        // never see a plain "stopped" in between and take it for the end of
        // the stream.
        {
            let mut p = self.state.lock();
            p.gone = true;
            p.running = false;
            self.publish(&p);
        }
        self.stop();
        let mut io = self.io.lock();
        let mut left = msecs_to_jiffies(UNBIND_GRACE_MS);
        while self.busy.load(Ordering::Acquire) {
            match self.released.wait_interruptible_timeout(&mut io, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                _ => break,
            }
        }
        let _map = self.map.lock();
        if !io.mapping.is_null() {
            // SAFETY: `mapping` is the `f_mapping` of the open file, which
            // stays alive until `unclaim` clears it under this lock. Zapping
            // every mapping of it makes later accesses fault with SIGBUS (the
            // VMAs have no fault handler); mmap refuses new ones (gone).
            unsafe { bindings::unmap_mapping_range(io.mapping, 0, 0, 1) };
        }
        // No user: the timer is cancelled, `read()`/START hold `io`, mmap
        // holds `map`, and no PTE maps the buffer any more. Frees it through
        // the DMA API while the device is still bound.
        self.ring.revoke();
        drop(io);
    }

    /// Discards unread blocks (counted) and clears injected faults; only
    /// while stopped.
    pub(crate) fn reset(&self) -> Result {
        let _handle = self.control.lock();
        let _io = self.io.lock();
        let mut p = self.state.lock();
        if p.gone {
            return Err(ENODEV);
        }
        if p.running {
            return Err(EBUSY);
        }
        self.refresh_tail(&mut p);
        p.reset(self.block_bytes());
        let ring = self.ring.try_access().ok_or(ENODEV)?;
        ring.set_tail(p.tail);
        ring.mirror(&p.stats());
        Ok(())
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let mut p = self.state.lock();
        if p.gone {
            return Err(ENODEV);
        }
        self.refresh_tail(&mut p);
        Ok(p.stats())
    }

    /// Injects a fault; unknown kinds and out-of-range arguments are EINVAL.
    pub(crate) fn inject(&self, kind: u32, arg: u64) -> Result {
        let mut p = self.state.lock();
        if p.gone {
            return Err(ENODEV);
        }
        match kind {
            FAULT_DROP_BLOCKS if arg <= 1 << 32 => p.force_drops(arg),
            FAULT_STALL_US if arg <= MAX_FAULT_US => p.stall_until_ns = now_ns() + arg * 1000,
            FAULT_JITTER_US if arg <= MAX_FAULT_US => p.jitter_us = arg,
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// Waits until the ring holds a block the consumer has not released, the
    /// stream stops, or `timeout_ns` passes (0: do not sleep, `EAGAIN`).
    /// Returns (head, status).
    pub(crate) fn wait(&self, timeout_ns: u64) -> Result<(u64, u32)> {
        let ms = timeout_ns.div_ceil(1_000_000).min(60_000) as u32;
        let mut left = msecs_to_jiffies(ms).max(1);
        let mut p = self.state.lock();
        loop {
            if p.gone {
                return Err(ENODEV);
            }
            self.refresh_tail(&mut p);
            if p.head != p.tail || !p.running {
                return Ok((p.head, p.status()));
            }
            if timeout_ns == 0 {
                return Err(EAGAIN);
            }
            match self.data_ready.wait_interruptible_timeout(&mut p, left) {
                CondVarTimeoutResult::Timeout => return Err(ETIMEDOUT),
                CondVarTimeoutResult::Signal { .. } => return Err(ERESTARTSYS),
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies.max(1),
            }
        }
    }

    /// Adopts the consumer's `tail` from the control area if it is valid.
    fn refresh_tail(&self, p: &mut Producer) {
        if let Some(ring) = self.ring.try_access() {
            p.accept_tail(ring.user_tail(), self.block_bytes());
        }
    }

    /// Copies published blocks to `iov` for `read()`; `Ok(None)` when none is
    /// readable (with the stream's status).
    ///
    /// The copied blocks are pinned: until they are released below, no tail
    /// written to the control area can pass them, so the producer cannot
    /// reuse their slots while `copy_to_iter` (which may sleep) runs. `io`
    /// serialises readers and keeps the buffer from being revoked meanwhile.
    pub(crate) fn read_blocks(
        &self,
        iov: &mut kernel::iov::IovIterDest<'_>,
    ) -> Result<core::result::Result<usize, u32>> {
        let block = self.block_bytes();
        let _io = self.io.lock();
        let (tail, head) = {
            let mut p = self.state.lock();
            if p.gone {
                return Err(ENODEV);
            }
            self.refresh_tail(&mut p);
            if p.head == p.tail {
                return Ok(Err(p.status()));
            }
            p.read_pin = Some(p.tail);
            (p.tail, p.head)
        };
        // SAFETY: revocation takes `io`, which we hold, after setting `gone`,
        // which we checked under it.
        let ring = unsafe { self.ring.access() };
        let blocks = ((head - tail) / block).min(iov.len() as u64 / block);
        let mut pos = tail;
        for _ in 0..blocks {
            // SAFETY: `[tail, head)` is published and pinned (see above).
            if !unsafe { ring.copy_block(pos, iov) } {
                break;
            }
            pos += block;
        }
        let mut p = self.state.lock();
        p.read_pin = None;
        if pos >= p.tail && pos <= p.head {
            p.tail = pos;
            ring.set_tail(pos);
        }
        Ok(Ok((pos - tail) as usize))
    }

    /// Maps the buffer into `vma` unless the device is gone.
    pub(crate) fn mmap(&self, vma: &kernel::mm::virt::VmaNew) -> Result {
        let _map = self.map.lock();
        if self.state.lock().gone {
            return Err(ENODEV);
        }
        // SAFETY: revocation takes `map`, which we hold, and happens only
        // after `gone` is set, which we checked under it.
        unsafe { self.ring.access() }.mmap(vma)
    }

    /// Produces the blocks due by now (timer context), for at most
    /// [`MAX_TICK_WORK_NS`]. Returns the delay to the next tick.
    fn tick(&self) -> u64 {
        let Some(ring) = self.ring.try_access() else {
            return self.tick_ns;
        };
        let mut p = self.state.lock();
        if !p.running {
            return self.tick_ns;
        }
        let now = now_ns();
        if now < p.stall_until_ns {
            return self.tick_ns;
        }
        let l = self.config.layout;
        let due = l.scans_in_ns(now - p.start_ns);
        p.limit_lag(due, &l, l.slots());
        let zeros = self.config.waveform == Waveform::Zeros;
        let block_bytes = self.block_bytes();
        let mut published = false;
        let mut behind = false;
        loop {
            if published && now_ns().saturating_sub(now) > MAX_TICK_WORK_NS {
                behind = true;
                break;
            }
            let step = p.step(due, &l, self.config.fault_drop_period, |p| {
                p.accept_tail(ring.user_tail(), block_bytes);
            });
            match step {
                Step::Idle => break,
                Step::Dropped => {}
                Step::Write { pos, header } => {
                    // SAFETY: `step` handed us the slot at `head`, which lies
                    // outside `[tail, head)` with room checked against the
                    // validated tail: the producer owns it until `published`.
                    unsafe { ring.write_block(pos, &header, zeros) };
                    p.published(&l);
                    published = true;
                }
            }
        }
        ring.mirror(&p.stats());
        if published {
            self.data_ready.notify_all();
        }
        let jitter = p.jitter_us;
        drop(p);
        if behind {
            return MIN_TICK_NS;
        }
        match NonZeroU64::new(jitter) {
            Some(j) => self.tick_ns + (xorshift(now) % j) * 1000,
            None => self.tick_ns,
        }
    }

    /// Mirrors the producer's counters, if the buffer is still there.
    fn publish(&self, p: &Producer) {
        if let Some(ring) = self.ring.try_access() {
            ring.mirror(&p.stats());
        }
    }
}

/// A cheap pseudo-random number for timer jitter.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

impl HrTimerCallback for Sensor {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let next_ns = this.tick();
        if !this.state.lock().running {
            return HrTimerRestart::NoRestart;
        }
        ctx.forward_now(Delta::from_nanos(next_ns as i64));
        HrTimerRestart::Restart
    }
}
