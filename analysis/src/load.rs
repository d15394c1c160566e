//! Finding runs: a segment file, a run folder, or a tree of runs laid out
//! hive-style (`board=…/date=…/run/`), each opened lazily with polars.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hsdaq_format::manifest::Manifest;
use hsdaq_format::run::{run_files, segment_metadata, structure};
use polars::prelude::*;

/// One recording to analyse.
#[derive(Clone, Debug)]
pub struct Run {
    /// Short label (folder or file name, with partition values).
    pub label: String,
    /// Where it was found.
    pub path: PathBuf,
    /// Hive partition values found in the path (`board=x` → board: x).
    pub partitions: BTreeMap<String, String>,
    /// The run manifest (from manifest.json or a segment's metadata).
    pub manifest: Manifest,
    /// Segment files, in order.
    pub segments: Vec<PathBuf>,
    /// Block tables that exist for those segments.
    pub block_tables: Vec<PathBuf>,
    /// Structural damage (holes or overlaps no recorded gap explains, a
    /// missing or unreadable manifest), as `acquire verify` finds it.
    pub damage: Vec<String>,
}

/// Expands the user's paths into runs.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for p in paths {
        if p.is_file() {
            runs.push(single_file(p)?);
        } else if p.is_dir() {
            walk(p, &mut runs)?;
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    if runs.is_empty() {
        bail!("no recordings (segment-*.parquet) found under {:?}", paths);
    }
    Ok(runs)
}

fn partitions(path: &Path) -> BTreeMap<String, String> {
    path.components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter_map(|c| {
            c.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn label(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(3)
        .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    parts
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("/")
        .replace(['/', '='], "_")
}

fn single_file(p: &Path) -> Result<Run> {
    let (manifest, seg) = segment_metadata(p)?;
    let blocks = p
        .parent()
        .map(|d| d.join("blocks").join(&seg.file))
        .filter(|b| b.exists());
    Ok(Run {
        label: label(p).trim_end_matches(".parquet").to_string(),
        path: p.to_path_buf(),
        partitions: partitions(p),
        manifest,
        segments: vec![p.to_path_buf()],
        block_tables: blocks.into_iter().collect(),
        damage: Vec::new(),
    })
}

fn walk(dir: &Path, runs: &mut Vec<Run>) -> Result<()> {
    let (segments, _) = run_files(dir)?;
    if !segments.is_empty() {
        let (damage, readable) = structure(dir, &segments);
        let damage: Vec<String> = damage.iter().map(ToString::to_string).collect();
        // A segment that is not readable Parquet with its hsdaq record
        // (truncated, zeroed, foreign) is named in `damage` and left out,
        // so the rest of the run still gets a report.
        let Some((_, first)) = readable.first() else {
            bail!(
                "{}: no readable segment ({})",
                dir.display(),
                damage.join("; ")
            );
        };
        let manifest = Manifest::read(dir).unwrap_or_else(|_| first.clone());
        let segments: Vec<PathBuf> = readable.into_iter().map(|(p, _)| p).collect();
        let block_tables = segments
            .iter()
            .filter_map(|s| s.file_name().map(|n| dir.join("blocks").join(n)))
            .filter(|b| b.exists())
            .collect();
        runs.push(Run {
            label: label(dir),
            path: dir.to_path_buf(),
            partitions: partitions(dir),
            manifest,
            segments,
            block_tables,
            damage,
        });
        return Ok(());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n != "blocks" && n != hsdaq_format::clock::CLOCK_DIR)
        })
        .collect();
    subdirs.sort();
    for d in subdirs {
        walk(&d, runs)?;
    }
    Ok(())
}

fn scan(files: &[PathBuf]) -> Result<LazyFrame> {
    let paths = files
        .iter()
        .map(|f| PlRefPath::try_from_path(f))
        .collect::<PolarsResult<Vec<_>>>()?;
    // One scan over every file (not a concat of scans, which polars runs
    // side by side and buffers): the streaming engine then reads them in
    // order with bounded memory. Partition values come from
    // `Run::partitions`; polars' own hive inference would add columns
    // that differ between runs.
    let args = ScanArgsParquet {
        hive_options: HiveOptions {
            enabled: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(LazyFrame::scan_parquet_files(
        paths.into_iter().collect(),
        args,
    )?)
}

impl Run {
    /// First and last `seq` over its segments, from their own records
    /// (footers only; (0, 0) when none can be read).
    pub fn seq_range(&self) -> (i64, i64) {
        let infos: Vec<_> = self
            .segments
            .iter()
            .filter_map(|s| segment_metadata(s).ok())
            .map(|(_, info)| (info.first_seq, info.last_seq))
            .collect();
        let lo = infos.iter().map(|r| r.0).min().unwrap_or(0);
        let hi = infos.iter().map(|r| r.1).max().unwrap_or(0);
        (lo, hi.max(lo))
    }

    /// Rows (scans) in its segments, from each footer's record.
    pub fn rows(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| segment_metadata(s).ok())
            .map(|(_, info)| info.rows)
            .sum()
    }

    /// Bytes of samples in its segments (rows from each footer's record).
    pub fn sample_bytes(&self) -> u64 {
        self.rows() * self.manifest.stream.channels as u64 * self.manifest.stream.sample_width()
    }

    /// The samples (`seq`, `t_ns`, channels…), lazily.
    pub fn samples(&self) -> Result<LazyFrame> {
        scan(&self.segments)
    }

    /// The block table, lazily, if the run has one.
    pub fn blocks(&self) -> Result<Option<LazyFrame>> {
        if self.block_tables.is_empty() {
            return Ok(None);
        }
        scan(&self.block_tables).map(Some)
    }
}
