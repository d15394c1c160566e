//! Counts what `iio_readdev` (libiio) wrote to stdin, for the peers
//! comparison. IIO has no sample counter and `iio_dummy` pushes constant
//! data, so the only evidence of what the source produced is the scan
//! timestamp channel: the hrtimer trigger fires `rate` times a second, so
//! the timestamps' span says how many scans it should have delivered. IIO
//! itself reports neither a skipped trigger (hrtimer overrun) nor a full
//! kfifo (the push fails silently), so any shortfall here is a loss the
//! user was not told about.

use std::io::Read;
use std::time::Instant;

use serde_json::json;

/// Reads raw scans of `scan_bytes` with an `i64` timestamp at `ts_offset`
/// until end of input.
pub fn run(scan_bytes: usize, ts_offset: usize, rate: f64) -> std::io::Result<serde_json::Value> {
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; scan_bytes * 65536];
    let mut fill = 0usize;
    let (mut scans, mut first_ts, mut last_ts) = (0u64, None::<i64>, 0i64);
    let mut started = None;
    loop {
        let n = input.read(&mut buf[fill..])?;
        if n == 0 {
            break;
        }
        started.get_or_insert_with(Instant::now);
        fill += n;
        let whole = fill / scan_bytes * scan_bytes;
        for scan in buf[..whole].chunks_exact(scan_bytes) {
            let ts = i64::from_le_bytes(scan[ts_offset..ts_offset + 8].try_into().unwrap());
            first_ts.get_or_insert(ts);
            last_ts = ts;
            scans += 1;
        }
        buf.copy_within(whole..fill, 0);
        fill -= whole;
    }
    let span_s = first_ts.map_or(0.0, |f| (last_ts - f) as f64 / 1e9);
    // The trigger's schedule over the span of what arrived.
    let produced = if scans > 0 {
        (span_s * rate).round() as u64 + 1
    } else {
        0
    };
    let lost = produced.saturating_sub(scans);
    Ok(json!({
        "stack": "iio", "rate_hz": rate, "delivered": scans, "produced": produced,
        "lost": lost, "span_s": span_s,
        "seconds": started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        "partial_bytes": fill,
    }))
}
