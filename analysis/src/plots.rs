//! The report's plots, drawn once per backend (PNG and SVG) by the same code.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::RunMetrics;

const SIZE: (u32, u32) = (1000, 480);
/// Plot names, in report order, with their titles.
pub const PLOTS: &[(&str, &str)] = &[
    ("throughput", "Throughput over time"),
    ("losses", "Losses and gaps"),
    ("latency", "Block latency"),
    ("signal", "Signal preview (min/max per bin)"),
    ("spectrum", "Spectrum (first 65536 scans)"),
    ("health", "Recorder memory and descriptors (health.csv)"),
    ("close", "Segment close times"),
];

/// Whether the run has the data a plot shows (health and close times
/// come only from runs recorded with them).
pub fn has(name: &str, m: &RunMetrics) -> bool {
    match name {
        "health" => !m.health.samples.is_empty(),
        "close" => !m.health.close_ms.is_empty(),
        _ => true,
    }
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// Writes every plot as `NAME.png` and `NAME.svg` into `dir`.
pub fn write_all(m: &RunMetrics, dir: &Path) -> Result<Vec<String>> {
    crate::font::init()?;
    let mut written = Vec::new();
    for (name, _) in PLOTS.iter().filter(|p| has(p.0, m)) {
        let png = dir.join(format!("{name}.png"));
        let svg = dir.join(format!("{name}.svg"));
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            draw(name, m, &root)?;
            root.present().map_err(err)?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            draw(name, m, &root)?;
            root.present().map_err(err)?;
        }
        written.push(format!("{name}.png"));
        written.push(format!("{name}.svg"));
    }
    Ok(written)
}

fn draw<DB: DrawingBackend>(name: &str, m: &RunMetrics, root: &Area<DB>) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let title = PLOTS.iter().find(|p| p.0 == name).map_or(name, |p| p.1);
    let title = format!("{title} — {}", m.label);
    match name {
        "throughput" => line(
            root,
            &title,
            "time since first block (s)",
            "sample MB/s",
            &[("MB/s", m.throughput.iter().map(|p| (p.0, p.1)).collect())],
        ),
        "losses" => losses(root, &title, m),
        "latency" => latency(root, &title, m),
        "signal" => signal(root, &title, m),
        "spectrum" => line(
            root,
            &title,
            "frequency (Hz)",
            "magnitude (dB)",
            &m.spectrum
                .iter()
                .zip(&m.channels)
                .map(|(s, c)| (c.name.as_str(), s.clone()))
                .collect::<Vec<_>>(),
        ),
        "health" => {
            let h = &m.health.samples;
            line(
                root,
                &title,
                "time since the recorder started (s)",
                "MiB / count",
                &[
                    (
                        "resident set (MiB)",
                        h.iter().map(|s| (s.t, s.rss_mib)).collect(),
                    ),
                    (
                        "open file descriptors",
                        h.iter().map(|s| (s.t, s.fds as f64)).collect(),
                    ),
                    (
                        "backlog (chunks)",
                        h.iter().map(|s| (s.t, s.backlog as f64)).collect(),
                    ),
                ],
            )
        }
        "close" => line(
            root,
            &title,
            "segment",
            "close time (ms): footer, fsync, rename",
            &[(
                "close ms",
                m.health
                    .close_ms
                    .iter()
                    .map(|&(i, c)| (i as f64, c))
                    .collect(),
            )],
        ),
        _ => Ok(()),
    }
}

/// The frame every plot shares: title, margins, axis label room.
fn frame<'a, 'b, DB: DrawingBackend>(
    root: &'a Area<DB>,
    title: &'b str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    b
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if (hi - lo).abs() < 1e-12 {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    }
}

fn line<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    x: &str,
    y: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    let (x0, x1) = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
    let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)));
    let mut chart = frame(root, title)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(1)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn losses<DB: DrawingBackend>(root: &Area<DB>, title: &str, m: &RunMetrics) -> Result<()> {
    let (x0, x1) = (0.0, m.seconds.max(1e-3));
    let ymax = m.gap_timeline.iter().map(|g| g.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = frame(root, title)
        .build_cartesian_2d(x0..x1, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("stream time (s)")
        .y_desc("scans lost in gap")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            m.gap_timeline.iter().map(|&(t, l)| {
                PathElement::new(vec![(t, 0.0), (t, l as f64)], RED.stroke_width(2))
            }),
        )
        .map_err(err)?;
    chart
        .draw_series(
            m.gap_timeline
                .iter()
                .map(|&(t, l)| Circle::new((t, l as f64), 3, RED.filled())),
        )
        .map_err(err)?;
    let note = if m.gap_timeline.is_empty() {
        "no samples lost".to_string()
    } else {
        format!(
            "{} scans lost in {} gaps ({:.4}%)",
            m.scans_lost,
            m.gaps,
            m.loss_ratio * 100.0
        )
    };
    root.draw(&Text::new(
        note,
        (90, 50),
        ("sans-serif", 16).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    Ok(())
}

fn latency<DB: DrawingBackend>(root: &Area<DB>, title: &str, m: &RunMetrics) -> Result<()> {
    let (x0, x1) = range(m.latency_hist.iter().flat_map(|b| [b.0, b.0 + b.1]));
    let ymax = m.latency_hist.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = frame(root, title)
        .build_cartesian_2d(x0..x1, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("last scan → drained (µs), up to p99.9")
        .y_desc("blocks")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(m.latency_hist.iter().map(|&(s, w, n)| {
            Rectangle::new([(s, 0.0), (s + w, n as f64)], BLUE.mix(0.6).filled())
        }))
        .map_err(err)?;
    if let Some((p50, p99, max)) = m.latency_us {
        let note = format!("p50 {p50:.0} µs, p99 {p99:.0} µs, max {max:.0} µs");
        root.draw(&Text::new(
            note,
            (90, 50),
            ("sans-serif", 16).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    Ok(())
}

fn signal<DB: DrawingBackend>(root: &Area<DB>, title: &str, m: &RunMetrics) -> Result<()> {
    let (x0, x1) = range(m.preview.iter().flat_map(|c| c.iter().map(|p| p.0)));
    let (y0, y1) = range(
        m.preview
            .iter()
            .flat_map(|c| c.iter().flat_map(|p| [p.1, p.2])),
    );
    let unit = m.channels.first().map_or("", |c| c.unit.as_str());
    let mut chart = frame(root, title)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("stream time (s)")
        .y_desc(unit)
        .draw()
        .map_err(err)?;
    for (i, (pts, ch)) in m.preview.iter().zip(&m.channels).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(pts.iter().map(|&(t, lo, hi)| {
                PathElement::new(vec![(t, lo), (t, hi)], color.stroke_width(1))
            }))
            .map_err(err)?
            .label(ch.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}
