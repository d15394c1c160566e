//! The fast fills equal the definition, `value_i16`/`value_i32`, value for
//! value: at scan 0, across every ramp step (64 scans) and phase wrap, at
//! the top of the 64-bit scan range where the index wraps, for every
//! channel count the ring allows a scan of, and for partial scans.

use hsdaq_abi::waveform::{fill_i16, fill_i32, value_i16, value_i32};

fn starts() -> Vec<u64> {
    let mut s = vec![
        0,
        1,
        63,
        64,
        65,
        1023,
        65_535,
        65_536,
        1 << 32,
        (1 << 40) + 7,
    ];
    s.extend([u64::MAX - 200, u64::MAX - 64, u64::MAX - 1, u64::MAX]);
    // A spread of arbitrary starts (xorshift, fixed seed).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(x);
    }
    s
}

#[test]
fn fill_i16_equals_value_i16() {
    for channels in [1usize, 2, 3, 4, 7, 16, 64] {
        for &first in &starts() {
            let scans = 300;
            let mut out = vec![0i16; scans * channels];
            fill_i16(&mut out, channels, first);
            for (k, &got) in out.iter().enumerate() {
                let scan = first.wrapping_add((k / channels) as u64);
                let want = value_i16(scan, (k % channels) as u32);
                assert_eq!(
                    got,
                    want,
                    "scan {scan} channel {} of {channels}",
                    k % channels
                );
            }
        }
    }
}

#[test]
fn fill_i32_equals_value_i32() {
    for channels in [1usize, 3, 4, 8] {
        for &first in &starts() {
            let mut out = vec![0i32; 200 * channels];
            fill_i32(&mut out, channels, first);
            for (k, &got) in out.iter().enumerate() {
                let scan = first.wrapping_add((k / channels) as u64);
                assert_eq!(got, value_i32(scan, (k % channels) as u32), "scan {scan}");
            }
        }
    }
}

#[test]
fn partial_scan_is_left_alone() {
    let mut out = vec![7i16; 4 * 3 + 2];
    fill_i16(&mut out, 4, 10);
    assert_eq!(&out[12..], &[7, 7]);
    fill_i16(&mut [], 0, 0);
}
