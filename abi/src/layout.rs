//! Byte layout of the control page and of a block header (ABI v2).
//!
//! Every struct is `repr(C)` with its size and field offsets asserted at
//! compile time, so a change that would silently move a field fails the
//! build of both the kernel module and user space.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64};

/// `"HSDQ"` in little-endian byte order: the first word of the control page.
pub const CONTROL_MAGIC: u32 = u32::from_le_bytes(*b"HSDQ");
/// `"HBLK"`: the first word of every block header.
pub const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"HBLK");
/// Incompatible changes bump the major version; user space refuses others.
pub const ABI_MAJOR: u16 = 2;
/// Compatible additions (new fields in reserved space, new ioctls).
pub const ABI_MINOR: u16 = 1;

/// Size of the control page structure: the smallest control area. A kernel
/// with larger pages (16 K, 64 K on arm64) rounds the control area up to one
/// page; [`ControlPage::control_bytes`] and `data_offset` say what it chose,
/// and user space maps exactly those.
pub const CONTROL_BYTES: usize = 4096;
/// Size of a block header; the payload follows it.
pub const BLOCK_HEADER_BYTES: usize = 64;
/// Most channels a stream may carry.
pub const MAX_CHANNELS: u16 = 64;
/// Smallest block slot (header + at least a few scans).
pub const MIN_BLOCK_BYTES: u32 = 256;
/// Smallest data area.
pub const MIN_DATA_BYTES: u64 = 8192;
/// Largest data area (1 GiB): enough for seconds of buffering at 2 GB/s.
pub const MAX_DATA_BYTES: u64 = 1 << 30;
/// Highest scan rate a source may announce (scans per second).
pub const MAX_RATE_HZ: u64 = 100_000_000;

/// Source of the stream, as announced in [`ControlPage::source`].
pub const SOURCE_SIMULATOR: u16 = 1;
/// The kernel driver's hrtimer-driven virtual sensor.
pub const SOURCE_VIRTUAL: u16 = 2;
/// A hardware source: the driver's DMA source (a DMA engine named in the
/// device tree writes the block payloads).
pub const SOURCE_HARDWARE: u16 = 3;
/// An IIO device read by `acquire` itself (`acquire/src/source/feed.rs`
/// writes this ring in user space; no kernel driver announces it).
pub const SOURCE_IIO: u16 = 4;
/// A network stream received by `acquire` itself (as [`SOURCE_IIO`]).
pub const SOURCE_NETWORK: u16 = 5;

/// [`ControlPage::status`]: the producer is idle.
pub const STATUS_STOPPED: u32 = 0;
/// The producer is writing blocks.
pub const STATUS_RUNNING: u32 = 1;
/// The device went away (unbind, rmmod): no more blocks will come.
pub const STATUS_GONE: u32 = 2;
/// The producer hit an error and stopped.
pub const STATUS_ERROR: u32 = 3;

/// Block flag: samples were lost immediately before this block.
pub const BLOCK_FLAG_AFTER_GAP: u32 = 1 << 0;
/// Block flag (ABI 2.1): `lost_before` is an estimate from the sample clock
/// (the stream carries no counter), not a count. See [`GapKind`].
pub const BLOCK_FLAG_LOSS_INFERRED: u32 = 1 << 1;
/// Block flag (ABI 2.1): `timestamp_ns` was measured (a DMA completion, less
/// the block's duration at the nominal rate), not computed from the start
/// time and the nominal rate.
pub const BLOCK_FLAG_TIME_MEASURED: u32 = 1 << 2;
/// Block flag (ABI 2.1): `lost_before` is a lower bound (at least this many:
/// e.g. a wrapping stream counter that may have lapped). See [`GapKind`].
pub const BLOCK_FLAG_LOSS_AT_LEAST: u32 = 1 << 3;

/// What a block's `lost_before` is worth: the one vocabulary of every
/// source, the manifest, `verify` and `analysis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GapKind {
    /// Exact: the producer or the stream's own counter counted it.
    Counted,
    /// Estimated from time (the size may be off; the position too, by up to
    /// the source's buffering).
    Inferred,
    /// At least this many (e.g. a wrapping counter that may have lapped).
    Bounded,
}

impl GapKind {
    /// The kind a block header's flags declare.
    pub const fn of_flags(flags: u32) -> GapKind {
        if flags & BLOCK_FLAG_LOSS_INFERRED != 0 {
            GapKind::Inferred
        } else if flags & BLOCK_FLAG_LOSS_AT_LEAST != 0 {
            GapKind::Bounded
        } else {
            GapKind::Counted
        }
    }

    /// The flag bits that declare this kind.
    pub const fn flags(self) -> u32 {
        match self {
            GapKind::Counted => 0,
            GapKind::Inferred => BLOCK_FLAG_LOSS_INFERRED,
            GapKind::Bounded => BLOCK_FLAG_LOSS_AT_LEAST,
        }
    }

    /// The kind of two losses told as one `lost_before`: an estimate makes
    /// the sum an estimate, a bound makes it a bound, only counts stay a count.
    pub const fn with(self, other: GapKind) -> GapKind {
        match (self, other) {
            (GapKind::Inferred, _) | (_, GapKind::Inferred) => GapKind::Inferred,
            (GapKind::Bounded, _) | (_, GapKind::Bounded) => GapKind::Bounded,
            _ => GapKind::Counted,
        }
    }
}

/// The first page of a mapping.
///
/// Cache line 0 is written once when the stream is configured; cache line 1
/// only by the producer; cache line 2 only by the consumer (`tail`). Keeping
/// `head` and `tail` on separate lines stops them from bouncing between
/// cores.
#[repr(C, align(64))]
pub struct ControlPage {
    // ---- cache line 0: identity and layout (offset 0) ----
    /// [`CONTROL_MAGIC`].
    pub magic: u32,
    /// [`ABI_MAJOR`] of the producer.
    pub abi_major: u16,
    /// [`ABI_MINOR`] of the producer.
    pub abi_minor: u16,
    /// Length of the control mapping: [`CONTROL_BYTES`] rounded up to the
    /// producer's page size.
    pub control_bytes: u32,
    /// [`BLOCK_HEADER_BYTES`].
    pub block_header_bytes: u32,
    /// Offset of the data area in the mapping (equals `control_bytes`).
    pub data_offset: u64,
    /// Size of the data area in bytes: a power of two.
    pub data_size: u64,
    /// Size of a block slot in bytes: a power of two dividing `data_size`.
    pub block_bytes: u32,
    /// Most scans a block holds.
    pub block_scans: u32,
    /// Values per scan.
    pub channels: u16,
    /// [`super::format::Format`] as `u16`.
    pub format: u16,
    /// One of the `SOURCE_*` constants.
    pub source: u16,
    /// Reserved, zero.
    pub _pad0: u16,
    /// Nominal scans per second.
    pub rate_hz: u64,
    /// CLOCK_MONOTONIC nanoseconds of scan 0.
    pub start_ns: u64,

    // ---- cache line 1: producer-owned (offset 64) ----
    /// Bytes ever published; Release-stored after a block is written.
    pub head: AtomicU64,
    /// Blocks written into the ring.
    pub produced_blocks: AtomicU64,
    /// Blocks dropped because the ring was full, the producer fell behind,
    /// or a fault forced it.
    pub dropped_blocks: AtomicU64,
    /// Scans in the dropped blocks.
    pub dropped_scans: AtomicU64,
    /// Loss events: times the producer went from writing to dropping.
    pub overruns: AtomicU64,
    /// Index of the next scan the source will produce (per stream: every
    /// START begins a new stream at scan 0).
    pub next_scan: AtomicU64,
    /// One of the `STATUS_*` constants.
    pub status: AtomicU32,
    /// Streams started so far; every block carries the epoch it belongs to.
    pub epoch: AtomicU32,
    /// Published blocks nobody read, discarded by START or RESET (counted,
    /// never silent). Every counter here only ever grows.
    pub discarded_blocks: AtomicU64,

    // ---- cache line 2: consumer-owned (offset 128) ----
    /// Bytes ever consumed; Release-stored after a block has been read.
    pub tail: AtomicU64,
    /// Reserved, zero.
    pub _pad3: [u64; 7],

    // ---- identity strings (offset 192) ----
    /// Device name, NUL-padded (e.g. `hsdaq0`).
    pub name: [u8; 64],
    /// Device-tree compatible that bound the device, NUL-padded.
    pub compatible: [u8; 64],

    // ---- written by the producer before the first block (offset 320) ----
    /// Stream index of the stream's first scan (ABI 2.1): 0 unless the
    /// source numbers its own scans (a network stream's sample count), so
    /// that `seq` is the stream's index and two recorders of one stream
    /// agree. Scan limits count from here.
    pub first_scan: AtomicU64,
    /// Reserved up to the end of the page, zero.
    pub _reserved: [u8; CONTROL_BYTES - 328],
}

const _: () = {
    assert!(size_of::<ControlPage>() == CONTROL_BYTES);
    assert!(offset_of!(ControlPage, magic) == 0);
    assert!(offset_of!(ControlPage, abi_major) == 4);
    assert!(offset_of!(ControlPage, control_bytes) == 8);
    assert!(offset_of!(ControlPage, data_offset) == 16);
    assert!(offset_of!(ControlPage, data_size) == 24);
    assert!(offset_of!(ControlPage, block_bytes) == 32);
    assert!(offset_of!(ControlPage, block_scans) == 36);
    assert!(offset_of!(ControlPage, channels) == 40);
    assert!(offset_of!(ControlPage, format) == 42);
    assert!(offset_of!(ControlPage, source) == 44);
    assert!(offset_of!(ControlPage, rate_hz) == 48);
    assert!(offset_of!(ControlPage, start_ns) == 56);
    assert!(offset_of!(ControlPage, head) == 64);
    assert!(offset_of!(ControlPage, dropped_scans) == 88);
    assert!(offset_of!(ControlPage, next_scan) == 104);
    assert!(offset_of!(ControlPage, status) == 112);
    assert!(offset_of!(ControlPage, epoch) == 116);
    assert!(offset_of!(ControlPage, discarded_blocks) == 120);
    assert!(offset_of!(ControlPage, tail) == 128);
    assert!(offset_of!(ControlPage, name) == 192);
    assert!(offset_of!(ControlPage, compatible) == 256);
    assert!(offset_of!(ControlPage, first_scan) == 320);
};

/// The 64-byte header at the start of every block slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockHeader {
    /// [`BLOCK_MAGIC`].
    pub magic: u32,
    /// `BLOCK_FLAG_*` bits.
    pub flags: u32,
    /// Index of the block's first scan (a scan holds one value per channel).
    pub first_scan: u64,
    /// CLOCK_MONOTONIC nanoseconds of the first scan.
    pub timestamp_ns: u64,
    /// Scans lost immediately before this block (dropped blocks, overruns).
    pub lost_before: u64,
    /// Number of this block among the blocks written (0, 1, 2, …).
    pub block_seq: u64,
    /// Scans in this block (`1..=block_scans`).
    pub scans: u32,
    /// Values per scan.
    pub channels: u16,
    /// [`super::format::Format`] as `u16`.
    pub format: u16,
    /// Nanoseconds between two scans, fixed-point ×2^16 (sub-ns periods).
    pub period_ns_q16: u64,
    /// The stream this block belongs to ([`ControlPage::epoch`]).
    pub epoch: u32,
    /// Reserved, zero.
    pub _reserved: u32,
}

const _: () = {
    assert!(size_of::<BlockHeader>() == BLOCK_HEADER_BYTES);
    assert!(offset_of!(BlockHeader, flags) == 4);
    assert!(offset_of!(BlockHeader, first_scan) == 8);
    assert!(offset_of!(BlockHeader, timestamp_ns) == 16);
    assert!(offset_of!(BlockHeader, lost_before) == 24);
    assert!(offset_of!(BlockHeader, block_seq) == 32);
    assert!(offset_of!(BlockHeader, scans) == 40);
    assert!(offset_of!(BlockHeader, channels) == 44);
    assert!(offset_of!(BlockHeader, format) == 46);
    assert!(offset_of!(BlockHeader, period_ns_q16) == 48);
    assert!(offset_of!(BlockHeader, epoch) == 56);
};

/// Why a proposed stream layout is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `channels` is 0 or above [`MAX_CHANNELS`].
    Channels,
    /// `data_size` is not a power of two in `[MIN_DATA_BYTES, MAX_DATA_BYTES]`.
    DataSize,
    /// `block_bytes` is not a power of two in `[MIN_BLOCK_BYTES, data_size / 2]`.
    BlockBytes,
    /// A block slot cannot hold even one scan.
    BlockTooSmall,
    /// `rate_hz` is 0 or above [`MAX_RATE_HZ`].
    Rate,
}

impl LayoutError {
    /// The property or flag at fault, for error messages.
    pub const fn field(self) -> &'static str {
        match self {
            LayoutError::Channels => "channels",
            LayoutError::DataSize => "buffer-bytes",
            LayoutError::BlockBytes => "block-bytes",
            LayoutError::BlockTooSmall => "block-bytes",
            LayoutError::Rate => "rate-hz",
        }
    }
}

/// The shape of a stream: everything needed to place blocks in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// Values per scan.
    pub channels: u16,
    /// Sample format.
    pub format: super::format::Format,
    /// Data area size (power of two).
    pub data_size: u64,
    /// Block slot size (power of two).
    pub block_bytes: u32,
    /// Nominal scans per second.
    pub rate_hz: u64,
}

impl StreamLayout {
    /// Checks every rule of the ABI; the kernel and user space share it.
    pub const fn validate(&self) -> Result<(), LayoutError> {
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return Err(LayoutError::Channels);
        }
        if !self.data_size.is_power_of_two()
            || self.data_size < MIN_DATA_BYTES
            || self.data_size > MAX_DATA_BYTES
        {
            return Err(LayoutError::DataSize);
        }
        if !self.block_bytes.is_power_of_two()
            || self.block_bytes < MIN_BLOCK_BYTES
            || self.block_bytes as u64 > self.data_size / 2
        {
            return Err(LayoutError::BlockBytes);
        }
        if self.block_scans() == 0 {
            return Err(LayoutError::BlockTooSmall);
        }
        if self.rate_hz == 0 || self.rate_hz > MAX_RATE_HZ {
            return Err(LayoutError::Rate);
        }
        Ok(())
    }

    /// Bytes of one scan.
    pub const fn scan_bytes(&self) -> usize {
        self.channels as usize * self.format.bytes()
    }

    /// Scans that fit in one block slot after its header.
    pub const fn block_scans(&self) -> u32 {
        let payload = (self.block_bytes as usize).saturating_sub(BLOCK_HEADER_BYTES) as u64;
        div(payload, self.scan_bytes() as u64) as u32
    }

    /// Block slots in the data area.
    pub const fn slots(&self) -> u64 {
        self.data_size / self.block_bytes as u64
    }

    /// Scan period in nanoseconds, fixed-point ×2^16.
    pub const fn period_ns_q16(&self) -> u64 {
        div(NS_PER_S << 16, self.rate_hz)
    }

    /// CLOCK_MONOTONIC time of scan `index` for a stream that started at `start_ns`.
    pub const fn scan_time_ns(&self, start_ns: u64, index: u64) -> u64 {
        // floor(index * 1e9 / rate) without 128-bit arithmetic (the kernel
        // has no 128-bit division): split index = q * rate + m.
        let r = self.rate_hz;
        start_ns + div(index, r) * NS_PER_S + div(rem(index, r) * NS_PER_S, r)
    }

    /// Scans whose nominal time lies within `elapsed_ns` of the start:
    /// `floor(elapsed_ns * rate / 1e9)`, the inverse of [`Self::scan_time_ns`].
    pub const fn scans_in_ns(&self, elapsed_ns: u64) -> u64 {
        (elapsed_ns / NS_PER_S) * self.rate_hz + (elapsed_ns % NS_PER_S) * self.rate_hz / NS_PER_S
    }
}

const NS_PER_S: u64 = 1_000_000_000;

/// `a / b`, 0 for `b == 0`. The kernel includes this file: a division that
/// cannot panic keeps panic paths out of its timer callback (only invalid
/// layouts, which `validate` rejects, have a zero divisor).
const fn div(a: u64, b: u64) -> u64 {
    match a.checked_div(b) {
        Some(q) => q,
        None => 0,
    }
}

/// `a % b`, 0 for `b == 0` (see [`div`]).
const fn rem(a: u64, b: u64) -> u64 {
    match a.checked_rem(b) {
        Some(r) => r,
        None => 0,
    }
}

/// Copies `src` into a NUL-padded fixed field, truncating if needed.
pub fn fill_name(dst: &mut [u8; 64], src: &[u8]) {
    let n = if src.len() < 63 { src.len() } else { 63 };
    let mut i = 0;
    while i < 64 {
        dst[i] = if i < n { src[i] } else { 0 };
        i += 1;
    }
}

/// The bytes of a NUL-padded field up to its first NUL.
pub fn name_bytes(field: &[u8; 64]) -> &[u8] {
    let mut n = 0;
    while n < field.len() && field[n] != 0 {
        n += 1;
    }
    &field[..n]
}

#[cfg(test)]
mod time_tests {
    use super::*;

    fn layout(rate_hz: u64) -> StreamLayout {
        StreamLayout {
            channels: 4,
            format: super::super::format::Format::I16,
            data_size: 1 << 20,
            block_bytes: 4096,
            rate_hz,
        }
    }

    /// The split arithmetic equals the exact 128-bit formula, also where a
    /// 64-bit product would overflow.
    #[test]
    fn scan_time_matches_wide_arithmetic() {
        for rate in [1, 3, 7_919, 1_000_000, 25_000_000, MAX_RATE_HZ] {
            let l = layout(rate);
            for index in [
                0,
                1,
                rate - 1,
                rate,
                123_456_789_012,
                u64::MAX / 1_000_000_000,
            ] {
                let exact = index as u128 * 1_000_000_000 / rate as u128;
                if exact > (u64::MAX / 2) as u128 {
                    continue; // beyond any real stream (centuries)
                }
                let exact = exact as u64;
                assert_eq!(
                    l.scan_time_ns(5, index),
                    5 + exact,
                    "rate {rate} index {index}"
                );
            }
        }
    }

    #[test]
    fn scans_in_ns_inverts_scan_time() {
        for rate in [1, 3, 48_000, 1_000_000, MAX_RATE_HZ] {
            let l = layout(rate);
            for ns in [0, 1, 999_999_999, 1_000_000_000, 86_400_000_000_000] {
                let exact = (ns as u128 * rate as u128 / 1_000_000_000) as u64;
                let n = l.scans_in_ns(ns);
                assert_eq!(n, exact, "rate {rate} ns {ns}");
                assert!(l.scan_time_ns(0, n) <= ns && l.scan_time_ns(0, n + 1) > ns);
            }
        }
    }
}
