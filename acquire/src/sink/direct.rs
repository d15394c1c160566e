//! Segment files written around the page cache (`O_DIRECT`).
//!
//! A recorder writes each byte once and never reads it back, so the page
//! cache only costs: on this machine kind a buffered `write(2)` of new data
//! spends ~3 s of kernel CPU per GB copying into freshly allocated cache
//! pages (measured with `dd`: 2 GB buffered 6.8 s system time, `O_DIRECT`
//! 0.2 s), and the dirty pages then compete with the recorder for memory on
//! a 1 GiB board. With `O_DIRECT` the device reads our buffer directly.
//!
//! `O_DIRECT` wants the buffer address, the length and the file offset
//! aligned to the device's logical block: the writer collects bytes in a
//! 4 KiB-aligned buffer and writes it whole; only the tail of the file,
//! at [`DirectWriter::finish`], goes through the page cache (the flag is
//! cleared first). Filesystems without `O_DIRECT` (tmpfs) get a plain
//! buffered file, so the writer is used everywhere.

use std::alloc::{alloc, dealloc, Layout};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Alignment of buffer, length and offset: a page, which is at least every
/// logical block size Linux supports for `O_DIRECT`.
const ALIGN: usize = 4096;

/// A 4 KiB-aligned heap buffer.
struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer is plain bytes owned by this value alone.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn new(cap: usize) -> Self {
        let layout = Layout::from_size_align(cap, ALIGN).expect("valid buffer layout");
        // SAFETY: `layout` has a non-zero size (callers pass ≥ ALIGN).
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Self { ptr, cap, len: 0 }
    }

    /// A placeholder that owns nothing (while the real buffer is away).
    fn empty() -> Self {
        Self {
            ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            cap: 0,
            len: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `push` (for
        // `empty()`, a dangling but aligned pointer and a length of 0).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Copies as much of `data` as fits; returns how much.
    fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.len);
        // SAFETY: `len + n <= cap` bytes of our allocation; `data` is a
        // separate borrow, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(self.len), n) };
        self.len += n;
        n
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.cap == 0 {
            return; // `empty()`: nothing was allocated.
        }
        let layout = Layout::from_size_align(self.cap, ALIGN).expect("valid buffer layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, layout) };
    }
}

/// A sequential file writer that bypasses the page cache where it can.
///
/// Writing is double-buffered: a full buffer goes to an I/O thread (started
/// at the first one, so a small file never starts it) while the caller
/// fills the other, so the device's time overlaps the copy instead of
/// following it. An I/O error comes back at the next buffer or at
/// [`DirectWriter::finish`].
pub struct DirectWriter {
    /// The buffer being filled.
    buf: AlignedBuf,
    /// The file, until the I/O thread takes it.
    file: Option<File>,
    io: Option<Io>,
    direct: bool,
}

/// The I/O thread: full buffers in, written (emptied) ones back.
struct Io {
    /// None once closed (the thread then ends after its last write).
    full: Option<SyncSender<AlignedBuf>>,
    empty: Receiver<io::Result<AlignedBuf>>,
    /// A written buffer not yet handed back to the caller.
    spare: Option<AlignedBuf>,
    thread: Option<JoinHandle<File>>,
    /// An error was handed to the caller: nothing after it is written.
    failed: bool,
}

impl Io {
    fn start(mut file: File, spare: AlignedBuf) -> io::Result<Self> {
        let (full, rx) = sync_channel::<AlignedBuf>(1);
        let (tx, empty) = sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("hsdaq-io".into())
            .spawn(move || {
                for mut buf in rx {
                    let r = file.write_all(buf.filled());
                    buf.len = 0;
                    let failed = r.is_err();
                    if tx.send(r.map(|()| buf)).is_err() || failed {
                        break;
                    }
                }
                file
            })?;
        Ok(Io {
            full: Some(full),
            empty,
            spare: Some(spare),
            thread: Some(thread),
            failed: false,
        })
    }

    /// Hands `buf` to the thread and returns an empty buffer to fill.
    fn swap(&mut self, buf: AlignedBuf) -> io::Result<AlignedBuf> {
        let sent = self.swap_inner(buf);
        self.failed |= sent.is_err();
        sent
    }

    fn swap_inner(&mut self, buf: AlignedBuf) -> io::Result<AlignedBuf> {
        let next = match self.spare.take() {
            Some(b) => b,
            None => self.empty.recv().map_err(|_| gone())??,
        };
        let full = self.full.as_ref().ok_or_else(gone)?;
        full.send(buf).map_err(|_| gone())?;
        Ok(next)
    }

    /// Waits for every write; returns the file. After an error the caller
    /// has seen, the file lacks that buffer: that is an error here too.
    fn stop(mut self) -> io::Result<File> {
        self.full = None;
        // Every result the thread sent: the first error is the answer.
        while let Ok(r) = self.empty.recv() {
            r?;
        }
        let file = self.thread.take().ok_or_else(gone)?.join();
        if self.failed {
            return Err(io::Error::other(
                "an earlier write of this file failed: it is incomplete",
            ));
        }
        file.map_err(|_| gone())
    }
}

/// A writer dropped without `finish` (an abandoned segment) waits for the
/// thread's last write, so nothing writes to the file after its owner has
/// moved on (removed it, say).
impl Drop for Io {
    fn drop(&mut self) {
        self.full = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gone() -> io::Error {
    io::Error::other("the segment's I/O thread stopped")
}

impl DirectWriter {
    /// Creates `path` (truncating it) with two `buffer`-byte staging
    /// buffers (rounded up to 4 KiB; the second only once the first fills).
    pub fn create(path: &Path, buffer: usize) -> io::Result<Self> {
        let mut open = OpenOptions::new();
        open.write(true).create(true).truncate(true);
        let (file, direct) = match open.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => (f, true),
            // tmpfs and some network filesystems refuse O_DIRECT.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open.open(path)?, false),
            Err(e) => return Err(e),
        };
        Ok(Self {
            buf: AlignedBuf::new(buffer.max(ALIGN).next_multiple_of(ALIGN)),
            file: Some(file),
            io: None,
            direct,
        })
    }

    /// Sends the whole buffer (a multiple of 4 KiB) to be written.
    fn drain(&mut self) -> io::Result<()> {
        if self.io.is_none() {
            let file = self.file.take().ok_or_else(gone)?;
            self.io = Some(Io::start(file, AlignedBuf::new(self.buf.cap))?);
        }
        let io = self.io.as_mut().ok_or_else(gone)?;
        let next = io.swap(std::mem::replace(&mut self.buf, AlignedBuf::empty()))?;
        self.buf = next;
        Ok(())
    }

    /// Writes what is buffered (the unaligned tail through the page cache)
    /// once every earlier buffer is written, and returns the file, not yet
    /// synced.
    pub fn finish(self) -> io::Result<File> {
        let DirectWriter {
            buf,
            file,
            io,
            direct,
        } = self;
        let mut file = match io {
            Some(io) => io.stop()?,
            None => file.ok_or_else(gone)?,
        };
        let bytes = buf.filled();
        let aligned = bytes.len() / ALIGN * ALIGN;
        if direct && aligned != bytes.len() {
            file.write_all(&bytes[..aligned])?;
            clear_direct(&file)?;
            file.write_all(&bytes[aligned..])?;
        } else {
            file.write_all(bytes)?;
        }
        Ok(file)
    }
}

/// Turns `O_DIRECT` off on an open file.
fn clear_direct(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with plain integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Write for DirectWriter {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let n = self.buf.push(data);
            data = &data[n..];
            if self.buf.len == self.buf.cap {
                self.drain()?;
            }
        }
        Ok(total)
    }

    /// Keeps the alignment: only whole buffers are written before `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(dir: &Path, len: u32) {
        let p = dir.join(format!("f{len}"));
        let mut w = DirectWriter::create(&p, 8192).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for piece in data.chunks(999) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap().sync_all().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data, "{len} bytes");
    }

    #[test]
    fn every_byte_arrives_aligned_or_not() {
        // The crate folder is on a disk filesystem; /dev/shm (if any) is
        // tmpfs, which refuses O_DIRECT on older kernels (the buffered
        // fallback): every byte arrives either way.
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let mut dirs = vec![disk.path().to_path_buf()];
        let shm = tempfile::tempdir_in("/dev/shm").ok();
        dirs.extend(shm.as_ref().map(|d| d.path().to_path_buf()));
        for d in &dirs {
            for len in [0, 1, 4095, 4096, 8192, 8193, 100_003] {
                round_trip(d, len);
            }
        }
    }

    /// A write the device refuses (ENOSPC from /dev/full) comes back to
    /// the caller, from a later write or from `finish`, never lost on the
    /// I/O thread.
    #[test]
    fn a_refused_write_reaches_the_caller() {
        let Ok(mut w) = DirectWriter::create(Path::new("/dev/full"), 8192) else {
            panic!("/dev/full cannot be opened");
        };
        let data = vec![7u8; 100_000];
        let err = match w.write_all(&data) {
            Err(e) => {
                // The file lacks what was refused: finishing it is no success.
                assert!(w.finish().is_err(), "finish after a refused write");
                e
            }
            Ok(()) => w.finish().expect_err("the refused write was lost"),
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    }
}
