// SPDX-License-Identifier: GPL-2.0

//! `/dev/hsdaqN`: mmap of the ring, the `abi/` ioctls, and `read()` as the
//! copying comparison path. One consumer at a time (a second open is EBUSY).

use kernel::{
    fs::{file, File, Kiocb},
    iov::IovIterDest,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::{flags, VmaNew},
    page::PAGE_SIZE,
    prelude::*,
    sync::Arc,
    time::Delta,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::abi::{
    ioctl::{
        DeviceInfo, FaultArgs, Stats, WaitArgs, IOC_FAULT, IOC_INFO, IOC_RESET, IOC_START,
        IOC_STATS, IOC_STOP, IOC_WAIT, WAIT_MAX_NS,
    },
    layout::{ABI_MAJOR, ABI_MINOR, SOURCE_VIRTUAL},
};
use crate::device::HsdaqDevice;
use crate::ring::Area;
use crate::sensor::Sensor;

// SAFETY: the ioctl argument structs are `repr(C)` integers and byte arrays
// with explicit padding fields (sizes asserted in abi/), so every byte is
// initialised (AsBytes) and every bit pattern is valid (FromBytes).
unsafe impl AsBytes for DeviceInfo {}
// SAFETY: as above.
unsafe impl AsBytes for Stats {}
// SAFETY: as above.
unsafe impl AsBytes for WaitArgs {}
// SAFETY: as above.
unsafe impl FromBytes for WaitArgs {}
// SAFETY: as above.
unsafe impl FromBytes for FaultArgs {}

/// The private data of an open `/dev/hsdaqN`.
pub(crate) struct Consumer {
    sensor: Arc<Sensor>,
    /// The device's identity and layout, as `IOC_INFO` reports it.
    info: DeviceInfo,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // The last reference to the file is gone (no fd, no mapping): a
        // killed recorder must not leave the producer running.
        self.sensor.unclaim();
    }
}

#[vtable]
impl MiscDevice for Consumer {
    type Ptr = KBox<Self>;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        // SAFETY: every `MiscDeviceRegistration<Consumer>` is the `misc` field
        // of an `HsdaqDevice`. misc_open holds `misc_mtx`, which unbind's
        // misc deregistration takes, and `sensor` and `info` are dropped only
        // after `misc`: both fields are alive. Only these two fields are
        // borrowed (shared; nothing ever borrows them mutably), never the
        // whole device, which unbind may be tearing down meanwhile.
        let (sensor, info) = unsafe {
            let device =
                kernel::container_of!(core::ptr::from_ref(misc).cast_mut(), HsdaqDevice, misc);
            (
                &*core::ptr::addr_of!((*device).sensor),
                *core::ptr::addr_of!((*device).info),
            )
        };
        // SAFETY: `file` is the file being opened; its `f_mapping` is set
        // before `open` runs and lives as long as the file.
        let mapping = unsafe { (*file.as_ptr()).f_mapping };
        sensor.claim(mapping)?;
        // On allocation failure the Consumer is dropped, which unclaims.
        Ok(KBox::new(
            Consumer {
                sensor: sensor.clone(),
                info,
            },
            GFP_KERNEL,
        )?)
    }

    fn mmap(me: &Consumer, _file: &File, vma: &VmaNew) -> Result {
        let i = &me.info;
        // SAFETY: `vma` is a live VMA under construction; reading its page
        // offset (which VmaNew has no accessor for) is a plain field read.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let len = (vma.end() - vma.start()) as u64;
        let control = u64::from(i.control_bytes);
        // MAYSHARE, not SHARED: the kernel clears VM_SHARED for a MAP_SHARED
        // mapping of a file opened read-only, which may still map the data.
        if vma.flags() & flags::MAYSHARE == 0 || vma.executable() {
            return Err(EINVAL);
        }
        let area = if pgoff == 0 && len == control {
            // The control area: the consumer writes `tail` here.
            Area::Control
        } else if pgoff == control / PAGE_SIZE as u64 && len == i.data_size {
            // The data area: read-only, now and after any mprotect.
            if vma.writable() {
                return Err(EINVAL);
            }
            vma.try_clear_maywrite()?;
            Area::Data
        } else {
            return Err(EINVAL);
        };
        vma.try_clear_mayexec()?;
        vma.set_dontexpand();
        vma.set_dontcopy();
        me.sensor.mmap(area, vma)?;
        // Tests only (`fault_mmap_delay_ms`): widen the window in which the
        // page tables are filled but the kernel has not yet linked the VMA
        // into the file's mapping, which revocation must wait out.
        let delay = crate::module_parameters::fault_mmap_delay_ms.value();
        if delay > 0 {
            kernel::time::delay::fsleep(Delta::from_millis(i64::from(delay.min(10_000))));
        }
        Ok(())
    }

    fn ioctl(me: &Consumer, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let s = &me.sensor;
        let user = |size: usize| UserSlice::new(UserPtr::from_addr(arg), size);
        match cmd {
            IOC_INFO => user(size_of::<DeviceInfo>()).writer().write(&me.info)?,
            IOC_START => s.start()?,
            IOC_STOP => s.stop(),
            IOC_WAIT => {
                let (mut reader, mut writer) = user(size_of::<WaitArgs>()).reader_writer();
                let mut w: WaitArgs = reader.read()?;
                if w.timeout_ns > WAIT_MAX_NS || w._pad != 0 {
                    return Err(EINVAL);
                }
                let timeout = if nonblocking(file.flags()) {
                    0
                } else {
                    w.timeout_ns
                };
                let (head, status) = s.wait(timeout)?;
                w.head = head;
                w.status = status;
                writer.write(&w)?;
            }
            IOC_STATS => user(size_of::<Stats>()).writer().write(&s.stats()?)?,
            IOC_RESET => s.reset()?,
            IOC_FAULT => {
                let f: FaultArgs = user(size_of::<FaultArgs>()).reader().read()?;
                if f._pad != 0 {
                    return Err(EINVAL);
                }
                s.inject(f.kind, f.arg)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        // Non-blocking from the file (O_NONBLOCK) or from this call
        // (RWF_NOWAIT, io_uring: IOCB_NOWAIT).
        // SAFETY: the kiocb of a running read_iter points to its live file.
        let nonblock = unsafe {
            let k = kiocb.as_raw();
            nonblocking((*(*k).ki_filp).f_flags) || (*k).ki_flags & IOCB_NOWAIT != 0
        };
        let s = &kiocb.file().sensor;
        if (iov.len() as u64) < u64::from(s.config.layout.block_bytes) {
            return Err(EINVAL);
        }
        let n = loop {
            match s.read_blocks(iov, nonblock)? {
                Ok(n) => break n,
                // Nothing readable: end of stream once the producer stopped
                // (every published block has been read by then).
                Err(status) if status != crate::abi::layout::STATUS_RUNNING => return Ok(0),
                Err(_) if nonblock => return Err(EAGAIN),
                Err(_) => match s.wait(1_000_000_000) {
                    Ok(_) | Err(ETIMEDOUT) => {}
                    Err(e) => return Err(e),
                },
            }
        };
        *kiocb.ki_pos_mut() += n as i64;
        if n == 0 {
            return Err(EFAULT);
        }
        Ok(n)
    }
}

/// `IOCB_NOWAIT`: include/linux/fs.h defines it as `(__force int) RWF_NOWAIT`
/// and include/uapi/linux/fs.h `RWF_NOWAIT` as 0x8, casts bindgen does not
/// evaluate (a uAPI value: it cannot change).
const IOCB_NOWAIT: i32 = 0x0000_0008;

/// Whether file flags ask for non-blocking I/O.
fn nonblocking(f_flags: u32) -> bool {
    f_flags & file::flags::O_NONBLOCK != 0
}

/// The `IOC_INFO` answer of a device, fixed at probe.
pub(crate) fn info(
    l: &crate::abi::layout::StreamLayout,
    flags: u16,
    control_bytes: usize,
    name: &[u8; 64],
    compatible: &[u8; 64],
) -> DeviceInfo {
    DeviceInfo {
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        channels: l.channels,
        format: l.format as u16,
        rate_hz: l.rate_hz,
        data_size: l.data_size,
        block_bytes: l.block_bytes,
        block_scans: l.block_scans(),
        control_bytes: control_bytes as u32,
        source: SOURCE_VIRTUAL,
        flags,
        data_offset: control_bytes as u64,
        name: *name,
        compatible: *compatible,
    }
}
