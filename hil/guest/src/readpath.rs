//! The `read()` path of `/dev/hsdaqN` as a recorder would use it, for the
//! peers comparison (hil/scenarios/peers.sh): consume exactly the scans a
//! recording of `seconds` asks for (`rate_hz × seconds` from the first
//! block read), copying every block, and account for them the way the ABI
//! lets a user see a loss — each block's `lost_before` (and the jump in its
//! `first_scan`) marks the scans dropped in front of it.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::{BlockHeader, BLOCK_MAGIC};
use serde_json::json;

use crate::dev::{self, io_err};

/// What a run delivered of the scans it asked for.
#[derive(Default)]
struct Tally {
    /// First scan of the recording (the first block read).
    first: Option<u64>,
    delivered: u64,
    /// Scans the blocks' headers said were lost (inside the recording).
    reported_lost: u64,
    /// Scans covered so far (delivered or lost), from `first`.
    covered: u64,
}

impl Tally {
    /// Counts one block's part inside `[first, first + asked)`.
    fn add(&mut self, h: &BlockHeader, asked: u64) -> std::io::Result<()> {
        if h.magic != BLOCK_MAGIC {
            return Err(std::io::Error::other(format!("bad block magic: {h:?}")));
        }
        let first = *self.first.get_or_insert(h.first_scan);
        let start = h.first_scan - first;
        if start >= asked {
            return Ok(());
        }
        if start > self.covered {
            // Lost in front of this block: the header must say so.
            self.reported_lost += h.lost_before.min(start - self.covered);
        }
        let inside = u64::from(h.scans).min(asked - start);
        self.delivered += inside;
        self.covered = start + inside;
        Ok(())
    }
}

/// Reads `rate_hz × seconds` scans' worth of the stream through `read()`
/// (or until `3 × seconds + 5` s pass) and prints what arrived.
pub fn run(path: &Path, seconds: f64) -> std::io::Result<serde_json::Value> {
    let mut file: &File = &dev::open(path)?;
    let info = dev::info(file)?;
    let block = info.block_bytes as usize;
    let asked = (info.rate_hz as f64 * seconds).round() as u64;
    let mut buf = vec![0u8; block * 64];
    dev::ioctl(file, IOC_STOP, 0).map_err(io_err)?;
    dev::ioctl(file, IOC_RESET, 0).map_err(io_err)?;
    dev::ioctl(file, IOC_START, 0).map_err(io_err)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds * 3.0 + 5.0);
    let mut tally = Tally::default();
    while tally.covered < asked && Instant::now() < deadline {
        let n = file.read(&mut buf)?;
        for slot in buf[..n].chunks_exact(block) {
            // SAFETY: each chunk starts with a 64-byte BlockHeader copied by
            // read(); read_unaligned makes no alignment assumption.
            let h = unsafe { std::ptr::read_unaligned(slot.as_ptr() as *const BlockHeader) };
            tally.add(&h, asked)?;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    dev::ioctl(file, IOC_STOP, 0).map_err(io_err)?;
    // Lost: missing among the scans the stream reached. When the producer
    // itself fell behind (a slow guest), the part it never reached is not
    // lost but not produced in time: `not_reached`, and the step timed out.
    let lost = tally.covered - tally.delivered;
    Ok(json!({
        "stack": "hsdaq-read", "rate_hz": info.rate_hz, "asked": asked,
        "delivered": tally.delivered, "lost": lost, "reported_lost": tally.reported_lost,
        "not_reached": asked - tally.covered,
        "visible": tally.reported_lost > 0, "seconds": elapsed,
        "timed_out": tally.covered < asked,
    }))
}
