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
    let Cmd::Report { paths, out, json } = cli.cmd;
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
        metrics.push(
            hsdaq_analysis::metrics::compute(r)
                .with_context(|| format!("cannot read the samples of {}", r.path.display()))?,
        );
    }
    eprintln!("analysis: writing plots and pages to {}", out.display());
    hsdaq_analysis::report::write(&metrics, &out)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hsdaq_analysis::report::Summary {
                generator: "hsdaq analysis".into(),
                runs: metrics.iter().collect()
            })?
        );
    } else {
        for m in &metrics {
            print!("{}", hsdaq_analysis::report::text(m));
        }
        println!("report: {}", out.join("index.html").display());
    }
    Ok(metrics.iter().all(|m| m.damage.is_empty()))
}
