//! ioctl numbers and argument structs of the `/dev/hsdaqN` character device.
//!
//! Numbers follow the Linux `_IOC` encoding (direction in bits 30–31, size
//! in bits 16–29, type in 8–15, number in 0–7), as on x86_64 and arm64.

use core::mem::{offset_of, size_of};

/// The ioctl type byte of hsdaq: `0xBD`, free in the kernel's
/// Documentation/userspace-api/ioctl/ioctl-number.rst (ABI v1 used `0xB5`,
/// which belongs to rpmsg).
pub const IOC_TYPE: u32 = 0xBD;

const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    ioc_typed(IOC_TYPE, dir, nr, size)
}

const fn ioc_typed(ty: u32, dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (ty << 8) | nr
}

/// Describes the device and the layout of its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// ABI major version of the driver.
    pub abi_major: u16,
    /// ABI minor version of the driver.
    pub abi_minor: u16,
    /// Values per scan.
    pub channels: u16,
    /// [`super::format::Format`] as `u16`.
    pub format: u16,
    /// Nominal scans per second.
    pub rate_hz: u64,
    /// Size of the data area (power of two).
    pub data_size: u64,
    /// Size of a block slot.
    pub block_bytes: u32,
    /// Scans per full block.
    pub block_scans: u32,
    /// Length of the control mapping (offset 0).
    pub control_bytes: u32,
    /// One of the `SOURCE_*` constants of `layout`.
    pub source: u16,
    /// `INFO_*` bits: where the settings and the buffer came from.
    pub flags: u16,
    /// Offset of the data mapping.
    pub data_offset: u64,
    /// Device name, NUL-padded.
    pub name: [u8; 64],
    /// Compatible string that bound the device, NUL-padded.
    pub compatible: [u8; 64],
}

/// [`DeviceInfo::flags`]: the settings came from a firmware node (device
/// tree or ACPI `_DSD`), not from module parameters.
pub const INFO_FIRMWARE_NODE: u16 = 1 << 0;
/// [`DeviceInfo::flags`]: the ring lives in a reserved-memory region.
pub const INFO_RESERVED_MEMORY: u16 = 1 << 1;
/// [`DeviceInfo::flags`] (ABI 2.1): the samples are `waveform`'s reference
/// signal (the virtual sensor; a DMA source whose node says
/// `hsdaq,test-signal = "reference-waveform"`, a test rig's emulated
/// converter), so a reader can recompute every value. Without it the signal
/// is external and only structure, sequence and time can be checked.
pub const INFO_REFERENCE_SIGNAL: u16 = 1 << 2;

const _: () = {
    assert!(size_of::<DeviceInfo>() == 176);
    assert!(offset_of!(DeviceInfo, rate_hz) == 8);
    assert!(offset_of!(DeviceInfo, data_offset) == 40);
    assert!(offset_of!(DeviceInfo, name) == 48);
};

/// Argument of [`IOC_WAIT`]: block until a block is readable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitArgs {
    /// In: longest wait in nanoseconds, at most [`WAIT_MAX_NS`]; 0 (or a
    /// file opened `O_NONBLOCK`) does not sleep and returns `EAGAIN` when
    /// nothing is readable and the stream runs.
    pub timeout_ns: u64,
    /// Out: `head` when the call returned.
    pub head: u64,
    /// Out: the device status (`STATUS_*`).
    pub status: u32,
    /// Reserved, zero.
    pub _pad: u32,
}

const _: () = assert!(size_of::<WaitArgs>() == 24);

/// Longest [`WaitArgs::timeout_ns`]: 60 s (longer is `EINVAL`).
pub const WAIT_MAX_NS: u64 = 60_000_000_000;

/// Result of [`IOC_STATS`]: every counter, read at one moment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes published.
    pub head: u64,
    /// Bytes consumed.
    pub tail: u64,
    /// Blocks written.
    pub produced_blocks: u64,
    /// Blocks dropped (ring full, producer behind, or forced).
    pub dropped_blocks: u64,
    /// Scans in dropped blocks.
    pub dropped_scans: u64,
    /// Loss events (see `ControlPage::overruns`).
    pub overruns: u64,
    /// Next scan index of the current stream.
    pub next_scan: u64,
    /// Device status (`STATUS_*`).
    pub status: u32,
    /// Streams started so far.
    pub epoch: u32,
    /// Unread blocks discarded by START or RESET.
    pub discarded_blocks: u64,
}

const _: () = assert!(size_of::<Stats>() == 72);

/// Fault kind: drop the next `arg` blocks as if the ring were full (counted
/// in `dropped_*` and as one loss event in `overruns`).
pub const FAULT_DROP_BLOCKS: u32 = 1;
/// Fault kind: stall the producer for `arg` microseconds (at most 10 s); it
/// then catches up, dropping (and counting) what it cannot buffer.
pub const FAULT_STALL_US: u32 = 2;
/// Fault kind: add up to `arg` microseconds of random timer jitter.
pub const FAULT_JITTER_US: u32 = 3;

/// Argument of [`IOC_FAULT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultArgs {
    /// One of the `FAULT_*` kinds.
    pub kind: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// Kind-specific argument.
    pub arg: u64,
}

const _: () = assert!(size_of::<FaultArgs>() == 16);

/// Reads [`DeviceInfo`].
pub const IOC_INFO: u32 = ioc(IOC_READ, 1, size_of::<DeviceInfo>());
/// `IOC_INFO` as ABI 1 numbered it (type 0xB5, same 176-byte struct): kept
/// only so user space can recognise an ABI 1 driver and refuse it by name.
pub const IOC_INFO_ABI1: u32 = ioc_typed(0xB5, IOC_READ, 1, size_of::<DeviceInfo>());
/// Starts a new stream at scan 0 in a new epoch (idempotent while running).
/// Unread blocks of the previous stream are discarded and counted in
/// `discarded_blocks`; `head` and `tail` never move backwards.
pub const IOC_START: u32 = ioc(IOC_NONE, 2, 0);
/// Stops the producer (idempotent).
pub const IOC_STOP: u32 = ioc(IOC_NONE, 3, 0);
/// Waits for data: [`WaitArgs`]; `ETIMEDOUT` on timeout, `EINTR` on a
/// signal, `EAGAIN` without sleeping (timeout 0 or `O_NONBLOCK`), `ENODEV`
/// once the device is gone.
pub const IOC_WAIT: u32 = ioc(IOC_READ | IOC_WRITE, 4, size_of::<WaitArgs>());
/// Reads [`Stats`].
pub const IOC_STATS: u32 = ioc(IOC_READ, 5, size_of::<Stats>());
/// Discards unread blocks (counted in `discarded_blocks`) and clears
/// injected faults; only while stopped (else `EBUSY`). Counters never move
/// backwards.
pub const IOC_RESET: u32 = ioc(IOC_NONE, 6, 0);
/// Injects a fault: [`FaultArgs`].
pub const IOC_FAULT: u32 = ioc(IOC_WRITE, 7, size_of::<FaultArgs>());
