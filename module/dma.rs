// SPDX-License-Identifier: GPL-2.0

//! The DMA source's side of the dmaengine client API: a channel taken from
//! the device tree (`dmas` / `dma-names = "rx"`), and the table of transfers
//! in flight whose completions the engine reports.
//!
//! The engine writes each block's payload straight into a ring slot (after
//! the 64-byte header, which the driver writes once the transfer is done):
//! no kernel-side copy of a sample. Every call goes through the client API
//! only (`glue.c` wraps the `static inline` ones), exactly as for `axi-dmac`,
//! Xilinx AXI DMA or `bcm2835-dma`.
//!
//! Transfers are queued one per slot, only into slots the consumer has
//! released (so the engine never overwrites unread data, by construction),
//! and complete in the order they were queued (one channel).

use core::ffi::c_void;

use kernel::{bindings, device::Device, error::from_err_ptr, prelude::*};

/// One transfer in flight: `struct hsdaq_dma_xfer` of `glue.h`.
#[repr(C)]
pub(crate) struct Xfer {
    desc: *mut c_void,
    owner: *const c_void,
    complete: unsafe extern "C" fn(*const c_void, u32, u32, u32, u64),
    index: u32,
    want_metadata: bool,
}

extern "C" {
    // Opaque pointers: bindgen's `struct device` holds zero-sized members.
    fn hsdaq_dma_request(dev: *mut c_void, name: *const u8) -> *mut c_void;
    fn hsdaq_dma_release(chan: *mut c_void);
    fn hsdaq_dma_device(chan: *mut c_void) -> *mut c_void;
    fn hsdaq_dma_config(chan: *mut c_void, width: u32) -> i32;
    fn hsdaq_dma_engine_metadata(chan: *mut c_void) -> bool;
    fn hsdaq_dma_submit(chan: *mut c_void, buf: u64, len: usize, x: *mut Xfer) -> i32;
    fn hsdaq_dma_issue_pending(chan: *mut c_void);
    fn hsdaq_dma_terminate_sync(chan: *mut c_void) -> i32;
    fn hsdaq_reboot_register(
        owner: *const c_void,
        quiesce: unsafe extern "C" fn(*const c_void),
    ) -> *mut c_void;
    fn hsdaq_reboot_unregister(hook: *mut c_void);
}

/// Calls `quiesce(owner)` when the system reboots, powers off or kexecs,
/// before the kernel shuts devices down (7.3's Rust platform driver has no
/// `.shutdown`); unregistered on drop, which waits for a running call.
pub(crate) struct RebootHook(*mut c_void);

// SAFETY: the hook is a kernel allocation only registered and unregistered.
unsafe impl Send for RebootHook {}
// SAFETY: as above; no method takes `&self`.
unsafe impl Sync for RebootHook {}

impl RebootHook {
    /// # Safety
    ///
    /// `owner` stays valid for `quiesce` until the hook is dropped.
    pub(crate) unsafe fn register(
        owner: *const c_void,
        quiesce: unsafe extern "C" fn(*const c_void),
    ) -> Result<Self> {
        // SAFETY: the caller's contract covers `owner`; `quiesce` is a
        // function the notifier may call in process context.
        let hook = unsafe { hsdaq_reboot_register(owner, quiesce) };
        if hook.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self(hook))
    }
}

impl Drop for RebootHook {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, unregistered once, here.
        unsafe { hsdaq_reboot_unregister(self.0) };
    }
}

/// `enum dmaengine_tx_result`: the transfer completed.
pub(crate) const TX_NOERROR: u32 = 0;
/// `DMA_TRANS_ABORTED`: terminated before it ran (stop, unbind).
pub(crate) const TX_ABORTED: u32 = 3;

/// A DMA channel this driver holds; released on drop.
pub(crate) struct Channel(*mut c_void);

// SAFETY: a `dma_chan` may be used from any thread; the client API
// serialises inside the engine.
unsafe impl Send for Channel {}
// SAFETY: as above; every method takes `&self` and the engine locks.
unsafe impl Sync for Channel {}

impl Channel {
    /// The channel `name` of `dev`'s `dmas`. `EPROBE_DEFER` while its
    /// controller has not probed yet; any other error is named.
    pub(crate) fn request(dev: &Device, name: &CStr) -> Result<Self> {
        let raw = crate::glue::raw_device(dev).cast::<c_void>();
        // SAFETY: `raw` is the device being probed; `name` is NUL-terminated.
        let chan = from_err_ptr(unsafe { hsdaq_dma_request(raw, name.as_char_ptr().cast()) })
            .inspect_err(|e| {
                if *e != EPROBE_DEFER {
                    dev_err!(
                        dev,
                        "property 'dmas' / 'dma-names' = {:?}: cannot get the DMA channel (error {})\n",
                        name,
                        e.to_errno()
                    );
                }
            })?;
        Ok(Self(chan))
    }

    /// The device that does the DMA: buffers the engine writes are allocated
    /// and mapped for it, not for the client.
    ///
    /// The channel holds a reference to its controller, which stays bound
    /// while a client holds a channel (dmaengine's contract, which IIO's DMA
    /// buffers rely on too).
    pub(crate) fn device(&self) -> &Device {
        // SAFETY: `self.0` is a live channel; its controller's device lives
        // at least as long as the channel is held (see above).
        unsafe { Device::from_raw(hsdaq_dma_device(self.0).cast::<bindings::device>()) }
    }

    /// Peripheral-to-memory transfers of `width`-byte beats.
    pub(crate) fn configure(&self, width: u32) -> Result {
        // SAFETY: a live channel; the call only stores the settings.
        kernel::error::to_result(unsafe { hsdaq_dma_config(self.0, width) })
    }

    /// Whether the engine hands over per-transfer metadata of its own
    /// (`DESC_METADATA_ENGINE`): where the stream's sample counter arrives.
    pub(crate) fn engine_metadata(&self) -> bool {
        // SAFETY: a live channel; the call reads a capability field.
        unsafe { hsdaq_dma_engine_metadata(self.0) }
    }

    /// Queues one transfer of `len` bytes to DMA address `buf`.
    ///
    /// # Safety
    ///
    /// `buf..buf + len` is memory mapped for [`Self::device`] that nothing
    /// else writes until the transfer completes or is terminated; `x` is a
    /// record of a live [`Xfers`] that is not in flight.
    pub(crate) unsafe fn submit(&self, buf: u64, len: usize, x: *mut Xfer) -> Result {
        // SAFETY: the caller's contract; the engine keeps `x` as the
        // callback's parameter until the callback has run.
        kernel::error::to_result(unsafe { hsdaq_dma_submit(self.0, buf, len, x) })
    }

    /// Starts queued transfers.
    pub(crate) fn issue_pending(&self) {
        // SAFETY: a live channel.
        unsafe { hsdaq_dma_issue_pending(self.0) };
    }

    /// Aborts every queued transfer and waits until the engine has stopped
    /// writing and no completion callback runs. Process context; never from
    /// a callback of this channel.
    pub(crate) fn terminate_sync(&self) {
        // SAFETY: a live channel; the callers are stop paths in process
        // context.
        let _ = unsafe { hsdaq_dma_terminate_sync(self.0) };
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Nothing is in flight: every owner terminates before it drops.
        // SAFETY: the channel was requested by us and is released once.
        unsafe { hsdaq_dma_release(self.0) };
    }
}

/// The records the engine's callbacks receive, one per transfer that may be
/// in flight; allocated once (the engine keeps pointers into it).
///
/// Reached only through `base` (raw pointers, never references): the
/// engine's C code writes a record's `desc` while it is in flight.
pub(crate) struct Xfers {
    /// Owns the allocation; never touched after `new`.
    _records: KVec<Xfer>,
    base: *mut Xfer,
    len: u32,
}

// SAFETY: the records are plain data reached through raw pointers; a record
// is written by Rust only while it is not in flight, and by the engine only
// while it is.
unsafe impl Send for Xfers {}
// SAFETY: as above.
unsafe impl Sync for Xfers {}

/// A completion that does nothing: records are armed with the real one
/// (which needs the owner's address) by [`Xfers::arm`].
unsafe extern "C" fn no_completion(_: *const c_void, _: u32, _: u32, _: u32, _: u64) {}

impl Xfers {
    /// `n` records, not yet armed.
    pub(crate) fn new(n: u32) -> Result<Self> {
        let mut records = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        for index in 0..n {
            records.push(
                Xfer {
                    desc: core::ptr::null_mut(),
                    owner: core::ptr::null(),
                    complete: no_completion,
                    index,
                    want_metadata: false,
                },
                GFP_KERNEL,
            )?;
        }
        let base = records.as_mut_ptr();
        Ok(Self {
            _records: records,
            base,
            len: n,
        })
    }

    /// Points every record's completion at `complete(owner, …)`.
    ///
    /// # Safety
    ///
    /// No record is in flight (no engine reads the records meanwhile).
    pub(crate) unsafe fn arm(
        &self,
        owner: *const c_void,
        complete: unsafe extern "C" fn(*const c_void, u32, u32, u32, u64),
        want_metadata: bool,
    ) {
        for i in 0..self.len as usize {
            // SAFETY: `i < len` records of the live allocation; nothing else
            // reads or writes them now (the caller's contract).
            unsafe {
                let x = self.base.add(i);
                core::ptr::addr_of_mut!((*x).owner).write(owner);
                core::ptr::addr_of_mut!((*x).complete).write(complete);
                core::ptr::addr_of_mut!((*x).want_metadata).write(want_metadata);
            }
        }
    }

    /// Records in the table.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// The record for transfer number `n` (they are reused in turn).
    pub(crate) fn record(&self, n: u64) -> *mut Xfer {
        let i = n.checked_rem(u64::from(self.len)).unwrap_or(0) as usize;
        // SAFETY: `i < len` (or 0 of an empty table, never handed out: no
        // transfer is queued without a record); only a pointer is formed.
        unsafe { self.base.add(i) }
    }
}
