//! hsdaq acquire: drain the sample ring in place and record it to Parquet.
//!
//! The ring may be produced by the kernel driver (`/dev/hsdaqN`, mapped with
//! memmap2), by the in-process simulator, or by acquire's own thread for a
//! source it reads (an IIO device, a UDP stream: `source::feed`); one consumer reads all. The
//! modules follow the data path, and imports run one way, down this list:
//! the CLI (`main.rs`) → `record`, `bench`, `verify` → `pipeline` (drain,
//! `chunk`s, encoder and writer threads) → `sink` (Parquet pages, codecs,
//! segment files) and `source` (kernel device, simulator, IIO, network, faults) → `ring`
//! and `sched` (how each thread asks to be scheduled) → the ABI crate.

// Sources of ring blocks, and the scheduling every stage's threads ask for.
pub mod ring;
pub mod sched;
pub mod source;

// The recording pipeline and the Parquet sink.
pub mod chunk;
pub mod clock;
pub mod counters;
pub mod exit;
pub mod faults;
pub mod pipeline;
pub mod sink;
pub mod trigger;

// What the recorder writes beside the samples (defined in `hsdaq-format`,
// which `analysis` shares), and reads back.
pub use hsdaq_format::manifest;
pub mod recover;
pub mod verify;

// Commands and their settings.
pub mod bench;
pub mod control;
pub mod health;
pub mod live;
pub mod profile;
pub mod progress;
pub mod record;
pub mod units;
