//! ABI layout and reference-waveform properties.

use hsdaq_abi::layout::*;
use hsdaq_abi::{ioctl, waveform, Format};

#[test]
fn ioctl_numbers_use_linux_encoding() {
    // _IOR(0xBD, 1, 176-byte struct) computed by hand (0xB5 is rpmsg's).
    assert_eq!(ioctl::IOC_INFO, (2 << 30) | (176 << 16) | (0xBD << 8) | 1);
    assert_eq!(ioctl::IOC_START, (0xBD << 8) | 2);
    assert_eq!(
        ioctl::IOC_INFO_ABI1,
        (2 << 30) | (176 << 16) | (0xB5 << 8) | 1
    );
    assert_eq!(ioctl::IOC_WAIT >> 30, 3);
    let all = [
        ioctl::IOC_INFO,
        ioctl::IOC_START,
        ioctl::IOC_STOP,
        ioctl::IOC_WAIT,
        ioctl::IOC_STATS,
        ioctl::IOC_RESET,
        ioctl::IOC_FAULT,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn layout_validation_names_the_bad_field() {
    let good = StreamLayout {
        channels: 4,
        format: Format::I16,
        data_size: 1 << 20,
        block_bytes: 1 << 14,
        rate_hz: 1_000_000,
    };
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(good.block_scans(), ((1 << 14) - 64) / 8);
    let bad = |f: fn(&mut StreamLayout)| {
        let mut l = good;
        f(&mut l);
        l.validate().unwrap_err().field()
    };
    assert_eq!(bad(|l| l.channels = 0), "channels");
    assert_eq!(bad(|l| l.channels = 65), "channels");
    assert_eq!(bad(|l| l.data_size = 3 << 20), "buffer-bytes");
    assert_eq!(bad(|l| l.block_bytes = 3000), "block-bytes");
    assert_eq!(bad(|l| l.block_bytes = 1 << 20), "block-bytes");
    assert_eq!(bad(|l| l.rate_hz = 0), "rate-hz");
    assert_eq!(
        bad(|l| {
            l.channels = 64;
            l.format = Format::I32;
            l.block_bytes = 256
        }),
        "block-bytes"
    );
}

#[test]
fn scan_time_is_exact_for_integer_rates() {
    let l = StreamLayout {
        channels: 1,
        format: Format::I16,
        data_size: 1 << 16,
        block_bytes: 1 << 10,
        rate_hz: 3,
    };
    assert_eq!(l.scan_time_ns(100, 3), 1_000_000_100);
    assert_eq!(l.scan_time_ns(0, 1), 333_333_333);
}

#[test]
fn waveform_is_deterministic_distinct_and_in_range() {
    let mut distinct_channels = 0;
    for scan in 0..200_000u64 {
        let a = waveform::value_i16(scan, 0);
        let b = waveform::value_i16(scan, 1);
        if a != b {
            distinct_channels += 1;
        }
        assert!(a.unsigned_abs() < 26_000);
        assert_eq!(
            waveform::value_i32(scan, 3) >> 16,
            waveform::value_i16(scan, 3) as i32
        );
    }
    assert!(distinct_channels > 190_000);
    // Not linear: second differences are not all equal.
    let d: Vec<i32> = (0..64).map(|s| waveform::value_i16(s, 0) as i32).collect();
    let second: std::collections::HashSet<i32> =
        d.windows(3).map(|w| w[2] - 2 * w[1] + w[0]).collect();
    assert!(second.len() > 10);
    // A shifted stream does not match.
    let shifted = (1000..2000u64)
        .filter(|&s| waveform::value_i16(s, 2) == waveform::value_i16(s + 1, 2))
        .count();
    assert!(shifted < 50, "{shifted}");
}

#[test]
fn sine_has_the_announced_period() {
    // Channel 0 advances 64/65536 of a cycle per scan: period 1024 scans.
    // Its sine part dominates, so the mean over one period of (v(s) - v(s+512))
    // is large and positive where the sine peaks.
    let peak: i64 = (0..64)
        .map(|s| waveform::value_i16(256 + s, 0) as i64)
        .sum();
    let trough: i64 = (0..64)
        .map(|s| waveform::value_i16(768 + s, 0) as i64)
        .sum();
    assert!(
        peak / 64 > 15_000 && trough / 64 < -15_000,
        "{peak} {trough}"
    );
}
