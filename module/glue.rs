// SPDX-License-Identifier: GPL-2.0

//! Typed Rust faces of `glue.c`: kernel APIs that are `static inline` in C
//! and missing from the 7.3 Rust helpers; and [`raw_device`], the one place
//! a `Device` becomes the C `struct device` the raw calls take.

extern "C" {
    fn hsdaq_pagefault_disable();
    fn hsdaq_pagefault_enable();
    fn hsdaq_cond_resched();
    // An opaque pointer: bindgen's `vm_area_struct` has zero-sized members.
    fn hsdaq_vma_set_writecombine(vma: *mut kernel::ffi::c_void);
}

/// Page faults are disabled for the current task while this lives: a user
/// copy that would fault returns short instead of sleeping on the fault.
///
/// Not `Send`: it must be dropped on the task that made it.
pub(crate) struct NoPageFaults(core::marker::PhantomData<*mut ()>);

impl NoPageFaults {
    pub(crate) fn new() -> Self {
        // SAFETY: pagefault_disable only increments the current task's
        // counter; `drop` decrements it on the same task.
        unsafe { hsdaq_pagefault_disable() };
        Self(core::marker::PhantomData)
    }
}

impl Drop for NoPageFaults {
    fn drop(&mut self) {
        // SAFETY: paired with the disable in `new`, on the same task (the
        // type is not Send).
        unsafe { hsdaq_pagefault_enable() };
    }
}

/// Gives the CPU to other runnable tasks if the scheduler asks for it.
/// Process context only, with no spinlock held.
pub(crate) fn cond_resched() {
    // SAFETY: cond_resched may sleep; callers are in process context and
    // hold no spinlock (see above).
    unsafe { hsdaq_cond_resched() };
}

/// Makes a VMA under construction write-combining (`pgprot_writecombine`).
///
/// # Safety
///
/// `vma` is a VMA being set up by `f_op->mmap`, before any page is mapped.
pub(crate) unsafe fn vma_set_writecombine(vma: *mut kernel::bindings::vm_area_struct) {
    // SAFETY: the caller's contract; the call only rewrites `vm_page_prot`.
    unsafe { hsdaq_vma_set_writecombine(vma.cast()) };
}

/// The C `struct device` behind `dev`, for the raw calls 7.3 wraps in no
/// safe API. `Device::as_raw` is crate-private in 7.3; `Device` is
/// `repr(transparent)` over `Opaque<bindings::device>`, so the cast is exact.
pub(crate) fn raw_device(dev: &kernel::device::Device) -> *mut kernel::bindings::device {
    core::ptr::from_ref(dev)
        .cast::<kernel::bindings::device>()
        .cast_mut()
}
