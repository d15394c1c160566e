//! `acquire verify`: check every segment's structure, the sequence's
//! continuity against the recorded gaps (counted, inferred or bounded, kept
//! apart), that timestamps strictly increase, and, when the run's signal is
//! `abi/`'s reference waveform, recompute every value. Names the first bad
//! sample, and says which checks it ran: an external signal's values cannot
//! be recomputed, and an inferred gap's size is only an estimate.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hsdaq_abi::{waveform, Format};
use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use serde::Serialize;

use crate::manifest::{Gap, Manifest, RunStatus};
pub use hsdaq_format::run::{run_files, segment_metadata, structure, Damage};

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Files checked.
    pub files: Vec<String>,
    /// Rows checked.
    pub rows: u64,
    /// Values checked (rows × channels).
    pub values: u64,
    /// Gaps found and matched against the recorded gaps.
    pub gaps: u64,
    /// Scans lost in those gaps.
    pub lost: u64,
    /// The part of `lost` in inferred gaps (estimates from time).
    pub lost_inferred: u64,
    /// Whether values were compared with the reference waveform.
    pub values_compared: bool,
    /// The first scan after an inferred gap: from there on `seq` is an
    /// estimate, so values are not compared (they would be at the wrong
    /// index whenever the estimate is off).
    pub values_compared_until: Option<i64>,
    /// The checks that ran, in words.
    pub checks: Vec<String>,
    /// Partial (unfinished) segments that were skipped.
    pub partial_skipped: Vec<String>,
    /// The first problem, if any.
    pub first_error: Option<String>,
    /// What to do about a run the recorder did not close.
    pub hint: Option<String>,
    /// A recovered run whose recorder was cut before its first segment was
    /// durable: it claims nothing, so there is nothing to check.
    pub nothing_recorded: bool,
}

impl VerifyReport {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.first_error.is_none() && (!self.files.is_empty() || self.nothing_recorded)
    }
}

/// For a run the recorder never closed (its manifest still says
/// `recording`, or an unfinished segment is left): what to run.
fn crash_hint(dir: &Path, report: &VerifyReport) -> Option<String> {
    let status = Manifest::read(dir).map(|m| m.status).ok();
    let open = status == Some(RunStatus::Recording);
    let recovered = status == Some(RunStatus::Recovered);
    if recovered || (!open && report.partial_skipped.is_empty()) {
        return None;
    }
    let why = if open {
        "its manifest.json still says 'recording' (the recorder was killed or lost power)"
    } else {
        "an unfinished segment is left"
    };
    Some(format!(
        "{} was not closed: {why}; `acquire recover {}` rebuilds manifest.json from the closed segments and says what the unfinished ones held",
        dir.display(),
        dir.display()
    ))
}

/// Verifies a run folder or one segment file. A folder's `manifest.json`
/// must be readable unless `trust_segments` (then the segments' embedded
/// records alone are checked).
pub fn verify(path: &Path, trust_segments: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let files = if path.is_dir() {
        let (done, partial) = run_files(path)?;
        report.partial_skipped = partial.iter().map(|p| p.display().to_string()).collect();
        if done.is_empty() {
            // A run cut before its first segment was durable: while it still
            // says `recording`, name the recovery; once recovered with
            // nothing claimed, it is consistent (and empty).
            if let Some(hint) = crash_hint(path, &report) {
                bail!(
                    "{} holds no closed segment-*.parquet files; {hint}",
                    path.display()
                );
            }
            if let Ok(m) = Manifest::read(path) {
                if m.status == RunStatus::Recovered
                    && m.segments.is_empty()
                    && m.counts.scans_recorded == 0
                {
                    report.nothing_recorded = true;
                    return Ok(report);
                }
                // A triggered run in which no trigger fired: whole, empty.
                if m.status.closed()
                    && m.segments.is_empty()
                    && m.counts.scans_recorded == 0
                    && m.counts.scans_outside_windows > 0
                {
                    report.nothing_recorded = true;
                    report.checks.push(format!(
                        "trigger windows: none opened; {} scans outside windows, not kept",
                        m.counts.scans_outside_windows
                    ));
                    return Ok(report);
                }
            }
            bail!("{} holds no closed segment-*.parquet files", path.display());
        }
        let damage: Vec<Damage> = structure(path, &done)
            .0
            .into_iter()
            .filter(|d| !(trust_segments && matches!(d, Damage::ManifestUnreadable(_))))
            .collect();
        if let Some(first) = damage.first() {
            report.files = done.iter().map(|p| p.display().to_string()).collect();
            report.first_error = Some(if matches!(first, Damage::ManifestUnreadable(_)) {
                format!(
                    "{}: {first}; to check the segments on their own records, run `acquire verify --trust-segments {}`, or rebuild it with `acquire recover {}`",
                    path.display(),
                    path.display(),
                    path.display()
                )
            } else {
                let all: Vec<String> = damage.iter().map(Damage::to_string).collect();
                format!("{}: {}", path.display(), all.join("; "))
            });
            return Ok(report);
        }
        done
    } else {
        vec![path.to_path_buf()]
    };
    let single = files.len() == 1 && !path.is_dir();
    let mut prev: Option<i64> = None;
    let mut prev_t: Option<i64> = None;
    for f in &files {
        report.files.push(f.display().to_string());
        if let Err(e) = verify_file(f, single, &mut prev, &mut prev_t, &mut report) {
            report.first_error = Some(format!("{}: {e:#}", f.display()));
            break;
        }
    }
    if path.is_dir() {
        report.hint = crash_hint(path, &report);
    }
    report.checks = checks_ran(&report);
    if report.first_error.is_none() && path.is_dir() {
        match check_windows(&files) {
            Ok(Some(c)) => report.checks.push(c),
            Ok(None) => {}
            Err(e) => report.first_error = Some(format!("{}: {e:#}", path.display())),
        }
    }
    if report.first_error.is_none() && path.is_dir() {
        match check_clock(path, &files) {
            Ok(Some(c)) => report.checks.push(c),
            Ok(None) => {}
            Err(e) => report.first_error = Some(format!("{}: {e:#}", path.display())),
        }
    }
    if report.first_error.is_none() && path.is_dir() {
        if let Ok(m) = Manifest::read(path) {
            if matches!(m.status, RunStatus::Complete | RunStatus::Recovered)
                && (m.counts.scans_recorded != report.rows || m.counts.scans_lost != report.lost)
            {
                report.first_error = Some(format!(
                    "manifest says {} scans recorded and {} lost, files hold {} and {}",
                    m.counts.scans_recorded, m.counts.scans_lost, report.rows, report.lost
                ));
            }
        }
    }
    Ok(report)
}

/// A triggered run's windows, from the segments' records: numbered 1, 2, …
/// in order, each starting at its first scan (its pre-trigger history no
/// longer than asked) and holding, recorded or lost, exactly its
/// `start_seq..end_seq`; only the run's last window may end early (the run
/// ended inside it). None for a continuous run.
fn check_windows(files: &[std::path::PathBuf]) -> Result<Option<String>> {
    // Per window: its record, the last scan it covers (recorded, or lost
    // at its end), and the scans it holds, recorded or lost.
    let mut windows: Vec<(crate::manifest::Window, i64, u64)> = Vec::new();
    for f in files {
        let (_, seg) = segment_metadata(f)?;
        let Some(w) = seg.window else {
            if !windows.is_empty() {
                bail!(
                    "{} holds no window but follows window {}",
                    seg.file,
                    windows.len()
                );
            }
            continue;
        };
        match windows.last_mut() {
            Some((last, end, held)) if last.index == w.index => {
                if *last != w {
                    bail!("{}: window {} described two ways", seg.file, w.index);
                }
                *end = seg.last_seq + seg.lost_after as i64;
                *held += seg.rows + seg.lost + seg.lost_after;
            }
            last => {
                let want = last.map_or(1, |l| l.0.index + 1);
                if w.index != want {
                    bail!(
                        "{}: window {} where window {want} was due",
                        seg.file,
                        w.index
                    );
                }
                if w.pre_held > w.pre_asked || w.trigger_seq - w.start_seq != w.pre_held as i64 {
                    bail!(
                        "{}: window {} holds {} scans before its trigger, asked {}",
                        seg.file,
                        w.index,
                        w.trigger_seq - w.start_seq,
                        w.pre_asked
                    );
                }
                windows.push((
                    w,
                    seg.last_seq + seg.lost_after as i64,
                    seg.rows + seg.lost + seg.lost_after,
                ));
            }
        }
    }
    if windows.is_empty() {
        return Ok(None);
    }
    let n = windows.len();
    let mut cut = None;
    let mut short_pre = 0;
    for (i, (w, last, held)) in windows.iter().enumerate() {
        let span = last + 1 - w.start_seq;
        if *held as i64 != span {
            bail!(
                "window {}: {held} scans recorded or lost, but it spans {span}",
                w.index
            );
        }
        if last + 1 > w.end_seq {
            bail!(
                "window {}: runs to seq {last}, past its end {}",
                w.index,
                w.end_seq
            );
        }
        if last + 1 < w.end_seq {
            if i + 1 < n {
                bail!("window {}: ends at seq {last}, before its end {} (only the run's last window may)", w.index, w.end_seq);
            }
            cut = Some(format!(
                "; window {} cut short by the run's end after {} of {} post-trigger scans",
                w.index,
                last + 1 - w.trigger_seq,
                w.end_seq - w.trigger_seq
            ));
        }
        if w.pre_held < w.pre_asked {
            short_pre += 1;
        }
    }
    Ok(Some(format!(
        "trigger windows: {n} in order, each exactly its pre-trigger history + post-trigger scans, recorded or lost{}{}",
        match short_pre {
            0 => String::new(),
            k => format!("; {k} with less pre-trigger history than asked (the run or the previous window had just begun or ended, as its trigger event says)"),
        },
        cut.unwrap_or_default()
    )))
}

/// The clock-correlation table against the segments: each closed segment
/// of a run that has tables (manifest version 2 on) has rows inside its
/// own `seq` range, in `seq` order, with CLOCK_MONOTONIC never going back.
/// REALTIME and TAI may step (a clock set by hand or by NTP): said, not
/// damage. Returns the check in words (None for a run from before tables).
fn check_clock(dir: &Path, segments: &[std::path::PathBuf]) -> Result<Option<String>> {
    use hsdaq_format::clock;
    let mut rows = 0;
    let mut prev: Option<clock::ClockSample> = None;
    let mut steps = 0;
    for f in segments {
        let (m, info) = segment_metadata(f)?;
        let table = clock::file_for(dir, &info.file);
        if !table.exists() {
            if m.manifest_version >= 2 {
                bail!(
                    "{} is missing: {} has no clock-correlation table",
                    table.display(),
                    info.file
                );
            }
            continue;
        }
        let t = clock::read_file(&table)?;
        if t.is_empty() && m.manifest_version >= 2 {
            bail!("{}: no rows", table.display());
        }
        for r in t {
            if r.seq < info.first_seq || r.seq > info.last_seq {
                bail!(
                    "{}: a row at seq {} lies outside its segment ({}..={})",
                    table.display(),
                    r.seq,
                    info.first_seq,
                    info.last_seq
                );
            }
            if let Some(p) = &prev {
                if r.seq < p.seq || r.mono_ns < p.mono_ns {
                    bail!(
                        "{}: clock rows go back (seq {} at {} ns after seq {} at {} ns)",
                        table.display(),
                        r.seq,
                        r.mono_ns,
                        p.seq,
                        p.mono_ns
                    );
                }
                steps += usize::from(r.realtime_ns < p.realtime_ns);
            }
            if r.uncertainty_ns < 0 {
                bail!("{}: negative uncertainty at seq {}", table.display(), r.seq);
            }
            rows += 1;
            prev = Some(r);
        }
    }
    Ok((rows > 0).then(|| {
        format!(
            "clock: {rows} clock-correlation rows, inside their segments, in seq order, CLOCK_MONOTONIC never back{}",
            if steps > 0 {
                format!("; REALTIME stepped back {steps} times (the clock was set)")
            } else {
                String::new()
            }
        )
    }))
}

/// What a report's checks covered, for the user.
fn checks_ran(r: &VerifyReport) -> Vec<String> {
    let mut c = vec![
        "structure: every segment is a closed Parquet file whose pages decode, with the manifest's schema".to_string(),
        "seq: continuous except at the recorded gaps, each of exactly its recorded size".to_string(),
        "t_ns: strictly increasing".to_string(),
    ];
    c.push(if r.values_compared {
        "values: every value equals abi's reference waveform at its seq".to_string()
    } else {
        "values: NOT compared (the signal is external: nothing can recompute it)".to_string()
    });
    if let Some(s) = r.values_compared_until {
        c.push(format!(
            "values: compared only up to seq {s}, the first inferred gap (after it seq is an estimate)"
        ));
    }
    if r.lost_inferred > 0 {
        c.push(format!(
            "gaps: {} of {} lost scans are in inferred gaps (estimated from time by the source, not counted): their sizes are checked against the file, not against the truth",
            r.lost_inferred, r.lost
        ));
    }
    c
}

fn verify_file(
    path: &Path,
    single: bool,
    prev: &mut Option<i64>,
    prev_t: &mut Option<i64>,
    report: &mut VerifyReport,
) -> Result<()> {
    let (manifest, seg) = segment_metadata(path)?;
    let format = Format::from_name(manifest.stream.format.as_bytes())
        .context("unknown format in manifest")?;
    let channels = manifest.stream.channels as usize;
    let reader = SerializedFileReader::try_from(File::open(path)?)?;
    let fields = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .num_columns();
    if fields != 2 + channels {
        bail!(
            "{} columns, expected seq, t_ns and {channels} channels",
            fields
        );
    }
    let gaps: std::collections::HashMap<i64, Gap> =
        seg.gaps.iter().map(|g| (g.at_seq, *g)).collect();
    let compare = manifest.stream.signal == crate::manifest::SIGNAL_REFERENCE;
    report.values_compared = compare;
    // A single file stands alone: its first row starts where it starts; so
    // does a triggered run's window (checked as a whole in `check_windows`).
    let window_start = seg.window.filter(|w| {
        seg.first_seq - gaps.get(&seg.first_seq).map_or(0, |g| g.lost) as i64 == w.start_seq
    });
    if let Some(w) = window_start {
        *prev = Some(w.start_seq - 1);
    } else if single {
        *prev = Some(seg.first_seq - 1 - gaps.get(&seg.first_seq).map_or(0, |g| g.lost) as i64);
    }
    let mut matched: Vec<Gap> = Vec::new();
    let mut rows = 0u64;
    let mut seq = Vec::new();
    let mut t = Vec::new();
    let mut vals = Vec::new();
    for rg in 0..reader.num_row_groups() {
        let g = reader.get_row_group(rg)?;
        let n = g.metadata().num_rows() as usize;
        read_col::<Int64Type>(&*g, 0, n, &mut seq)?;
        read_col::<Int64Type>(&*g, 1, n, &mut t)?;
        for (i, &s) in seq.iter().enumerate() {
            let expect = prev.map_or(manifest.stream.first_seq as i64, |p| p + 1);
            if s != expect {
                let lost = s - expect;
                match gaps.get(&s) {
                    Some(g) if lost > 0 && g.lost == lost as u64 => {
                        if g.kind == crate::manifest::GapKind::Inferred {
                            report.values_compared_until.get_or_insert(s);
                        }
                        matched.push(*g)
                    }
                    _ => bail!("row {} : seq {s} follows {:?} but no gap of {lost} scans is recorded there", rows + i as u64, prev),
                }
            } else if prev.is_none() && gaps.contains_key(&s) {
                bail!("row 0: gap recorded at seq {s} but the sequence is continuous");
            }
            *prev = Some(s);
            if let Some(pt) = *prev_t {
                if t[i] <= pt {
                    bail!(
                        "row {} (seq {s}): t_ns {} does not increase (previous {pt})",
                        rows + i as u64,
                        t[i]
                    );
                }
            }
            *prev_t = Some(t[i]);
        }
        for c in 0..channels {
            // Decoded whatever the signal: every page must decode.
            read_col::<Int32Type>(&*g, 2 + c, n, &mut vals)?;
            if !compare {
                continue;
            }
            let upto = report.values_compared_until.unwrap_or(i64::MAX);
            for (i, (&v, &s)) in vals.iter().zip(&seq).enumerate() {
                if s >= upto {
                    break;
                }
                let want = waveform::value(format, s as u64, c as u32);
                if v != want {
                    bail!(
                        "row {} (seq {s}): channel {} ({}) = {v}, reference waveform says {want}",
                        rows + i as u64,
                        c,
                        manifest.channels.get(c).map_or("?", |ch| ch.name.as_str())
                    );
                }
            }
        }
        rows += n as u64;
        report.values += (n * channels) as u64;
    }
    if rows != seg.rows {
        bail!("{rows} rows, segment record says {}", seg.rows);
    }
    if matched.len() != seg.gaps.len() {
        bail!(
            "{} gaps recorded, {} found in the data",
            seg.gaps.len(),
            matched.len()
        );
    }
    report.rows += rows;
    report.gaps += matched.len() as u64;
    report.lost += matched.iter().map(|g| g.lost).sum::<u64>() + seg.lost_after;
    report.lost_inferred += matched
        .iter()
        .filter(|g| g.kind == crate::manifest::GapKind::Inferred)
        .map(|g| g.lost)
        .sum::<u64>();
    Ok(())
}

/// Reads `n` rows of a required column of Parquet type `T` into `out`.
fn read_col<T: parquet::data_type::DataType>(
    g: &dyn RowGroupReader,
    col: usize,
    n: usize,
    out: &mut Vec<T::T>,
) -> Result<()> {
    out.clear();
    let mut r = get_typed_column_reader::<T>(g.get_column_reader(col)?);
    while out.len() < n {
        let (recs, _, _) = r.read_records(n - out.len(), None, None, out)?;
        if recs == 0 {
            bail!("column {col} ends after {} of {n} rows", out.len());
        }
    }
    Ok(())
}
