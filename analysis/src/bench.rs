//! `analysis bench`: the report against a bare polars lazy scan computing
//! the same per-column aggregates (min, max, mean, std of every column) on
//! the same files, side by side in one run: the Rust polars crate this
//! workspace pins, and, given `--python`, Python polars (what a user would
//! reach for, and today the faster of the two). Each runs as a child
//! process, so its own peak resident set is measured (wait4), alternating,
//! median of `runs`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::Serialize;

/// One contender's medians.
#[derive(Debug, Serialize)]
pub struct Timing {
    /// What ran.
    pub name: String,
    /// Median wall time, s.
    pub seconds: f64,
    /// Median peak resident set, MiB.
    pub peak_rss_mib: f64,
}

/// The comparison.
#[derive(Debug, Serialize)]
pub struct Bench {
    /// Bytes of sample data in the files (scans × channels × sample size).
    pub sample_bytes: u64,
    /// `analysis report`.
    pub report: Timing,
    /// The bare polars scan (the Rust crate).
    pub baseline: Timing,
    /// The same scan in Python polars, when `--python` named one.
    pub python_baseline: Option<Timing>,
    /// report ÷ the Rust baseline's time.
    pub time_ratio: f64,
    /// report ÷ the fastest baseline's time (the target: ≤ 1.5).
    pub time_ratio_fastest: f64,
}

/// The Python baseline: the same aggregates, one lazy scan per run over its
/// segment files (argv: a JSON file holding a list of file lists),
/// streaming engine.
const PYTHON_BASELINE: &str = r#"
import json, sys
import polars as pl
for files in json.load(open(sys.argv[1])):
    lf = pl.scan_parquet(files)
    aggs = [pl.len().alias("rows")]
    for c in lf.collect_schema().names():
        x = pl.col(c).cast(pl.Float64)
        aggs += [x.min().alias(c + "_min"), x.max().alias(c + "_max"),
                 x.mean().alias(c + "_mean"), x.std().alias(c + "_std")]
    df = lf.select(aggs).collect(engine="streaming")
    print(df["rows"][0], "rows")
"#;

/// The baseline: one lazy scan of every segment, streaming engine, the
/// aggregates `analysis report` also computes; prints the row count.
pub fn baseline(paths: &[PathBuf]) -> Result<()> {
    let runs = crate::load::discover(paths)?;
    for r in &runs {
        let cols: Vec<String> = std::iter::once("seq".to_string())
            .chain(std::iter::once("t_ns".to_string()))
            .chain(r.manifest.channels.iter().map(|c| c.name.clone()))
            .collect();
        let mut aggs = vec![len().alias("rows")];
        for c in &cols {
            let x = col(c.as_str()).cast(DataType::Float64);
            aggs.push(x.clone().min().alias(format!("{c}_min")));
            aggs.push(x.clone().max().alias(format!("{c}_max")));
            aggs.push(x.clone().mean().alias(format!("{c}_mean")));
            aggs.push(x.std(1).alias(format!("{c}_std")));
        }
        let df = r
            .samples()?
            .select(aggs)
            .collect_with_engine(Engine::Streaming)?;
        println!("{}: {} rows", r.label, df.column("rows")?.get(0)?);
    }
    Ok(())
}

/// Runs both `runs` times, alternating, and returns the medians.
pub fn run(paths: &[PathBuf], runs: usize, python: Option<&std::path::Path>) -> Result<Bench> {
    let exe = std::env::current_exe()?;
    let found = crate::load::discover(paths)?;
    let sample_bytes = found.iter().map(|r| r.sample_bytes()).sum();
    let files: Vec<Vec<String>> = found
        .iter()
        .map(|r| r.segments.iter().map(|p| p.display().to_string()).collect())
        .collect();
    // In a file, not argv: one argument holds at most 128 KiB of paths.
    let files_json =
        std::env::temp_dir().join(format!("hsdaq-bench-files-{}.json", std::process::id()));
    std::fs::write(&files_json, serde_json::to_string(&files)?)?;
    let mut py = Vec::new();
    let out = std::env::temp_dir().join(format!("hsdaq-bench-report-{}", std::process::id()));
    let mut rep = Vec::new();
    let mut base = Vec::new();
    for i in 0..runs.max(1) {
        eprintln!(
            "analysis bench: round {}/{runs}: report, then the bare polars scan",
            i + 1
        );
        let mut c = Command::new(&exe);
        c.arg("report")
            .args(paths)
            .arg("--out")
            .arg(&out)
            .arg("--json");
        rep.push(child(c)?);
        let mut c = Command::new(&exe);
        c.arg("baseline").args(paths);
        base.push(child(c)?);
        if let Some(p) = python {
            let mut c = Command::new(p);
            c.arg("-c").arg(PYTHON_BASELINE).arg(&files_json);
            py.push(child(c).with_context(|| {
                format!(
                    "the Python baseline failed: does {} have polars?",
                    p.display()
                )
            })?);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&files_json);
    let report = median("analysis report", &rep);
    let baseline = median(
        "polars (Rust crate) lazy scan, min/max/mean/std of every column",
        &base,
    );
    let python_baseline =
        (!py.is_empty()).then(|| median("polars (Python) lazy scan, the same", &py));
    let fastest = python_baseline
        .as_ref()
        .map_or(baseline.seconds, |p| p.seconds.min(baseline.seconds));
    Ok(Bench {
        sample_bytes,
        time_ratio: report.seconds / baseline.seconds.max(1e-9),
        time_ratio_fastest: report.seconds / fastest.max(1e-9),
        report,
        baseline,
        python_baseline,
    })
}

/// Runs a command with its output discarded; returns (seconds, peak MiB).
fn child(mut c: Command) -> Result<(f64, f64)> {
    let t = Instant::now();
    let mut ch = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start a child analysis")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our unwaited child; status and ru are valid
    // pointers for the duration of the call.
    let pid = unsafe { libc::wait4(ch.id() as i32, &mut status, 0, &mut ru) };
    let secs = t.elapsed().as_secs_f64();
    if pid < 0 {
        let _ = ch.wait();
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{c:?} failed (status {status})");
    }
    Ok((secs, ru.ru_maxrss as f64 / 1024.0))
}

fn median(name: &str, v: &[(f64, f64)]) -> Timing {
    let mid = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    Timing {
        name: name.into(),
        seconds: mid(v.iter().map(|p| p.0).collect()),
        peak_rss_mib: mid(v.iter().map(|p| p.1).collect()),
    }
}
