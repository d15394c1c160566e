//! The reference waveform: every sample a virtual source produces is a pure,
//! integer-only function of `(scan index, channel)`.
//!
//! `acquire verify` recomputes each recorded value with the same function, so
//! any corruption, reordering or unrecorded loss anywhere between producer and
//! Parquet file shows up as a mismatch at a named sample. The signal is a sine
//! (table lookup, distinct frequency and phase per channel) plus a slow
//! sawtooth plus hashed noise: deterministic, but not linear, so shifted or
//! swapped data cannot pass by accident.

/// Entries of the sine table (one cycle).
const TABLE_LEN: usize = 256;
/// Half-cycle length in table steps.
const HALF: i64 = (TABLE_LEN / 2) as i64;
/// Peak of the table.
const AMPLITUDE: i64 = 8192;

/// One sine cycle, built at compile time with Bhaskara I's rational
/// approximation `sin x ≈ 4x(N-x) / (5N²/4 - x(N-x))` on each half-cycle
/// (error < 0.2 %, integers only).
const SINE: [i16; TABLE_LEN] = {
    let mut table = [0i16; TABLE_LEN];
    let mut i = 0;
    while i < TABLE_LEN {
        let x = (i as i64) % HALF;
        let p = x * (HALF - x);
        let v = AMPLITUDE * 4 * p / (5 * HALF * HALF / 4 - p);
        table[i] = if (i as i64) < HALF {
            v as i16
        } else {
            -v as i16
        };
        i += 1;
    }
    table
};

/// Multiplicative hash of `(scan, channel)`: the noise source.
#[inline(always)]
const fn hash(scan: u64, channel: u32) -> u64 {
    (scan ^ ((channel as u64) << 40) ^ 0x5DEE_CE66_D1CE_4E5B).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Phase step of `channel` in 1/65536 of a cycle per scan.
#[inline(always)]
const fn phase_step(channel: u32) -> u64 {
    64 + 97 * channel as u64
}

/// The 16-bit reference value of `channel` at scan `scan`.
///
/// Range: |value| ≤ 3·8192 + 512 + 128 < 2^15.
#[inline(always)]
pub const fn value_i16(scan: u64, channel: u32) -> i16 {
    let phase = scan
        .wrapping_mul(phase_step(channel))
        .wrapping_add(channel as u64 * 9000)
        & 0xFFFF;
    let sine = SINE[(phase >> 8) as usize] as i32 * 3;
    let ramp = ((scan >> 6) & 0x3FF) as i32 - 512;
    let noise = (hash(scan, channel) >> 56) as i32 - 128;
    (sine + ramp + noise) as i16
}

/// The 32-bit reference value: the 16-bit value in the high half and 16
/// more hashed bits below it.
#[inline(always)]
pub const fn value_i32(scan: u64, channel: u32) -> i32 {
    ((value_i16(scan, channel) as i32) << 16) | ((hash(scan, channel) >> 20) & 0xFFFF) as i32
}

/// The reference value in `format`, widened to `i32`.
#[inline(always)]
pub const fn value(format: super::format::Format, scan: u64, channel: u32) -> i32 {
    match format {
        super::format::Format::I16 => value_i16(scan, channel) as i32,
        super::format::Format::I32 => value_i32(scan, channel),
    }
}

/// Phase step of `channel` as a fraction of the scan rate, ×2^16: the sine
/// of channel `c` sits at `rate * sine_step(c) / 65536` Hz.
pub const fn sine_step(channel: u32) -> u64 {
    phase_step(channel)
}
