//! mmap ring vs `read()`: the same device, the same stream, the same block
//! size, consumed for the same time. Three consumers:
//!
//! * `mmap`: blocks are used in place (headers checked, payload handed on
//!   untouched), which is what zero copy buys a recorder;
//! * `mmap_touch`: as `mmap`, but also reads every payload byte (a lower
//!   bound for any consumer that looks at all samples);
//! * `read`: `read()` copies blocks into a user buffer (headers checked).
//!
//! Load the module with `waveform=1` (zeros) and a high rate so the producer
//! costs little and the consumer is the bottleneck.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::{BlockHeader, ControlPage, BLOCK_MAGIC, CONTROL_BYTES};
use serde_json::json;

use crate::dev::{self, io_err, Map};

struct Pass {
    bytes: u64,
    blocks: u64,
    seconds: f64,
    dropped_blocks: u64,
    checksum: u64,
}

impl Pass {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
    fn json(&self) -> serde_json::Value {
        json!({"mb_per_s": self.mb_per_s(), "bytes": self.bytes, "blocks": self.blocks,
               "seconds": self.seconds, "producer_dropped_blocks": self.dropped_blocks})
    }
}

fn restart(file: &File) -> std::io::Result<()> {
    dev::ioctl(file, IOC_STOP, 0).map_err(io_err)?;
    dev::ioctl(file, IOC_RESET, 0).map_err(io_err)?;
    dev::ioctl(file, IOC_START, 0).map_err(io_err)?;
    Ok(())
}

fn stats(file: &File) -> std::io::Result<Stats> {
    let mut s = Stats::default();
    dev::ioctl(file, IOC_STATS, &mut s as *mut Stats as usize).map_err(io_err)?;
    Ok(s)
}

/// Checks a block's magic and that its sequence number follows the last
/// one. ABI 2 never moves counters backwards, so a restarted stream's
/// first block number is whatever the driver has reached: it is learned
/// from the first block (`None`), and every later one must follow it.
fn check(h: &BlockHeader, expect_seq: &mut Option<u64>) -> std::io::Result<()> {
    let want = expect_seq.unwrap_or(h.block_seq);
    if h.magic != BLOCK_MAGIC || h.block_seq != want {
        return Err(std::io::Error::other(format!(
            "bad block: {h:?}, expected seq {want}"
        )));
    }
    *expect_seq = Some(want + 1);
    Ok(())
}

fn mmap_pass(file: &File, seconds: f64, touch: bool) -> std::io::Result<Pass> {
    let info = dev::info(file)?;
    let block = info.block_bytes as u64;
    let mask = info.data_size - 1;
    let control = Map::new(
        file,
        CONTROL_BYTES,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        0,
    )
    .map_err(io_err)?;
    let data = Map::new(
        file,
        info.data_size as usize,
        libc::PROT_READ,
        libc::MAP_SHARED,
        CONTROL_BYTES as i64,
    )
    .map_err(io_err)?;
    // SAFETY: the control mapping is one page-aligned ControlPage.
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    restart(file)?;
    // Counters never move backwards (ABI 2): START discarded what was
    // unread, so the stream resumes at the driver's tail.
    let first = cp.tail.load(Ordering::Acquire);
    let (mut tail, mut seq, mut sum) = (first, None, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let head = cp.head.load(Ordering::Acquire);
        if head == tail {
            let mut w = WaitArgs {
                timeout_ns: 10_000_000,
                ..Default::default()
            };
            let _ = dev::ioctl(file, IOC_WAIT, &mut w as *mut WaitArgs as usize);
            continue;
        }
        while tail < head {
            // SAFETY: [tail, head) is published (Acquire above) and not yet
            // released; slots never wrap and lie inside the data mapping.
            let slot = unsafe {
                std::slice::from_raw_parts(data.ptr.add((tail & mask) as usize), block as usize)
            };
            // SAFETY: a slot starts with a 64-byte BlockHeader.
            let h = unsafe { std::ptr::read(slot.as_ptr() as *const BlockHeader) };
            check(&h, &mut seq)?;
            if touch {
                sum = slot[64..].chunks_exact(8).fold(sum, |a, c| {
                    a.wrapping_add(u64::from_ne_bytes(c.try_into().unwrap()))
                });
            }
            tail += block;
        }
        cp.tail.store(tail, Ordering::Release);
    }
    let seconds = start.elapsed().as_secs_f64();
    let s = stats(file)?;
    dev::ioctl(file, IOC_STOP, 0).map_err(io_err)?;
    Ok(Pass {
        bytes: tail - first,
        blocks: (tail - first) / block,
        seconds,
        dropped_blocks: s.dropped_blocks,
        checksum: sum,
    })
}

fn read_pass(mut file: &File, seconds: f64) -> std::io::Result<Pass> {
    let info = dev::info(file)?;
    let block = info.block_bytes as usize;
    let mut buf = vec![0u8; block * 64];
    restart(file)?;
    let (mut bytes, mut seq) = (0u64, None);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let n = file.read(&mut buf)?;
        for slot in buf[..n].chunks_exact(block) {
            // SAFETY: each chunk starts with a 64-byte BlockHeader copied by read().
            let h = unsafe { std::ptr::read_unaligned(slot.as_ptr() as *const BlockHeader) };
            check(&h, &mut seq)?;
        }
        bytes += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    let s = stats(file)?;
    dev::ioctl(file, IOC_STOP, 0).map_err(io_err)?;
    Ok(Pass {
        bytes,
        blocks: bytes / block as u64,
        seconds,
        dropped_blocks: s.dropped_blocks,
        checksum: 0,
    })
}

pub fn run(path: &Path, seconds: f64) -> std::io::Result<serde_json::Value> {
    let file = dev::open(path)?;
    let info = dev::info(&file)?;
    let mmap = mmap_pass(&file, seconds, false)?;
    let touch = mmap_pass(&file, seconds, true)?;
    let read = read_pass(&file, seconds)?;
    let ratio = mmap.mb_per_s() / read.mb_per_s();
    eprintln!(
        "readbench: block {} B, ring {} B: mmap {:.1} MB/s, mmap+touch {:.1} MB/s, read() {:.1} MB/s, mmap/read {:.2}x",
        info.block_bytes,
        info.data_size,
        mmap.mb_per_s(),
        touch.mb_per_s(),
        read.mb_per_s(),
        ratio
    );
    Ok(json!({
        "block_bytes": info.block_bytes, "ring_bytes": info.data_size, "rate_hz": info.rate_hz,
        "mmap": mmap.json(), "mmap_touch": touch.json(), "read": read.json(),
        "ratio_mmap_over_read": ratio,
        "ratio_mmap_touch_over_read": touch.mb_per_s() / read.mb_per_s(),
        "checksum": touch.checksum,
    }))
}
