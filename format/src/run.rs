//! A run folder as files: its segments in order, each segment's embedded
//! records, and the structure they form.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;

use crate::manifest::{Manifest, SegmentInfo, KV_MANIFEST, KV_SEGMENT};

/// Segment files of a run folder in order, plus the partial ones.
pub fn run_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut done = Vec::new();
    let mut partial = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("segment-") && name.ends_with(".parquet") {
            done.push(p);
        } else if name.starts_with("segment-") && name.ends_with(".parquet.partial") {
            partial.push(p);
        }
    }
    done.sort();
    partial.sort();
    Ok((done, partial))
}

/// Reads a segment's embedded manifest and segment record.
pub fn segment_metadata(path: &Path) -> Result<(Manifest, SegmentInfo)> {
    let r = SerializedFileReader::try_from(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let kv = r
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    let m = get(KV_MANIFEST)
        .with_context(|| format!("{} has no {KV_MANIFEST} metadata", path.display()))?;
    let s = get(KV_SEGMENT)
        .with_context(|| format!("{} has no {KV_SEGMENT} metadata", path.display()))?;
    Ok((serde_json::from_str(&m)?, serde_json::from_str(&s)?))
}

/// One kind of damage to a run folder's structure (its text is what
/// `verify`, `recover` and `analysis report` print).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// manifest.json is missing or does not parse: the run's own record is
    /// lost (`verify --trust-segments` checks the segments on their own).
    ManifestUnreadable(String),
    /// A segment the manifest lists is not in the folder.
    Missing {
        file: String,
        rows: u64,
        first_seq: i64,
    },
    /// A closed segment whose embedded record cannot be read.
    Unreadable { file: String, why: String },
    /// Scans missing between two segments with no gap recorded there.
    Hole {
        from: i64,
        to: i64,
        after: String,
        file: String,
    },
    /// A segment starts inside scans an earlier one already holds.
    Overlap {
        file: String,
        first_seq: i64,
        after: String,
        up_to: i64,
        twice: i64,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::ManifestUnreadable(e) => write!(
                f,
                "manifest.json cannot be read ({e}): the run's own record of what was recorded is lost"
            ),
            Damage::Missing { file, rows, first_seq } => write!(
                f,
                "{file} is listed in manifest.json ({rows} scans from seq {first_seq}) but missing"
            ),
            Damage::Unreadable { file, why } => write!(f, "{file}: {why}"),
            Damage::Hole { from, to, after, file } => write!(
                f,
                "hole: scans {from}..{to} ({} scans) are missing between {after} and {file}, and no gap is recorded there (a deleted segment?)",
                to - from + 1
            ),
            Damage::Overlap { file, first_seq, after, up_to, twice } => write!(
                f,
                "overlap: {file} starts at seq {first_seq} but {after} already holds scans up to {up_to} ({twice} scans twice: a duplicated segment?)"
            ),
        }
    }
}

/// Damage to a run folder's structure, found from the segments' own records
/// and the manifest without reading a sample: holes and overlaps in `seq`
/// that no recorded gap explains (a deleted or duplicated segment), segments
/// the manifest lists but the folder lacks, and an unreadable manifest.
/// `verify` and `analysis report` both use it, so they agree on what is
/// damaged. Returns the damage (empty when the structure is sound) and the
/// segments whose record could be read, each read once here.
pub fn structure(dir: &Path, segments: &[PathBuf]) -> (Vec<Damage>, Vec<(PathBuf, Manifest)>) {
    let mut damage = Vec::new();
    let mut readable = Vec::new();
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    match Manifest::read(dir) {
        Ok(m) => {
            for s in &m.segments {
                if !dir.join(&s.file).exists() {
                    damage.push(Damage::Missing {
                        file: s.file.clone(),
                        rows: s.rows,
                        first_seq: s.first_seq,
                    });
                }
            }
        }
        Err(e) => damage.push(Damage::ManifestUnreadable(format!("{e:#}"))),
    }
    let mut next: Option<(i64, String)> = None;
    let mut start: Option<i64> = None;
    for f in segments {
        let seg = match segment_metadata(f) {
            Ok((m, seg)) => {
                // The stream's own first index (0 unless the source numbers
                // its scans), as each segment's embedded manifest records it.
                start.get_or_insert(m.stream.first_seq as i64);
                readable.push((f.clone(), m));
                seg
            }
            Err(e) => {
                damage.push(Damage::Unreadable {
                    file: name(f),
                    why: format!("{e:#}"),
                });
                next = None;
                continue;
            }
        };
        let lost_before = seg
            .gaps
            .iter()
            .find(|g| g.at_seq == seg.first_seq)
            .map_or(0, |g| g.lost as i64);
        let (expect, after) = next
            .clone()
            .unwrap_or((start.unwrap_or(0), "the start of the run".into()));
        let at = seg.first_seq - lost_before;
        // A triggered run's window starts where its trigger put it: the
        // scans between windows were not kept, by design.
        let window_start = seg.window.is_some_and(|w| at == w.start_seq);
        if at > expect && !window_start {
            damage.push(Damage::Hole {
                from: expect,
                to: at - 1,
                after,
                file: name(f),
            });
        } else if at < expect {
            damage.push(Damage::Overlap {
                file: name(f),
                first_seq: seg.first_seq,
                after,
                up_to: expect - 1,
                twice: expect - at,
            });
        }
        next = Some((seg.last_seq + 1, name(f)));
    }
    (damage, readable)
}
