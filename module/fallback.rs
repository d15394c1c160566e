// SPDX-License-Identifier: GPL-2.0

//! Virtual devices for machines without a firmware node (QEMU x86, laptops):
//! plain platform devices named like the driver, so they bind through the
//! very same probe, which then takes its settings from module parameters.

use core::sync::atomic::Ordering;

use kernel::{bindings, error::from_err_ptr, prelude::*};

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

/// Creates `count` virtual devices unless a firmware node already bound one.
pub(crate) fn create_if_unbound(count: u32) -> Result<KVec<VirtualDevice>> {
    let mut devices = KVec::new();
    if crate::device::FIRMWARE_BOUND.load(Ordering::Relaxed) > 0 {
        pr_info!("hsdaq: firmware node(s) bound; no virtual devices\n");
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
    Ok(devices)
}
