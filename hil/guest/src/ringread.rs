//! The consumer's in-place read speed: fill the ring (the producer stops
//! when no slot is free), stop the stream, then read every byte of the data
//! area through the read-only mapping, several times. Reading the same
//! producer-written memory over and over isolates what the mapping's cache
//! attributes cost (cacheable on a coherent device, non-cacheable otherwise)
//! from the producer and the protocol.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hsdaq_abi::ioctl::*;
use hsdaq_abi::layout::ControlPage;
use serde_json::json;

use crate::dev::{self, io_err};

pub fn run(device: &Path, passes: u32) -> std::io::Result<serde_json::Value> {
    let file = dev::open(device)?;
    let info = dev::info(&file)?;
    let (control, data) = dev::map_ring(&file, &info)?;
    // SAFETY: the control mapping is one page-aligned ControlPage.
    let cp = unsafe { &*(control.ptr as *const ControlPage) };
    dev::ioctl(&file, IOC_STOP, 0).map_err(io_err)?;
    dev::ioctl(&file, IOC_RESET, 0).map_err(io_err)?;
    dev::ioctl(&file, IOC_START, 0).map_err(io_err)?;
    let full = info.data_size - u64::from(info.block_bytes);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cp.head.load(Ordering::Acquire) - cp.tail.load(Ordering::Acquire) < full {
        if Instant::now() > deadline {
            return Err(std::io::Error::other("the ring did not fill within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    dev::ioctl(&file, IOC_STOP, 0).map_err(io_err)?;
    let words = data.len / 8;
    let mut rates = Vec::new();
    let mut sum = 0u64;
    for _ in 0..passes {
        let t = Instant::now();
        for i in 0..words {
            // SAFETY: `i < len / 8` inside the live read-only data mapping;
            // nothing writes it (the stream is stopped).
            sum = sum.wrapping_add(unsafe { data.ptr.cast::<u64>().add(i).read_volatile() });
        }
        rates.push(data.len as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    Ok(
        json!({"device": device.display().to_string(), "bytes": data.len, "passes": passes,
              "mb_per_s_median": median, "mb_per_s": rates, "checksum": sum}),
    )
}
