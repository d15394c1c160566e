// SPDX-License-Identifier: GPL-2.0

//! The ring buffer: one physically contiguous DMA-coherent allocation holding
//! the control area and the data area, laid out exactly as `abi/` says.
//!
//! User space maps the control area read-write (it owns `tail`) and the data
//! area read-only. The kernel never trusts the control area: it keeps its own
//! copy of every counter, only reads `tail` back (validated by the producer),
//! and never forms a reference to the whole `ControlPage` (user space may
//! change any byte of it at any time): each field is reached through a raw
//! pointer, counters as atomics, the rest with volatile writes.
//!
//! A `Ring` lives inside a `Revocable` of the sensor and is dropped at unbind,
//! while the device is still bound: the DMA API is never used on an unbound
//! device, and a reserved-memory region is released only after its buffer.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use kernel::{
    bindings,
    device::{Bound, Device},
    dma::Coherent,
    error::to_result,
    iov::IovIterDest,
    mm::virt::VmaNew,
    prelude::*,
    sync::aref::ARef,
};

use crate::abi::{
    format::Format,
    ioctl::{DeviceInfo, Stats, INFO_FIRMWARE_NODE},
    layout::{
        BlockHeader, ControlPage, LayoutError, StreamLayout, BLOCK_HEADER_BYTES, CONTROL_MAGIC,
    },
    waveform,
};
use crate::config::setting_name;
use crate::reserved::ReservedMem;

/// The producer generates payload this many bytes at a time (its bounce
/// buffer's size), yielding the CPU between chunks.
pub(crate) const CHUNK_BYTES: usize = 16 * 1024;

/// Which part of the ring a mapping shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    /// The control area (read-write for the consumer, which owns `tail`).
    Control,
    /// The block slots (read-only).
    Data,
}

/// The buffers of one device: the control area and the data area, two
/// DMA-coherent allocations (so the power-of-two data area is not rounded
/// up to twice its size by one extra page), each physically contiguous.
pub(crate) struct Ring {
    control: Coherent<[u8]>,
    data: Coherent<[u8]>,
    dev: ARef<Device>,
    /// The device the data area was allocated (and is mapped) for: the DMA
    /// controller's for the DMA source (it writes the area), else `dev`.
    data_dev: ARef<Device>,
    layout: StreamLayout,
    /// The buffers live in a per-device coherent pool (`shared-dma-pool`,
    /// not `reusable`), which the kernel maps write-combining.
    write_combine: bool,
    /// The reserved-memory region the buffers came from, if any; declared
    /// after them so it is released only once they are freed.
    _region: Option<ReservedMem>,
}

/// A field of the control area as an atomic, without a `&ControlPage`.
macro_rules! control_atomic {
    ($ring:expr, $field:ident) => {{
        let c = $ring.control_ptr();
        // SAFETY: `c` points to the live, suitably aligned control area of
        // our allocation (it lives as long as `$ring`). Atomics are interior
        // mutable, so a shared reference to one field stays valid while user
        // space writes that field or any other byte of the page.
        unsafe { &*core::ptr::addr_of!((*c).$field) }
    }};
}

impl Ring {
    /// Allocates the control area (`info.control_bytes`) and the data area
    /// (`data_size` contiguous bytes) and writes the control area's identity
    /// and layout: the same values `IOC_INFO` answers.
    pub(crate) fn new(
        dev: &Device<Bound>,
        data_dev: &Device<Bound>,
        layout: StreamLayout,
        info: &DeviceInfo,
        region: Option<ReservedMem>,
    ) -> Result<Self> {
        let control_bytes = info.control_bytes as usize;
        let len = layout.data_size as usize;
        let raw = crate::glue::raw_device(data_dev);
        // SAFETY: `raw` is a bound device: the one probe runs for, or the
        // DMA controller of the channel it holds.
        if !unsafe { bindings::dma_can_mmap(raw) } {
            dev_err!(
                dev,
                "the DMA API cannot map this device's buffers to user space\n"
            );
            return Err(ENXIO);
        }
        // No allocator WARN for a size a user asked for: the dev_err below says it.
        let data = Coherent::<u8>::zeroed_slice(data_dev, len, GFP_KERNEL | __GFP_NOWARN).inspect_err(
            |_| {
                let firmware = info.flags & INFO_FIRMWARE_NODE != 0;
                let (kind, name) = setting_name(firmware, LayoutError::DataSize);
                dev_err!(
                    dev,
                    "{} '{}' = {}: cannot allocate {} contiguous bytes (a smaller buffer, or a 'memory-region', will do)\n",
                    kind,
                    name,
                    layout.data_size,
                    len
                );
            },
        )?;
        // After the data area: in a reserved pool the data then takes the
        // naturally aligned start, and this page the run right after it.
        let control = Coherent::<u8>::zeroed_slice(dev, control_bytes, GFP_KERNEL)?;
        // A `reusable` region is CMA and a `restricted-dma-pool` swiotlb,
        // both reached through the cacheable linear map: only a per-device
        // coherent pool (`dev->dma_mem`) is write-combining on both sides.
        let write_combine = region.is_some() && has_coherent_pool(raw);
        let ring = Ring {
            control,
            data,
            write_combine,
            dev: dev.into(),
            data_dev: data_dev.into(),
            layout,
            _region: region,
        };
        let c = ring.control_ptr();
        // SAFETY: `c` points to the zeroed, page-aligned start of our
        // allocation, which no one else can reach yet (it is mapped only after
        // the misc device is registered, later in probe). All-zero is a valid
        // `ControlPage`; we write plain fields through raw pointers.
        unsafe {
            addr_of_mut!((*c).magic).write(CONTROL_MAGIC);
            addr_of_mut!((*c).abi_major).write(info.abi_major);
            addr_of_mut!((*c).abi_minor).write(info.abi_minor);
            addr_of_mut!((*c).control_bytes).write(info.control_bytes);
            addr_of_mut!((*c).block_header_bytes).write(BLOCK_HEADER_BYTES as u32);
            addr_of_mut!((*c).data_offset).write(info.data_offset);
            addr_of_mut!((*c).data_size).write(info.data_size);
            addr_of_mut!((*c).block_bytes).write(info.block_bytes);
            addr_of_mut!((*c).block_scans).write(info.block_scans);
            addr_of_mut!((*c).channels).write(info.channels);
            addr_of_mut!((*c).format).write(info.format);
            addr_of_mut!((*c).source).write(info.source);
            addr_of_mut!((*c).rate_hz).write(info.rate_hz);
            addr_of_mut!((*c).name).write(info.name);
            addr_of_mut!((*c).compatible).write(info.compatible);
        }
        Ok(ring)
    }

    /// The device the ring belongs to (for messages).
    pub(crate) fn device(&self) -> &Device {
        &self.dev
    }

    /// The DMA address and length of the payload of the slot at `pos` (the
    /// slot after its 64-byte header), as the data area's device sees it.
    pub(crate) fn payload_dma(&self, pos: u64) -> (u64, usize) {
        let l = &self.layout;
        let offset = (pos & (l.data_size - 1)) + BLOCK_HEADER_BYTES as u64;
        let len = l.block_scans() as usize * l.channels as usize * l.format.bytes();
        (self.data.dma_address() + offset, len)
    }

    /// Writes the header of the slot at `pos`, whose payload is already
    /// there (the DMA source).
    ///
    /// # Safety
    ///
    /// The caller owns the slot: it is outside `[tail, head)` and nothing
    /// else writes it (its transfer has completed).
    pub(crate) unsafe fn write_header(&self, pos: u64, header: &BlockHeader) {
        // SAFETY: the slot is block_bytes long and 64-byte aligned inside our
        // allocation; the caller owns it; user space maps it read-only.
        unsafe { self.slot(pos).cast::<BlockHeader>().write_volatile(*header) };
    }

    fn control_ptr(&self) -> *mut ControlPage {
        self.control.as_mut_ptr().cast::<ControlPage>()
    }

    /// Publishes the stream's start time (read by user space after it sees
    /// `head` move, which is a later Release store).
    pub(crate) fn set_start_ns(&self, ns: u64) {
        // SAFETY: `start_ns` is a u64 inside our live control area; a volatile
        // write tolerates concurrent (racy, user-space) accesses of the field.
        unsafe { addr_of_mut!((*self.control_ptr()).start_ns).write_volatile(ns) };
    }

    /// The consumer's `tail` as user space last wrote it (untrusted).
    pub(crate) fn user_tail(&self) -> u64 {
        control_atomic!(self, tail).load(Ordering::Acquire)
    }

    /// Writes `tail` on the consumer's behalf (`read()`, START, RESET).
    pub(crate) fn set_tail(&self, tail: u64) {
        control_atomic!(self, tail).store(tail, Ordering::Release);
    }

    /// Copies the producer's counters to the control area; `head` last, with
    /// Release, so a consumer that sees it also sees the blocks and counters.
    /// `tail` belongs to the consumer and is written only by `set_tail`.
    pub(crate) fn mirror(&self, m: &Stats) {
        let relaxed = |a: &AtomicU64, v| a.store(v, Ordering::Relaxed);
        relaxed(control_atomic!(self, produced_blocks), m.produced_blocks);
        relaxed(control_atomic!(self, dropped_blocks), m.dropped_blocks);
        relaxed(control_atomic!(self, dropped_scans), m.dropped_scans);
        relaxed(control_atomic!(self, overruns), m.overruns);
        relaxed(control_atomic!(self, next_scan), m.next_scan);
        relaxed(control_atomic!(self, discarded_blocks), m.discarded_blocks);
        let status: &AtomicU32 = control_atomic!(self, status);
        status.store(m.status, Ordering::Relaxed);
        control_atomic!(self, epoch).store(m.epoch, Ordering::Relaxed);
        control_atomic!(self, head).store(m.head, Ordering::Release);
    }

    /// The block slot at byte counter `pos`.
    fn slot(&self, pos: u64) -> *mut u8 {
        let offset = (pos & (self.layout.data_size - 1)) as usize;
        // SAFETY: `offset + block_bytes <= len`: slots are block_bytes-aligned
        // inside a data area whose size is a multiple of block_bytes.
        unsafe { self.data.as_mut_ptr().cast::<u8>().add(offset) }
    }

    /// Writes one block (header and, unless `zeros`, payload) into the slot
    /// at `pos`. The payload length follows the layout, not the header.
    ///
    /// Returns whether the block is whole: `false` if `halt` was set (the
    /// stream is stopping) before the last chunk.
    ///
    /// The payload is generated [`CHUNK_BYTES`] at a time into `scratch`
    /// (the producer's own memory) and copied into the slot through raw
    /// pointers: no Rust reference ever covers memory user space can read,
    /// and between chunks the producer yields the CPU (process context), so
    /// no block size makes one stretch of this work longer than one chunk.
    ///
    /// # Safety
    ///
    /// The caller is the producer, in process context with no spinlock held,
    /// and owns the slot: it lies in `[head, tail + data_size)` of the
    /// producer's own counters, so neither a consumer nor `read()` reads it
    /// until the caller publishes it with a Release store of `head`.
    pub(crate) unsafe fn write_block(
        &self,
        pos: u64,
        header: &BlockHeader,
        zeros: bool,
        scratch: &mut [i32],
        halt: &AtomicBool,
    ) -> bool {
        let slot = self.slot(pos);
        // SAFETY: the slot is block_bytes long, 64-byte aligned (blocks are
        // powers of two >= 256 in a page-aligned area) and owned by us (the
        // caller's contract); user space maps it read-only.
        unsafe { slot.cast::<BlockHeader>().write_volatile(*header) };
        if zeros {
            return true;
        }
        let l = &self.layout;
        let ch = l.channels as usize;
        let scan_bytes = ch * l.format.bytes();
        let block_scans = l.block_scans() as usize;
        // A scan is at most 64 x 4 B, a chunk 16 KiB: at least 64 scans.
        let chunk_scans = (scratch.len() * size_of::<i32>())
            .checked_div(scan_bytes)
            .unwrap_or(0);
        if chunk_scans == 0 {
            return false;
        }
        // SAFETY: the payload starts after the 64-byte header and
        // `block_scans` scans fit in the slot by definition.
        let payload = unsafe { slot.add(BLOCK_HEADER_BYTES) };
        let mut done = 0;
        while done < block_scans {
            let n = chunk_scans.min(block_scans - done);
            let first = header.first_scan + done as u64;
            let values = n * ch;
            match l.format {
                Format::I16 => {
                    // SAFETY: `values` i16s are `n * scan_bytes` bytes, at
                    // most `scratch`'s size (`n <= chunk_scans`); i32 memory
                    // is aligned for i16.
                    let v = unsafe {
                        core::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<i16>(), values)
                    };
                    waveform::fill_i16(v, ch, first);
                }
                Format::I32 => {
                    // SAFETY: as above, `values <= scratch.len()`.
                    let v =
                        unsafe { core::slice::from_raw_parts_mut(scratch.as_mut_ptr(), values) };
                    waveform::fill_i32(v, ch, first);
                }
            }
            // SAFETY: `[done, done + n)` scans of the payload lie inside the
            // slot we own; `scratch` holds `n * scan_bytes` generated bytes
            // and does not overlap the ring.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    scratch.as_ptr().cast::<u8>(),
                    payload.add(done * scan_bytes),
                    n * scan_bytes,
                )
            };
            done += n;
            crate::glue::cond_resched();
            if done < block_scans && halt.load(Ordering::Relaxed) {
                return false;
            }
        }
        true
    }

    /// Copies the block at `pos` to user space for `read()`; returns how many
    /// bytes were copied (short when a destination page is not present and
    /// faults are disabled).
    ///
    /// # Safety
    ///
    /// The block must be published and pinned: the producer does not write
    /// it until the caller releases it.
    pub(crate) unsafe fn copy_block(&self, pos: u64, iov: &mut IovIterDest<'_>) -> usize {
        let len = self.layout.block_bytes as usize;
        // SAFETY: the slot is `len` bytes inside our allocation, and nothing
        // writes it while the slice lives (the caller's contract; user space
        // maps it read-only).
        let bytes = unsafe { core::slice::from_raw_parts(self.slot(pos), len) };
        iov.copy_to_iter(bytes)
    }

    /// Maps the whole of `area` into `vma`. The caller has validated
    /// offset, length and protection.
    ///
    /// Cache attributes follow the kernel's own alias of the buffer, so the
    /// two never disagree (mismatched attributes on arm64 can give stale
    /// reads): from the page allocator or CMA, `dma_mmap_attrs` picks them
    /// (cacheable on a `dma-coherent` device, the DMA API's non-cacheable
    /// kind otherwise); from a per-device `shared-dma-pool` (not `reusable`:
    /// that one is CMA, cacheable) the kernel reaches the buffer through a
    /// write-combining `memremap` whatever the device, and
    /// `dma_mmap_attrs` would keep the VMA's cacheable default, so the user
    /// mapping is made write-combining too.
    pub(crate) fn mmap(&self, area: Area, vma: &VmaNew) -> Result {
        let (dev, buf) = match area {
            Area::Control => (crate::glue::raw_device(&self.dev), &self.control),
            Area::Data => (crate::glue::raw_device(&self.data_dev), &self.data),
        };
        if self.write_combine {
            // SAFETY: `vma` is being set up by mmap (under `mmap_lock`), the
            // one time its page protection may change.
            unsafe { crate::glue::vma_set_writecombine(vma.as_ptr()) };
        }
        // dma_mmap_attrs maps from the buffer's page `vm_pgoff`; each area is
        // a buffer of its own, mapped whole, so the file offset (which says
        // the area) is set aside for the call and put back.
        // SAFETY: a VMA under construction; only mmap touches `vm_pgoff` now.
        let pgoff = unsafe { core::mem::replace(&mut (*vma.as_ptr()).vm_pgoff, 0) };
        // SAFETY: `dev` is the live, bound device we hold a reference to (the
        // ring is revoked before unbind completes, and the caller holds the
        // lock that revocation takes). `vma` is a VMA being set up by mmap;
        // CPU address, DMA address and size are those `dma_alloc_attrs`
        // returned for this buffer. The mapping's PTEs are zapped before the
        // buffer is freed: revocation waits for the VMA to be linked into
        // the file's mapping first (`Sensor::shutdown`).
        let rc = unsafe {
            bindings::dma_mmap_attrs(
                dev,
                vma.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.dma_address(),
                buf.size(),
                0,
            )
        };
        // SAFETY: as above.
        unsafe { (*vma.as_ptr()).vm_pgoff = pgoff };
        to_result(rc)
    }
}

/// Whether the DMA API allocates `dev`'s coherent buffers from a per-device
/// pool (`dma_declare_coherent_memory`: a `shared-dma-pool` region). Without
/// `CONFIG_DMA_DECLARE_COHERENT` there are no such pools.
#[cfg(CONFIG_DMA_DECLARE_COHERENT)]
fn has_coherent_pool(dev: *mut bindings::device) -> bool {
    // SAFETY: `dev` is the live, bound device probe runs for; `dma_mem` is
    // set when its region is assigned and not changed while it is bound.
    unsafe { !(*dev).dma_mem.is_null() }
}

#[cfg(not(CONFIG_DMA_DECLARE_COHERENT))]
fn has_coherent_pool(_dev: *mut bindings::device) -> bool {
    false
}
