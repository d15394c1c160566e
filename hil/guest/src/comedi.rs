//! A minimal comedilib streaming reader for the peers comparison. Debian's
//! `libcomedi0` ships no streaming command-line tool (its `comedi_test`
//! exercises subdevices; the `cmd`/`mmap` demos are not packaged), so this
//! is comedilib's own documented streaming recipe (demo/mmap.c): a timed
//! asynchronous command on the analog-input subdevice, the acquisition
//! buffer mmap'd, bytes taken with `comedi_get_buffer_contents` and handed
//! back with `comedi_mark_buffer_read`. Every sample is read (summed) as a
//! consumer would. A buffer overrun stops the command and comedilib reports
//! `EPIPE`: Comedi's losses are visible, and end the acquisition.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

/// `comedi_cmd` (comedi.h), field for field.
#[repr(C)]
struct ComediCmd {
    subdev: c_uint,
    flags: c_uint,
    start_src: c_uint,
    start_arg: c_uint,
    scan_begin_src: c_uint,
    scan_begin_arg: c_uint,
    convert_src: c_uint,
    convert_arg: c_uint,
    scan_end_src: c_uint,
    scan_end_arg: c_uint,
    stop_src: c_uint,
    stop_arg: c_uint,
    chanlist: *mut c_uint,
    chanlist_len: c_uint,
    data: *mut u16,
    data_len: c_uint,
}

const TRIG_NOW: c_uint = 0x2;
const TRIG_TIMER: c_uint = 0x10;
const TRIG_COUNT: c_uint = 0x20;

/// comedilib's opaque device handle.
#[repr(C)]
struct Comedi {
    _opaque: [u8; 0],
}

#[link(name = "comedi")]
extern "C" {
    fn comedi_open(path: *const c_char) -> *mut Comedi;
    fn comedi_close(dev: *mut Comedi) -> c_int;
    fn comedi_fileno(dev: *mut Comedi) -> c_int;
    fn comedi_errno() -> c_int;
    fn comedi_strerror(errnum: c_int) -> *const c_char;
    fn comedi_set_max_buffer_size(dev: *mut Comedi, subdev: c_uint, size: c_uint) -> c_int;
    fn comedi_set_buffer_size(dev: *mut Comedi, subdev: c_uint, size: c_uint) -> c_int;
    fn comedi_command_test(dev: *mut Comedi, cmd: *mut ComediCmd) -> c_int;
    fn comedi_command(dev: *mut Comedi, cmd: *mut ComediCmd) -> c_int;
    fn comedi_cancel(dev: *mut Comedi, subdev: c_uint) -> c_int;
    fn comedi_get_buffer_contents(dev: *mut Comedi, subdev: c_uint) -> c_int;
    fn comedi_get_buffer_offset(dev: *mut Comedi, subdev: c_uint) -> c_int;
    fn comedi_mark_buffer_read(dev: *mut Comedi, subdev: c_uint, bytes: c_uint) -> c_int;
}

/// comedilib's last error as text.
fn last_error() -> String {
    // SAFETY: comedi_errno reads comedilib's thread-local error; strerror
    // returns a pointer to a static, NUL-terminated string.
    unsafe { CStr::from_ptr(comedi_strerror(comedi_errno())) }
        .to_string_lossy()
        .into_owned()
}

/// An open comedi device, closed on drop.
struct Device(*mut Comedi);

impl Device {
    fn open(path: &Path) -> std::io::Result<Device> {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        let dev = unsafe { comedi_open(c.as_ptr()) };
        if dev.is_null() {
            return Err(std::io::Error::other(format!(
                "comedi_open {}: {}",
                path.display(),
                last_error()
            )));
        }
        Ok(Device(dev))
    }

    /// `rc` as a result, with comedilib's error text on failure.
    fn check(what: &str, rc: c_int) -> std::io::Result<c_int> {
        if rc < 0 {
            Err(std::io::Error::other(format!("{what}: {}", last_error())))
        } else {
            Ok(rc)
        }
    }

    /// Raises the subdevice's buffer limit and size (root); returns the size.
    fn set_buffer(&self, subdev: c_uint, bytes: c_uint) -> std::io::Result<usize> {
        // SAFETY: self.0 is an open handle (for every call on it below).
        Self::check("comedi_set_max_buffer_size", unsafe {
            comedi_set_max_buffer_size(self.0, subdev, bytes)
        })?;
        // SAFETY: as above.
        let size = Self::check("comedi_set_buffer_size", unsafe {
            comedi_set_buffer_size(self.0, subdev, bytes)
        })?;
        Ok(size as usize)
    }

    /// Tests the command (twice, as comedilib's demos do: the first pass
    /// may adjust arguments), then starts it.
    fn command(&self, cmd: &mut ComediCmd) -> std::io::Result<()> {
        for _ in 0..2 {
            // SAFETY: cmd and the channel list it points to are valid for the call.
            Self::check("comedi_command_test", unsafe {
                comedi_command_test(self.0, cmd)
            })?;
        }
        // SAFETY: as above; the kernel copies the command and channel list.
        Self::check("comedi_command", unsafe { comedi_command(self.0, cmd) })?;
        Ok(())
    }

    fn fileno(&self) -> c_int {
        // SAFETY: open handle.
        unsafe { comedi_fileno(self.0) }
    }

    /// Bytes ready in the buffer, and their offset in it.
    fn contents(&self, subdev: c_uint) -> std::io::Result<(usize, usize)> {
        // SAFETY: open handle with a running command.
        let n = Self::check("comedi_get_buffer_contents", unsafe {
            comedi_get_buffer_contents(self.0, subdev)
        })?;
        // SAFETY: as above.
        let offset = Self::check("comedi_get_buffer_offset", unsafe {
            comedi_get_buffer_offset(self.0, subdev)
        })?;
        Ok((n as usize, offset as usize))
    }

    fn mark_read(&self, subdev: c_uint, bytes: usize) -> std::io::Result<()> {
        // SAFETY: open handle; `bytes` were reported ready by contents().
        Self::check("comedi_mark_buffer_read", unsafe {
            comedi_mark_buffer_read(self.0, subdev, bytes as c_uint)
        })?;
        Ok(())
    }

    fn cancel(&self, subdev: c_uint) {
        // SAFETY: open handle; cancelling a stopped command is harmless.
        unsafe { comedi_cancel(self.0, subdev) };
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: self.0 came from comedi_open and is closed exactly once.
        unsafe { comedi_close(self.0) };
    }
}

/// The mmap'd acquisition buffer, unmapped on drop.
struct Buffer {
    ptr: *const u8,
    len: usize,
}

impl Buffer {
    /// Sum of the `n` bytes from `offset`, wrapping at the buffer's end.
    fn sum(&self, offset: usize, n: usize) -> u64 {
        (0..n)
            .map(|i| {
                // SAFETY: the index is inside the `len` mapped bytes; those
                // `n` bytes are filled and the kernel leaves them alone until
                // they are marked read (the rest of the buffer it may write,
                // so no slice is formed over it).
                u64::from(unsafe { std::ptr::read_volatile(self.ptr.add((offset + i) % self.len)) })
            })
            .sum()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Streams `rate × seconds` scans of `channels` channels from analog-input
/// subdevice 0 with a `buffer_bytes` buffer, and prints what arrived.
pub fn run(
    path: &Path,
    rate: u32,
    channels: u32,
    seconds: f64,
    buffer_bytes: u32,
) -> std::io::Result<serde_json::Value> {
    const SUBDEV: c_uint = 0;
    let dev = Device::open(path)?;
    let size = dev.set_buffer(SUBDEV, buffer_bytes)?;
    let asked = (f64::from(rate) * seconds).round() as u32;
    // CR_PACK(chan, range 0, AREF_GROUND) is the channel number itself.
    let mut chanlist: Vec<c_uint> = (0..channels).collect();
    let mut cmd = ComediCmd {
        subdev: SUBDEV,
        flags: 0,
        start_src: TRIG_NOW,
        start_arg: 0,
        scan_begin_src: TRIG_TIMER,
        scan_begin_arg: 1_000_000_000 / rate,
        convert_src: TRIG_NOW,
        convert_arg: 0,
        scan_end_src: TRIG_COUNT,
        scan_end_arg: channels,
        stop_src: TRIG_COUNT,
        stop_arg: asked,
        chanlist: chanlist.as_mut_ptr(),
        chanlist_len: channels,
        data: std::ptr::null_mut(),
        data_len: 0,
    };
    let fd = dev.fileno();
    // SAFETY: maps the subdevice's buffer read-only, `size` bytes from 0, as
    // comedi's mmap allows once the buffer is allocated; checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let map = Buffer {
        ptr: ptr as *const u8,
        len: size,
    };
    dev.command(&mut cmd)?;
    let period_ns = cmd.scan_begin_arg;
    let want = u64::from(asked) * u64::from(channels) * 2;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds * 3.0 + 5.0);
    let (mut bytes, mut sum, mut error) = (0u64, 0u64, None);
    while bytes < want && Instant::now() < deadline {
        let (n, offset) = match dev.contents(SUBDEV) {
            Ok(c) => c,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        if n == 0 {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call's duration.
            unsafe { libc::poll(&mut pfd, 1, 50) };
            continue;
        }
        sum += map.sum(offset, n);
        dev.mark_read(SUBDEV, n)?;
        bytes += n as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    dev.cancel(SUBDEV);
    let delivered = bytes / (u64::from(channels) * 2);
    Ok(json!({
        "stack": "comedi", "rate_hz": 1e9 / f64::from(period_ns), "asked": asked,
        "delivered": delivered, "lost": u64::from(asked).saturating_sub(delivered), "bytes": bytes,
        "visible": error.is_some(), "error": error, "seconds": elapsed,
        "buffer_bytes": size, "checksum": sum,
    }))
}
