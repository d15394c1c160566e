//! Metrics of one run, each computed by a lazy polars query that returns
//! only aggregates, so a long recording never has to fit in memory.

use anyhow::{Context, Result};
use polars::prelude::*;
use rustfft::num_complex::Complex;
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

/// The variance of a channel from its per-bin counts, means and sums of
/// squared deviations (Chan et al.'s pairwise combination): exact to f64
/// rounding whatever the channel's offset.
fn pooled_variance(bins: &DataFrame, n: &str, mean: f64, rows: u64) -> Result<f64> {
    let f = |c: &str| -> Result<Vec<f64>> {
        Ok(bins
            .column(c)?
            .cast(&DataType::Float64)?
            .f64()?
            .into_iter()
            .map(|v| v.unwrap_or(0.0))
            .collect())
    };
    let (counts, sums, m2) = (f("n")?, f(&format!("{n}_sum"))?, f(&format!("{n}_m2"))?);
    let mut total = 0.0;
    for ((k, sum), m2) in counts.iter().zip(&sums).zip(&m2) {
        if *k > 0.0 {
            let d = sum / k - mean;
            total += m2 + k * d * d;
        }
    }
    Ok((total / rows.max(1) as f64).max(0.0))
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

    // One pass over the samples: per bin of `seq` (PREVIEW_BINS over the
    // run, its range from the segments' own records), the envelope and the
    // sums the run's totals and moments are then reduced from.
    let (seq_lo, seq_hi) = run.seq_range();
    let bucket = ((seq_hi - seq_lo + 1).max(1) + PREVIEW_BINS - 1) / PREVIEW_BINS;
    let mut aggs = vec![
        len().cast(DataType::Float64).alias("n"),
        col("seq").min().alias("seq_min"),
        col("seq").max().alias("seq_max"),
        col("t_ns").min().alias("t"),
        col("t_ns").max().alias("t_max"),
    ];
    for n in &names {
        let x = col(n.as_str()).cast(DataType::Float64);
        aggs.push(x.clone().min().alias(format!("{n}_lo")));
        aggs.push(x.clone().max().alias(format!("{n}_hi")));
        aggs.push(x.clone().sum().alias(format!("{n}_sum")));
        // Per bin, the sum of squared deviations from the bin's own mean
        // (polars' variance is computed stably); bins are then combined by
        // Chan's parallel rule in `pooled_variance`. E[x²] − E[x]² in f64
        // would lose the variance of a small signal on a large offset.
        aggs.push((x.clone().var(0) * len().cast(DataType::Float64)).alias(format!("{n}_m2")));
    }
    let bins = samples
        .clone()
        .with_column(
            (col("seq") - lit(seq_lo))
                .floor_div(lit(bucket))
                .alias("bin"),
        )
        .group_by([col("bin")])
        .agg(aggs)
        .sort(["bin"], Default::default())
        .collect_with_engine(Engine::Streaming)
        .context("cannot read the samples")?;
    let mut totals = vec![
        col("n").sum().alias("rows"),
        col("seq_min").min(),
        col("seq_max").max(),
        col("t").min().alias("t_min"),
        col("t_max").max(),
    ];
    for n in &names {
        let rows = col("n").sum();
        totals.push(col(format!("{n}_lo")).min().alias(format!("{n}_min")));
        totals.push(col(format!("{n}_hi")).max().alias(format!("{n}_max")));
        totals.push((col(format!("{n}_sum")).sum() / rows.clone()).alias(format!("{n}_mean")));
    }
    let tot = bins.clone().lazy().select(totals).collect()?;
    let rows = f64_at(&tot, "rows")? as u64;
    let seq_min = f64_at(&tot, "seq_min")? as i64;
    let seq_max = f64_at(&tot, "seq_max")? as i64;
    let t_min = f64_at(&tot, "t_min")?;
    let t_max = f64_at(&tot, "t_max")?;
    let seconds = ((t_max - t_min) / 1e9).max(1.0 / m.stream.rate_hz as f64);

    let full_scale = if m.stream.format == "i32" {
        2f64.powi(31)
    } else {
        32768.0
    };
    let (spectrum, spectrum_segments) =
        welch(&samples, &names, m.stream.rate_hz, rows, full_scale)?;
    let mut channels = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let info = &m.channels[i];
        let (a, b) = (info.scale, info.offset);
        let mean = f64_at(&tot, &format!("{n}_mean"))?;
        let var = pooled_variance(&bins, n, mean, rows)?;
        let (lo, hi) = (
            f64_at(&tot, &format!("{n}_min"))? * a + b,
            f64_at(&tot, &format!("{n}_max"))? * a + b,
        );
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

    let preview = preview(&bins, &names, m)?;
    let zoom = zoom(&samples, m, rows, &channels)?;
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
    df: &DataFrame,
    names: &[String],
    m: &hsdaq_format::manifest::Manifest,
) -> Result<Vec<Vec<(f64, f64, f64)>>> {
    let t = f64_col(df, "t")?;
    let t0 = t.first().copied().unwrap_or(0.0);
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let (a, b) = (m.channels[i].scale, m.channels[i].offset);
        let lo = f64_col(df, &format!("{n}_lo"))?;
        let hi = f64_col(df, &format!("{n}_hi"))?;
        out.push(
            t.iter()
                .zip(lo.iter().zip(&hi))
                .map(|(&t, (&l, &h))| ((t - t0) / 1e9, l * a + b, h * a + b))
                .collect(),
        );
    }
    Ok(out)
}

/// Per channel: (Hz, dBFS) points.
type Spectra = Vec<Vec<(f64, f64)>>;

/// Amplitude spectrum per channel in dBFS (a full-scale sine reads 0),
/// Welch's method: Hann-windowed segments of `FFT_LEN` samples spread
/// evenly over the whole run (each read alone, so memory stays one
/// segment), power averaged. Returns the spectra and (segments, length).
fn welch(
    samples: &LazyFrame,
    names: &[String],
    rate: u64,
    rows: u64,
    full_scale: f64,
) -> Result<(Spectra, (usize, usize))> {
    if rows < 16 {
        return Ok((vec![Vec::new(); names.len()], (0, 0)));
    }
    // The largest power of two that fits, at most FFT_LEN.
    let len = (1usize << (u64::BITS - 1 - rows.leading_zeros())).min(FFT_LEN);
    let segs = ((rows as usize / len).clamp(1, WELCH_SEGMENTS)).max(1);
    let cols: Vec<Expr> = names.iter().map(|n| col(n.as_str())).collect();
    let window: Vec<f64> = (0..len)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / len as f64).cos())
        .collect();
    let gain: f64 = window.iter().sum();
    let fft = rustfft::FftPlanner::<f64>::new().plan_fft_forward(len);
    let mut power = vec![vec![0.0f64; len / 2]; names.len()];
    for k in 0..segs {
        let off = if segs == 1 {
            0
        } else {
            k as u64 * (rows - len as u64) / (segs as u64 - 1)
        };
        let df = samples
            .clone()
            .select(cols.clone())
            .slice(off as i64, len as IdxSize)
            .collect_with_engine(Engine::Streaming)?;
        for (c, n) in names.iter().enumerate() {
            let x = f64_col(&df, n)?;
            let mean = x.iter().sum::<f64>() / x.len().max(1) as f64;
            let mut buf: Vec<Complex<f64>> = x
                .iter()
                .zip(&window)
                .map(|(v, w)| Complex::new((v - mean) * w, 0.0))
                .collect();
            buf.resize(len, Complex::new(0.0, 0.0));
            fft.process(&mut buf);
            for (p, b) in power[c].iter_mut().zip(&buf) {
                *p += b.norm_sqr();
            }
        }
    }
    let out = power
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .map(|(k, &pw)| {
                    let amp = 2.0 * (pw / segs as f64).sqrt() / gain / full_scale;
                    (
                        k as f64 * rate as f64 / len as f64,
                        20.0 * amp.max(1e-12).log10(),
                    )
                })
                .collect()
        })
        .collect();
    Ok((out, (segs, len)))
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

/// A few periods of each channel's strongest tone from the middle of the
/// run (raw samples, in the channel's unit), so the waveform itself shows.
fn zoom(
    samples: &LazyFrame,
    m: &hsdaq_format::manifest::Manifest,
    rows: u64,
    channels: &[ChannelStats],
) -> Result<Vec<Vec<(f64, f64)>>> {
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
    if len == 0 {
        return Ok(vec![Vec::new(); channels.len()]);
    }
    let cols: Vec<Expr> = channels.iter().map(|c| col(c.name.as_str())).collect();
    let df = samples
        .clone()
        .select(cols)
        .slice(((rows as usize - len) / 2) as i64, len as IdxSize)
        .collect_with_engine(Engine::Streaming)?;
    channels
        .iter()
        .zip(&m.channels)
        .zip(&want)
        .map(|((c, info), &n)| {
            let x = f64_col(&df, &c.name)?;
            Ok(x.iter()
                .take(n)
                .enumerate()
                .map(|(i, v)| (i as f64 * 1e3 / rate, v * info.scale + info.offset))
                .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A ±0.5 LSB signal on an offset of 10⁹ (an i32 channel with a DC
    /// level): the pooled variance is exact, E[x²] − E[x]² is not.
    #[test]
    fn variance_survives_a_large_offset() {
        let x: Vec<f64> = (0..4000).map(|i| 1e9 + (i % 2) as f64).collect();
        let df = DataFrame::new(x.len(), vec![Column::new("v".into(), x.clone())]).unwrap();
        let bins = df
            .lazy()
            .with_row_index("i", None)
            .with_column((col("i") / lit(1000u32)).alias("bin"))
            .group_by([col("bin")])
            .agg([
                len().cast(DataType::Float64).alias("n"),
                col("v").sum().alias("v_sum"),
                (col("v").var(0) * len().cast(DataType::Float64)).alias("v_m2"),
            ])
            .collect()
            .unwrap();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = pooled_variance(&bins, "v", mean, x.len() as u64).unwrap();
        assert!((var - 0.25).abs() < 1e-9, "{var}");
        let naive = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 - mean * mean;
        assert!(
            (naive - 0.25).abs() > 1e-3,
            "the naive formula would have been fine: {naive}"
        );
    }
}
