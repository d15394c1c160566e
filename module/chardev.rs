// SPDX-License-Identifier: GPL-2.0

//! `/dev/hsdaqN`: mmap of the ring, the `abi/` ioctls, and `read()` as the
//! copying comparison path. One consumer at a time (a second open is EBUSY).

use core::sync::atomic::Ordering;

use kernel::{
    bindings,
    fs::{File, Kiocb},
    iov::IovIterDest,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::VmaNew,
    prelude::*,
    sync::Arc,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::abi::{
    ioctl::{
        DeviceInfo, FaultArgs, Stats, WaitArgs, IOC_FAULT, IOC_INFO, IOC_RESET, IOC_START,
        IOC_STATS, IOC_STOP, IOC_WAIT,
    },
    layout::{ABI_MAJOR, ABI_MINOR, CONTROL_BYTES, SOURCE_VIRTUAL},
};
use crate::device::HsdaqDevice;
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
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // The last reference to the file is gone (no fd, no mapping): a
        // killed recorder must not leave the producer running.
        self.sensor.stop();
        self.sensor.busy.store(false, Ordering::Release);
    }
}

#[vtable]
impl MiscDevice for Consumer {
    type Ptr = KBox<Self>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        // SAFETY: every `MiscDeviceRegistration<Consumer>` is the `misc` field
        // of an `HsdaqDevice`, and misc_open holds the misc lock, so the
        // registration (and its container) is alive during open.
        let device = unsafe {
            &*kernel::container_of!(core::ptr::from_ref(misc).cast_mut(), HsdaqDevice, misc)
        };
        let sensor = device.sensor.clone();
        if sensor
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EBUSY);
        }
        // On allocation failure the Consumer is dropped, which frees `busy`.
        Ok(KBox::new(Consumer { sensor }, GFP_KERNEL)?)
    }

    fn mmap(me: &Consumer, _file: &File, vma: &VmaNew) -> Result {
        let l = me.sensor.ring.layout();
        // SAFETY: `vma` is a live VMA under construction; reading its page
        // offset (which VmaNew has no accessor for) is a plain field read.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let len = (vma.end() - vma.start()) as u64;
        let data_pgoff = (CONTROL_BYTES / bindings::PAGE_SIZE) as u64;
        if vma.flags() & bindings::VM_SHARED == 0 || vma.executable() {
            return Err(EINVAL);
        }
        if pgoff == 0 && len == CONTROL_BYTES as u64 {
            // The control page: the consumer writes `tail` here.
        } else if pgoff == data_pgoff && len == l.data_size {
            // The data area: read-only, now and after any mprotect.
            if vma.writable() {
                return Err(EINVAL);
            }
            vma.try_clear_maywrite()?;
        } else {
            return Err(EINVAL);
        }
        vma.try_clear_mayexec()?;
        vma.set_dontexpand();
        vma.set_dontcopy();
        me.sensor.ring.mmap(vma)
    }

    fn ioctl(me: &Consumer, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let s = &me.sensor;
        let user = |size: usize| UserSlice::new(UserPtr::from_addr(arg), size);
        match cmd {
            IOC_INFO => user(size_of::<DeviceInfo>()).writer().write(&info(s))?,
            IOC_START => s.start()?,
            IOC_STOP => s.stop(),
            IOC_WAIT => {
                let (mut reader, mut writer) = user(size_of::<WaitArgs>()).reader_writer();
                let mut w: WaitArgs = reader.read()?;
                if w.timeout_ns > 60_000_000_000 {
                    return Err(EINVAL);
                }
                let (head, status) = s.wait(w.timeout_ns)?;
                w.head = head;
                w.status = status;
                writer.write(&w)?;
            }
            IOC_STATS => user(size_of::<Stats>()).writer().write(&s.stats())?,
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
        let s = &kiocb.file().sensor;
        let block = u64::from(s.ring.layout().block_bytes);
        if (iov.len() as u64) < block {
            return Err(EINVAL);
        }
        let (tail, head) = loop {
            let (tail, head) = s.readable().ok_or(ENODEV)?;
            if head != tail {
                break (tail, head);
            }
            match s.wait(1_000_000_000) {
                Ok((_, status)) if status != crate::abi::layout::STATUS_RUNNING => return Ok(0),
                Ok(_) | Err(ETIMEDOUT) => {}
                Err(e) => return Err(e),
            }
        };
        let blocks = ((head - tail) / block).min(iov.len() as u64 / block);
        let mut pos = tail;
        for _ in 0..blocks {
            // SAFETY: `[tail, head)` is published and not released (we are
            // the only consumer and release only below).
            let bytes = unsafe { s.ring.block_bytes(pos) };
            if iov.copy_to_iter(bytes) != bytes.len() {
                break;
            }
            pos += block;
        }
        s.release_to(pos);
        let n = (pos - tail) as usize;
        *kiocb.ki_pos_mut() += n as i64;
        if n == 0 {
            return Err(EFAULT);
        }
        Ok(n)
    }
}

fn info(s: &Sensor) -> DeviceInfo {
    let l = s.ring.layout();
    DeviceInfo {
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        channels: l.channels,
        format: l.format as u16,
        rate_hz: l.rate_hz,
        data_size: l.data_size,
        block_bytes: l.block_bytes,
        block_scans: l.block_scans(),
        control_bytes: CONTROL_BYTES as u32,
        source: SOURCE_VIRTUAL,
        _pad: 0,
        data_offset: CONTROL_BYTES as u64,
        name: *s.ring.name(),
        compatible: *s.ring.compatible(),
    }
}
