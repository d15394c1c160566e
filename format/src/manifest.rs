//! The run manifest: everything needed to interpret a recording, written as
//! `manifest.json` in the run folder and into every segment's key-value
//! metadata (`hsdaq.manifest`), so a single file stands on its own.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::time::Duration;

/// The closed segments' records while a run is recorded, one JSON object a
/// line in stream order, in the run folder: the recorder keeps its segment
/// list here rather than in memory, where it grew with the run (~650 bytes
/// a segment), and writes `manifest.json` from it
/// ([`Manifest::write_logged`]). Removed once the run's final manifest is
/// written; after a crash `acquire recover` rebuilds the list from the
/// segments themselves and removes it.
pub const SEGMENT_LOG: &str = "segments-in-progress.jsonl";

/// Appends closed segments' records to a run's [`SEGMENT_LOG`].
pub struct SegmentLog {
    file: std::fs::File,
}

impl SegmentLog {
    /// Creates (or empties) `dir`'s log.
    pub fn create(dir: &Path) -> Result<Self> {
        let p = dir.join(SEGMENT_LOG);
        let file =
            std::fs::File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(Self { file })
    }

    /// Appends one record (one write: a line is whole or cut short, and
    /// [`Manifest::write_logged`] leaves a cut one out).
    pub fn push(&mut self, info: &SegmentInfo) -> Result<()> {
        let mut line = serde_json::to_vec(info)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("cannot append to {SEGMENT_LOG}"))
    }

    /// The triggered windows among the logged segments (as
    /// [`Manifest::window_count`]), read a record at a time.
    pub fn windows(dir: &Path) -> Result<usize> {
        let windows: Vec<Option<u32>> = Self::records(dir)?
            .map(|r| r.map(|(_, s)| s.window.map(|w| w.index)))
            .collect::<std::io::Result<_>>()?;
        Ok(window_runs(windows.into_iter().flatten()))
    }

    /// `dir`'s logged records in order, each as its line and as read (none
    /// when there is no log); a record cut short (a failed append) is left
    /// out.
    fn records(dir: &Path) -> Result<impl Iterator<Item = std::io::Result<(String, SegmentInfo)>>> {
        let log = dir.join(SEGMENT_LOG);
        let lines = match std::fs::File::open(&log) {
            Ok(f) => Some(std::io::BufRead::lines(std::io::BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", log.display())),
        };
        Ok(lines.into_iter().flatten().filter_map(|l| match l {
            Ok(l) => serde_json::from_str(&l).ok().map(|s| Ok((l, s))),
            Err(e) => Some(Err(e)),
        }))
    }

    /// Removes `dir`'s log (the final manifest lists its records).
    pub fn remove(dir: &Path) -> Result<()> {
        match std::fs::remove_file(dir.join(SEGMENT_LOG)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("cannot remove the segment log")
            }
            _ => Ok(()),
        }
    }
}

/// Windows among segments' window indices in stream order: a window over
/// several segments counts once.
fn window_runs(indices: impl IntoIterator<Item = u32>) -> usize {
    let mut last = None;
    indices
        .into_iter()
        .filter(|&w| last.replace(w) != Some(w))
        .count()
}

/// Writes `dir/manifest.json` atomically and durably through `body`:
/// temporary file (buffered), fsync, `before_rename`, rename, folder fsync.
/// Returns the bytes written.
fn write_atomic(
    dir: &Path,
    before_rename: impl FnOnce(),
    body: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<u64> {
    let tmp = dir.join("manifest.json.partial");
    let f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // Buffered: serde_json writes a token at a time, and an unbuffered file
    // made each a system call (thousands per segment close).
    let mut w = std::io::BufWriter::with_capacity(256 << 10, &f);
    body(&mut w)
        .and_then(|_| w.flush())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(w);
    let size = f.metadata()?.len();
    before_rename();
    std::fs::rename(&tmp, dir.join("manifest.json")).context("cannot rename manifest.json")?;
    sync_dir(dir)?;
    Ok(size)
}

/// Key of the run manifest in a segment's key-value metadata.
pub const KV_MANIFEST: &str = "hsdaq.manifest";
/// Key of the segment record in a segment's key-value metadata.
pub const KV_SEGMENT: &str = "hsdaq.segment";
/// Gaps kept in the manifest; beyond this only the count grows (the blocks
/// table of each segment still lists every gap).
pub const MAX_MANIFEST_GAPS: usize = 100_000;

/// One channel: its column name and how to turn counts into physical units.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChannelInfo {
    /// Column name.
    pub name: String,
    /// Physical unit after scaling (e.g. `V`, `m/s^2`); `count` when raw.
    pub unit: String,
    /// physical = raw × scale + offset.
    pub scale: f64,
    /// physical = raw × scale + offset.
    pub offset: f64,
    /// The source's own label for the channel (IIO `*_label`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How the source stores a value and how it became the recorded
    /// integer, e.g. `iio le:s12/16>>4: sign-extended from 12 bits` (absent:
    /// recorded as the source delivered it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl ChannelInfo {
    /// A raw channel `name` in counts.
    pub fn counts(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unit: "count".into(),
            scale: 1.0,
            offset: 0.0,
            label: None,
            raw: None,
        }
    }
}

/// The stream's shape.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamInfo {
    /// Nominal scans per second.
    pub rate_hz: u64,
    /// Values per scan.
    pub channels: u16,
    /// `i16` or `i32`.
    pub format: String,
    /// Block slot size.
    pub block_bytes: u32,
    /// Scans per block.
    pub block_scans: u32,
    /// Ring data area size.
    pub buffer_bytes: u64,
    /// [`SIGNAL_REFERENCE`] or [`SIGNAL_EXTERNAL`]: whether `verify` can
    /// recompute the values (every earlier run was the reference).
    #[serde(default = "default_signal")]
    pub signal: String,
    /// [`TIMESTAMPS_NOMINAL`] (`t_ns` = start + seq x period) or
    /// [`TIMESTAMPS_MEASURED`] (per block, from the source), with how.
    #[serde(default = "default_timestamps")]
    pub timestamps: String,
    /// How losses are detected, in words: [`LOSS_COUNTED`] when the producer
    /// counts every drop; otherwise what the source allows (inferred from a
    /// timestamp channel, or unavailable: then losses can go unseen).
    #[serde(default = "default_loss_detection")]
    pub loss_detection: String,
    /// `seq` of the stream's first scan: 0 unless the source numbers its
    /// scans itself (a network stream's sample count), so that `seq` is the
    /// stream's own index. Continuity is checked from here.
    #[serde(default)]
    pub first_seq: u64,
    /// The source's own clock, in words, when it stamps its samples (a
    /// VRT digitizer): the clock table's `source_ns` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_clock: Option<String>,
}

fn default_loss_detection() -> String {
    LOSS_COUNTED.into()
}

fn default_signal() -> String {
    SIGNAL_REFERENCE.into()
}

fn default_timestamps() -> String {
    TIMESTAMPS_NOMINAL.into()
}

impl StreamInfo {
    /// Bytes per sample value (`i32`: 4, `i16`: 2), the one place readers
    /// turn the manifest's format name into a width.
    pub fn sample_width(&self) -> u64 {
        if self.format == "i32" {
            4
        } else {
            2
        }
    }
}

/// Scans lost before `at_seq` (the first scan recorded after the gap).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gap {
    /// Sample index of the first scan after the gap.
    pub at_seq: i64,
    /// Scans lost.
    pub lost: u64,
    /// What `lost` is worth: counted (exact), inferred (an estimate from
    /// time) or bounded (at least). Runs recorded before gap kinds existed
    /// had only counted gaps.
    #[serde(default)]
    pub kind: GapKind,
}

/// How a source knows the size of a gap (the vocabulary of the ring ABI's
/// [`hsdaq_abi::layout::GapKind`], as recordings spell it).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// Exact: counted by the producer or from the stream's own counter.
    #[default]
    Counted,
    /// Estimated from time; its size and position may be off.
    Inferred,
    /// At least this many.
    Bounded,
}

impl GapKind {
    /// The name recordings use (`counted`, `inferred`, `bounded`).
    pub fn name(self) -> &'static str {
        match self {
            GapKind::Counted => "counted",
            GapKind::Inferred => "inferred",
            GapKind::Bounded => "bounded",
        }
    }
}

impl From<hsdaq_abi::layout::GapKind> for GapKind {
    fn from(k: hsdaq_abi::layout::GapKind) -> Self {
        use hsdaq_abi::layout::GapKind as K;
        match k {
            K::Counted => GapKind::Counted,
            K::Inferred => GapKind::Inferred,
            K::Bounded => GapKind::Bounded,
        }
    }
}

/// Where `t_ns` comes from, as the manifest says it.
pub const TIMESTAMPS_NOMINAL: &str = "nominal";
/// `t_ns` measured by the source (a DMA completion), not computed.
pub const TIMESTAMPS_MEASURED: &str = "measured";
/// The signal is `abi/`'s reference waveform: `verify` recomputes values.
pub const SIGNAL_REFERENCE: &str = "reference-waveform";
/// The signal comes from outside: nothing can recompute its values.
pub const SIGNAL_EXTERNAL: &str = "external";
/// Every loss is counted by the producer (the kernel driver, the simulator).
pub const LOSS_COUNTED: &str = "counted";
/// `stream.loss_detection` starts with this when losses can go unseen.
pub const LOSS_UNAVAILABLE: &str = "unavailable";

/// Something the source reported at a sample index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// The scan it applies to.
    pub at_seq: i64,
    /// What (`marker`: dropped by `acquire mark`; `vrt-context`,
    /// `device-sample-loss`: told by the source; `trigger`,
    /// `trigger-in-window`, `window-cut`: a triggered recording's windows).
    pub kind: String,
    /// In words.
    pub detail: String,
}

/// A closed segment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    /// Segment number.
    pub index: u64,
    /// File name in the run folder.
    pub file: String,
    /// First sample index.
    pub first_seq: i64,
    /// Last sample index.
    pub last_seq: i64,
    /// Rows (scans) in the file.
    pub rows: u64,
    /// Scans lost inside and just before this segment.
    pub lost: u64,
    /// Gaps inside and just before this segment.
    pub gaps: Vec<Gap>,
    /// Ring blocks recorded in this segment.
    pub blocks: u64,
    /// File size.
    pub bytes: u64,
    /// Milliseconds the recorder spent closing the segment (footer, fsync
    /// of file and folder, rename): what a slow disk shows first. Set in
    /// `manifest.json` only (the segment's own record is sealed before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_ms: Option<f64>,
    /// The snapshot window this segment belongs to, in a triggered
    /// recording (`record --trigger`); absent in a continuous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Scans lost after `last_seq` and before its window's `end_seq` (a
    /// gap that straddles a window's end; its later part is outside).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_after: u64,
}

/// A snapshot window of a triggered recording: the scans
/// `start_seq..end_seq` around the trigger at `trigger_seq`, written as its
/// own segment(s). Between two windows `seq` jumps: the scans there were
/// not kept (counted in [`Counts::scans_outside_windows`]), which readers
/// and `verify` tell from a hole by this record.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Window {
    /// 1 for the run's first window.
    pub index: u32,
    /// The scan at which the trigger fired.
    pub trigger_seq: i64,
    /// The window's first scan: `trigger_seq - pre_held`.
    pub start_seq: i64,
    /// One past the last scan asked for: `trigger_seq + post`. A window
    /// the run's end cut short ends before it (its last segment says where).
    pub end_seq: i64,
    /// Scans of pre-trigger history asked for (`--pre`).
    pub pre_asked: u64,
    /// Scans of pre-trigger history the window holds: fewer than asked
    /// when the trigger came before the history was full (the run had just
    /// started, or the previous window had just ended).
    pub pre_held: u64,
}

/// Totals of the run so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Scans written to closed segments.
    pub scans_recorded: u64,
    /// Scans lost (sum of all gaps, whatever their kind).
    pub scans_lost: u64,
    /// The part of `scans_lost` in inferred gaps: an estimate, not a count.
    #[serde(default)]
    pub scans_lost_inferred: u64,
    /// Number of gaps.
    pub gaps: u64,
    /// Blocks recorded.
    pub blocks: u64,
    /// Bytes of Parquet written (closed segments).
    pub bytes_written: u64,
    /// Scans the producer dropped after the last recorded one and before
    /// the recording's end (its scan limit, or where the producer stopped):
    /// no later block carries that gap, so it is counted here.
    #[serde(default)]
    pub scans_lost_at_end: u64,
    /// Triggered recordings: scans the stream carried between windows,
    /// not kept by design (neither recorded nor lost).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scans_outside_windows: u64,
    /// Of the scans outside windows, those the source lost (a trigger may
    /// have been missed in them, so they are reported, never dropped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scans_lost_outside_windows: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    /// Every scan lost: in recorded gaps and after the last recorded one.
    pub fn lost(&self) -> u64 {
        self.scans_lost + self.scans_lost_at_end
    }
}

/// Versions of every part that touched the data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Versions {
    /// acquire crate version.
    pub acquire: String,
    /// Ring ABI version spoken.
    pub abi: String,
    /// Kernel module version, if any.
    pub module: Option<String>,
}

/// Where a run stands: the manifest's `status`, one word on disk.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The recorder is writing it (or was, until it was killed: `acquire
    /// verify` then names `acquire recover`).
    Recording,
    /// It reached its `--duration`/`--samples`, or was stopped by a
    /// signal when it had neither.
    Complete,
    /// A signal ended it before its limit; closed and whole, but shorter.
    Interrupted,
    /// The recorder stopped on an error (`error` says which); what was
    /// durable is in the segments.
    Failed,
    /// Rebuilt by `acquire recover` from the closed segments after the
    /// recorder did not close it.
    Recovered,
    /// Written by `acquire bench` for its own temporary recordings.
    Bench,
    /// A word this version does not know (a newer recorder's).
    #[serde(other)]
    Unknown,
}

impl RunStatus {
    /// The word on disk.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Recording => "recording",
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
            RunStatus::Recovered => "recovered",
            RunStatus::Bench => "bench",
            RunStatus::Unknown => "unknown",
        }
    }

    /// The recorder closed the run (whatever its end).
    pub fn closed(self) -> bool {
        !matches!(self, RunStatus::Recording)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The manifest schema this crate writes. 2: every closed segment has its
/// clock-correlation table (`clock/`), and `events` holds user markers.
pub const MANIFEST_VERSION: u32 = 2;

/// The run manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always `hsdaq-run`.
    pub kind: String,
    /// Manifest schema version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// Where the run stands ([`RunStatus`]; a string on disk).
    pub status: RunStatus,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// Board profile name, when one was used.
    pub board: Option<String>,
    /// The device.
    pub device: DeviceDescription,
    /// The stream.
    pub stream: StreamInfo,
    /// Channels in column order.
    pub channels: Vec<ChannelInfo>,
    /// `uname -r` of the machine that recorded.
    pub kernel_release: String,
    /// Host name.
    pub host: String,
    /// Versions.
    pub versions: Versions,
    /// Wall-clock start (RFC 3339, UTC).
    pub start_wall_clock: String,
    /// CLOCK_MONOTONIC of scan 0 (the `t_ns` clock).
    pub start_monotonic_ns: u64,
    /// The codec asked for, as typed (`none`, `lz4`, `zstd`, `auto`);
    /// `compression_changes` names the concrete Parquet codec and level.
    pub compression: String,
    /// Every codec the run was written with, from the scan it took effect
    /// (one entry unless `compression` is `auto`).
    #[serde(default)]
    pub compression_changes: Vec<CodecChange>,
    /// Encoding of the channel columns.
    #[serde(default = "default_channel_encoding")]
    pub channel_encoding: String,
    /// Segment policy.
    pub segment_policy: SegmentPolicy,
    /// Totals.
    pub counts: Counts,
    /// Device counters at the end (dropped blocks/scans, overruns).
    pub device_counters: DeviceCounters,
    /// Every gap (up to [`MAX_MANIFEST_GAPS`]).
    pub gaps: Vec<Gap>,
    /// Gaps not listed because of the cap.
    pub gaps_not_listed: u64,
    /// The source's own counters at the end, which say where losses
    /// happened (a full kernel buffer, a socket queue): attribution only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_counters: BTreeMap<String, u64>,
    /// What the source reported at a sample index (a context change, a
    /// device's own loss flag), in stream order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Closed segments.
    pub segments: Vec<SegmentInfo>,
}

/// Runs recorded before the encoding was a choice used BYTE_STREAM_SPLIT.
fn default_channel_encoding() -> String {
    "byte_stream_split".into()
}

/// A codec taking effect from a row group on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodecChange {
    /// First scan written with `codec`.
    pub at_seq: i64,
    /// Segment of that scan.
    pub segment: u64,
    /// The codec (`none`, `lz4_raw`, `zstd(1)`, `zstd(3)`).
    pub codec: String,
    /// Chunks waiting for the encoder when it was chosen (of the pool).
    pub backlog: usize,
}

/// Identity and settings of a device, copied into every manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceDescription {
    /// `sim` or the device node path.
    pub path: String,
    /// Device name from the control page.
    pub name: String,
    /// Compatible string that bound the device (empty for the simulator).
    pub compatible: String,
    /// `simulator`, `virtual` or `hardware`.
    pub source: String,
    /// Firmware-node or simulator properties in force.
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Kernel module version, when a kernel device.
    pub module_version: Option<String>,
}

/// When to close a segment and open the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentPolicy {
    /// After this much stream time (by scan count at the nominal rate).
    Duration(#[serde(with = "humantime_serde_compat")] Duration),
    /// After this many bytes of sample data.
    Bytes(u64),
}

/// The producer's own counters, as read from the control page.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Blocks written by the producer.
    pub produced_blocks: u64,
    /// Blocks dropped by the producer.
    pub dropped_blocks: u64,
    /// Scans in dropped blocks.
    pub dropped_scans: u64,
    /// Overrun events.
    pub overruns: u64,
}

impl Manifest {
    /// A triggered run's windows among its segments (0 for a continuous
    /// run; a window over several segments counts once).
    pub fn window_count(&self) -> usize {
        window_runs(
            self.segments
                .iter()
                .filter_map(|s| s.window.map(|w| w.index)),
        )
    }

    /// Writes `manifest.json` atomically and durably: temporary file,
    /// fsync, rename, fsync of the folder (without the last, a power cut
    /// can bring back the previous manifest after the call returned).
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.write_with(dir, || {}).map(drop)
    }

    /// [`Manifest::write`], calling `before_rename` once the temporary file
    /// is durable and not yet renamed (the power-cut test's checkpoint).
    /// Returns the bytes written.
    pub fn write_with(&self, dir: &Path, before_rename: impl FnOnce()) -> Result<u64> {
        write_atomic(dir, before_rename, |w| {
            serde_json::to_writer_pretty(&mut *w, self)?;
            w.write_all(b"\n")
        })
    }

    /// [`Manifest::write_with`] for a run being recorded: its segment list
    /// is the run's [`SEGMENT_LOG`], copied into the file a record at a
    /// time, so memory does not grow with it, then `self.segments` (the
    /// records not in the log: one whose append failed).
    pub fn write_logged(&self, dir: &Path, before_rename: impl FnOnce()) -> Result<u64> {
        let head = match self.segments.is_empty() {
            true => serde_json::to_vec_pretty(self)?,
            false => serde_json::to_vec_pretty(&Manifest {
                segments: Vec::new(),
                ..self.clone()
            })?,
        };
        // `segments` is the last field: the text ends `"segments": []` `\n}`.
        let head = head
            .strip_suffix(b"]\n}")
            .context("the segment list is not the manifest's last field")?;
        let logged = SegmentLog::records(dir)?.map(|r| r.map(|(line, _)| line));
        let rest = self.segments.iter().map(serde_json::to_string);
        let rest = rest.map(|r| r.map_err(std::io::Error::from));
        write_atomic(dir, before_rename, |w| {
            w.write_all(head)?;
            let mut listed = 0;
            for line in logged.chain(rest) {
                let line = line?;
                w.write_all(if listed == 0 { b"\n    " } else { b",\n    " })?;
                w.write_all(line.as_bytes())?;
                listed += 1;
            }
            w.write_all(if listed == 0 {
                b"]\n}\n"
            } else {
                b"\n  ]\n}\n"
            })
        })
    }

    /// Reads a run folder's manifest.
    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join("manifest.json");
        let f = std::fs::File::open(&p).with_context(|| format!("cannot open {}", p.display()))?;
        serde_json::from_reader(std::io::BufReader::new(f))
            .with_context(|| format!("{} is not an hsdaq manifest", p.display()))
    }

    /// Adds a closed segment: its record, its scans, losses, blocks and
    /// bytes to the totals, its gaps to the list (up to
    /// [`MAX_MANIFEST_GAPS`]; beyond, only counted).
    pub fn add_segment(&mut self, info: SegmentInfo) {
        self.count_segment(&info);
        self.segments.push(info);
    }

    /// [`Manifest::add_segment`] but for the list: the totals and gaps of
    /// a segment listed elsewhere (the recorder's segment log).
    pub fn count_segment(&mut self, info: &SegmentInfo) {
        let c = &mut self.counts;
        c.scans_recorded += info.rows;
        c.scans_lost += info.lost + info.lost_after;
        c.scans_lost_inferred += info
            .gaps
            .iter()
            .filter(|g| g.kind == GapKind::Inferred)
            .map(|g| g.lost)
            .sum::<u64>();
        c.gaps += info.gaps.len() as u64;
        c.blocks += info.blocks;
        c.bytes_written += info.bytes;
        for g in &info.gaps {
            if self.gaps.len() < MAX_MANIFEST_GAPS {
                self.gaps.push(*g);
            } else {
                self.gaps_not_listed += 1;
            }
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Makes a folder's entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_is_one_word_on_disk() {
        for st in [
            RunStatus::Recording,
            RunStatus::Complete,
            RunStatus::Interrupted,
            RunStatus::Failed,
            RunStatus::Recovered,
            RunStatus::Bench,
        ] {
            let j = serde_json::to_string(&st).unwrap();
            assert_eq!(j, format!("\"{st}\""));
            assert_eq!(serde_json::from_str::<RunStatus>(&j).unwrap(), st);
            assert_eq!(st.closed(), st != RunStatus::Recording);
        }
        // A newer recorder's word does not make the manifest unreadable.
        assert_eq!(
            serde_json::from_str::<RunStatus>("\"paused\"").unwrap(),
            RunStatus::Unknown
        );
    }

    #[test]
    fn gaps_of_older_runs_read_as_counted() {
        let g: Gap = serde_json::from_str(r#"{"at_seq": 10, "lost": 4}"#).unwrap();
        assert_eq!(g.kind, GapKind::Counted);
        let g: Gap =
            serde_json::from_str(r#"{"at_seq": 10, "lost": 4, "kind": "inferred"}"#).unwrap();
        assert_eq!(g.kind, GapKind::Inferred);
        assert!(
            serde_json::from_str::<Gap>(r#"{"at_seq": 1, "lost": 1, "kind": "guessed"}"#).is_err()
        );
    }

    #[test]
    fn gap_kinds_follow_the_block_flags() {
        use hsdaq_abi::layout::{GapKind as K, BLOCK_FLAG_AFTER_GAP, BLOCK_FLAG_LOSS_INFERRED};
        assert_eq!(
            GapKind::from(K::of_flags(BLOCK_FLAG_AFTER_GAP)),
            GapKind::Counted
        );
        let inferred = BLOCK_FLAG_AFTER_GAP | BLOCK_FLAG_LOSS_INFERRED;
        assert_eq!(GapKind::from(K::of_flags(inferred)), GapKind::Inferred);
        assert_eq!(
            serde_json::to_string(&GapKind::from(K::Bounded)).unwrap(),
            "\"bounded\""
        );
    }

    #[test]
    fn stream_info_of_older_runs_is_reference_and_nominal() {
        let s: StreamInfo = serde_json::from_str(
            r#"{"rate_hz": 1, "channels": 1, "format": "i16", "block_bytes": 256, "block_scans": 96, "buffer_bytes": 8192}"#,
        )
        .unwrap();
        assert_eq!(s.signal, SIGNAL_REFERENCE);
        assert_eq!(s.timestamps, TIMESTAMPS_NOMINAL);
    }
}
