//! Many threads on one open file while the producer runs flat out: two
//! `read()` loops, WAIT and STATS, mmap/munmap of both areas, and writes of
//! random values to the mapped `tail`. What must hold: every block `read()`
//! returns is intact (magic, epoch, and every sample equal to the reference
//! waveform of the scans its header names: a block the producer overwrote
//! while it was being copied fails this), the counters never move backwards,
//! and every call ends in a success or an errno the ABI allows.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::{BlockHeader, ControlPage, BLOCK_HEADER_BYTES, BLOCK_MAGIC};
use hsdaq_abi::{waveform, Format};
use serde_json::json;

use crate::dev::{self, errno_name, Map};

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    read_blocks: AtomicU64,
    bad: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, what: String) {
        let mut b = self.bad.lock().unwrap();
        if b.len() < 20 {
            b.push(what);
        }
    }
}

/// Checks one block returned by `read()` against the reference waveform.
fn check_block(block: &[u8], info: &DeviceInfo, epoch: u32) -> Result<(), String> {
    // SAFETY: `block` holds at least one 64-byte header; read_unaligned has no
    // alignment needs and BlockHeader is plain integers.
    let h: BlockHeader = unsafe { std::ptr::read_unaligned(block.as_ptr().cast()) };
    if h.magic != BLOCK_MAGIC || h.scans == 0 || h.scans > info.block_scans {
        return Err(format!("bad header {h:?}"));
    }
    if h.epoch != epoch {
        return Err(format!("block of epoch {} in epoch {epoch}", h.epoch));
    }
    let ch = info.channels as usize;
    let payload = &block[BLOCK_HEADER_BYTES..];
    for s in 0..h.scans as usize {
        for c in 0..ch {
            let i = s * ch + c;
            let (got, want) = match Format::from_raw(info.format) {
                Some(Format::I16) => (
                    i16::from_le_bytes([payload[2 * i], payload[2 * i + 1]]) as i64,
                    waveform::value_i16(h.first_scan + s as u64, c as u32) as i64,
                ),
                _ => (
                    i32::from_le_bytes(payload[4 * i..4 * i + 4].try_into().unwrap()) as i64,
                    waveform::value_i32(h.first_scan + s as u64, c as u32) as i64,
                ),
            };
            if got != want {
                return Err(format!(
                    "block {} scan {} ch {c}: {got} != reference {want} (overwritten while copied?)",
                    h.block_seq,
                    h.first_scan + s as u64
                ));
            }
        }
    }
    Ok(())
}

/// Runs the race for `seconds` or until `ops` operations; one JSON report.
pub fn run(path: &Path, seconds: f64, ops: u64) -> std::io::Result<serde_json::Value> {
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    dev::ioctl(&file, IOC_START, 0).map_err(|e| std::io::Error::other(errno_name(e)))?;
    let (control, _data) = dev::map_ring(&file, &info)?;
    // SAFETY: the control mapping is live for this function and laid out as
    // ControlPage; we touch it only through its atomics.
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    let epoch = cp.epoch.load(Ordering::Acquire);
    let counts = Counts::default();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let done = || stop.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut buf = vec![0u8; 4 * info.block_bytes as usize];
                let mut f = &file;
                while !done() {
                    match f.read(&mut buf) {
                        Ok(n) => {
                            for b in buf[..n].chunks_exact(info.block_bytes as usize) {
                                counts.read_blocks.fetch_add(1, Ordering::Relaxed);
                                if let Err(e) = check_block(b, &info, epoch) {
                                    counts.fail(format!("read: {e}"));
                                }
                            }
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                        Err(e) => counts.fail(format!("read: {e}")),
                    }
                    counts.ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        s.spawn(|| {
            let mut last = Stats::default();
            while !done() {
                let mut w = WaitArgs {
                    timeout_ns: 1_000_000,
                    ..Default::default()
                };
                let r = dev::ioctl(&file, IOC_WAIT, &mut w as *mut WaitArgs as usize);
                if let Err(e) = r {
                    if e != libc::ETIMEDOUT && e != libc::EAGAIN {
                        counts.fail(format!("wait: {}", errno_name(e)));
                    }
                }
                let mut st = Stats::default();
                match dev::ioctl(&file, IOC_STATS, &mut st as *mut Stats as usize) {
                    Ok(_) => {
                        if st.head < last.head
                            || st.tail < last.tail
                            || st.dropped_scans < last.dropped_scans
                            || st.produced_blocks < last.produced_blocks
                            || st.tail > st.head
                        {
                            counts.fail(format!("counters moved backwards: {last:?} -> {st:?}"));
                        }
                        last = st;
                    }
                    Err(e) => counts.fail(format!("stats: {}", errno_name(e))),
                }
                counts.ops.fetch_add(2, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            let mut sum = 0u64;
            while !done() {
                match Map::new(
                    &file,
                    info.data_size as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    info.data_offset as i64,
                ) {
                    // SAFETY: a live read-only mapping of at least one page.
                    Ok(m) => sum = sum.wrapping_add(unsafe { m.ptr.read_volatile() } as u64),
                    Err(e) => counts.fail(format!("mmap data: {}", errno_name(e))),
                }
                match Map::new(
                    &file,
                    info.control_bytes as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    0,
                ) {
                    Ok(_) => {}
                    Err(e) => counts.fail(format!("mmap control: {}", errno_name(e))),
                }
                counts.ops.fetch_add(2, Ordering::Relaxed);
            }
            std::hint::black_box(sum);
        });
        s.spawn(|| {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            while !done() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let head = cp.head.load(Ordering::Acquire);
                let v = match x % 4 {
                    0 => x,                                            // garbage
                    1 => head,                                         // everything read
                    2 => head.saturating_sub(info.block_bytes as u64), // plausible
                    _ => head.wrapping_add(info.data_size),            // beyond head
                };
                cp.tail.store(v, Ordering::Release);
                counts.ops.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        while Instant::now() < deadline && counts.ops.load(Ordering::Relaxed) < ops {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut st = Stats::default();
    let _ = dev::ioctl(&file, IOC_STATS, &mut st as *mut Stats as usize);
    let bad = counts.bad.into_inner().unwrap();
    Ok(json!({
        "ok": bad.is_empty(),
        "ops": counts.ops.load(Ordering::Relaxed),
        "read_blocks_verified": counts.read_blocks.load(Ordering::Relaxed),
        "produced_blocks": st.produced_blocks,
        "dropped_blocks": st.dropped_blocks,
        "failures": bad,
    }))
}

/// Holds a mapping across an unbind: maps both areas, checks a block, closes
/// the fd (the mapping keeps the file), writes `ready`, waits for `go`, then
/// reads every page. A revoked mapping kills it with SIGBUS before it can
/// print; printing means stale memory was readable.
pub fn stale(path: &Path, ready: &Path, go: &Path) -> std::io::Result<serde_json::Value> {
    let file: File = dev::open(path)?;
    let info = dev::info(&file)?;
    let (control, data) = dev::map_ring(&file, &info)?;
    dev::ioctl(&file, IOC_START, 0).map_err(|e| std::io::Error::other(errno_name(e)))?;
    drop(file);
    std::fs::write(ready, "mapped\n")?;
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sum = 0u64;
    for m in [&control, &data] {
        for off in (0..m.len).step_by(4096) {
            // SAFETY: inside a mapping we own; a revoked one faults (SIGBUS).
            sum = sum.wrapping_add(unsafe { m.ptr.add(off).read_volatile() } as u64);
        }
    }
    Ok(json!({"ok": false, "stale_mapping_readable": true, "sum": sum}))
}
