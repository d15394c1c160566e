// SPDX-License-Identifier: GPL-2.0

//! `memory-region`: allocate the ring from a board's reserved-memory region.
//!
//! The smallest safe wrapper over `of_reserved_mem_device_init_by_idx`, which
//! neither the 7.3 Rust API nor its bindings helper exposes (the symbols are
//! exported to GPL modules, so they are declared here). While a
//! [`ReservedMem`] lives, the device's DMA-coherent allocations come from its
//! region (a `shared-dma-pool`, usually `no-map`), and `dma_mmap_attrs` maps
//! them from there.

use crate::glue::raw_device;
use kernel::{
    device::Device,
    error::to_result,
    ffi::{c_int, c_void},
    prelude::*,
    sync::aref::ARef,
};

// Declared with opaque pointers: `struct device` is not FFI-safe as a Rust
// type (bindgen gives it zero-sized members), and it is only passed through.
// Real functions only with CONFIG_OF_RESERVED_MEM (static inline stubs
// otherwise, which modpost could not resolve): without it the same names are
// the stubs' behaviour, in Rust.
#[cfg(CONFIG_OF_RESERVED_MEM)]
extern "C" {
    fn of_reserved_mem_device_init_by_idx(dev: *mut c_void, np: *mut c_void, idx: c_int) -> c_int;
    fn of_reserved_mem_device_release(dev: *mut c_void);
}

/// Without reserved-memory support no region can be assigned (the C stub's
/// answer).
#[cfg(not(CONFIG_OF_RESERVED_MEM))]
unsafe fn of_reserved_mem_device_init_by_idx(_: *mut c_void, _: *mut c_void, _: c_int) -> c_int {
    -(kernel::bindings::ENOSYS as c_int)
}

#[cfg(not(CONFIG_OF_RESERVED_MEM))]
unsafe fn of_reserved_mem_device_release(_: *mut c_void) {}

/// A device's claim on the reserved-memory region its node names.
///
/// Must outlive every allocation made from the region: the ring holds it
/// and drops it after its buffer.
pub(crate) struct ReservedMem {
    dev: ARef<Device>,
}

impl ReservedMem {
    /// Assigns the region of the node's first `memory-region` phandle.
    pub(crate) fn assign(dev: &Device) -> Result<Self> {
        let raw = raw_device(dev);
        // SAFETY: `raw` is a live, bound device; `of_node` is set when the
        // device is created and not changed while it is bound.
        let np = unsafe { (*raw).of_node };
        if np.is_null() {
            dev_err!(
                dev,
                "property 'memory-region': only a device-tree node can name a region\n"
            );
            return Err(EINVAL);
        }
        // SAFETY: `raw` and `np` are valid; the region is released in `drop`.
        to_result(unsafe { of_reserved_mem_device_init_by_idx(raw.cast(), np.cast(), 0) })
            .inspect_err(|e| {
                dev_err!(
                    dev,
                    "property 'memory-region': not a usable reserved-memory region (error {})\n",
                    e.to_errno()
                );
            })?;
        Ok(Self { dev: dev.into() })
    }
}

impl Drop for ReservedMem {
    fn drop(&mut self) {
        // SAFETY: the region was assigned to this device in `assign`, and
        // every allocation from it has been freed (the ring drops its buffer
        // before this guard).
        unsafe { of_reserved_mem_device_release(raw_device(&self.dev).cast()) };
    }
}
