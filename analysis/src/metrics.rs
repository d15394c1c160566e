//! Metrics of one run: the samples' figures from one streaming pass
//! (`crate::pass`), the blocks' from lazy polars queries that return only
//! aggregates, so a long recording never has to fit in memory.

use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

use crate::load::Run;

/// Points in the decimated signal preview.
const PREVIEW_BINS: i64 = 1500;
/// Most bins of the throughput timeline.
const THROUGHPUT_BINS: i64 = 200;
/// Fewest blocks in a throughput bin: blocks arrive whole, so a bin of n
/// blocks can be off by one block (1/n) from binning alone; 20 keeps that
/// under 5 %, below anything worth seeing.
const BLOCKS_PER_BIN: i64 = 20;
/// Bins of the latency histogram.
const LATENCY_BINS: usize = 60;
/// Samples per Welch segment (frequency resolution = rate / FFT_LEN).
const FFT_LEN: usize = 1 << 16;
/// Most Welch segments, spread evenly over the whole run.
const WELCH_SEGMENTS: usize = 16;
/// Tones labelled per channel.
const TONES: usize = 3;
/// Most samples in a channel's zoom window.
const ZOOM_MAX: usize = 4096;

impl RunMetrics {
    /// Drops the plotted series once the run's page is written, so a
    /// fleet's report holds only summaries: memory does not grow with the
    /// number of runs.
    pub fn drop_series(&mut self) {
        self.throughput = Vec::new();
        self.gap_timeline = Vec::new();
        self.latency_hist = Vec::new();
        self.preview = Vec::new();
        self.spectrum = Vec::new();
        self.zoom = Vec::new();
        self.health.samples = Vec::new();
        self.health.close_ms = Vec::new();
    }
}

/// Per-channel statistics in physical units.
#[derive(Debug, Serialize, Clone)]
pub struct ChannelStats {
    /// Column name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Strongest spectral line (Hz), DC excluded.
    pub peak_hz: f64,
    /// The strongest tones of the run's averaged spectrum: (Hz, dBFS).
    pub tones: Vec<(f64, f64)>,
}

/// Everything the report shows about one run.
#[derive(Debug, Serialize, Clone)]
pub struct RunMetrics {
    /// Run label.
    pub label: String,
    /// Where it was read from.
    pub path: String,
    /// Hive partition values.
    pub partitions: std::collections::BTreeMap<String, String>,
    /// Board from the manifest.
    pub board: Option<String>,
    /// Recording status from the manifest.
    pub status: String,
    /// Wall-clock start of the recording (RFC 3339).
    pub start: String,
    /// Nominal scans/s.
    pub rate_hz: u64,
    /// Sample format.
    pub format: String,
    /// Rows (scans) recorded.
    pub scans: u64,
    /// First and last sample index.
    pub seq_range: (i64, i64),
    /// Seconds of stream time covered (t_ns span).
    pub seconds: f64,
    /// Scans lost in gaps.
    pub scans_lost: u64,
    /// Number of gaps.
    pub gaps: u64,
    /// The part of `scans_lost` in inferred gaps: the source estimated it
    /// from time (no counter), so it is not a count.
    pub scans_lost_inferred: u64,
    /// Where `t_ns` comes from (the manifest's `stream.timestamps`).
    pub timestamps: String,
    /// Whether the signal is the reference waveform or external.
    pub signal: String,
    /// How the source's losses were detected (the manifest's
    /// `stream.loss_detection`: counted, inferred, or unavailable).
    pub loss_detection: String,
    /// Lost fraction of all scans that should exist.
    pub loss_ratio: f64,
    /// A triggered run's windows: (windows, scans between them not kept,
    /// of those lost by the source); None for a continuous run.
    pub windows: Option<(usize, u64, u64)>,
    /// Mean recorded throughput, sample MB/s of stream time.
    pub mean_mb_per_s: f64,
    /// Block latency percentiles (µs): p50, p99, max.
    pub latency_us: Option<(f64, f64, f64)>,
    /// When the samples happened: rate and drift against each clock
    /// (None for a run recorded before clock tables).
    pub timebase: Option<crate::timebase::TimebaseSummary>,
    /// Events at sample indices: markers and what the source told.
    pub events: Vec<hsdaq_format::manifest::Event>,
    /// Structural damage of the run folder (empty when sound): holes or
    /// overlaps in `seq` no recorded gap explains, a lost manifest.
    pub damage: Vec<String>,
    /// Per-channel statistics.
    pub channels: Vec<ChannelStats>,
    /// The recorder's memory, descriptors and segment close times.
    pub health: crate::health::Health,
    /// Throughput timeline: (seconds since start, MB/s, scans/s).
    #[serde(skip)]
    pub throughput: Vec<(f64, f64, f64)>,
    /// Gap timeline: (seconds since start, scans lost).
    #[serde(skip)]
    pub gap_timeline: Vec<(f64, u64)>,
    /// Latency histogram: (bin start µs, bin width µs, count).
    #[serde(skip)]
    pub latency_hist: Vec<(f64, f64, u64)>,
    /// Decimated preview per channel: (seconds, min, max).
    #[serde(skip)]
    pub preview: Vec<Vec<(f64, f64, f64)>>,
    /// Spectrum per channel, Welch average over the whole run: (Hz, dBFS).
    #[serde(skip)]
    pub spectrum: Vec<Vec<(f64, f64)>>,
    /// Welch segments averaged, and samples in each.
    pub spectrum_segments: (usize, usize),
    /// A few periods of each channel from the middle of the run:
    /// (ms from the window's start, value in the channel's unit).
    #[serde(skip)]
    pub zoom: Vec<Vec<(f64, f64)>>,
    /// Width of a throughput bin, s (a whole number of blocks).
    pub throughput_bin_s: f64,
}

fn f64_at(df: &DataFrame, name: &str) -> Result<f64> {
    let s = df.column(name)?.cast(&DataType::Float64)?;
    Ok(s.f64()?.get(0).unwrap_or(f64::NAN))
}

fn f64_col(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let s = df.column(name)?.cast(&DataType::Float64)?;
    Ok(s.f64()?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Computes every metric of `run`.
pub fn compute(run: &Run) -> Result<RunMetrics> {
    let m = &run.manifest;
    let names: Vec<String> = m.channels.iter().map(|c| c.name.clone()).collect();
    let scan_bytes = m.stream.channels as f64 * m.stream.sample_width() as f64;
    let samples = run.samples()?;

    // One pass over the samples (crate::pass): per bin of `seq`
    // (PREVIEW_BINS over the run, its range from the segments' own
    // records) the envelope and exact sums the totals and moments come
    // from, the Welch segments and the zoom window.
    let (seq_lo, seq_hi) = run.seq_range();
    let planned = run.rows();
    let bucket = ((seq_hi - seq_lo + 1).max(1) + PREVIEW_BINS - 1) / PREVIEW_BINS;
    let plan = crate::pass::Plan {
        seq_lo,
        bucket,
        rows: planned,
        welch: welch_plan(planned),
        zoom: zoom_plan(planned),
    };
    let pass = crate::pass::run(&samples, &names, &m.stream.format, &plan)?;
    let rows = pass.rows;
    if rows != planned {
        // The spectrum's segments and the zoom window were placed by the
        // records' count: fewer segments, an off-centre window.
        eprintln!(
            "analysis: warning: {} holds {rows} scans, its segments' records say {planned}: the spectrum and zoom are placed by the records",
            run.path.display()
        );
    }
    let (seq_min, seq_max) = if rows > 0 { pass.seq } else { (0, 0) };
    let (t_min, t_max) = if rows > 0 {
        (pass.t.0 as f64, pass.t.1 as f64)
    } else {
        (f64::NAN, f64::NAN)
    };
    let seconds = ((t_max - t_min) / 1e9).max(1.0 / m.stream.rate_hz as f64);

    let full_scale = if m.stream.format == "i32" {
        2f64.powi(31)
    } else {
        32768.0
    };
    let (spectrum, spectrum_segments) = spectra(&pass.welch, m.stream.rate_hz, full_scale);
    let totals = pass.totals(names.len());
    let mut channels = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let info = &m.channels[i];
        let (a, b) = (info.scale, info.offset);
        let (lo, hi, mean, var) = totals[i];
        let (lo, hi) = (lo * a + b, hi * a + b);
        let tones = tones(&spectrum[i]);
        let peak_hz = tones.first().map_or(0.0, |t| t.0);
        channels.push(ChannelStats {
            name: n.clone(),
            unit: info.unit.clone(),
            min: lo.min(hi),
            max: lo.max(hi),
            mean: mean * a + b,
            std: var.sqrt() * a.abs(),
            peak_hz,
            tones,
        });
    }

    let preview = preview(&pass, m);
    let zoom = zoom(&pass, &plan, m, rows, &channels);
    let ((throughput, throughput_bin_s), gap_timeline, latency_hist, latency_us, lost, gaps) =
        match run.blocks()? {
            Some(blocks) => block_metrics(blocks, t_min, seconds, m, scan_bytes)?,
            None => (
                (Vec::new(), 0.0),
                Vec::new(),
                Vec::new(),
                None,
                m.counts.scans_lost,
                m.counts.gaps,
            ),
        };
    // Scans dropped after the last recorded one have no gap row: the
    // manifest counts them (`scans_lost_at_end`).
    let lost = lost + m.counts.scans_lost_at_end;
    Ok(RunMetrics {
        label: run.label.clone(),
        path: run.path.display().to_string(),
        partitions: run.partitions.clone(),
        board: m.board.clone(),
        status: m.status.to_string(),
        start: m.start_wall_clock.clone(),
        rate_hz: m.stream.rate_hz,
        format: m.stream.format.clone(),
        scans: rows,
        seq_range: (seq_min, seq_max),
        seconds,
        scans_lost: lost,
        gaps,
        scans_lost_inferred: m.counts.scans_lost_inferred,
        timestamps: m.stream.timestamps.clone(),
        signal: m.stream.signal.clone(),
        loss_detection: m.stream.loss_detection.clone(),
        loss_ratio: lost as f64 / (rows + lost).max(1) as f64,
        windows: (m.window_count() > 0).then_some((
            m.window_count(),
            m.counts.scans_outside_windows,
            m.counts.scans_lost_outside_windows,
        )),
        mean_mb_per_s: rows as f64 * scan_bytes / seconds / 1e6,
        latency_us,
        damage: run.damage.clone(),
        timebase: crate::timebase::read(&run.path, m.stream.rate_hz, seq_min)?,
        events: m.events.clone(),
        channels,
        health: crate::health::read(&run.path, m)?,
        throughput,
        gap_timeline,
        latency_hist,
        preview,
        spectrum,
        spectrum_segments,
        zoom,
        throughput_bin_s,
    })
}

/// The envelope (min/max of every channel per bin of the one pass), in
/// each channel's unit, against seconds from the first bin.
fn preview(
    pass: &crate::pass::Pass,
    m: &hsdaq_format::manifest::Manifest,
) -> Vec<Vec<(f64, f64, f64)>> {
    let t0 = pass.bins.values().next().map_or(0, |b| b.t_min);
    m.channels
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let (a, b) = (info.scale, info.offset);
            pass.bins
                .values()
                .map(|bin| {
                    let c = &bin.channels[i];
                    (
                        (bin.t_min - t0) as f64 / 1e9,
                        c.lo as f64 * a + b,
                        c.hi as f64 * a + b,
                    )
                })
                .collect()
        })
        .collect()
}

/// Per channel: (Hz, dBFS) points.
type Spectra = Vec<Vec<(f64, f64)>>;

/// Welch's method (Hann-windowed segments of at most `FFT_LEN` samples,
/// at most `WELCH_SEGMENTS` of them spread evenly over the whole run,
/// power averaged): the segments' length and count for a run of `rows`.
/// The pass transforms each segment as it goes by.
fn welch_plan(rows: u64) -> (usize, usize) {
    if rows < 16 {
        return (0, 0);
    }
    // The largest power of two that fits, at most FFT_LEN.
    let len = (1usize << (u64::BITS - 1 - rows.leading_zeros())).min(FFT_LEN);
    (len, (rows as usize / len).clamp(1, WELCH_SEGMENTS))
}

/// Amplitude spectrum per channel in dBFS (a full-scale sine reads 0) from
/// the pass's Welch sums. Returns the spectra and (segments, length).
fn spectra(w: &crate::pass::Welch, rate: u64, full_scale: f64) -> (Spectra, (usize, usize)) {
    if w.done == 0 {
        return (vec![Vec::new(); w.power.len()], (0, 0));
    }
    let out = w
        .power
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .map(|(k, &pw)| {
                    let amp = 2.0 * (pw / w.done as f64).sqrt() / w.gain / full_scale;
                    (
                        k as f64 * rate as f64 / w.len as f64,
                        20.0 * amp.max(1e-12).log10(),
                    )
                })
                .collect()
        })
        .collect();
    (out, (w.done, w.len))
}

/// The strongest tones of a spectrum, DC excluded: local maxima at least
/// 20 dB above the spectrum's median, strongest first, at most `TONES`.
fn tones(spectrum: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if spectrum.len() < 4 {
        return Vec::new();
    }
    let mut levels: Vec<f64> = spectrum.iter().map(|p| p.1).collect();
    levels.sort_by(f64::total_cmp);
    let floor = levels[levels.len() / 2] + 20.0;
    let mut peaks: Vec<(f64, f64)> = spectrum
        .windows(3)
        .skip(1)
        .filter(|w| w[1].1 > w[0].1 && w[1].1 >= w[2].1 && w[1].1 > floor)
        .map(|w| w[1])
        .collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
    peaks.truncate(TONES);
    peaks
}

/// The rows the pass keeps for the zoom: the middle `ZOOM_MAX` (+ 1, so
/// every narrower window centred the same way lies inside).
fn zoom_plan(rows: u64) -> (u64, usize) {
    let len = (ZOOM_MAX as u64 + 1).min(rows);
    ((rows - len) / 2, len as usize)
}

/// A few periods of each channel's strongest tone from the middle of the
/// run (raw samples, in the channel's unit), so the waveform itself shows:
/// cut from the middle rows the pass kept.
fn zoom(
    pass: &crate::pass::Pass,
    plan: &crate::pass::Plan,
    m: &hsdaq_format::manifest::Manifest,
    rows: u64,
    channels: &[ChannelStats],
) -> Vec<Vec<(f64, f64)>> {
    let rate = m.stream.rate_hz as f64;
    let want: Vec<usize> = channels
        .iter()
        .map(|c| {
            let periods = if c.peak_hz > 0.0 {
                4.0 * rate / c.peak_hz
            } else {
                256.0
            };
            (periods as usize).clamp(16, ZOOM_MAX)
        })
        .collect();
    let len = want.iter().copied().max().unwrap_or(0).min(rows as usize);
    let skip = ((rows as usize - len) / 2).saturating_sub(plan.zoom.0 as usize);
    pass.zoom
        .iter()
        .zip(&m.channels)
        .zip(&want)
        .map(|((x, info), &n)| {
            x.iter()
                .skip(skip)
                .take(n.min(len))
                .enumerate()
                .map(|(i, v)| (i as f64 * 1e3 / rate, v * info.scale + info.offset))
                .collect()
        })
        .collect()
}

type BlockMetrics = (
    (Vec<(f64, f64, f64)>, f64),
    Vec<(f64, u64)>,
    Vec<(f64, f64, u64)>,
    Option<(f64, f64, f64)>,
    u64,
    u64,
);

/// Throughput, gaps and latency from the block table.
fn block_metrics(
    blocks: LazyFrame,
    t_min: f64,
    seconds: f64,
    m: &hsdaq_format::manifest::Manifest,
    scan_bytes: f64,
) -> Result<BlockMetrics> {
    let rate = m.stream.rate_hz;
    let period_ns = 1e9 / rate as f64;
    // Bins of whole blocks, at least BLOCKS_PER_BIN, at most THROUGHPUT_BINS.
    let block_ns = (m.stream.block_scans as f64 * period_ns).max(1.0);
    let blocks_per_bin =
        ((seconds * 1e9 / THROUGHPUT_BINS as f64 / block_ns).ceil() as i64).max(BLOCKS_PER_BIN);
    let bin_ns = ((blocks_per_bin as f64 * block_ns) as i64).max(1);
    let a0 = blocks
        .clone()
        .select([col("arrival_ns").min().alias("a0")])
        .collect_with_engine(Engine::Streaming)?;
    let a0 = f64_at(&a0, "a0")? as i64;
    let tp = blocks
        .clone()
        .with_column(
            (col("arrival_ns") - lit(a0))
                .floor_div(lit(bin_ns))
                .alias("bin"),
        )
        .group_by([col("bin")])
        .agg([col("scans").cast(DataType::Int64).sum().alias("scans")])
        .sort(["bin"], Default::default())
        .collect_with_engine(Engine::Streaming)?;
    let bins = f64_col(&tp, "bin")?;
    let scans = f64_col(&tp, "scans")?;
    let per_s = 1e9 / bin_ns as f64;
    // The last bin is cut short by the end of the run: its rate would be a
    // drop that did not happen, so it is left out (unless it is the only one).
    let keep = if bins.len() > 1 {
        bins.len() - 1
    } else {
        bins.len()
    };
    let throughput = bins
        .iter()
        .zip(&scans)
        .take(keep)
        .map(|(&b, &s)| {
            (
                (b + 0.5) * bin_ns as f64 / 1e9,
                s * per_s * scan_bytes / 1e6,
                s * per_s,
            )
        })
        .collect();

    let gaps = blocks
        .clone()
        .filter(col("lost_before").gt(lit(0)))
        .select([col("t_ns"), col("lost_before")])
        .collect_with_engine(Engine::Streaming)?;
    let gt = f64_col(&gaps, "t_ns")?;
    let gl = f64_col(&gaps, "lost_before")?;
    let gap_timeline: Vec<(f64, u64)> = gt
        .iter()
        .zip(&gl)
        .map(|(&t, &l)| ((t - t_min) / 1e9, l as u64))
        .collect();
    let lost = gap_timeline.iter().map(|g| g.1).sum();

    // Latency of a block: from its last scan's timestamp to its arrival.
    let lat = (col("arrival_ns").cast(DataType::Float64)
        - col("t_ns").cast(DataType::Float64)
        - (col("scans").cast(DataType::Float64) - lit(1.0)) * lit(period_ns))
        / lit(1000.0);
    let lf = blocks.select([lat.alias("lat")]);
    let q = lf
        .clone()
        .select([
            col("lat").min().alias("min"),
            col("lat")
                .quantile(lit(0.5), QuantileMethod::Linear)
                .alias("p50"),
            col("lat")
                .quantile(lit(0.99), QuantileMethod::Linear)
                .alias("p99"),
            col("lat")
                .quantile(lit(0.999), QuantileMethod::Linear)
                .alias("p999"),
            col("lat").max().alias("max"),
        ])
        .collect_with_engine(Engine::Streaming)?;
    let (lo, p50, p99, p999, max) = (
        f64_at(&q, "min")?,
        f64_at(&q, "p50")?,
        f64_at(&q, "p99")?,
        f64_at(&q, "p999")?,
        f64_at(&q, "max")?,
    );
    let hi = p999.max(lo + 1.0);
    let width = (hi - lo) / LATENCY_BINS as f64;
    let h = lf
        .with_column(
            ((col("lat") - lit(lo)) / lit(width))
                .cast(DataType::Int64)
                .clip_max(lit(LATENCY_BINS as i64 - 1))
                .alias("b"),
        )
        .group_by([col("b")])
        .agg([len().alias("n")])
        .sort(["b"], Default::default())
        .collect_with_engine(Engine::Streaming)?;
    let hb = f64_col(&h, "b")?;
    let hn = f64_col(&h, "n")?;
    let latency_hist = hb
        .iter()
        .zip(&hn)
        .map(|(&b, &n)| (lo + b * width, width, n as u64))
        .collect();
    let count = gap_timeline.len() as u64;
    Ok((
        (throughput, bin_ns as f64 / 1e9),
        gap_timeline,
        latency_hist,
        (!p50.is_nan()).then_some((p50, p99, max)),
        lost,
        count,
    ))
}
