//! Thin raw access to `/dev/hsdaqN` (the tools must reach invalid corners
//! that acquire's safe backend refuses to express).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use hsdaq_abi::ioctl::{DeviceInfo, IOC_INFO};

pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// `ioctl(fd, cmd, arg)`; returns the errno on failure.
pub fn ioctl(file: &File, cmd: u32, arg: usize) -> Result<i32, i32> {
    // SAFETY: the kernel validates `arg` (it may be any address; a bad one
    // yields EFAULT). Pointers into our own memory point to buffers at least
    // as large as the command's encoded size.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), cmd as _, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

/// An ioctl's errno as an I/O error naming it.
pub fn io_err(e: i32) -> io::Error {
    io::Error::other(format!("ioctl: {}", errno_name(e)))
}

pub fn info(file: &File) -> io::Result<DeviceInfo> {
    // SAFETY: DeviceInfo is plain integers and byte arrays; zero is valid.
    let mut info: DeviceInfo = unsafe { std::mem::zeroed() };
    ioctl(file, IOC_INFO, &mut info as *mut DeviceInfo as usize)
        .map_err(io::Error::from_raw_os_error)?;
    Ok(info)
}

/// A mapping, unmapped on drop.
pub struct Map {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Map {
    /// `mmap(NULL, len, prot, flags, fd, offset)`; returns the errno on failure.
    pub fn new(file: &File, len: usize, prot: i32, flags: i32, offset: i64) -> Result<Map, i32> {
        // SAFETY: a fresh mapping chosen by the kernel (no MAP_FIXED), so it
        // cannot alias memory Rust owns.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                file.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(Map { ptr: p.cast(), len })
        }
    }
}

// SAFETY: a mapping belongs to the process, not to a thread: any thread may
// read through it or unmap it.
unsafe impl Send for Map {}

impl Map {
    /// Anonymous memory of `len` bytes, shared with children across fork.
    pub fn anonymous_shared(len: usize) -> io::Result<Map> {
        Self::anonymous(len, libc::MAP_SHARED)
    }

    /// Anonymous private memory of `len` bytes.
    pub fn anonymous_private(len: usize) -> io::Result<Map> {
        Self::anonymous(len, libc::MAP_PRIVATE)
    }

    fn anonymous(len: usize, kind: i32) -> io::Result<Map> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                kind | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            Ok(Map { ptr: p.cast(), len })
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping we created and still own.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The control area (read-write) and the data area (read-only) of an open
/// device, mapped as `acquire` maps them.
pub fn map_ring(file: &File, info: &DeviceInfo) -> io::Result<(Map, Map)> {
    let err = |what: &str, e| io::Error::other(format!("mmap {what}: {}", errno_name(e)));
    let control = Map::new(
        file,
        info.control_bytes as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        0,
    )
    .map_err(|e| err("control", e))?;
    let data = Map::new(
        file,
        info.data_size as usize,
        libc::PROT_READ,
        libc::MAP_SHARED,
        info.data_offset as i64,
    )
    .map_err(|e| err("data", e))?;
    Ok((control, data))
}

pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        libc::EBUSY => "EBUSY",
        libc::EACCES => "EACCES",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EPERM => "EPERM",
        libc::ENODEV => "ENODEV",
        libc::ENOMEM => "ENOMEM",
        libc::EINTR => "EINTR",
        libc::ENXIO => "ENXIO",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EAGAIN => "EAGAIN",
        _ => "other",
    }
}
