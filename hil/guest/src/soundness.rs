//! The driver-soundness probes of the second pass (issue 20), each the
//! user-space half of a debug-kernel scenario:
//!
//! * `mmap-unbind`: processes sharing one open file map the ring in a loop
//!   while the device is unbound under them (with `fault_mmap_delay_ms`, each
//!   mmap sleeps after its page tables are filled, before the kernel links
//!   its VMA); afterwards every mapping that succeeded must raise SIGBUS.
//! * `blocked-read`: a `read()` whose destination never faults in
//!   (userfaultfd, never served); meanwhile a second open of the device, an
//!   open of another misc device and an unbind must all complete.
//! * `latency`: how late a 1 ms sleep wakes up and how much CPU a busy
//!   thread gets on each CPU, while the producer runs (or not).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hsdaq_abi::ioctl::{Stats, IOC_START, IOC_STATS, IOC_STOP};
use hsdaq_abi::layout::ControlPage;
use serde_json::{json, Value};

use crate::dev::{self, errno_name, io_err, Map};

/// A clock's reading in nanoseconds.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in nanoseconds.
fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Writes `name` to a driver's sysfs `bind`/`unbind` file; returns the
/// milliseconds it took.
fn sysfs_write(file: &str, name: &str) -> std::io::Result<f64> {
    let t = Instant::now();
    std::fs::write(file, name)?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

const DRIVER: &str = "/sys/bus/platform/drivers/hsdaq";

/// Waits up to `secs` for `path` to exist.
fn wait_for(path: &Path, secs: f64) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

/// What a child process of `mmap-unbind` shares with the parent: one
/// anonymous shared page, made before fork.
#[repr(C)]
struct Shared {
    /// When the parent began the unbind (CLOCK_MONOTONIC ns; 0: not yet).
    unbind_start: AtomicU64,
    /// Set once the unbind has returned.
    unbound: AtomicU64,
    /// mmaps that began before the unbind and returned success after it
    /// began: the race the scenario is about.
    straddling: AtomicU64,
}

/// Exit codes of a child: what touching its mappings after the unbind did.
const CHILD_NO_MAPPING: i32 = 0;
const CHILD_READABLE: i32 = 42;

/// One child process: `threads` threads map the control and data areas in
/// a loop until the unbind has returned, keeping their latest mappings;
/// then every kept mapping is touched. A revoked one kills the child with
/// SIGBUS; surviving the touches means a stale mapping was readable.
fn child(file: &File, info: &hsdaq_abi::ioctl::DeviceInfo, shared: &Shared, threads: usize) -> i32 {
    let kept: Vec<Vec<Map>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut mine: Vec<Map> = Vec::new();
                    while shared.unbound.load(Ordering::Acquire) == 0 {
                        let (len, prot, off) = if t % 2 == 0 {
                            (
                                info.control_bytes as usize,
                                libc::PROT_READ | libc::PROT_WRITE,
                                0,
                            )
                        } else {
                            (
                                info.data_size as usize,
                                libc::PROT_READ,
                                info.data_offset as i64,
                            )
                        };
                        let began = mono_ns();
                        match Map::new(file, len, prot, libc::MAP_SHARED, off) {
                            Ok(m) => {
                                let u = shared.unbind_start.load(Ordering::Acquire);
                                if u != 0 && began < u {
                                    shared.straddling.fetch_add(1, Ordering::Relaxed);
                                }
                                // Keep only the latest (older ones unmap).
                                mine.clear();
                                mine.push(m);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut touched = 0;
    for m in kept.iter().flatten() {
        // SAFETY: a mapping we own; a revoked one raises SIGBUS (the test).
        std::hint::black_box(unsafe { m.ptr.read_volatile() });
        touched += 1;
    }
    if touched == 0 {
        CHILD_NO_MAPPING
    } else {
        CHILD_READABLE
    }
}

/// `mmap-unbind`: `rounds` × (open, START, fork `procs` mappers of
/// `threads` threads, unbind after `unbind_after_ms`, bind again).
pub fn mmap_unbind(
    path: &Path,
    device: &str,
    rounds: u32,
    procs: usize,
    threads: usize,
    unbind_after_ms: u64,
) -> std::io::Result<Value> {
    let (mut sigbus, mut readable, mut none, mut straddling, mut other) =
        (0, 0, 0, 0u64, Vec::new());
    let mut unbind_ms = Vec::new();
    for round in 0..rounds {
        let page = Map::anonymous_shared(4096)?;
        // SAFETY: a fresh zeroed shared page, large and aligned enough for
        // `Shared` (atomics only); it outlives every child and this round.
        let shared = unsafe { &*(page.ptr as *const Shared) };
        let file = dev::open(path)?;
        let info = dev::info(&file)?;
        dev::ioctl(&file, IOC_START, 0).map_err(io_err)?;
        let mut pids = Vec::new();
        for _ in 0..procs {
            // SAFETY: this process is single-threaded here (threads are
            // created only in children, after fork); the child runs only
            // `child` and exits without returning.
            match unsafe { libc::fork() } {
                -1 => return Err(std::io::Error::last_os_error()),
                0 => {
                    let rc = child(&file, &info, shared, threads);
                    // SAFETY: leave the child at once, without unwinding or
                    // running the parent's atexit handlers.
                    unsafe { libc::_exit(rc) }
                }
                pid => pids.push(pid),
            }
        }
        drop(file);
        std::thread::sleep(Duration::from_millis(unbind_after_ms));
        shared.unbind_start.store(mono_ns(), Ordering::Release);
        unbind_ms.push(sysfs_write(&format!("{DRIVER}/unbind"), device)?);
        shared.unbound.store(1, Ordering::Release);
        for pid in pids {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS {
                sigbus += 1;
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == CHILD_READABLE {
                readable += 1;
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == CHILD_NO_MAPPING {
                none += 1;
            } else {
                other.push(format!("round {round}: child status {status:#x}"));
            }
        }
        straddling += shared.straddling.load(Ordering::Relaxed);
        sysfs_write(&format!("{DRIVER}/bind"), device)?;
        if !wait_for(path, 10.0) {
            other.push(format!(
                "round {round}: {} did not come back after bind",
                path.display()
            ));
            break;
        }
    }
    Ok(json!({
        "ok": readable == 0 && other.is_empty(),
        "rounds": rounds,
        "children_sigbus": sigbus,
        "children_stale_readable": readable,
        "children_without_mapping": none,
        "mmaps_straddling_unbind": straddling,
        "unbind_ms_max": unbind_ms.iter().cloned().fold(0.0, f64::max),
        "other": other,
    }))
}

/// A userfaultfd with `len` bytes of anonymous memory registered for
/// missing-page faults that nobody serves.
struct Unserved {
    uffd: OwnedFd,
    region: Map,
}

/// userfaultfd(2) uAPI (include/uapi/linux/userfaultfd.h).
const UFFD_API: u64 = 0xAA;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

impl Unserved {
    fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: plain syscall; the fd it returns is owned below.
        let fd =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut api = [UFFD_API, 0, 0];
        // SAFETY: `api` is a `struct uffdio_api` (3 x u64).
        if unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API, api.as_mut_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let region = Map::anonymous_private(len)?;
        // struct uffdio_register { range {start, len}, mode, ioctls }.
        let mut reg = [
            region.ptr as u64,
            len as u64,
            UFFDIO_REGISTER_MODE_MISSING,
            0,
        ];
        // SAFETY: `reg` is a `struct uffdio_register` (4 x u64).
        if unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_REGISTER, reg.as_mut_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { uffd, region })
    }
}

/// Runs `f` on a thread; its result if it finishes within `secs`.
fn within<T: Send + 'static>(
    secs: f64,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<(T, f64)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = f();
        let _ = tx.send((r, t.elapsed().as_secs_f64() * 1e3));
    });
    rx.recv_timeout(Duration::from_secs_f64(secs)).ok()
}

fn errno_of(r: &std::io::Result<impl Sized>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
    }
}

/// `blocked-read`: see the module doc.
pub fn blocked_read(path: &Path, device: &str, other_misc: &Path) -> std::io::Result<Value> {
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    dev::ioctl(&file, IOC_START, 0).map_err(io_err)?;
    let block = info.block_bytes as usize;
    let trap = Unserved::new(2 * block)?;
    std::thread::sleep(Duration::from_millis(200)); // blocks are waiting
    let (fd, dst) = (file.as_raw_fd(), trap.region.ptr as usize);
    let (tx, reader_done) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: `dst` is `2 * block` bytes of our registered region, which
        // lives until the reader has reported (it is dropped last, below).
        let n = unsafe { libc::read(fd, dst as *mut libc::c_void, block) };
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let _ = tx.send(if n < 0 {
            errno_name(e).to_string()
        } else {
            format!("{n} bytes")
        });
    });
    std::thread::sleep(Duration::from_millis(500));
    let parked = reader_done.try_recv().is_err();
    let p = path.to_path_buf();
    let reopen = within(5.0, move || errno_of(&dev::open(&p)));
    let o = other_misc.to_path_buf();
    let misc = within(5.0, move || errno_of(&File::open(&o)));
    let d = device.to_string();
    let unbind = within(20.0, move || {
        errno_of(&sysfs_write(&format!("{DRIVER}/unbind"), &d))
    });
    // Closing the userfaultfd wakes the parked fault (it is then handled as
    // an ordinary one), so the reader ends, and so would anything a broken
    // driver left waiting behind it.
    drop(trap.uffd);
    let read_after = reader_done.recv_timeout(Duration::from_secs(20)).ok();
    drop(file);
    drop(trap.region);
    let show = |r: &Option<(String, f64)>| match r {
        Some((e, ms)) => json!({"result": e, "ms": ms}),
        None => json!({"result": "hung"}),
    };
    let rebind = sysfs_write(&format!("{DRIVER}/bind"), device).is_ok() && wait_for(path, 10.0);
    Ok(json!({
        "ok": parked && reopen.is_some() && misc.is_some() && unbind.is_some(),
        "reader_parked_on_fault": parked,
        "second_open": show(&reopen),
        "other_misc_open": show(&misc),
        "unbind": show(&unbind),
        "read_after_uffd_closed": read_after,
        "rebound": rebind,
    }))
}

/// Per-CPU figures of one `latency` phase.
fn probe_cpus(seconds: f64) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let half = Duration::from_secs_f64(seconds / 2.0);
    let per_cpu: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cpus)
            .map(|cpu| {
                s.spawn(move || {
                    pin_to(cpu);
                    // Phase 1: how late a 1 ms sleep wakes.
                    let mut lates = Vec::new();
                    let end = Instant::now() + half;
                    while Instant::now() < end {
                        let t = Instant::now();
                        std::thread::sleep(Duration::from_millis(1));
                        lates.push(t.elapsed().as_secs_f64() * 1e3 - 1.0);
                    }
                    lates.sort_by(|a, b| a.total_cmp(b));
                    // Phase 2: the share of the CPU a busy thread gets.
                    let (w0, c0) = (Instant::now(), thread_cpu_ns());
                    let mut x = 0u64;
                    while w0.elapsed() < half {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                    let share = (thread_cpu_ns() - c0) as f64 / w0.elapsed().as_nanos() as f64;
                    let q = |f: f64| lates[((lates.len() - 1) as f64 * f) as usize];
                    json!({
                        "cpu": cpu,
                        "wakeups": lates.len(),
                        "late_ms_p50": q(0.5),
                        "late_ms_p99": q(0.99),
                        "late_ms_max": q(1.0),
                        "busy_cpu_share": share,
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let worst = |k: &str| {
        per_cpu
            .iter()
            .map(|c| c[k].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max)
    };
    let least = per_cpu
        .iter()
        .map(|c| c["busy_cpu_share"].as_f64().unwrap_or(0.0))
        .fold(f64::MAX, f64::min);
    json!({"per_cpu": per_cpu, "late_ms_max": worst("late_ms_max"), "late_ms_p99_max": worst("late_ms_p99"), "busy_cpu_share_min": least})
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in bounds for any
    // CPU this machine has; the call affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// This thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// `latency`: the probe idle, then with the device streaming and a consumer
/// releasing every block as soon as it is published (so the producer never
/// finds the ring full and writes flat out).
pub fn latency(path: &Path, seconds: f64) -> std::io::Result<Value> {
    let idle = probe_cpus(seconds);
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    let (control, _data) = dev::map_ring(&file, &info)?;
    // SAFETY: the control mapping is live until the end of this function
    // and laid out as ControlPage; we touch it only through its atomics.
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    dev::ioctl(&file, IOC_START, 0).map_err(io_err)?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let streaming = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                cp.tail
                    .store(cp.head.load(Ordering::Acquire), Ordering::Release);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let r = probe_cpus(seconds);
        stop.store(true, Ordering::Relaxed);
        r
    });
    let mut st = Stats::default();
    dev::ioctl(&file, IOC_STATS, &mut st as *mut Stats as usize).map_err(io_err)?;
    dev::ioctl(&file, IOC_STOP, 0).map_err(io_err)?;
    Ok(json!({
        "block_bytes": info.block_bytes,
        "buffer_bytes": info.data_size,
        "rate_hz": info.rate_hz,
        "produced_blocks": st.produced_blocks,
        "dropped_blocks": st.dropped_blocks,
        "idle": idle,
        "streaming": streaming,
    }))
}
