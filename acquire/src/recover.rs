//! `acquire recover`: make a run folder whole again after the recorder
//! stopped without closing it (killed, out of power, kernel panic).
//!
//! What is on disk after such a stop: closed segments (renamed only after
//! their data and folder were synced, each carrying its own record and a
//! copy of the run manifest in its footer), at most one `*.partial`
//! segment that was being written, and a `manifest.json` that may lag the
//! segments by the ones closed since it was last written, or be missing.
//! `recover` rebuilds `manifest.json` from the segments' own records, so
//! `verify` and `analysis` accept the run, and says what could not be
//! kept. It never deletes anything.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::manifest::{Counts, Manifest, SegmentInfo};
use crate::verify::{run_files, segment_metadata, structure};

/// Status of a manifest rebuilt by `recover`.
pub const STATUS_RECOVERED: &str = "recovered";

/// Why a `.partial` segment cannot be salvaged.
pub const PARTIAL_WHY: &str = "no Parquet footer: the recorder stopped while writing it, and a \
Parquet file's row groups can only be found through its footer; left in place (verify and \
analysis ignore *.partial files)";

/// An unfinished file left in place.
#[derive(Debug, Serialize)]
pub struct PartialFile {
    /// Path relative to the run folder.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Why it was not salvaged.
    pub why: String,
}

/// What `recover` found and did.
#[derive(Debug, Serialize)]
pub struct RecoverReport {
    /// The run folder.
    pub run_dir: String,
    /// `manifest.json`'s status before (None when it was missing or unreadable).
    pub previous_status: Option<String>,
    /// Whether `manifest.json` was rewritten (false: it already matched).
    pub rewritten: bool,
    /// Closed segments in the rebuilt manifest.
    pub segments: usize,
    /// Of those, segments the previous manifest did not list.
    pub segments_added: usize,
    /// Scans in them.
    pub scans_recorded: u64,
    /// Scans lost in their recorded gaps.
    pub scans_lost: u64,
    /// Unfinished files, left in place.
    pub partial: Vec<PartialFile>,
    /// Closed segments whose record cannot be read (not in the manifest).
    pub unreadable: Vec<String>,
    /// Structural damage that remains (holes no gap explains, …).
    pub damage: Vec<String>,
}

impl RecoverReport {
    /// True when the run is whole: nothing unreadable, no damage.
    pub fn ok(&self) -> bool {
        self.unreadable.is_empty() && self.damage.is_empty()
    }
}

/// Rebuilds `dir/manifest.json` from the closed segments' own records.
pub fn recover(dir: &Path) -> Result<RecoverReport> {
    if !dir.is_dir() {
        bail!("{} is not a run folder", dir.display());
    }
    let (done, partial_paths) = run_files(dir)?;
    let previous = Manifest::read(dir).ok();
    let mut unreadable = Vec::new();
    let mut records: Vec<(Manifest, SegmentInfo)> = Vec::new();
    for f in &done {
        match segment_metadata(f) {
            Ok((m, mut info)) => {
                info.bytes = std::fs::metadata(f).map_or(0, |m| m.len());
                records.push((m, info));
            }
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    records.sort_by_key(|(_, info)| info.index);
    let base = match (&previous, records.last()) {
        (Some(m), _) => m.clone(),
        (None, Some((m, _))) => m.clone(),
        (None, None) => bail!(
            "{}: no manifest.json and no readable closed segment: nothing to rebuild the run from",
            dir.display()
        ),
    };
    // A run the recorder closed (complete, interrupted, failed) or one
    // already recovered keeps its manifest: a mismatch there is damage to
    // report (below), not a crash to repair.
    let rebuilt = match &previous {
        Some(p) if p.status != "recording" => p.clone(),
        _ => rebuild(base, &records, previous.as_ref()),
    };
    let known = previous.as_ref().map_or(0, |m| m.segments.len());
    let rewritten = previous.as_ref() != Some(&rebuilt);
    if rewritten {
        rebuilt
            .write(dir)
            .context("writing the rebuilt manifest.json")?;
    }
    let mut partial = Vec::new();
    for p in partial_paths.iter().chain(
        &run_files(&dir.join("blocks"))
            .map(|r| r.1)
            .unwrap_or_default(),
    ) {
        partial.push(PartialFile {
            file: p.strip_prefix(dir).unwrap_or(p).display().to_string(),
            bytes: std::fs::metadata(p).map_or(0, |m| m.len()),
            why: PARTIAL_WHY.into(),
        });
    }
    let (damage, _) = structure(dir, &done);
    Ok(RecoverReport {
        run_dir: dir.display().to_string(),
        previous_status: previous.map(|m| m.status),
        rewritten,
        segments: rebuilt.segments.len(),
        segments_added: rebuilt.segments.len().saturating_sub(known),
        scans_recorded: rebuilt.counts.scans_recorded,
        scans_lost: rebuilt.counts.scans_lost,
        partial,
        unreadable,
        damage,
    })
}

/// The manifest a closed run would have had, from the closed segments:
/// their records, totals and gaps, and the codec history of the newest
/// footer.
fn rebuild(
    base: Manifest,
    records: &[(Manifest, SegmentInfo)],
    previous: Option<&Manifest>,
) -> Manifest {
    let segments: Vec<SegmentInfo> = records.iter().map(|(_, i)| i.clone()).collect();
    let mut m = base;
    if let Some((newest, _)) = records.last() {
        if newest.compression_changes.len() > m.compression_changes.len() {
            m.compression_changes = newest.compression_changes.clone();
        }
    }
    let was = previous.map_or("missing".to_string(), |p| format!("'{}'", p.status));
    m.error = Some(format!(
        "the recorder stopped without closing the run (manifest.json was {was}); rebuilt by \
         `acquire recover` from {} closed segments; scans after the last one, and the producer's \
         final counters, are not known",
        segments.len()
    ));
    m.status = STATUS_RECOVERED.into();
    m.counts = Counts::default();
    m.gaps.clear();
    m.gaps_not_listed = 0;
    m.segments.clear();
    for s in segments {
        m.add_segment(s);
    }
    m
}
