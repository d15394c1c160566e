//! The hsdaq ring ABI (version [`layout::ABI_MAJOR`].[`layout::ABI_MINOR`]): the one definition of everything the kernel
//! module and user space share.
//!
//! The kernel module includes these files with `#[path = "../abi/src/…"]`
//! (all but [`cursor`], the user-space cursors of the protocol below), so
//! every file here is `no_std`, dependency-free, float-free, and refers to its
//! siblings only through `super::`. User space uses this crate. Its one
//! dependency, loom, is optional: the model check of the cursors
//! (`--features model-check`).
//!
//! # Byte layout of a device mapping
//!
//! ```text
//!  offset 0            4096                          4096 + data_size
//!  ┌──────────────────┬──────────────────────────────┐
//!  │ ControlPage (RW) │ data area (RO), power of two  │
//!  │ magic, layout,   │ ┌────────┬─────────┐┌──────┐  │
//!  │ head │ tail │ … │ │ header │ payload ││ next │… │
//!  └──────────────────┴─┴────────┴─────────┘┴──────┴──┘
//! ```
//!
//! The data area is a sequence of fixed-size *block slots* of `block_bytes`
//! (a power of two that divides `data_size`), so a block never wraps. Each
//! block is a 64-byte [`BlockHeader`] followed by interleaved scans
//! (`ch0 ch1 … chN-1`, native endian) of the stream's [`Format`].
//!
//! # Memory-ordering protocol (single producer, single consumer)
//!
//! `head` and `tail` are byte counters that never wrap (2^64 bytes is
//! centuries at any rate); the position of a counter `c` is
//! `c & (data_size - 1)`.
//!
//! * Producer: if `head - tail_cached + block_bytes > data_size`, reload
//!   `tail` with **Acquire** (pairs with the consumer's release, so the
//!   consumer's reads of that slot happened before we overwrite it). If the
//!   ring is still full, drop the block and count it. Otherwise write header
//!   and payload, then **Release**-store `head += block_bytes`.
//! * Consumer: if `tail == head_cached`, reload `head` with **Acquire** (pairs
//!   with the producer's release, so the block's bytes are visible). Read the
//!   block in place, then **Release**-store `tail += block_bytes`.
//!
//! `head` and `tail` live on separate cache lines. The producer never trusts
//! `tail` blindly: a value outside `[old tail, head]`, off a block boundary or
//! past a block `read()` is copying is ignored by the kernel (the ring then
//! looks full and the producer drops, counted) and reported as corruption by
//! user space.
#![no_std]

pub mod cursor;
pub mod format;
pub mod ioctl;
pub mod layout;
pub mod waveform;

pub use format::Format;
pub use layout::{BlockHeader, ControlPage};
