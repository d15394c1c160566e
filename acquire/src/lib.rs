//! hsdaq acquire: drain the sample ring in place and record it to Parquet.
//!
//! The ring may be produced by the kernel driver (`/dev/hsdaqN`, mapped with
//! memmap2) or by the in-process simulator; one consumer reads both.

pub mod bench;
pub mod chardev;
pub mod chunk;
pub mod codec;
pub mod device;
pub mod direct;
pub mod faults;
pub mod manifest;
pub mod pages;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod record;
pub mod ring;
pub mod segment;
pub mod sim;
pub mod units;
pub mod verify;
