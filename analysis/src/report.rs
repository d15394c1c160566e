//! The report: `summary.json`, a text summary, plots and `index.html`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::metrics::RunMetrics;
use crate::plots::Plot;

/// What `summary.json` holds.
#[derive(Serialize)]
pub struct Summary<'a> {
    /// Tool and version.
    pub generator: String,
    /// One entry per run.
    pub runs: Vec<&'a RunMetrics>,
    /// Several runs on one time axis (empty for one run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alignment: Vec<crate::timebase::Aligned>,
}

/// Several runs on one time axis by their clock tables, and the labels of
/// runs without one.
pub fn alignment(runs: &[RunMetrics]) -> (Vec<crate::timebase::Aligned>, Vec<String>) {
    if runs.len() < 2 {
        return (Vec::new(), Vec::new());
    }
    let with: Vec<(&str, &crate::timebase::TimebaseSummary)> = runs
        .iter()
        .filter_map(|m| Some((m.label.as_str(), m.timebase.as_ref()?)))
        .collect();
    let without = runs
        .iter()
        .filter(|m| m.timebase.is_none())
        .map(|m| m.label.clone())
        .collect();
    (crate::timebase::align(&with), without)
}

/// Text summary of one run.
pub fn text(m: &RunMetrics) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "run {} ({})", m.label, m.path);
    let _ = writeln!(
        s,
        "  {} scans of {} ch × {} at {} scans/s over {:.3} s, status {}{}",
        m.scans,
        m.channels.len(),
        m.format,
        m.rate_hz,
        m.seconds,
        m.status,
        m.board
            .as_deref()
            .map(|b| format!(", board {b}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  throughput {:.2} MB/s of samples; lost {} scans in {} gaps ({:.4}%)",
        m.mean_mb_per_s,
        m.scans_lost,
        m.gaps,
        m.loss_ratio * 100.0
    );
    if m.scans_lost_inferred > 0 {
        let _ = writeln!(
            s,
            "  of them {} scans in inferred gaps: estimated from time by the source (no counter), not counted",
            m.scans_lost_inferred
        );
    }
    if let Some((n, outside, lost)) = m.windows {
        let _ = writeln!(
            s,
            "  triggered: {n} windows around their triggers; {outside} scans between them not kept{}",
            match lost {
                0 => String::new(),
                l => format!(" ({l} of them lost by the source: a trigger may have been among them)"),
            }
        );
    }
    let _ = writeln!(s, "  timestamps {}; signal {}", m.timestamps, m.signal);
    let _ = writeln!(s, "  loss detection {}", m.loss_detection);
    if let Some(t) = &m.timebase {
        s.push_str(&crate::timebase::text(t));
    }
    if !m.events.is_empty() {
        let _ = writeln!(s, "  events: {}", m.events.len());
        for e in m.events.iter().take(20) {
            let _ = writeln!(s, "    seq {:>12} {:<20} {}", e.at_seq, e.kind, e.detail);
        }
        if m.events.len() > 20 {
            let _ = writeln!(s, "    … {} more in summary.json", m.events.len() - 20);
        }
    }
    if !m.damage.is_empty() {
        let _ = writeln!(
            s,
            "  DAMAGED: the counts above cannot be trusted ({} problem(s); `acquire verify` says the same):",
            m.damage.len()
        );
        for d in &m.damage {
            let _ = writeln!(s, "    - {d}");
        }
    }
    if let Some((p50, p99, max)) = m.latency_us {
        let _ = writeln!(
            s,
            "  block latency p50 {p50:.0} µs, p99 {p99:.0} µs, max {max:.0} µs"
        );
    }
    let h = &m.health;
    if let (Some(a), Some(mx), Some(z)) = (h.rss_mib_settled, h.rss_mib_max, h.rss_mib_last) {
        let _ = writeln!(
            s,
            "  recorder: resident {a:.0} MiB after warm-up, {z:.0} at the end (max {mx:.0}); open files {}",
            h.fds_range.map_or("?".into(), |(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}..{hi}") })
        );
    }
    if let Some((p50, mx)) = h.close_ms_p50_max {
        let _ = writeln!(s, "  segment close: median {p50:.1} ms, max {mx:.1} ms");
    }
    for c in &m.channels {
        let _ = writeln!(
            s,
            "  {:<8} min {:>12.4} max {:>12.4} mean {:>12.4} std {:>10.4} {}  peak {:.1} Hz",
            c.name, c.min, c.max, c.mean, c.std, c.unit, c.peak_hz
        );
    }
    s
}

/// Writes one run's plots and page into `dir`.
pub fn write_run(m: &RunMetrics, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::plots::write_all(m, dir)?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>hsdaq report: {0}</title>\
         <style>body{{font-family:sans-serif;max-width:1040px;margin:auto}}img{{width:100%}}pre{{background:#f4f4f4;padding:8px}}</style>\
         </head><body><h1>hsdaq recording {0}</h1>{2}<pre>{1}</pre>",
        html(&m.label),
        html(&text(m)),
        if m.damage.is_empty() {
            String::new()
        } else {
            format!(
                "<p style=\"background:#fdd;padding:8px\"><strong>This run is damaged:</strong> {}</p>",
                html(&m.damage.join("; "))
            )
        }
    );
    for plot in Plot::ALL.into_iter().filter(|p| p.has(m)) {
        let (name, title) = (plot.name(), plot.title());
        let _ = write!(
            h,
            "<h2>{title}</h2><a href=\"{name}.svg\"><img src=\"{name}.png\" alt=\"{title}\"></a>"
        );
    }
    h.push_str("<p><a href=\"summary.json\">summary.json</a></p></body></html>\n");
    std::fs::write(dir.join("index.html"), h)?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&Summary {
            generator: generator(),
            runs: vec![m],
            alignment: Vec::new(),
        })?,
    )?;
    Ok(())
}

/// Where a run's page goes: `out` itself for a single run, else
/// `out/<label>/`.
pub fn run_dir(m: &RunMetrics, out: &Path, runs: usize) -> std::path::PathBuf {
    if runs == 1 {
        out.to_path_buf()
    } else {
        out.join(&m.label)
    }
}

/// Writes the fleet page and summary for several runs whose own pages
/// [`write_run`] already wrote (one run: its page is the report).
pub fn write(runs: &[RunMetrics], out: &Path) -> Result<()> {
    if runs.len() == 1 {
        return Ok(());
    }
    // The fleet page: one row per run, linking to its own page.
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>hsdaq fleet report</title>\
         <style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}\
         td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}\
         .bad{background:#fdd}</style></head><body><h1>hsdaq recordings</h1>\
         <table><tr><th>run</th><th>board</th><th>date</th><th>scans</th><th>lost</th><th>loss ratio</th>\
         <th>throughput (MB/s)</th><th>status</th></tr>",
    );
    for m in runs {
        let board = m
            .board
            .clone()
            .or_else(|| m.partitions.get("board").cloned())
            .unwrap_or_default();
        let date = m
            .partitions
            .get("date")
            .cloned()
            .unwrap_or_else(|| m.start.get(..10).unwrap_or_default().to_string());
        let damaged = !m.damage.is_empty();
        let status = if damaged {
            format!(
                "{} <strong>DAMAGED ({} problems)</strong>",
                html(&m.status),
                m.damage.len()
            )
        } else {
            html(&m.status)
        };
        let _ = write!(
            h,
            "<tr{class}><td><a href=\"{label}/index.html\">{label}</a></td><td>{board}</td><td>{date}</td>\
             <td>{scans}</td><td>{lost}</td><td>{ratio:.4} %</td><td>{mbps:.2}</td><td>{status}</td></tr>",
            class = if damaged { " class=\"bad\"" } else { "" },
            label = html(&m.label),
            board = html(&board),
            date = html(&date),
            scans = m.scans,
            lost = m.scans_lost,
            ratio = m.loss_ratio * 100.0,
            mbps = m.mean_mb_per_s,
        );
    }
    h.push_str("</table>");
    let (aligned, without) = alignment(runs);
    if !aligned.is_empty() {
        let _ = write!(
            h,
            "<h2>On one time axis</h2><pre>{}</pre>",
            html(&crate::timebase::align_text(&aligned, &without))
        );
    }
    h.push_str("<p><a href=\"summary.json\">summary.json</a></p></body></html>\n");
    std::fs::write(out.join("index.html"), h)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&Summary {
            generator: generator(),
            runs: runs.iter().collect(),
            alignment: aligned,
        })?,
    )?;
    Ok(())
}

fn generator() -> String {
    format!("hsdaq analysis {}", env!("CARGO_PKG_VERSION"))
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
