//! Hostile input: random and invalid ioctls, mmaps, reads and control-page
//! scribbles. The driver must answer each with success where the ABI allows
//! it and otherwise with an errno from a small expected set; anything else
//! (or a kernel oops, which the host checks in dmesg) fails the run.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hsdaq_abi::ioctl::DeviceInfo;
use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::{ControlPage, CONTROL_BYTES};
use libc::{EFAULT, EINVAL, ENOMEM, ENOTTY, ETIMEDOUT};
use serde_json::json;

use crate::dev::{self, errno_name, Map};

/// xorshift64*: reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Default)]
struct Tally {
    ops: u64,
    by_kind: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<&'static str, u64>,
    unexpected: Vec<String>,
}

impl Tally {
    /// Records one operation; `allowed` lists the errnos it may fail with
    /// and `may_succeed` whether success is legal.
    fn check(
        &mut self,
        kind: &'static str,
        what: String,
        r: Result<i32, i32>,
        may_succeed: bool,
        allowed: &[i32],
    ) {
        self.ops += 1;
        *self.by_kind.entry(kind).or_default() += 1;
        let ok = match r {
            Ok(_) => {
                *self.outcomes.entry("success").or_default() += 1;
                may_succeed
            }
            Err(e) => {
                *self.outcomes.entry(errno_name(e)).or_default() += 1;
                allowed.contains(&e)
            }
        };
        if !ok && self.unexpected.len() < 50 {
            self.unexpected.push(format!("{kind}: {what} -> {r:?}"));
        }
    }
}

const KNOWN: [u32; 7] = [
    IOC_INFO, IOC_START, IOC_STOP, IOC_WAIT, IOC_STATS, IOC_RESET, IOC_FAULT,
];

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Everything the operations aim at.
struct Target<'a> {
    path: &'a Path,
    file: File,
    info: DeviceInfo,
    cp: &'a ControlPage,
    data: Map,
    /// Invalid argument pointers: null, small, an unmapped page, kernel
    /// addresses, and (last) the read-only data area.
    bad_ptrs: [usize; 7],
    scratch: Vec<u8>,
}

pub fn run(path: &Path, ops: u64, seed: u64) -> std::io::Result<serde_json::Value> {
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    let map = |len, prot, off| {
        Map::new(&file, len, prot, libc::MAP_SHARED, off).map_err(std::io::Error::from_raw_os_error)
    };
    let control = map(CONTROL_BYTES, libc::PROT_READ | libc::PROT_WRITE, 0)?;
    let data = map(
        info.data_size as usize,
        libc::PROT_READ,
        CONTROL_BYTES as i64,
    )?;
    let unmapped = map(CONTROL_BYTES, libc::PROT_READ, 0)?.ptr as usize;
    // SAFETY: the control mapping is CONTROL_BYTES long, page-aligned and
    // outlives `t` (dropped at the end of this function).
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    dev::ioctl(&file, IOC_START, 0).map_err(std::io::Error::from_raw_os_error)?;
    let bad_ptrs = [
        0,
        1,
        0xdead,
        unmapped,
        0xffff_8000_0000_0000,
        usize::MAX - 7,
        data.ptr as usize,
    ];
    let mut t = Target {
        path,
        file,
        info,
        cp,
        data,
        bad_ptrs,
        scratch: vec![0u8; 4096],
    };
    let mut rng = Rng(seed.max(1) * 0x9E37_79B9_7F4A_7C15);
    let mut tally = Tally::default();
    for _ in 0..ops {
        let op = match rng.next() % 9 {
            0 => ioctl_random,
            1 => ioctl_bad_pointer,
            2 => ioctl_readonly_arg,
            3 => fault_invalid,
            4 => wait_timeouts,
            5 => mmap_random,
            6 => read_invalid,
            7 => control_scribble,
            _ => lifecycle,
        };
        op(&mut t, &mut rng, &mut tally);
    }
    // Afterwards the device must still stream correctly.
    let healthy = still_streams(&t.file, t.cp, &t.data);
    drop(t);
    drop(control);
    let readonly = readonly_fd_maps(path, &info);
    Ok(json!({
        "ok": tally.unexpected.is_empty() && healthy.is_ok() && readonly.is_ok(),
        "readonly_fd": readonly.unwrap_or_else(|e| e),
        "ops": tally.ops,
        "by_kind": tally.by_kind,
        "outcomes": tally.outcomes,
        "unexpected": tally.unexpected,
        "healthy_after": healthy.err().unwrap_or_else(|| "yes".into()),
    }))
}

/// A file opened read-only may map the data area (the kernel clears
/// VM_SHARED, not VM_MAYSHARE, for such a MAP_SHARED mapping) but not the
/// control area for writing.
fn readonly_fd_maps(path: &Path, info: &DeviceInfo) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("open O_RDONLY: {e}"))?;
    let data = Map::new(
        &file,
        info.data_size as usize,
        libc::PROT_READ,
        libc::MAP_SHARED,
        info.data_offset as i64,
    )
    .map_err(|e| format!("read-only fd: data mapping refused: {}", errno_name(e)))?;
    drop(data);
    match Map::new(
        &file,
        CONTROL_BYTES,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        0,
    ) {
        Err(libc::EACCES) => Ok("data maps, writable control refused (EACCES)".into()),
        Err(e) => Err(format!(
            "read-only fd: writable control mapping: {}",
            errno_name(e)
        )),
        Ok(_) => Err("read-only fd: writable control mapping accepted".into()),
    }
}

/// Any command number (half of them with our type byte), any bad argument.
fn ioctl_random(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let cmd = if rng.next() % 2 == 0 {
        rng.next() as u32
    } else {
        (rng.next() as u32 & 0xC0FF_00FF) | (IOC_TYPE << 8)
    };
    let arg = rng.pick(&t.bad_ptrs);
    let r = dev::ioctl(&t.file, cmd, arg);
    let allowed = [ENOTTY, EFAULT, EINVAL, ETIMEDOUT, libc::EBUSY];
    tally.check(
        "ioctl-random",
        format!("cmd {cmd:#x} arg {arg:#x}"),
        r,
        KNOWN.contains(&cmd),
        &allowed,
    );
}

/// Valid commands with unreadable/unwritable argument pointers.
fn ioctl_bad_pointer(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let cmd = rng.pick(&[IOC_INFO, IOC_WAIT, IOC_STATS, IOC_FAULT]);
    let arg = rng.pick(&t.bad_ptrs[..6]);
    let r = dev::ioctl(&t.file, cmd, arg);
    tally.check(
        "ioctl-bad-pointer",
        format!("cmd {cmd:#x} arg {arg:#x}"),
        r,
        false,
        &[EFAULT],
    );
}

/// Readable but not writable memory: reads may pass, writes must fault.
fn ioctl_readonly_arg(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let cmd = rng.pick(&[IOC_INFO, IOC_STATS, IOC_WAIT]);
    let r = dev::ioctl(&t.file, cmd, t.data.ptr as usize);
    tally.check(
        "ioctl-readonly-arg",
        format!("cmd {cmd:#x}"),
        r,
        false,
        &[EFAULT, EINVAL, ETIMEDOUT, libc::EAGAIN],
    );
}

/// FAULT with an unknown kind, non-zero padding or an out-of-range argument.
fn fault_invalid(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let kind = rng.pick(&[0, 4, 99, u32::MAX, FAULT_STALL_US, FAULT_JITTER_US]);
    let mut f = FaultArgs {
        kind,
        _pad: 0,
        arg: 10_000_001 + rng.next() % (1 << 40),
    };
    if rng.next() % 3 == 0 {
        f = FaultArgs {
            kind: FAULT_DROP_BLOCKS,
            _pad: 1 + rng.next() as u32 % 100,
            arg: 1,
        };
    }
    let r = dev::ioctl(&t.file, IOC_FAULT, &mut f as *mut FaultArgs as usize);
    tally.check("fault-invalid", format!("{f:?}"), r, false, &[EINVAL]);
}

/// WAIT: a timeout above 60 s is refused; a short one returns.
fn wait_timeouts(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let long = rng.next() % 2 == 0;
    let timeout_ns = if long {
        60_000_000_001 + rng.next() % (1 << 50)
    } else {
        1_000_000
    };
    let mut w = WaitArgs {
        timeout_ns,
        ..Default::default()
    };
    let r = dev::ioctl(&t.file, IOC_WAIT, &mut w as *mut WaitArgs as usize);
    if long {
        tally.check(
            "wait-too-long",
            format!("{timeout_ns}"),
            r,
            false,
            &[EINVAL],
        );
    } else {
        tally.check("wait-short", String::new(), r, true, &[ETIMEDOUT]);
    }
}

/// mmap with a random length, offset, protection and flags. Only the two
/// ABI shapes may succeed; a data mapping must then refuse mprotect(RW) and
/// growth by mremap.
fn mmap_random(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let (page, data_size) = (CONTROL_BYTES, t.info.data_size as usize);
    let len = rng.pick(&[
        0,
        1,
        page - 1,
        page,
        page + 1,
        2 * page,
        data_size - page,
        data_size - 1,
        data_size,
        data_size + 1,
        data_size + page,
        1 << 40,
    ]);
    let off = rng.pick(&[
        0i64,
        1,
        page as i64,
        2 * page as i64,
        (page + data_size) as i64,
        -(page as i64),
        1 << 40,
    ]);
    let prot = rng.pick(&[
        libc::PROT_NONE,
        libc::PROT_READ,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::PROT_WRITE,
        libc::PROT_READ | libc::PROT_EXEC,
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
    ]);
    let flags = rng.pick(&[
        libc::MAP_SHARED,
        libc::MAP_PRIVATE,
        libc::MAP_SHARED | libc::MAP_POPULATE,
    ]);
    // The kernel rounds a length up to whole pages before the driver sees it.
    let pages = len.div_ceil(page) * page;
    let valid = flags & libc::MAP_SHARED != 0
        && prot & libc::PROT_EXEC == 0
        && len > 0
        && ((off == 0 && pages == page)
            || (off == page as i64 && pages == data_size && prot & libc::PROT_WRITE == 0));
    let what = format!("len {len} off {off} prot {prot} flags {flags:#x}");
    let m = match Map::new(&t.file, len, prot, flags, off) {
        Ok(m) => m,
        Err(e) => {
            let allowed = [EINVAL, ENOMEM, libc::EACCES, libc::EOVERFLOW, libc::ENODEV];
            return tally.check("mmap", what, Err(e), false, &allowed);
        }
    };
    tally.check("mmap", what, Ok(0), valid, &[]);
    if off != page as i64 {
        return;
    }
    // SAFETY: m describes a live mapping we own.
    let rc = unsafe { libc::mprotect(m.ptr.cast(), m.len, libc::PROT_READ | libc::PROT_WRITE) };
    let r = if rc == 0 { Ok(0) } else { Err(errno()) };
    tally.check("mprotect-data-rw", String::new(), r, false, &[libc::EACCES]);
    // SAFETY: growing a VM_DONTEXPAND mapping must fail; no memory is touched.
    let p = unsafe { libc::mremap(m.ptr.cast(), m.len, m.len + page, libc::MREMAP_MAYMOVE) };
    let r = if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(0)
    };
    if r.is_ok() {
        // SAFETY: unmap what mremap created; `m` no longer owns a mapping.
        unsafe { libc::munmap(p, m.len + page) };
        std::mem::forget(m);
    }
    tally.check(
        "mremap-grow",
        String::new(),
        r,
        false,
        &[EFAULT, EINVAL, ENOMEM],
    );
}

/// read() into a buffer smaller than a block, or through a bad pointer.
fn read_invalid(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let block = t.info.block_bytes as usize;
    let (ptr, len) = if rng.next() % 2 == 0 {
        (t.scratch.as_mut_ptr() as usize, rng.next() as usize % block)
    } else {
        (rng.pick(&t.bad_ptrs[..6]), block * 4)
    };
    // SAFETY: the kernel validates the (possibly bad) buffer; a valid one is
    // `scratch`, at least `len` bytes long.
    let rc = unsafe { libc::read(t.file.as_raw_fd(), ptr as *mut libc::c_void, len) };
    // 0 (end of stream) is legal when the producer is stopped and the ring empty.
    let r = if rc < 0 { Err(errno()) } else { Ok(rc as i32) };
    tally.check(
        "read-invalid",
        format!("ptr {ptr:#x} len {len}"),
        r,
        rc == 0,
        &[EINVAL, EFAULT],
    );
}

/// Scribble on the consumer-writable page: tail, head, counters.
fn control_scribble(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    let random = rng.next();
    let v = rng.pick(&[
        0u64,
        1,
        u64::MAX,
        1 << 63,
        random,
        t.cp.head.load(Ordering::Relaxed) + 4096,
    ]);
    let field: &AtomicU64 = match rng.next() % 3 {
        0 => &t.cp.tail,
        1 => &t.cp.head,
        _ => &t.cp.dropped_blocks,
    };
    field.store(v, Ordering::Release);
    tally.check("control-scribble", String::new(), Ok(0), true, &[]);
    if rng.next() % 4 == 0 {
        // Give the producer a valid tail again now and then.
        let mut s = Stats::default();
        let _ = dev::ioctl(&t.file, IOC_STATS, &mut s as *mut Stats as usize);
        t.cp.tail.store(s.head, Ordering::Release);
    }
}

/// A second consumer, and START/STOP/RESET in any order.
fn lifecycle(t: &mut Target, rng: &mut Rng, tally: &mut Tally) {
    match rng.next() % 4 {
        0 => {
            let r = dev::open(t.path)
                .map(|_| 0)
                .map_err(|e| e.raw_os_error().unwrap_or(0));
            tally.check("second-open", String::new(), r, false, &[libc::EBUSY]);
        }
        1 => tally.check(
            "stop",
            String::new(),
            dev::ioctl(&t.file, IOC_STOP, 0),
            true,
            &[],
        ),
        2 => tally.check(
            "reset",
            String::new(),
            dev::ioctl(&t.file, IOC_RESET, 0),
            true,
            &[libc::EBUSY],
        ),
        _ => tally.check(
            "start",
            String::new(),
            dev::ioctl(&t.file, IOC_START, 0),
            true,
            &[],
        ),
    }
}

/// STOP, RESET, START, then wait for a block and check its header: the new
/// stream starts at scan 0 in a new epoch, and no counter moved backwards.
fn still_streams(file: &File, cp: &ControlPage, data: &Map) -> Result<(), String> {
    let call = |cmd| dev::ioctl(file, cmd, 0).map_err(|e| format!("{cmd:#x}: {}", errno_name(e)));
    call(IOC_STOP)?;
    call(IOC_RESET)?;
    let (head0, epoch0) = (
        cp.head.load(Ordering::Acquire),
        cp.epoch.load(Ordering::Acquire),
    );
    call(IOC_START)?;
    let tail = cp.tail.load(Ordering::Acquire);
    let mut w = WaitArgs {
        timeout_ns: 5_000_000_000,
        ..Default::default()
    };
    dev::ioctl(file, IOC_WAIT, &mut w as *mut WaitArgs as usize)
        .map_err(|e| format!("wait: {}", errno_name(e)))?;
    let head = cp.head.load(Ordering::Acquire);
    if tail < head0 || head <= tail {
        return Err(format!(
            "after reset+start: head {head0} -> {head}, tail {tail}"
        ));
    }
    let slot = (tail & (cp.data_size - 1)) as usize;
    // SAFETY: the block at `tail` is published (head > tail) and lies inside
    // the mapped data area (slots are aligned and at least 64 B long).
    let hdr = unsafe { std::ptr::read(data.ptr.add(slot) as *const hsdaq_abi::BlockHeader) };
    let epoch = cp.epoch.load(Ordering::Acquire);
    if hdr.magic != hsdaq_abi::layout::BLOCK_MAGIC
        || hdr.first_scan != 0
        || hdr.epoch != epoch
        || epoch != epoch0.wrapping_add(1)
    {
        return Err(format!(
            "first block after start (epoch {epoch0} -> {epoch}): {hdr:?}"
        ));
    }
    call(IOC_STOP).map(|_| ())
}
