//! `analysis`: reports on hsdaq recordings.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Analyse hsdaq recordings: throughput, losses, latency, signal, spectrum.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read recordings lazily and write summary.json, plots (PNG+SVG) and index.html.
    Report {
        /// Segment files, run folders, or trees of runs (board=…/date=…/…).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Time `report` against a bare polars lazy scan computing the same
    /// per-column aggregates on the same files (child processes, median).
    Bench {
        /// Segment files, run folders, or trees of runs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Rounds (each runs every contender).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
        runs: u16,
        /// A Python with polars (e.g. the project's venv, `scripts/venv.sh`):
        /// adds Python polars' scan of the same files as a baseline.
        #[arg(long, value_name = "PYTHON")]
        python: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The benchmark's baseline: a bare polars lazy scan computing min,
    /// max, mean and std of every column.
    #[command(hide = true)]
    Baseline {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        // The report is written, and it says what is damaged.
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("analysis: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the report; `Ok(false)` when a run is structurally damaged.
fn run(cli: Cli) -> Result<bool> {
    let (paths, out, json) = match cli.cmd {
        Cmd::Report { paths, out, json } => (paths, out, json),
        Cmd::Baseline { paths } => {
            hsdaq_analysis::bench::baseline(&paths)?;
            return Ok(true);
        }
        Cmd::Bench {
            paths,
            runs,
            python,
            json,
        } => {
            let b = hsdaq_analysis::bench::run(&paths, runs as usize, python.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                let gb = b.sample_bytes as f64 / 1e9;
                for t in [
                    Some(&b.report),
                    Some(&b.baseline),
                    b.python_baseline.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    println!(
                        "{:<55} {:>7.2} s ({:>6.0} MB/s of samples), peak {:>6.0} MiB",
                        t.name,
                        t.seconds,
                        gb * 1e3 / t.seconds,
                        t.peak_rss_mib
                    );
                }
                println!(
                    "report / fastest bare scan: {:.2}x the time, on {gb:.2} GB of samples (target <= 1.5x); / the Rust crate's: {:.2}x{}",
                    b.time_ratio_fastest,
                    b.time_ratio,
                    if b.python_baseline.is_none() {
                        " (no --python: Python polars, often faster, not measured)"
                    } else {
                        ""
                    }
                );
            }
            return Ok(true);
        }
    };
    let runs = hsdaq_analysis::load::discover(&paths)?;
    let mut metrics = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        eprintln!(
            "analysis: [{}/{}] reading {} ({} segments)",
            i + 1,
            runs.len(),
            r.path.display(),
            r.segments.len()
        );
        for d in &r.damage {
            eprintln!("analysis: warning: {} is damaged: {d}", r.path.display());
        }
        let mut m = hsdaq_analysis::metrics::compute(r)
            .with_context(|| format!("cannot read the samples of {}", r.path.display()))?;
        let dir = hsdaq_analysis::report::run_dir(&m, &out, runs.len());
        eprintln!("analysis: writing plots and page to {}", dir.display());
        hsdaq_analysis::report::write_run(&m, &dir)?;
        m.drop_series();
        metrics.push(m);
    }
    hsdaq_analysis::report::write(&metrics, &out)?;
    let (aligned, without) = hsdaq_analysis::report::alignment(&metrics);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hsdaq_analysis::report::Summary {
                generator: "hsdaq analysis".into(),
                runs: metrics.iter().collect(),
                alignment: aligned,
            })?
        );
    } else {
        for m in &metrics {
            print!("{}", hsdaq_analysis::report::text(m));
        }
        if !aligned.is_empty() {
            print!(
                "{}",
                hsdaq_analysis::timebase::align_text(&aligned, &without)
            );
        }
        println!("report: {}", out.join("index.html").display());
    }
    Ok(metrics.iter().all(|m| m.damage.is_empty()))
}
