// SPDX-License-Identifier: GPL-2.0

//! The virtual sensor: an hrtimer paces a producer work item that writes due
//! blocks into the ring, never overwrites unread data and counts every
//! dropped block exactly (the bookkeeping is [`Producer`]'s).
//!
//! Which work runs where:
//! * the **timer callback** (hard IRQ) only reads two fields under the
//!   `state` spinlock and queues the work item: O(1), whatever the layout;
//! * the **work item** (process context, `system_dfl_wq`: unbound) decides each
//!   block under the spinlock, writes it *outside* any lock in chunks of at
//!   most [`CHUNK_BYTES`] with a `cond_resched` between chunks, and
//!   publishes it under the spinlock again. It runs until it has caught up
//!   with real time or the stream stops, competing for the CPU like any
//!   other task (a producer that cannot keep up loses blocks, counted, to
//!   the lag bound), so no layout (a 16 MiB block, 100 M scans/s) holds a
//!   CPU with interrupts or preemption off for longer than one chunk.
//!
//! Lock order: `control` (start/stop; stop flushes the work item, which
//! takes no lock above `scratch`) → `io` (START, RESET, `read()`'s copy,
//! revocation) → `map` (open, mmap, release, revocation) → `scratch` →
//! `state` (spinlock, also taken by the timer). mmap runs under
//! `mmap_lock` and takes `map`; revocation never holds `map` while it
//! takes an `mmap_lock` (see [`Sensor::shutdown`]). `read()` copies with page
//! faults disabled under `io` and faults the destination in with no lock
//! held, so a destination that never faults in (userfaultfd, a hung FUSE
//! server) blocks only its own reader: `open()` (which runs under the global
//! `misc_mtx`) takes `map`, never `io`.

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::{
    bindings, impl_has_hr_timer,
    mm::{Mm, MmWithUser},
    new_condvar, new_mutex, new_spinlock_irq,
    prelude::*,
    revocable::Revocable,
    sync::{aref::ARef, Arc, ArcBorrow, CondVar, CondVarTimeoutResult, Mutex, SpinLockIrq},
    time::{
        hrtimer::{
            ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart, RelativeMode,
        },
        msecs_to_jiffies, Delta, Monotonic,
    },
    workqueue::{self, impl_has_work, new_work, Work, WorkItem},
};

use crate::abi::ioctl::{Stats, FAULT_DROP_BLOCKS, FAULT_JITTER_US, FAULT_STALL_US};
use crate::config::{Config, Waveform};
use crate::dma::{Channel, Xfers, TX_ABORTED, TX_NOERROR};
use crate::glue::NoPageFaults;
use crate::producer::{Completion, Position, Producer, Step};
use crate::ring::{Area, Ring, CHUNK_BYTES};

/// Longest timer period; production catches up with wall time at every tick.
const MAX_TICK_NS: u64 = 1_000_000;
/// Shortest timer period, for fast streams in small rings and for catching up.
const MIN_TICK_NS: u64 = 20_000;
/// Longest injected stall or jitter: 10 s.
const MAX_FAULT_US: u64 = 10_000_000;
/// How long unbind lets a consumer that saw `STATUS_GONE` close its mapping
/// before the mapping is revoked under it.
const UNBIND_GRACE_MS: u32 = 1000;
/// Distinct address spaces that may map one open file (processes sharing
/// the fd); a further one's mmap is `ENOMEM`.
const MAX_MAPPERS: usize = 64;

/// The queue the producer work runs on: `system_dfl_wq`, the unbound
/// system queue (7.3 deprecates `system_unbound_wq`, which 7.3's Rust
/// `workqueue::system_unbound` still returns, in its favour).
fn producer_queue() -> &'static workqueue::Queue {
    // SAFETY: `system_dfl_wq` is created at boot, before any module loads,
    // and never destroyed.
    unsafe { workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// CLOCK_MONOTONIC in nanoseconds.
///
/// `kernel::time::Instant` keeps its raw value crate-private in 7.3, and block
/// timestamps must be comparable with user space's CLOCK_MONOTONIC.
fn now_ns() -> u64 {
    // SAFETY: ktime_get reads CLOCK_MONOTONIC; callable from any context.
    unsafe { bindings::ktime_get() as u64 }
}

/// What open, mmap, release and revocation share under `Sensor::map`.
pub(crate) struct Maps {
    /// The `address_space` of the open file's mappings (null when no file is
    /// open), for revoking them at unbind.
    mapping: *mut bindings::address_space,
    /// Every address space that mapped the open file (each at most once).
    /// Revocation waits on each one's `mmap_lock`, so that a mapping whose
    /// page tables were filled but whose VMA the kernel has not yet linked
    /// into `mapping` is linked (and so zapped) before the buffer is freed.
    mms: KVec<ARef<Mm>>,
}

// SAFETY: `mapping` is only dereferenced by `unmap_mapping_range`, which may
// run on any thread; the pointer itself is plain data guarded by the mutex.
// `ARef<Mm>` is Send.
unsafe impl Send for Maps {}

/// The DMA source's parts (a sensor without them is the virtual sensor).
pub(crate) struct DmaParts {
    /// The records the engine's callbacks receive.
    pub(crate) xfers: Xfers,
    /// Exact (the stream carries a scan counter) or inferred positions.
    pub(crate) position: Position,
}

/// Completions the engine reported, in order, not yet published.
struct Done {
    /// Transfers completed this stream.
    completed: u64,
    /// The completion of transfer `n` at `n % len`.
    slots: KVec<Completion>,
    /// The first failed transfer's `dmaengine_tx_result`, if any.
    failed: Option<u32>,
}

/// One sensor: its ring, its producer and the consumer's wait queue.
#[pin_data]
pub(crate) struct Sensor {
    #[pin]
    timer: HrTimer<Sensor>,
    /// The producer, queued by the timer.
    #[pin]
    work: Work<Sensor>,
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
    /// Held by `read()` while it copies, START and RESET (which discard
    /// blocks) and revocation. Never held across a sleeping fault.
    #[pin]
    io: Mutex<()>,
    /// Held by open, mmap (under `mmap_lock`), release and revocation.
    #[pin]
    map: Mutex<Maps>,
    /// The producer's bounce buffer for payload chunks (only the work item
    /// takes it; a lock because that is simpler to check than a cell).
    #[pin]
    scratch: Mutex<KVec<i32>>,
    /// Signalled when the open file is released.
    #[pin]
    released: CondVar,
    /// At most one consumer (open file) at a time.
    busy: AtomicBool,
    /// Set by `stop` before it flushes the producer: a block being written
    /// is abandoned at its next chunk (it was never published), so stopping
    /// never waits for a whole large block to be generated.
    halt: AtomicBool,
    pub(crate) config: Config,
    /// Timer period: 1 ms, or less when the ring would fill within 4 ticks.
    tick_ns: u64,
    /// DMA source: the channel, held from probe until unbind (taken out and
    /// released by `shutdown`). Held by the producer work item while it
    /// queues transfers and by `stop` while it terminates them.
    #[pin]
    chan: Mutex<Option<Channel>>,
    /// DMA source: transfer records and positions (None: virtual sensor).
    dma: Option<DmaParts>,
    /// DMA source: completions, written by the engine's callback (a leaf
    /// lock: the callback takes nothing else).
    #[pin]
    done: SpinLockIrq<Done>,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Sensor {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

impl_has_work! {
    impl HasWork<Self> for Sensor { self.work }
}

impl Sensor {
    pub(crate) fn new(
        ring: Ring,
        config: Config,
        source: Option<(Channel, DmaParts)>,
    ) -> Result<Arc<Self>> {
        let l = config.layout;
        // Nanoseconds until the stream fills the ring; tick 4x as often.
        let fill_ns = l.scan_time_ns(0, l.slots() * u64::from(l.block_scans()));
        let tick_ns = (fill_ns / 4).clamp(MIN_TICK_NS, MAX_TICK_NS);
        let mut scratch = KVec::new();
        let (chan, dma) = match source {
            Some((chan, parts)) => (Some(chan), Some(parts)),
            None => {
                scratch.resize(CHUNK_BYTES / size_of::<i32>(), 0, GFP_KERNEL)?;
                (None, None)
            }
        };
        let mut slots = KVec::new();
        if let Some(parts) = &dma {
            slots.resize(
                parts.xfers.len() as usize,
                Completion::default(),
                GFP_KERNEL,
            )?;
        }
        Arc::pin_init(
            pin_init!(Self {
                timer <- HrTimer::new(),
                work <- new_work!("hsdaq::produce"),
                state <- new_spinlock_irq!(Producer::default()),
                data_ready <- new_condvar!("hsdaq::data_ready"),
                control <- new_mutex!(None),
                ring <- Revocable::new(ring),
                io <- new_mutex!(()),
                map <- new_mutex!(Maps {
                    mapping: core::ptr::null_mut(),
                    mms: KVec::new(),
                }),
                scratch <- new_mutex!(scratch),
                released <- new_condvar!("hsdaq::released"),
                busy: AtomicBool::new(false),
                halt: AtomicBool::new(false),
                config,
                tick_ns,
                chan <- new_mutex!(chan),
                dma,
                done <- new_spinlock_irq!(Done {
                    completed: 0,
                    slots,
                    failed: None,
                }),
            }),
            GFP_KERNEL,
        )
        .map(|sensor| {
            sensor.arm_dma();
            sensor
        })
    }

    /// Points the transfer records at this sensor's completion handler.
    fn arm_dma(self: &Arc<Self>) {
        let Some(parts) = &self.dma else { return };
        let owner = Arc::as_ptr(self).cast::<core::ffi::c_void>();
        let metadata = parts.position == Position::Counted;
        // SAFETY: the stream has never started: no transfer is in flight.
        unsafe { parts.xfers.arm(owner, dma_complete, metadata) };
    }

    fn block_bytes(&self) -> u64 {
        u64::from(self.config.layout.block_bytes)
    }

    /// Claims the sensor for one open file, whose mappings live in `mapping`.
    ///
    /// Runs under the global `misc_mtx` (misc_open holds it across `open`),
    /// so it takes only `map` and the spinlock, which nothing holds for long.
    pub(crate) fn claim(&self, mapping: *mut bindings::address_space) -> Result {
        let mut maps = self.map.lock();
        if self.state.lock().gone {
            return Err(ENODEV);
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        maps.mapping = mapping;
        Ok(())
    }

    /// The open file is released (no fd, no mapping left).
    pub(crate) fn unclaim(&self) {
        self.stop();
        let mut maps = self.map.lock();
        maps.mapping = core::ptr::null_mut();
        let mms = core::mem::take(&mut maps.mms);
        self.busy.store(false, Ordering::Release);
        self.released.notify_all();
        drop(maps);
        // mmdrop outside the lock.
        drop(mms);
    }

    /// Starts a new stream at scan 0 (idempotent while running). Unread
    /// blocks are discarded and counted; no counter moves backwards.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut handle = self.control.lock();
        // `io` keeps a `read()` from copying a block START discards.
        let _io = self.io.lock();
        // DMA: a stream that failed (a transfer error) stopped without
        // `stop`: make sure nothing of it is still in flight, or its late
        // completions would be taken for the new stream's.
        if self.dma.is_some() && !self.state.lock().running {
            if let Some(chan) = self.chan.lock().as_ref() {
                chan.terminate_sync();
            }
            self.flush_producer();
        }
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
        self.halt.store(false, Ordering::Relaxed);
        if self.dma.is_some() {
            // `stop` terminated every transfer of the last stream: no
            // callback runs now.
            let mut d = self.done.lock();
            d.completed = 0;
            d.failed = None;
            drop(d);
            // Queue the first transfers now, not a tick later.
            let _ = producer_queue().enqueue(self.clone());
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
        self.halt.store(true, Ordering::Relaxed);
        // Dropping the handle cancels the timer and waits for a running
        // callback; the timer is the only one that queues the work item, so
        // once the item is flushed no block is written until the next START.
        *handle = None;
        self.flush_producer();
        // DMA: once the producer is idle nothing queues transfers; abort the
        // queued ones and wait until the engine writes no more (the slots
        // they target are never published), then flush the work item their
        // last callbacks may have queued.
        let terminated = match self.chan.lock().as_ref() {
            Some(chan) => {
                chan.terminate_sync();
                true
            }
            None => false,
        };
        if terminated {
            self.flush_producer();
        }
        self.data_ready.notify_all();
    }

    fn flush_producer(&self) {
        // SAFETY: `work` is a field of this live, pinned sensor; flush_work
        // waits for a queued or running instance and leaves it idle.
        unsafe { bindings::flush_work(Work::raw_get(&self.work)) };
    }

    /// The device is going away (unbind or rmmod): stop for good, wake every
    /// waiter (which then sees `ENODEV`), give the consumer a moment to close
    /// its mapping, then unmap whatever is left and free the buffer, all
    /// while the device is still bound.
    pub(crate) fn shutdown(&self) {
        // Mark the device gone before stopping, in one step: a consumer must
        // never see a plain "stopped" in between and take it for the end of
        // the stream. From here on open and mmap fail (they check `gone`
        // under `map`, which is taken below before the address spaces are
        // collected).
        {
            let mut p = self.state.lock();
            p.gone = true;
            p.running = false;
            self.publish(&p);
        }
        self.stop();
        let mms = {
            let mut maps = self.map.lock();
            let mut left = msecs_to_jiffies(UNBIND_GRACE_MS);
            while self.busy.load(Ordering::Acquire) {
                match self.released.wait_interruptible_timeout(&mut maps, left) {
                    CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                    _ => break,
                }
            }
            core::mem::take(&mut maps.mms)
        };
        // An mmap that passed its `gone` check has filled its page tables
        // but the kernel links its VMA into the file's mapping only after
        // `f_op->mmap` returns, still under that address space's
        // `mmap_lock` (held for writing). Taking each mapper's `mmap_lock`
        // once waits for every such mmap to finish linking, so the zap below
        // reaches it. `map` is not held here: mmap takes it under
        // `mmap_lock`, so waiting on `mmap_lock` with it held would deadlock.
        for mm in &mms {
            wait_for_mmaps(mm);
        }
        drop(mms);
        let _io = self.io.lock();
        let maps = self.map.lock();
        if !maps.mapping.is_null() {
            // SAFETY: `mapping` is the `f_mapping` of the open file, which
            // stays alive until `unclaim` clears it under `map`. Zapping
            // every mapping of it makes later accesses fault with SIGBUS (the
            // VMAs have no fault handler); mmap refuses new ones (gone).
            unsafe { bindings::unmap_mapping_range(maps.mapping, 0, 0, 1) };
        }
        // No user: the work item is flushed and not requeued, `read()`,
        // START and RESET hold `io`, mmap holds `map`, and no PTE maps the
        // buffer any more. Frees it through the DMA API while the device is
        // still bound.
        self.ring.revoke();
        drop(maps);
        // The engine is quiet (stop terminated it) and the ring, allocated
        // for its controller, is freed: only now give the channel back (the
        // channel pins the controller's driver, which the free still used).
        drop(self.chan.lock().take());
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
        // A DMA source's blocks come from hardware: only a stall (queue no
        // transfer for a while, so the converter overflows upstream) applies.
        if self.dma.is_some() && kind != FAULT_STALL_US {
            return Err(EOPNOTSUPP);
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

    /// Copies published blocks to `iov` for `read()`; `Ok(Err(status))` when
    /// none is readable.
    ///
    /// The copy runs under `io` with page faults disabled, so it never
    /// sleeps with the lock held: a destination page that is not present
    /// makes the copy short. The partial block is taken back, the lock
    /// dropped, the destination faulted in with no lock held (this may
    /// sleep for as long as the page's owner wants: userfaultfd, FUSE), and
    /// the copy retried. Only whole blocks are returned and released.
    ///
    /// `nonblock` (O_NONBLOCK, RWF_NOWAIT): never sleep, neither on `io` nor
    /// on a fault: `EAGAIN` instead.
    pub(crate) fn read_blocks(
        &self,
        iov: &mut kernel::iov::IovIterDest<'_>,
        nonblock: bool,
    ) -> Result<core::result::Result<usize, u32>> {
        let block = self.block_bytes();
        loop {
            match self.copy_blocks(iov, nonblock)? {
                Copied::Blocks(n) => return Ok(Ok(n)),
                Copied::Nothing(status) => return Ok(Err(status)),
                Copied::Faulted if nonblock => return Err(EAGAIN),
                Copied::Faulted => {}
            }
            if kernel::current!().signal_pending() {
                return Err(ERESTARTSYS);
            }
            // SAFETY: `as_raw` is the live iterator of this read; faulting
            // in its next `block` bytes only touches user memory.
            let left =
                unsafe { bindings::fault_in_iov_iter_writeable(iov.as_raw(), block as usize) };
            // Any part of the block that cannot be faulted in (a guard page,
            // a read-only page) would fail the copy again: EFAULT, no retry.
            if left != 0 {
                return Err(EFAULT);
            }
        }
    }

    /// One pass of [`Self::read_blocks`] under `io`.
    fn copy_blocks(
        &self,
        iov: &mut kernel::iov::IovIterDest<'_>,
        nonblock: bool,
    ) -> Result<Copied> {
        let block = self.block_bytes();
        let _io = match nonblock {
            true => self.io.try_lock().ok_or(EAGAIN)?,
            false => self.io.lock(),
        };
        let (tail, head) = {
            let mut p = self.state.lock();
            if p.gone {
                return Err(ENODEV);
            }
            self.refresh_tail(&mut p);
            if p.head == p.tail {
                return Ok(Copied::Nothing(p.status()));
            }
            // The copied blocks are pinned: no tail written to the control
            // area can pass them, so the producer cannot reuse their slots.
            p.read_pin = Some(p.tail);
            (p.tail, p.head)
        };
        // SAFETY: revocation takes `io`, which we hold, after setting `gone`,
        // which we checked under it.
        let ring = unsafe { self.ring.access() };
        let blocks = ((head - tail) / block).min(iov.len() as u64 / block);
        let mut pos = tail;
        let mut faulted = false;
        {
            let _nofault = NoPageFaults::new();
            for _ in 0..blocks {
                // SAFETY: `[tail, head)` is published and pinned (see above).
                let n = unsafe { ring.copy_block(pos, iov) };
                if n as u64 != block {
                    // SAFETY: the iterator advanced by exactly `n` bytes in
                    // this copy.
                    unsafe { iov.revert(n) };
                    faulted = true;
                    break;
                }
                pos += block;
            }
        }
        let mut p = self.state.lock();
        p.read_pin = None;
        if pos >= p.tail && pos <= p.head {
            p.tail = pos;
            ring.set_tail(pos);
        }
        Ok(match (pos - tail, faulted) {
            (0, true) => Copied::Faulted,
            (n, _) => Copied::Blocks(n as usize),
        })
    }

    /// Maps the buffer into `vma` unless the device is gone, and remembers
    /// the address space for revocation.
    pub(crate) fn mmap(&self, area: Area, vma: &kernel::mm::virt::VmaNew) -> Result {
        let mut maps = self.map.lock();
        if self.state.lock().gone {
            return Err(ENODEV);
        }
        let mm: &Mm = vma.mm();
        if !maps.mms.iter().any(|m| core::ptr::eq::<Mm>(&**m, mm)) {
            if maps.mms.len() >= MAX_MAPPERS {
                return Err(ENOMEM);
            }
            maps.mms.push(ARef::from(mm), GFP_KERNEL)?;
        }
        // SAFETY: revocation takes `map`, which we hold, and happens only
        // after `gone` is set, which we checked under it. The VMA is linked
        // later, under the `mmap_lock` revocation waits on (see shutdown).
        unsafe { self.ring.access() }.mmap(area, vma)
    }

    /// The producer work item: writes the blocks due, each outside any lock,
    /// until it has caught up with real time or the stream stops. The lag
    /// bound is applied before every block, so a producer that cannot keep
    /// up drops (counted) instead of building a backlog.
    fn produce(&self) {
        if let Some(parts) = &self.dma {
            return self.service_dma(parts);
        }
        // SAFETY: the ring is revoked only in `shutdown` after `stop`, which
        // cancels the timer (the only one that queues this work) and then
        // flushes this work item: the ring outlives every run.
        let ring = unsafe { self.ring.access() };
        let mut scratch = self.scratch.lock();
        let l = self.config.layout;
        let block_bytes = self.block_bytes();
        let zeros = self.config.waveform == Waveform::Zeros;
        // A block written but not yet published: published at the top of the
        // next locked section, so each block costs one lock round, not two.
        let mut written = false;
        loop {
            let step = {
                let mut p = self.state.lock();
                if core::mem::take(&mut written) {
                    p.published(&l);
                    ring.mirror(&p.stats());
                    self.data_ready.notify_all();
                }
                let now = now_ns();
                if !p.running || now < p.stall_until_ns {
                    break;
                }
                let due = l.scans_in_ns(now - p.start_ns);
                p.limit_lag(due, &l, l.slots());
                let step = p.step(due, &l, self.config.fault_drop_period, |p| {
                    p.accept_tail(ring.user_tail(), block_bytes);
                });
                if !matches!(step, Step::Write { .. }) {
                    ring.mirror(&p.stats());
                }
                step
            };
            match step {
                Step::Idle => break,
                // Forced drops come one block a step: yield between them too.
                Step::Dropped => crate::glue::cond_resched(),
                Step::Write { pos, header } => {
                    // SAFETY: `step` handed us the slot at `head`, outside
                    // `[tail, head)` with room checked against the validated
                    // tail. Only this work item moves `head` (it never runs
                    // twice at once), and START/RESET, which discard, run only
                    // after `stop` has flushed it: the slot is ours until it
                    // is published at the top of the next round.
                    written =
                        unsafe { ring.write_block(pos, &header, zeros, &mut scratch, &self.halt) };
                    if !written {
                        break;
                    }
                }
            }
        }
    }

    /// The DMA source's work item: publishes the completed transfers in
    /// order (each gets its header now: the engine wrote only the payload),
    /// then queues transfers into the slots the consumer has released.
    fn service_dma(&self, parts: &DmaParts) {
        // SAFETY: as in `produce`: the ring outlives every run of the work.
        let ring = unsafe { self.ring.access() };
        let l = self.config.layout;
        let bb = self.block_bytes();
        let chan = self.chan.lock();
        let Some(chan) = chan.as_ref() else { return };
        let (first, n, pos) = {
            let mut p = self.state.lock();
            if !p.running {
                return;
            }
            let mut published = false;
            loop {
                let (c, failed) = {
                    let d = self.done.lock();
                    if p.dma.published >= d.completed {
                        (None, d.failed)
                    } else {
                        let i = (p.dma.published % d.slots.len().max(1) as u64) as usize;
                        (d.slots.get(i).copied(), None)
                    }
                };
                if let Some(result) = failed {
                    dev_err!(
                        ring.device(),
                        "DMA transfer failed (dmaengine result {}): stream stopped\n",
                        result
                    );
                    p.failed = true;
                    p.running = false;
                    break;
                }
                let Some(c) = c else { break };
                let header = p.dma_block(c, &l, parts.position);
                // SAFETY: the slot at `head` is the next completed transfer's
                // (transfers complete in order, one per slot from `head`
                // on); the engine is done with it and no consumer reads it
                // before the Release store of `head` in `mirror`.
                unsafe { ring.write_header(p.head, &header) };
                p.published(&l);
                p.dma.published += 1;
                published = true;
            }
            if published || !p.running {
                ring.mirror(&p.stats());
                self.data_ready.notify_all();
            }
            if !p.running || now_ns() < p.stall_until_ns {
                return;
            }
            p.accept_tail(ring.user_tail(), bb);
            let n = p.dma_room(&l, u64::from(parts.xfers.len()));
            let first = p.dma.queued;
            let pos = p.head + (p.dma.queued - p.dma.published) * bb;
            p.dma.queued += n;
            (first, n, pos)
        };
        let mut queued = 0;
        while queued < n {
            let (addr, len) = ring.payload_dma(pos + queued * bb);
            // SAFETY: the slot lies in `[head, tail + data_size)` beyond every
            // queued transfer (`dma_room`), so no consumer reads it and no
            // other transfer targets it; the record of transfer `first +
            // queued` is free (at most `len` transfers are queued, and they
            // complete in order); the data area is mapped for the channel's
            // device (it was allocated for it).
            let r = unsafe { chan.submit(addr, len, parts.xfers.record(first + queued)) };
            if let Err(e) = r {
                dev_warn!(ring.device(), "queueing a DMA transfer failed: {:?}\n", e);
                break;
            }
            queued += 1;
        }
        if queued < n {
            // Give back the slots we could not queue (only this work item
            // moves `queued`); the next tick retries.
            self.state.lock().dma.queued = first + queued;
        }
        if queued > 0 {
            chan.issue_pending();
        }
    }

    /// A transfer completed (engine callback context: a tasklet, an IRQ
    /// thread, a kthread; never sleeps). Records it and queues the work.
    fn dma_done(self: ArcBorrow<'_, Self>, index: u32, result: u32, counter: u64) {
        if result == TX_ABORTED {
            return;
        }
        {
            let mut d = self.done.lock();
            let len = d.slots.len().max(1) as u64;
            let in_order = u64::from(index) == d.completed % len;
            if result != TX_NOERROR || !in_order {
                d.failed
                    .get_or_insert(if in_order { result } else { u32::MAX });
            } else {
                let i = index as usize;
                if let Some(slot) = d.slots.get_mut(i) {
                    *slot = Completion {
                        done_ns: now_ns(),
                        counter: (counter != u64::MAX).then_some(counter),
                    };
                }
                d.completed += 1;
            }
        }
        let _ = producer_queue().enqueue(Arc::from(self));
    }

    /// Mirrors the producer's counters, if the buffer is still there.
    fn publish(&self, p: &Producer) {
        if let Some(ring) = self.ring.try_access() {
            ring.mirror(&p.stats());
        }
    }
}

/// What one copying pass of `read()` achieved.
enum Copied {
    /// This many bytes of whole blocks were copied and released.
    Blocks(usize),
    /// Nothing is readable; the stream's status.
    Nothing(u32),
    /// The first block's destination is not present in memory.
    Faulted,
}

/// Waits until no mmap is in progress in `mm`: such an mmap holds `mmap_lock`
/// for writing until its VMA is linked. An address space without users has
/// no mmap in progress (and its exit unmaps every VMA).
fn wait_for_mmaps(mm: &Mm) {
    if let Some(user) = mm.mmget_not_zero() {
        drop(user.mmap_read_lock());
        // The last user may be gone by now: put it from a workqueue, not
        // here (exit_mmap would release our file under us).
        drop(MmWithUser::into_mmput_async(user));
    }
}

/// A cheap pseudo-random number for timer jitter.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

/// The engine's completion callback (see `glue.c` `hsdaq_dma_done`).
///
/// # Safety
///
/// `owner` is `Arc::as_ptr` of a live sensor: records are armed with it, and
/// the sensor terminates every transfer (`stop`) before its last reference
/// can go (the device holds one until `shutdown` has stopped it).
unsafe extern "C" fn dma_complete(
    owner: *const core::ffi::c_void,
    index: u32,
    result: u32,
    _residue: u32,
    counter: u64,
) {
    // SAFETY: the function's contract.
    let sensor = unsafe { ArcBorrow::from_raw(owner.cast::<Sensor>()) };
    sensor.dma_done(index, result, counter);
}

/// The reboot notifier of a DMA sensor: stop the engine before the kernel
/// shuts devices down (reboot, power-off, kexec).
///
/// # Safety
///
/// `owner` is `Arc::as_ptr` of a live sensor (the device holds a reference
/// until its hook, dropped before it, is unregistered).
pub(crate) unsafe extern "C" fn quiesce_for_reboot(owner: *const core::ffi::c_void) {
    // SAFETY: the function's contract.
    let sensor = unsafe { ArcBorrow::from_raw(owner.cast::<Sensor>()) };
    if sensor.dma.is_some() {
        sensor.stop();
        pr_notice!("hsdaq: DMA stopped for reboot/kexec\n");
    }
}

impl HrTimerCallback for Sensor {
    type Pointer<'a> = Arc<Self>;

    /// Hard-IRQ context: queue the producer and re-arm, nothing else.
    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let (running, jitter) = {
            let p = this.state.lock();
            (p.running, p.jitter_us)
        };
        if !running {
            return HrTimerRestart::NoRestart;
        }
        // Already queued (or running: it runs until caught up): the item
        // will see every block due by then.
        let _ = producer_queue().enqueue(Arc::from(this));
        let next_ns = match NonZeroU64::new(jitter) {
            Some(j) => this.tick_ns + (xorshift(now_ns()) % j) * 1000,
            None => this.tick_ns,
        };
        ctx.forward_now(Delta::from_nanos(next_ns as i64));
        HrTimerRestart::Restart
    }
}

impl WorkItem for Sensor {
    type Pointer = Arc<Sensor>;

    fn run(this: Arc<Sensor>) {
        this.produce();
    }
}
