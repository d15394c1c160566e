// SPDX-License-Identifier: GPL-2.0

//! Virtual devices for machines without a firmware node (QEMU x86, laptops):
//! plain platform devices named like the driver, so they bind through the
//! very same probe, which then takes its settings from module parameters.
//!
//! The decision is made once, at module init, from whether a firmware node
//! for the driver *exists*, not from how many bound: with async or deferred
//! probing nothing may have bound yet, and a node whose probe failed must
//! not be replaced by a synthetic sensor the user would take for the board's.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_int, c_void},
    prelude::*,
};

/// A registered platform device, unregistered on drop.
pub(crate) struct VirtualDevice(*mut bindings::platform_device);

// SAFETY: the pointer is only used to unregister the device, which may happen
// on any thread.
unsafe impl Send for VirtualDevice {}
// SAFETY: `&VirtualDevice` exposes nothing.
unsafe impl Sync for VirtualDevice {}

impl VirtualDevice {
    fn register(id: i32) -> Result<Self> {
        let info = bindings::platform_device_info {
            name: c"hsdaq".as_char_ptr(),
            id,
            // The DMA API allocates the ring; give the device a mask.
            dma_mask: u64::MAX,
            ..Default::default()
        };
        // SAFETY: `info` is a valid, fully initialised descriptor that the
        // call copies; the name is a static string.
        let pdev = from_err_ptr(unsafe { bindings::platform_device_register_full(&info) })?;
        Ok(Self(pdev))
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        // SAFETY: `self.0` was returned by a successful register and is
        // unregistered exactly once, here.
        unsafe { bindings::platform_device_unregister(self.0) };
    }
}

/// Platform devices whose firmware node (DT or ACPI `_DSD`) names our
/// compatible, bound or not: a node whose probe is deferred, still running
/// asynchronously or failed counts too, so that `/dev/hsdaqN` is never a
/// synthetic sensor standing in for the board's.
fn firmware_devices() -> u32 {
    unsafe extern "C" fn count(dev: *mut bindings::device, data: *mut c_void) -> c_int {
        // SAFETY: `dev` is a live device of the bus being iterated, and
        // `data` the `u32` counter `firmware_devices` passed; the names are
        // NUL-terminated statics.
        let ours = COMPATIBLES.iter().any(|c| unsafe {
            bindings::device_property_match_string(
                dev,
                c"compatible".as_char_ptr(),
                c.as_char_ptr(),
            ) >= 0
        });
        if ours {
            // SAFETY: as above.
            unsafe { *data.cast::<u32>() += 1 };
        }
        0
    }
    let mut n: u32 = 0;
    // SAFETY: `platform_bus_type` is the registered platform bus; the
    // callback only reads properties and returns 0 (continue).
    unsafe {
        bindings::bus_for_each_dev(
            &raw const bindings::platform_bus_type,
            core::ptr::null_mut(),
            (&raw mut n).cast(),
            Some(count),
        )
    };
    n
}

/// Creates `count` virtual devices unless a firmware node for the driver
/// exists (whether or not it bound).
pub(crate) fn create_if_no_firmware_node(count: u32) -> Result<KVec<VirtualDevice>> {
    let mut devices = KVec::new();
    let nodes = firmware_devices();
    if nodes > 0 {
        pr_info!(
            "hsdaq: {} firmware node(s) ({} bound); no virtual devices\n",
            nodes,
            crate::device::FIRMWARE_BOUND.load(Ordering::Relaxed)
        );
        return Ok(devices);
    }
    if count > 8 {
        pr_err!(
            "hsdaq: parameter 'virtual_devices' = {}: at most 8\n",
            count
        );
        return Err(EINVAL);
    }
    for id in 0..count {
        devices.push(VirtualDevice::register(id as i32)?, GFP_KERNEL)?;
    }
    VIRTUAL_DEVICES.store(count, Ordering::Relaxed);
    Ok(devices)
}

/// Virtual devices registered at load; a firmware device that appears
/// later (an overlay, ACPI hotplug) binds beside them and says so.
pub(crate) static VIRTUAL_DEVICES: AtomicU32 = AtomicU32::new(0);

/// The virtual sensor's compatible string (the OF table's first entry).
pub(crate) const COMPATIBLE: &CStr = c"hsdaq,virtual-sensor";
/// A converter whose samples a DMA engine writes (the DMA source).
pub(crate) const DMA_COMPATIBLE: &CStr = c"hsdaq,dma-adc";
/// Every compatible the driver binds.
pub(crate) const COMPATIBLES: [&CStr; 2] = [COMPATIBLE, DMA_COMPATIBLE];
