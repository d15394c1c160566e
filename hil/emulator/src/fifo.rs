//! The packet FIFO's layout: `hil/fifo-dma/fifo.h` (the guest's test DMA
//! controller) is the other reader of these bytes; the offsets below are
//! asserted against it at compile time.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// `"HFIF"`: written last, once the geometry is in place.
pub const MAGIC: u32 = 0x4649_4648;
pub const VERSION: u32 = 1;
/// The header page; packet slots follow it.
pub const HEADER_BYTES: usize = 4096;
/// Slots at most (their scan counters fill the header page after 512 B).
pub const MAX_SLOTS: usize = 448;

/// `struct fifo_regs`. Little-endian, as the guest (arm64) and this host
/// (x86_64) both are.
#[repr(C)]
pub struct Regs {
    pub magic: AtomicU32,
    pub version: u32,
    pub packet_bytes: u32,
    pub slots: u32,
    pub rate_hz: u64,
    pub channels: u32,
    pub sample_bytes: u32,
    _pad0: [u8; 32],
    /// Emulator-owned (offset 64).
    pub written: AtomicU64,
    pub dropped_packets: AtomicU64,
    pub produced_scans: AtomicU64,
    pub ack_epoch: AtomicU32,
    _pad1: [u8; 36],
    /// Controller-owned (offset 128).
    pub consumed: AtomicU64,
    pub run_epoch: AtomicU32,
    pub enable: AtomicU32,
    _pad2: [u8; 368],
    /// Scan counter of each slot's first scan (offset 512).
    pub first_scan: [AtomicU64; MAX_SLOTS],
}

const _: () = {
    assert!(size_of::<Regs>() == HEADER_BYTES);
    assert!(offset_of!(Regs, packet_bytes) == 8);
    assert!(offset_of!(Regs, rate_hz) == 16);
    assert!(offset_of!(Regs, written) == 64);
    assert!(offset_of!(Regs, ack_epoch) == 88);
    assert!(offset_of!(Regs, consumed) == 128);
    assert!(offset_of!(Regs, run_epoch) == 136);
    assert!(offset_of!(Regs, enable) == 140);
    assert!(offset_of!(Regs, first_scan) == 512);
};
