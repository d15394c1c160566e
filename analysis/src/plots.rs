//! The report's plots, drawn once per backend (PNG and SVG) by the same code.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::metrics::RunMetrics;

const SIZE: (u32, u32) = (1000, 480);
/// Height of one channel's row in the stacked signal and spectrum plots.
const ROW: u32 = 190;
/// The report's plots. Each fact about a plot (file name, title, whether
/// a run has its data, its size, how it is drawn) is a `match` on this
/// enum, so a new plot is a new variant and the compiler names every place
/// it needs: none can be silently skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plot {
    Throughput,
    Losses,
    Latency,
    Signal,
    Spectrum,
    Health,
    Close,
}

impl Plot {
    /// Every plot, in report order.
    pub const ALL: [Plot; 7] = [
        Plot::Throughput,
        Plot::Losses,
        Plot::Latency,
        Plot::Signal,
        Plot::Spectrum,
        Plot::Health,
        Plot::Close,
    ];

    /// File name stem (`NAME.png`, `NAME.svg`).
    pub fn name(self) -> &'static str {
        match self {
            Plot::Throughput => "throughput",
            Plot::Losses => "losses",
            Plot::Latency => "latency",
            Plot::Signal => "signal",
            Plot::Spectrum => "spectrum",
            Plot::Health => "health",
            Plot::Close => "close",
        }
    }

    /// Heading on the page and in the plot.
    pub fn title(self) -> &'static str {
        match self {
            Plot::Throughput => "Throughput over time",
            Plot::Losses => "Losses and gaps",
            Plot::Latency => "Block latency",
            Plot::Signal => "Signal: whole run (min/max envelope) and a few periods",
            Plot::Spectrum => "Spectrum (Welch average over the whole run)",
            Plot::Health => "Recorder memory and descriptors (health.csv)",
            Plot::Close => "Segment close times",
        }
    }

    /// Whether the run has the data the plot shows (health and close times
    /// come only from runs recorded with them).
    pub fn has(self, m: &RunMetrics) -> bool {
        match self {
            Plot::Health => !m.health.samples.is_empty(),
            Plot::Close => !m.health.close_ms.is_empty(),
            Plot::Throughput | Plot::Losses | Plot::Latency | Plot::Signal | Plot::Spectrum => true,
        }
    }

    /// Stacked plots grow with the channels.
    fn size(self, m: &RunMetrics) -> (u32, u32) {
        match self {
            Plot::Signal | Plot::Spectrum => (SIZE.0, 50 + ROW * m.channels.len().max(1) as u32),
            _ => SIZE,
        }
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
    for plot in Plot::ALL.into_iter().filter(|p| p.has(m)) {
        let name = plot.name();
        let png = dir.join(format!("{name}.png"));
        let svg = dir.join(format!("{name}.svg"));
        let size = plot.size(m);
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            draw(plot, m, &root)?;
            root.present().map_err(err)?;
        }
        {
            let root = SVGBackend::new(&svg, size).into_drawing_area();
            draw(plot, m, &root)?;
            root.present().map_err(err)?;
        }
        written.push(format!("{name}.png"));
        written.push(format!("{name}.svg"));
    }
    Ok(written)
}

fn draw<DB: DrawingBackend>(plot: Plot, m: &RunMetrics, root: &Area<DB>) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let title = format!("{} — {}", plot.title(), m.label);
    match plot {
        Plot::Throughput => line(
            root,
            &title,
            &format!(
                "arrival time (s); one point per {:.3} s bin (whole blocks, at least 20; the cut-short last bin left out)",
                m.throughput_bin_s
            ),
            "sample MB/s",
            &[("MB/s", m.throughput.iter().map(|p| (p.0, p.1)).collect())],
        ),
        Plot::Losses => losses(root, &title, m),
        Plot::Latency => latency(root, &title, m),
        Plot::Signal => signal(root, &title, m),
        Plot::Spectrum => spectrum(root, &title, m),
        Plot::Health => {
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
        Plot::Close => line(
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
    // Scans lost after the last recorded one have no gap row: shown at the end.
    let at_end = m.scans_lost
        - m.gap_timeline
            .iter()
            .map(|g| g.1)
            .sum::<u64>()
            .min(m.scans_lost);
    if at_end > 0 {
        root.draw(&Text::new(
            format!("+ {at_end} scans lost after the last recorded scan (end of run)"),
            (90, 72),
            ("sans-serif", 14).into_font().color(&RED),
        ))
        .map_err(err)?;
    }
    // Every gap's size, or the largest LABELLED_GAPS when there are more.
    const LABELLED_GAPS: usize = 12;
    let mut big: Vec<&(f64, u64)> = m.gap_timeline.iter().collect();
    big.sort_by_key(|g| std::cmp::Reverse(g.1));
    for &&(t, l) in big.iter().take(LABELLED_GAPS) {
        let h = if t > x1 * 0.8 {
            HPos::Right
        } else {
            HPos::Left
        };
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {l} at {t:.3} s "),
                (t, l as f64),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(h, VPos::Bottom)),
            )))
            .map_err(err)?;
    }
    let note = if m.gap_timeline.is_empty() {
        "no samples lost".to_string()
    } else {
        format!(
            "{} scans lost{} in {} gaps ({:.4}%){}",
            m.scans_lost,
            if m.scans_lost_inferred > 0 {
                format!(" ({} inferred, estimated from time)", m.scans_lost_inferred)
            } else {
                String::new()
            },
            m.gaps,
            m.loss_ratio * 100.0,
            if m.gap_timeline.len() > LABELLED_GAPS {
                format!("; the {LABELLED_GAPS} largest labelled")
            } else {
                String::new()
            }
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

/// Per channel, a row: the whole run's min/max envelope (left) and a few
/// periods of raw samples from the middle of the run (right), in the
/// channel's unit; the envelopes share one time axis.
fn signal<DB: DrawingBackend>(root: &Area<DB>, title: &str, m: &RunMetrics) -> Result<()> {
    let (top, rows) = titled(root, title)?;
    let rows = rows.split_evenly((m.channels.len().max(1), 1));
    let (x0, x1) = range(m.preview.iter().flat_map(|c| c.iter().map(|p| p.0)));
    for (i, (row, ch)) in rows.iter().zip(&m.channels).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let (left, right) = row.split_horizontally(SIZE.0 * 68 / 100);
        let env = &m.preview[i];
        let (y0, y1) = range(env.iter().flat_map(|p| [p.1, p.2]));
        let mut c = panel(&left, &format!("{} ({})", ch.name, ch.unit), 60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let last = i + 1 == m.channels.len();
        c.configure_mesh()
            .x_desc(if last { "stream time (s)" } else { "" })
            .y_desc(ch.unit.as_str())
            .y_labels(4)
            .draw()
            .map_err(err)?;
        c.draw_series(AreaSeries::new(
            env.iter().map(|p| (p.0, p.2)),
            y0,
            color.mix(0.35),
        ))
        .map_err(err)?;
        c.draw_series(
            env.iter().map(|&(t, lo, hi)| {
                PathElement::new(vec![(t, lo), (t, hi)], color.stroke_width(1))
            }),
        )
        .map_err(err)?;
        let z = &m.zoom[i];
        let (zx0, zx1) = range(z.iter().map(|p| p.0));
        let (zy0, zy1) = range(z.iter().map(|p| p.1));
        let mut c = panel(&right, "zoom: a few periods", 50)
            .build_cartesian_2d(zx0..zx1, zy0..zy1)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(if last { "ms" } else { "" })
            .y_labels(4)
            .x_labels(4)
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(z.iter().copied(), color.stroke_width(1)))
            .map_err(err)?;
    }
    drop(top);
    Ok(())
}

/// Per channel, a row: amplitude in dBFS on a log-frequency axis, the
/// strongest tones labelled.
fn spectrum<DB: DrawingBackend>(root: &Area<DB>, title: &str, m: &RunMetrics) -> Result<()> {
    let (_, rows) = titled(
        root,
        &format!(
            "{title}: {} segments of {} samples, Hann",
            m.spectrum_segments.0, m.spectrum_segments.1
        ),
    )?;
    let rows = rows.split_evenly((m.channels.len().max(1), 1));
    let nyquist = m.rate_hz as f64 / 2.0;
    for (i, (row, ch)) in rows.iter().zip(&m.channels).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = m.spectrum[i]
            .iter()
            .copied()
            .filter(|p| p.0 > 0.0)
            .collect();
        let f0 = pts.first().map_or(1.0, |p| p.0);
        let y1 = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max).max(-120.0) + 10.0;
        let y0 = (y1 - 140.0).max(-200.0);
        let mut c = panel(row, ch.name.as_str(), 60)
            .build_cartesian_2d((f0..nyquist.max(f0 * 2.0)).log_scale(), y0..y1)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(if i + 1 == m.channels.len() {
                "frequency (Hz, log)"
            } else {
                ""
            })
            .y_desc("dBFS")
            .y_labels(4)
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(
            pts.iter().map(|&(f, db)| (f, db.max(y0))),
            color.stroke_width(1),
        ))
        .map_err(err)?;
        let span = (nyquist / f0).ln().max(1e-9);
        for &(f, db) in &ch.tones {
            c.draw_series(std::iter::once(Circle::new((f, db), 3, BLACK.filled())))
                .map_err(err)?;
            // Labels in the right third of the axis hang to the left.
            let h = if (f / f0).ln() / span > 0.66 {
                HPos::Right
            } else {
                HPos::Left
            };
            c.draw_series(std::iter::once(Text::new(
                format!(" {} {db:.1} dBFS ", hz(f)),
                (f, db),
                ("sans-serif", 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(h, VPos::Bottom)),
            )))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// "976.6 Hz", "2.46 kHz", "1.20 MHz".
fn hz(f: f64) -> String {
    if f >= 1e6 {
        format!("{:.2} MHz", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.2} kHz", f / 1e3)
    } else {
        format!("{f:.1} Hz")
    }
}

/// The title strip, and the area below it.
fn titled<'a, DB: DrawingBackend>(
    root: &'a Area<DB>,
    title: &str,
) -> Result<(Area<'a, DB>, Area<'a, DB>)> {
    let (top, rest) = root.split_vertically(40);
    top.titled(title, ("sans-serif", 20)).map_err(err)?;
    Ok((top, rest))
}

/// One panel of a stacked plot.
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a Area<DB>,
    caption: &'b str,
    y_label: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(caption, ("sans-serif", 14))
        .margin(6)
        .x_label_area_size(30)
        .y_label_area_size(y_label);
    b
}
