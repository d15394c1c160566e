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

/// The sine table times three, as the waveform adds it: one lookup, no
/// multiply, in the fast fills.
const SINE3: [i32; TABLE_LEN] = {
    let mut t = [0i32; TABLE_LEN];
    let mut i = 0;
    while i < TABLE_LEN {
        t[i] = SINE[i] as i32 * 3;
        i += 1;
    }
    t
};

/// One channel's values from a first scan on, in scan order: the same
/// arithmetic as [`value_i16`] with the phase advanced by addition instead
/// of recomputed by multiplication and the hash key hoisted out of the
/// loop. Every step is wrapping integer arithmetic, so the values are
/// bit-identical; `tests/waveform_fast.rs` checks them against the
/// definition.
struct Walk {
    phase: u64,
    step: u64,
    key: u64,
    scan: u64,
}

impl Walk {
    #[inline(always)]
    fn new(first: u64, channel: u32) -> Self {
        let step = phase_step(channel);
        Walk {
            phase: first.wrapping_mul(step).wrapping_add(channel as u64 * 9000),
            step,
            key: ((channel as u64) << 40) ^ 0x5DEE_CE66_D1CE_4E5B,
            scan: first,
        }
    }

    /// The next value as `(value_i16 widened, hash)`.
    #[inline(always)]
    fn next(&mut self) -> (i32, u64) {
        let sine = SINE3[((self.phase & 0xFFFF) >> 8) as usize];
        let ramp = ((self.scan >> 6) & 0x3FF) as i32 - 512;
        let h = (self.scan ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.phase = self.phase.wrapping_add(self.step);
        self.scan = self.scan.wrapping_add(1);
        ((sine + ramp + ((h >> 56) as i32 - 128)) as i16 as i32, h)
    }
}

/// Channels whose walks [`fill_i16`]/[`fill_i32`] keep side by side (on
/// the stack) so each scan is written in one go; wider scans are filled a
/// channel at a time.
const SIDE_BY_SIDE: usize = 8;

/// Fills `out` with interleaved scans of `channels` values from scan
/// `first` on, `put` turning a walk's step into the stored value. A
/// trailing partial scan is left alone. No panic path (the kernel's timer
/// calls it).
#[inline(always)]
fn fill<T>(out: &mut [T], channels: usize, first: u64, put: impl Fn((i32, u64)) -> T) {
    if channels == 0 {
        return;
    }
    if channels <= SIDE_BY_SIDE {
        let mut walks: [Walk; SIDE_BY_SIDE] = core::array::from_fn(|c| Walk::new(first, c as u32));
        for scan in out.chunks_exact_mut(channels) {
            for (v, w) in scan.iter_mut().zip(walks.iter_mut()) {
                *v = put(w.next());
            }
        }
        return;
    }
    for c in 0..channels {
        let mut w = Walk::new(first, c as u32);
        for scan in out.chunks_exact_mut(channels) {
            if let Some(v) = scan.get_mut(c) {
                *v = put(w.next());
            }
        }
    }
}

/// Fills `out` with interleaved 16-bit scans (`ch0 ch1 … chN-1`, then the
/// next scan) from scan `first` on: the fast equal of [`value_i16`] for
/// every value.
pub fn fill_i16(out: &mut [i16], channels: usize, first: u64) {
    fill(out, channels, first, |(v, _)| v as i16);
}

/// Fills `out` with interleaved 32-bit scans from scan `first` on: the fast
/// equal of [`value_i32`] for every value.
pub fn fill_i32(out: &mut [i32], channels: usize, first: u64) {
    fill(out, channels, first, |(v, h)| {
        (v << 16) | ((h >> 20) & 0xFFFF) as i32
    });
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
