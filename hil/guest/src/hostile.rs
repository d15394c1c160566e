//! Hostile input: random and invalid ioctls, mmaps, reads and control-page
//! scribbles. The driver must answer each with success where the ABI allows
//! it and otherwise with an errno from a small expected set; anything else
//! (or a kernel oops, which the host checks in dmesg) fails the run.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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

pub fn run(path: &Path, ops: u64, seed: u64) -> std::io::Result<serde_json::Value> {
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    let data_size = info.data_size as usize;
    let page = CONTROL_BYTES;
    let mut rng = Rng(seed.max(1) * 0x9E37_79B9_7F4A_7C15);
    let mut t = Tally::default();

    let control = Map::new(
        &file,
        page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        0,
    )
    .map_err(std::io::Error::from_raw_os_error)?;
    let data = Map::new(
        &file,
        data_size,
        libc::PROT_READ,
        libc::MAP_SHARED,
        page as i64,
    )
    .map_err(std::io::Error::from_raw_os_error)?;
    // SAFETY: the control mapping is CONTROL_BYTES long and page-aligned.
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    dev::ioctl(&file, IOC_START, 0).map_err(std::io::Error::from_raw_os_error)?;

    // A valid buffer, a read-only page (the data area), an address nobody
    // mapped, kernel addresses and small integers.
    let mut scratch = vec![0u8; 4096];
    let unmapped = {
        let m = Map::new(&file, page, libc::PROT_READ, libc::MAP_SHARED, 0)
            .map_err(std::io::Error::from_raw_os_error)?;
        m.ptr as usize
    };
    let bad_ptrs = [
        0usize,
        1,
        0xdead,
        unmapped,
        0xffff_8000_0000_0000,
        usize::MAX - 7,
        data.ptr as usize,
    ];
    let lens = [
        0usize,
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
    ];
    let offsets = [
        0i64,
        1,
        page as i64,
        2 * page as i64,
        page as i64 + data_size as i64,
        -(page as i64),
        1 << 40,
    ];
    let prots = [
        libc::PROT_NONE,
        libc::PROT_READ,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::PROT_WRITE,
        libc::PROT_READ | libc::PROT_EXEC,
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
    ];
    let flags = [
        libc::MAP_SHARED,
        libc::MAP_PRIVATE,
        libc::MAP_SHARED | libc::MAP_POPULATE,
    ];

    for _ in 0..ops {
        match rng.next() % 9 {
            0 => {
                // Any command number, any argument.
                let cmd = if rng.next() % 2 == 0 {
                    rng.next() as u32
                } else {
                    (rng.next() as u32 & 0xC0FF_00FF) | (IOC_TYPE << 8)
                };
                let arg = rng.pick(&bad_ptrs);
                let r = dev::ioctl(&file, cmd, arg);
                let known = KNOWN.contains(&cmd);
                t.check(
                    "ioctl-random",
                    format!("cmd {cmd:#x} arg {arg:#x}"),
                    r,
                    known,
                    &[ENOTTY, EFAULT, EINVAL, ETIMEDOUT, libc::EBUSY],
                );
            }
            1 => {
                // Valid commands, hostile pointers.
                let cmd = rng.pick(&[IOC_INFO, IOC_WAIT, IOC_STATS, IOC_FAULT]);
                let arg = rng.pick(&bad_ptrs[..6]);
                t.check(
                    "ioctl-bad-pointer",
                    format!("cmd {cmd:#x} arg {arg:#x}"),
                    dev::ioctl(&file, cmd, arg),
                    false,
                    &[EFAULT],
                );
            }
            2 => {
                // Readable but not writable memory: reads may pass, writes fault.
                let cmd = rng.pick(&[IOC_INFO, IOC_STATS, IOC_WAIT]);
                let r = dev::ioctl(&file, cmd, data.ptr as usize);
                t.check(
                    "ioctl-readonly-arg",
                    format!("cmd {cmd:#x}"),
                    r,
                    false,
                    &[EFAULT, EINVAL, ETIMEDOUT],
                );
            }
            3 => {
                // FAULT with an unknown kind, non-zero padding or an out-of-range argument.
                let mut f = FaultArgs {
                    kind: rng.pick(&[0, 4, 99, u32::MAX, FAULT_STALL_US, FAULT_JITTER_US]),
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
                let r = dev::ioctl(&file, IOC_FAULT, &mut f as *mut FaultArgs as usize);
                t.check("fault-invalid", format!("{f:?}"), r, false, &[EINVAL]);
            }
            4 => {
                // WAIT: too long a timeout is refused; a short one returns.
                let long = rng.next() % 2 == 0;
                let mut w = WaitArgs {
                    timeout_ns: if long {
                        60_000_000_001 + rng.next() % (1 << 50)
                    } else {
                        1_000_000
                    },
                    ..Default::default()
                };
                let r = dev::ioctl(&file, IOC_WAIT, &mut w as *mut WaitArgs as usize);
                if long {
                    t.check(
                        "wait-too-long",
                        format!("{}", w.timeout_ns),
                        r,
                        false,
                        &[EINVAL],
                    );
                } else {
                    t.check("wait-short", String::new(), r, true, &[ETIMEDOUT]);
                }
            }
            5 => {
                // mmap with random length, offset, protection and flags.
                let (len, off, prot, fl) = (
                    rng.pick(&lens),
                    rng.pick(&offsets),
                    rng.pick(&prots),
                    rng.pick(&flags),
                );
                let shared = fl & libc::MAP_SHARED != 0;
                let no_exec = prot & libc::PROT_EXEC == 0;
                // The kernel rounds a length up to whole pages before the driver sees it.
                let pages = len.div_ceil(page) * page;
                let valid = shared
                    && no_exec
                    && len > 0
                    && ((off == 0 && pages == page)
                        || (off == page as i64
                            && pages == data_size
                            && prot & libc::PROT_WRITE == 0));
                let r = Map::new(&file, len, prot, fl, off);
                let what = format!("len {len} off {off} prot {prot} flags {fl:#x}");
                match r {
                    Ok(m) => {
                        t.check("mmap", what, Ok(0), valid, &[]);
                        if off == page as i64 {
                            // The data area must stay read-only.
                            // SAFETY: m describes a live mapping we own.
                            let rc = unsafe {
                                libc::mprotect(
                                    m.ptr.cast(),
                                    m.len,
                                    libc::PROT_READ | libc::PROT_WRITE,
                                )
                            };
                            let r = if rc == 0 {
                                Ok(0)
                            } else {
                                Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                            };
                            t.check("mprotect-data-rw", String::new(), r, false, &[libc::EACCES]);
                            // SAFETY: growing a VM_DONTEXPAND mapping must fail; no memory is touched.
                            let p = unsafe {
                                libc::mremap(
                                    m.ptr.cast(),
                                    m.len,
                                    m.len + page,
                                    libc::MREMAP_MAYMOVE,
                                )
                            };
                            let r = if p == libc::MAP_FAILED {
                                Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                            } else {
                                Ok(0)
                            };
                            if r.is_ok() {
                                // SAFETY: unmap what mremap created so Map's drop stays sound.
                                unsafe { libc::munmap(p, m.len + page) };
                                std::mem::forget(m);
                            }
                            t.check(
                                "mremap-grow",
                                String::new(),
                                r,
                                false,
                                &[EFAULT, EINVAL, ENOMEM],
                            );
                        }
                    }
                    Err(e) => t.check(
                        "mmap",
                        what,
                        Err(e),
                        false,
                        &[EINVAL, ENOMEM, libc::EACCES, libc::EOVERFLOW, libc::ENODEV],
                    ),
                }
            }
            6 => {
                // read(): a buffer smaller than a block, or a bad pointer.
                let small = rng.next() % 2 == 0;
                let (ptr, len) = if small {
                    (
                        scratch.as_mut_ptr() as usize,
                        rng.next() as usize % info.block_bytes as usize,
                    )
                } else {
                    (rng.pick(&bad_ptrs[..6]), info.block_bytes as usize * 4)
                };
                // SAFETY: the kernel validates the (possibly bad) buffer.
                let rc = unsafe { libc::read(file.as_raw_fd(), ptr as *mut libc::c_void, len) };
                // 0 (end of stream) is legal when the producer is stopped and the ring empty.
                let r = if rc < 0 {
                    Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                } else {
                    Ok(rc as i32)
                };
                t.check(
                    "read-invalid",
                    format!("ptr {ptr:#x} len {len}"),
                    r,
                    rc == 0,
                    &[EINVAL, EFAULT],
                );
            }
            7 => {
                // Scribble on the consumer-writable page: tail, head, counters.
                let random = rng.next();
                let v = rng.pick(&[
                    0u64,
                    1,
                    u64::MAX,
                    1 << 63,
                    random,
                    cp.head.load(Ordering::Relaxed) + 4096,
                ]);
                let field: &AtomicU64 = match rng.next() % 3 {
                    0 => &cp.tail,
                    1 => &cp.head,
                    _ => &cp.dropped_blocks,
                };
                field.store(v, Ordering::Release);
                t.check("control-scribble", String::new(), Ok(0), true, &[]);
                if rng.next() % 4 == 0 {
                    // Give the producer a valid tail again now and then.
                    let mut s = Stats::default();
                    let _ = dev::ioctl(&file, IOC_STATS, &mut s as *mut Stats as usize);
                    cp.tail.store(s.head, Ordering::Release);
                }
            }
            _ => {
                // A second consumer, and START/STOP/RESET in any order.
                match rng.next() % 4 {
                    0 => {
                        let r = dev::open(path)
                            .map(|_| 0)
                            .map_err(|e| e.raw_os_error().unwrap_or(0));
                        t.check("second-open", String::new(), r, false, &[libc::EBUSY]);
                    }
                    1 => t.check(
                        "stop",
                        String::new(),
                        dev::ioctl(&file, IOC_STOP, 0),
                        true,
                        &[],
                    ),
                    2 => t.check(
                        "reset",
                        String::new(),
                        dev::ioctl(&file, IOC_RESET, 0),
                        true,
                        &[libc::EBUSY],
                    ),
                    _ => t.check(
                        "start",
                        String::new(),
                        dev::ioctl(&file, IOC_START, 0),
                        true,
                        &[],
                    ),
                }
            }
        }
        scratch.fill(0);
    }

    // Afterwards the device must still stream correctly.
    let healthy = still_streams(&file, cp, &data);
    drop(file);
    Ok(json!({
        "ok": t.unexpected.is_empty() && healthy.is_ok(),
        "ops": t.ops,
        "by_kind": t.by_kind,
        "outcomes": t.outcomes,
        "unexpected": t.unexpected,
        "healthy_after": healthy.err().unwrap_or_else(|| "yes".into()),
    }))
}

/// STOP, RESET, START, then wait for a block and check its header.
fn still_streams(file: &File, cp: &ControlPage, data: &Map) -> Result<(), String> {
    let call = |cmd| dev::ioctl(file, cmd, 0).map_err(|e| format!("{cmd:#x}: {}", errno_name(e)));
    call(IOC_STOP)?;
    call(IOC_RESET)?;
    call(IOC_START)?;
    let mut w = WaitArgs {
        timeout_ns: 5_000_000_000,
        ..Default::default()
    };
    dev::ioctl(file, IOC_WAIT, &mut w as *mut WaitArgs as usize)
        .map_err(|e| format!("wait: {}", errno_name(e)))?;
    let tail = cp.tail.load(Ordering::Acquire);
    if tail != 0 || cp.head.load(Ordering::Acquire) == 0 {
        return Err(format!(
            "after reset: tail {tail}, head {}",
            cp.head.load(Ordering::Acquire)
        ));
    }
    // SAFETY: the first block slot is published (head > 0) and 64 B long at least.
    let hdr = unsafe { std::ptr::read(data.ptr as *const hsdaq_abi::BlockHeader) };
    if hdr.magic != hsdaq_abi::layout::BLOCK_MAGIC || hdr.first_scan != 0 {
        return Err(format!("first block after reset: {hdr:?}"));
    }
    call(IOC_STOP).map(|_| ())
}
