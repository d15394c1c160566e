//! hsdaq recordings on disk, as a reader needs them: the run manifest
//! (`manifest.json`, and the copy in every segment's key-value metadata),
//! the segment records, the clock-correlation table, and the structure of a run folder (which segments
//! exist, holes and overlaps no recorded gap explains).
//!
//! `acquire` writes and verifies recordings with it; `analysis` reads them
//! with it, without depending on the recorder.

pub mod clock;
pub mod health;
pub mod manifest;
pub mod run;
