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

use crate::manifest::{Counts, Manifest, RunStatus, SegmentInfo};
use hsdaq_format::run::{run_files, segment_metadata, structure};

/// Why a `.partial` segment whose block table was not renamed is left.
pub const PARTIAL_WHY: &str = "not confirmed durable: the recorder renames a segment's block \
table only after both files are fsynced, and this one's was not, so its bytes may be torn \
(a file still being written has no Parquet footer, and a Parquet file's row groups can only \
be found through its footer); left in place (verify and analysis ignore *.partial files)";

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
    pub previous_status: Option<RunStatus>,
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
    /// Segments found complete under their `.partial` name (the recorder
    /// stopped between its renames) and renamed, as the recorder would have.
    pub salvaged: Vec<String>,
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
    let previous = Manifest::read(dir).ok();
    let unclosed = previous
        .as_ref()
        .is_none_or(|m| m.status == RunStatus::Recording);
    let mut salvaged = Vec::new();
    if unclosed {
        // A killed recorder leaves its control socket; nobody answers it.
        // One that answers is recording now: its open segment, partial
        // files and segment log are not a crash's to repair.
        let sock = dir.join(crate::control::SOCKET);
        if sock.exists() {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                bail!(
                    "a recorder is still recording into {} (its control socket answers): stop it first",
                    dir.display()
                );
            }
            let _ = std::fs::remove_file(&sock);
        }
        for p in run_files(dir)?.1 {
            match salvage(dir, &p) {
                Ok(Some(name)) => salvaged.push(name),
                Ok(None) => {}
                Err(e) => eprintln!("acquire: recover: {} not salvaged: {e:#}", p.display()),
            }
        }
    }
    let (done, partial_paths) = run_files(dir)?;
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
        Some(p) if p.status.closed() => p.clone(),
        _ => rebuild(base, &records, previous.as_ref(), salvaged.len()),
    };
    let known = previous.as_ref().map_or(0, |m| m.segments.len());
    let rewritten = previous.as_ref() != Some(&rebuilt);
    if rewritten {
        rebuilt
            .write(dir)
            .context("writing the rebuilt manifest.json")?;
    }
    // The recorder's list of closed segments while it ran: the manifest
    // above lists them all now.
    hsdaq_format::manifest::SegmentLog::remove(dir)?;
    let mut partial = Vec::new();
    let tables: Vec<std::path::PathBuf> = ["blocks", hsdaq_format::clock::CLOCK_DIR]
        .iter()
        .flat_map(|t| run_files(&dir.join(t)).map(|r| r.1).unwrap_or_default())
        .collect();
    for p in partial_paths.iter().chain(&tables) {
        partial.push(PartialFile {
            file: p.strip_prefix(dir).unwrap_or(p).display().to_string(),
            bytes: std::fs::metadata(p).map_or(0, |m| m.len()),
            why: PARTIAL_WHY.into(),
        });
    }
    let damage: Vec<String> = structure(dir, &done)
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(RecoverReport {
        run_dir: dir.display().to_string(),
        previous_status: previous.map(|m| m.status),
        rewritten,
        segments: rebuilt.segments.len(),
        segments_added: rebuilt.segments.len().saturating_sub(known),
        scans_recorded: rebuilt.counts.scans_recorded,
        scans_lost: rebuilt.counts.scans_lost,
        salvaged,
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
    salvaged: usize,
) -> Manifest {
    // Close times are known only to the manifest the recorder wrote.
    let close_ms = |i: &SegmentInfo| {
        previous
            .and_then(|p| p.segments.iter().find(|s| s.index == i.index))
            .and_then(|s| s.close_ms)
    };
    let segments: Vec<SegmentInfo> = records
        .iter()
        .map(|(_, i)| SegmentInfo {
            close_ms: close_ms(i),
            ..i.clone()
        })
        .collect();
    let mut m = base;
    if let Some((newest, _)) = records.last() {
        if newest.compression_changes.len() > m.compression_changes.len() {
            m.compression_changes = newest.compression_changes.clone();
        }
        // Markers taken at the newest close may be only in its footer (a
        // cut before manifest.json was replaced).
        if newest.events.len() > m.events.len() {
            m.events = newest.events.clone();
        }
    }
    let was = previous.map_or("missing".to_string(), |p| format!("'{}'", p.status));
    m.error = Some(format!(
        "the recorder stopped without closing the run (manifest.json was {was}); rebuilt by \
         `acquire recover` from {} closed segments ({salvaged} of them completed from their \
         `.partial` names); scans after the last one, and the producer's final counters, are not \
         known",
        segments.len()
    ));
    m.status = RunStatus::Recovered;
    m.counts = Counts::default();
    m.gaps.clear();
    m.gaps_not_listed = 0;
    m.segments.clear();
    for s in segments {
        m.add_segment(s);
    }
    m
}

/// Completes the commit of a segment the recorder stopped between renames:
/// its block table already has its final name, which the recorder gives it
/// only after both files were fsynced, so the samples file is whole. It is
/// still checked (footer, record, every row decoded) before it is renamed.
/// Returns the segment's name, or None when it is not such a segment.
fn salvage(dir: &Path, partial: &Path) -> Result<Option<String>> {
    let Some(name) = partial
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".partial"))
    else {
        return Ok(None);
    };
    let table = dir.join("blocks").join(name);
    if !table.exists() {
        return Ok(None);
    }
    let (_, info) = segment_metadata(partial)?;
    let rows = decoded_rows(partial)?;
    if rows != info.rows {
        bail!("{rows} rows decode, its record says {}", info.rows);
    }
    let target = dir.join(name);
    std::fs::rename(partial, &target)
        .with_context(|| format!("cannot rename {}", partial.display()))?;
    crate::manifest::sync_dir(dir)?;
    Ok(Some(name.to_string()))
}

/// Rows of a Parquet file, every page of every column decoded (a torn
/// page fails here); each column must hold the same number of rows.
fn decoded_rows(path: &Path) -> Result<u64> {
    use parquet::column::reader::ColumnReader;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::try_from(std::fs::File::open(path)?)?;
    let mut total = 0u64;
    for g in 0..r.num_row_groups() {
        let rg = r.get_row_group(g)?;
        let rows = rg.metadata().num_rows() as usize;
        for c in 0..rg.num_columns() {
            let n = match rg.get_column_reader(c)? {
                ColumnReader::Int32ColumnReader(mut cr) => {
                    let mut v = Vec::with_capacity(rows);
                    cr.read_records(rows, None, None, &mut v)?.0
                }
                ColumnReader::Int64ColumnReader(mut cr) => {
                    let mut v = Vec::with_capacity(rows);
                    cr.read_records(rows, None, None, &mut v)?.0
                }
                _ => bail!("column {c} has a type the recorder does not write"),
            };
            if n != rows {
                bail!("row group {g} column {c}: {n} of {rows} rows decode");
            }
        }
        total += rows as u64;
    }
    Ok(total)
}
