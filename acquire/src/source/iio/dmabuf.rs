//! The IIO buffer's file descriptor and its zero-copy DMABUF queue
//! (include/uapi/linux/iio/buffer.h, Documentation/iio/iio_dmabuf_api.rst).
//!
//! Only buffers with a DMA queue (`industrialio-buffer-dma`: ADI's
//! `axi-dmac` designs) take DMABUFs; a kfifo buffer (iio_dummy, most SPI and
//! I2C converters) refuses the attach with EPERM before it even looks at the
//! descriptor, which is how [`probe`] asks without allocating anything.
//! With a queue, blocks from `/dev/dma_heap/system` are attached, enqueued
//! (the device writes them), waited for (the DMABUF polls writable when its
//! fence signals), bracketed by `DMA_BUF_SYNC_START`/`END` for the CPU and
//! enqueued again: the kernel never copies a sample.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use memmap2::{MmapMut, MmapOptions};

const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}
const WRITE: u32 = 1;
const READ: u32 = 2;

/// `IIO_BUFFER_GET_FD_IOCTL`: `_IOWR('i', 0x91, int)`.
pub const GET_FD: u32 = ioc(READ | WRITE, b'i', 0x91, 4);
/// `IIO_BUFFER_DMABUF_ATTACH_IOCTL`: `_IOW('i', 0x92, int)`.
pub const ATTACH: u32 = ioc(WRITE, b'i', 0x92, 4);
/// `IIO_BUFFER_DMABUF_DETACH_IOCTL`: `_IOW('i', 0x93, int)`.
pub const DETACH: u32 = ioc(WRITE, b'i', 0x93, 4);
/// `IIO_BUFFER_DMABUF_ENQUEUE_IOCTL`: `_IOW('i', 0x94, struct iio_dmabuf)`.
pub const ENQUEUE: u32 = ioc(WRITE, b'i', 0x94, std::mem::size_of::<IioDmabuf>());
/// `DMA_BUF_IOCTL_SYNC`: `_IOW('b', 0, struct dma_buf_sync)`.
pub const SYNC: u32 = ioc(WRITE, b'b', 0, 8);
/// `DMA_HEAP_IOCTL_ALLOC`: `_IOWR('H', 0, struct dma_heap_allocation_data)`.
pub const HEAP_ALLOC: u32 = ioc(READ | WRITE, b'H', 0, std::mem::size_of::<HeapAlloc>());

const SYNC_READ: u64 = 1;
const SYNC_START: u64 = 0;
const SYNC_END: u64 = 1 << 2;

/// `struct iio_dmabuf`.
#[repr(C)]
#[derive(Default)]
pub struct IioDmabuf {
    fd: u32,
    flags: u32,
    bytes_used: u64,
}

/// `struct dma_heap_allocation_data`.
#[repr(C)]
#[derive(Default)]
struct HeapAlloc {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

/// Issues `request` on `fd` with `arg`, turning -1 into the errno.
fn ioctl<T>(fd: RawFd, request: u32, arg: *mut T) -> std::io::Result<()> {
    // SAFETY: every caller passes one of the requests above with a pointer
    // to a live value of the size that request encodes.
    let rc = unsafe { libc::ioctl(fd, request as _, arg) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Buffer 0's own descriptor (`IIO_BUFFER_GET_FD_IOCTL`), or `None` on a
/// kernel older than multi-buffer IIO (5.11), where the node itself reads.
pub fn buffer_fd(node: &File) -> Result<Option<OwnedFd>> {
    let mut idx: libc::c_int = 0;
    match ioctl(node.as_raw_fd(), GET_FD, &mut idx) {
        // SAFETY: on success the kernel stored a new descriptor we now own.
        Ok(()) => Ok(Some(unsafe { OwnedFd::from_raw_fd(idx) })),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => Ok(None),
        Err(e) => Err(e).context("IIO_BUFFER_GET_FD_IOCTL failed"),
    }
}

/// Whether the buffer takes DMABUFs: attaches descriptor -1, which a
/// buffer without a DMA queue refuses with EPERM and one with a queue with
/// EBADF. `Err` carries the reason to record.
pub fn probe(buffer: RawFd) -> std::result::Result<(), String> {
    let mut fd: libc::c_int = -1;
    match ioctl(buffer, ATTACH, &mut fd) {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            Err("the buffer refused DMABUF (EPERM: no DMA queue, e.g. a kfifo)".into())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
            Err("this kernel has no IIO DMABUF interface (ENOTTY)".into())
        }
        Err(e) => Err(format!("the DMABUF probe failed: {e}")),
        Ok(()) => Err("the DMABUF probe attached descriptor -1 (unexpected)".into()),
    }
}

/// One attached block.
struct Block {
    fd: OwnedFd,
    map: MmapMut,
}

fn sync(fd: RawFd, flags: u64) -> Result<()> {
    let mut f = SYNC_READ | flags;
    ioctl(fd, SYNC, &mut f).context("DMA_BUF_IOCTL_SYNC failed")
}

/// A ring of DMABUF blocks attached to an IIO buffer, consumed in order.
pub struct Queue {
    buffer: RawFd,
    blocks: Vec<Block>,
    /// The oldest enqueued block: the next to complete.
    next: usize,
    /// The dequeued block being read and how far.
    current: Option<(usize, usize)>,
}

impl Queue {
    /// Allocates `count` blocks of `bytes` from the system heap and
    /// attaches them to `buffer` (which must outlive the queue).
    pub fn new(buffer: RawFd, count: usize, bytes: usize) -> Result<Self> {
        let heap = File::open("/dev/dma_heap/system")
            .context("cannot open /dev/dma_heap/system (CONFIG_DMABUF_HEAPS_SYSTEM)")?;
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let mut a = HeapAlloc {
                len: bytes as u64,
                fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
                ..Default::default()
            };
            ioctl(heap.as_raw_fd(), HEAP_ALLOC, &mut a).context("DMA heap allocation failed")?;
            // SAFETY: the heap handed us a new descriptor in `a.fd`.
            let fd = unsafe { OwnedFd::from_raw_fd(a.fd as RawFd) };
            // SAFETY: a shared mapping of a DMABUF we own; CPU access is
            // bracketed by DMA_BUF_SYNC_START/END, the device writes it only
            // while enqueued (between END and the fence).
            let map = unsafe { MmapOptions::new().len(bytes).map_mut(&fd) }
                .context("cannot map a DMABUF")?;
            let mut raw = fd.as_raw_fd();
            ioctl(buffer, ATTACH, &mut raw).context("IIO_BUFFER_DMABUF_ATTACH_IOCTL failed")?;
            blocks.push(Block { fd, map });
        }
        Ok(Self {
            buffer,
            blocks,
            next: 0,
            current: None,
        })
    }

    fn enqueue(&self, i: usize) -> Result<()> {
        let b = &self.blocks[i];
        let mut d = IioDmabuf {
            fd: b.fd.as_raw_fd() as u32,
            flags: 0,
            bytes_used: b.map.len() as u64,
        };
        ioctl(self.buffer, ENQUEUE, &mut d).context("IIO_BUFFER_DMABUF_ENQUEUE_IOCTL failed")
    }

    /// Hands every block to the device.
    pub fn enqueue_all(&mut self) -> Result<()> {
        (0..self.blocks.len()).try_for_each(|i| self.enqueue(i))
    }

    /// The unread bytes of the oldest completed block, waiting at most
    /// `wait` for it (empty when none completed).
    pub fn data(&mut self, wait: Duration) -> Result<&[u8]> {
        if let Some((i, at)) = self.current {
            if at < self.blocks[i].map.len() {
                return Ok(&self.blocks[i].map[at..]);
            }
            sync(self.blocks[i].fd.as_raw_fd(), SYNC_END)?;
            self.enqueue(i)?;
            self.current = None;
        }
        let i = self.next;
        let mut p = libc::pollfd {
            fd: self.blocks[i].fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(&[]);
            }
            return Err(e).context("poll on a DMABUF failed");
        }
        if n == 0 {
            return Ok(&[]);
        }
        if p.revents & libc::POLLERR != 0 {
            bail!("the DMABUF transfer failed (POLLERR)");
        }
        sync(p.fd, SYNC_START)?;
        self.current = Some((i, 0));
        self.next = (i + 1) % self.blocks.len();
        Ok(&self.blocks[i].map[..])
    }

    /// Marks `bytes` of the current block read.
    pub fn consume(&mut self, bytes: usize) {
        if let Some((_, at)) = self.current.as_mut() {
            *at += bytes;
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        for b in &self.blocks {
            let mut raw = b.fd.as_raw_fd();
            let _ = ioctl(self.buffer, DETACH, &mut raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers equal what the kernel headers' macros expand to.
    #[test]
    fn request_numbers_match_the_uapi() {
        assert_eq!(GET_FD, 0xC004_6991);
        assert_eq!(ATTACH, 0x4004_6992);
        assert_eq!(DETACH, 0x4004_6993);
        assert_eq!(ENQUEUE, 0x4010_6994);
        assert_eq!(SYNC, 0x4008_6200);
        assert_eq!(HEAP_ALLOC, 0xC018_4800);
        assert_eq!(std::mem::size_of::<IioDmabuf>(), 16);
    }

    /// A descriptor that is no IIO buffer answers the probe with a reason,
    /// never a false "supported".
    #[test]
    fn the_probe_on_a_non_buffer_says_why() {
        let f = File::open("/dev/null").unwrap();
        let why = probe(f.as_raw_fd()).unwrap_err();
        assert!(why.contains("ENOTTY") || why.contains("failed"), "{why}");
    }
}
