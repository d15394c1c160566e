// SPDX-License-Identifier: GPL-2.0

//! The ring buffer: one physically contiguous DMA-coherent allocation holding
//! the control page and the data area, laid out exactly as `abi/` says.
//!
//! User space maps the control page read-write (it owns `tail`) and the data
//! area read-only. The kernel never trusts the control page: it keeps its own
//! copy of every counter and reads only `tail` back, validating it.

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use kernel::{
    bindings,
    device::{Bound, Device},
    dma::Coherent,
    error::to_result,
    mm::virt::VmaNew,
    prelude::*,
    sync::aref::ARef,
};

use crate::abi::{
    layout::{
        fill_name, BlockHeader, ControlPage, StreamLayout, ABI_MAJOR, ABI_MINOR,
        BLOCK_HEADER_BYTES, CONTROL_BYTES, CONTROL_MAGIC,
    },
    waveform,
};
use crate::reserved::ReservedMem;

/// The contiguous buffer of one device.
pub(crate) struct Ring {
    buf: Coherent<[u8]>,
    dev: ARef<Device>,
    layout: StreamLayout,
    name: [u8; 64],
    compatible: [u8; 64],
    /// The reserved-memory region `buf` came from, if any; declared after
    /// `buf` so it is released only once the buffer is freed.
    _region: Option<ReservedMem>,
}

impl Ring {
    /// Allocates `CONTROL_BYTES + data_size` contiguous bytes and writes the
    /// control page's identity and layout.
    pub(crate) fn new(
        dev: &Device<Bound>,
        layout: StreamLayout,
        source: u16,
        name: &[u8],
        compatible: &[u8],
        region: Option<ReservedMem>,
    ) -> Result<Self> {
        let len = CONTROL_BYTES + layout.data_size as usize;
        let buf = Coherent::<u8>::zeroed_slice(dev, len, GFP_KERNEL).inspect_err(|_| {
            dev_err!(
                dev,
                "property 'hsdaq,buffer-bytes' = {}: cannot allocate {} contiguous bytes\n",
                layout.data_size,
                len
            );
        })?;
        let mut ring = Ring {
            buf,
            dev: dev.into(),
            layout,
            name: [0; 64],
            compatible: [0; 64],
            _region: region,
        };
        fill_name(&mut ring.name, name);
        fill_name(&mut ring.compatible, compatible);
        let c = ring.control_ptr();
        // SAFETY: `c` points to the zeroed, page-aligned first CONTROL_BYTES
        // of our allocation, which no one else can reach yet (it is mapped
        // only after the misc device is registered, later in probe). All-zero
        // is a valid `ControlPage`; we write plain fields before sharing it.
        unsafe {
            addr_of_mut!((*c).magic).write(CONTROL_MAGIC);
            addr_of_mut!((*c).abi_major).write(ABI_MAJOR);
            addr_of_mut!((*c).abi_minor).write(ABI_MINOR);
            addr_of_mut!((*c).control_bytes).write(CONTROL_BYTES as u32);
            addr_of_mut!((*c).block_header_bytes).write(BLOCK_HEADER_BYTES as u32);
            addr_of_mut!((*c).data_offset).write(CONTROL_BYTES as u64);
            addr_of_mut!((*c).data_size).write(layout.data_size);
            addr_of_mut!((*c).block_bytes).write(layout.block_bytes);
            addr_of_mut!((*c).block_scans).write(layout.block_scans());
            addr_of_mut!((*c).channels).write(layout.channels);
            addr_of_mut!((*c).format).write(layout.format as u16);
            addr_of_mut!((*c).source).write(source);
            addr_of_mut!((*c).rate_hz).write(layout.rate_hz);
            addr_of_mut!((*c).name).write(ring.name);
            addr_of_mut!((*c).compatible).write(ring.compatible);
        }
        Ok(ring)
    }

    pub(crate) fn layout(&self) -> &StreamLayout {
        &self.layout
    }

    /// The device name (`hsdaqN`), NUL-padded as in the ABI.
    pub(crate) fn name(&self) -> &[u8; 64] {
        &self.name
    }

    /// The matched compatible string (empty for module-parameter devices).
    pub(crate) fn compatible(&self) -> &[u8; 64] {
        &self.compatible
    }

    fn control_ptr(&self) -> *mut ControlPage {
        self.buf.as_mut_ptr().cast::<ControlPage>()
    }

    /// The control page, for its atomic fields only.
    pub(crate) fn control(&self) -> &ControlPage {
        // SAFETY: the allocation starts with a page-aligned, initialised
        // ControlPage that lives as long as `self`. User space may write any
        // byte of it at any time; the kernel therefore only touches its
        // atomics after `new` (plus `start_ns`, through `set_start_ns`).
        unsafe { &*self.control_ptr() }
    }

    /// Publishes the stream's start time (read by user space after it sees
    /// `head` move, which is a later Release store).
    pub(crate) fn set_start_ns(&self, ns: u64) {
        // SAFETY: `start_ns` is a u64 inside our live control page; a volatile
        // write tolerates concurrent (racy, user-space) readers of the field.
        unsafe { addr_of_mut!((*self.control_ptr()).start_ns).write_volatile(ns) };
    }

    /// The bytes of the block slot at byte counter `pos`.
    fn slot(&self, pos: u64) -> *mut u8 {
        let offset = CONTROL_BYTES + (pos & (self.layout.data_size - 1)) as usize;
        // SAFETY: `offset + block_bytes <= len`: slots are block_bytes-aligned
        // inside a data area whose size is a multiple of block_bytes.
        unsafe { self.buf.as_mut_ptr().cast::<u8>().add(offset) }
    }

    /// Writes one block (header and, unless `zeros`, payload) into the slot
    /// at `pos`. The caller owns the slot (between tail and head + size) and
    /// publishes it afterwards with a Release store of `head`.
    pub(crate) fn write_block(&self, pos: u64, header: &BlockHeader, zeros: bool) {
        let slot = self.slot(pos);
        // SAFETY: the slot is block_bytes long, 64-byte aligned (blocks are
        // powers of two >= 256 in a page-aligned area) and not readable by
        // the consumer until published; user space maps it read-only.
        unsafe { slot.cast::<BlockHeader>().write(*header) };
        if zeros {
            return;
        }
        let l = &self.layout;
        let ch = l.channels as usize;
        let n = header.scans as usize * ch;
        // SAFETY: payload starts after the 64-byte header, is suitably aligned
        // for i16/i32 and n values fit in the slot (block_scans computed from
        // block_bytes); same ownership argument as above.
        let payload = unsafe { slot.add(BLOCK_HEADER_BYTES) };
        match l.format {
            crate::abi::format::Format::I16 => {
                // SAFETY: see above; this slice is the only reference to it.
                let v = unsafe { core::slice::from_raw_parts_mut(payload.cast::<i16>(), n) };
                fill(v, ch, header.first_scan, waveform::value_i16);
            }
            crate::abi::format::Format::I32 => {
                // SAFETY: see above; this slice is the only reference to it.
                let v = unsafe { core::slice::from_raw_parts_mut(payload.cast::<i32>(), n) };
                fill(v, ch, header.first_scan, waveform::value_i32);
            }
        }
    }

    /// Published bytes `[pos, pos + len)` of one block, for `read()`.
    ///
    /// # Safety
    ///
    /// The block at `pos` must be published and not yet released (between
    /// `tail` and `head`), so the producer does not write it meanwhile.
    pub(crate) unsafe fn block_bytes(&self, pos: u64) -> &[u8] {
        // SAFETY: per the caller's contract the slot is stable; it is
        // block_bytes long inside our allocation.
        unsafe { core::slice::from_raw_parts(self.slot(pos), self.layout.block_bytes as usize) }
    }

    /// Maps `[vm_pgoff, vm_pgoff + len)` of the buffer into `vma`. The caller
    /// has validated offset, length and protection.
    pub(crate) fn mmap(&self, vma: &VmaNew) -> Result {
        let dev = (&*self.dev as *const Device)
            .cast::<bindings::device>()
            .cast_mut();
        // SAFETY: `Device` is `repr(transparent)` over `Opaque<bindings::device>`,
        // so `dev` is the live device we hold a reference to. `vma` is a VMA
        // being set up by mmap; the CPU and DMA addresses and the size are
        // those `dma_alloc_attrs` returned for this buffer. The vma holds a
        // reference to the file, whose private data keeps `self` alive, so
        // the buffer outlives the mapping.
        to_result(unsafe {
            bindings::dma_mmap_attrs(
                dev,
                vma.as_ptr(),
                self.buf.as_mut_ptr().cast(),
                self.buf.dma_address(),
                self.buf.size(),
                0,
            )
        })
    }

    /// Reads the consumer's `tail` and accepts it only if it lies in
    /// `[old_tail, head]` on a block boundary; otherwise keeps `old_tail`.
    pub(crate) fn consumer_tail(&self, old_tail: u64, head: u64) -> Option<u64> {
        let t = self.control().tail.load(Ordering::Acquire);
        let aligned = t & (u64::from(self.layout.block_bytes) - 1) == 0;
        (t >= old_tail && t <= head && aligned).then_some(t)
    }
}

/// Fills interleaved scans with the reference waveform.
fn fill<T>(values: &mut [T], channels: usize, first_scan: u64, f: fn(u64, u32) -> T) {
    for (s, scan) in values.chunks_exact_mut(channels).enumerate() {
        let idx = first_scan + s as u64;
        for (c, v) in scan.iter_mut().enumerate() {
            *v = f(idx, c as u32);
        }
    }
}
