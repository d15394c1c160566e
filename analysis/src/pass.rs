//! The one pass over a run's samples. polars streams the segments in
//! order (`sink_batches`, decoding on its own threads) and this module folds
//! each batch into everything the report needs from the samples
//! themselves: per bin of `seq` the envelope and exact integer sums (the
//! run's totals and moments come from those), the Welch segments of the
//! spectrum and the zoom window. One read of every value, folded by plain
//! loops while polars decodes the next batch, is what keeps the report
//! near a bare scan of the same columns (`analysis bench` measures it);
//! memory is a few batches and one FFT segment.

use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use polars::prelude::*;
use rustfft::num_complex::Complex;

/// Batches polars hands over at once: enough that decoding runs ahead of
/// the fold, few enough that memory stays a few batches.
const QUEUE: usize = 2;
/// How often a long pass says how far it is.
const PROGRESS: Duration = Duration::from_secs(2);

/// A channel's sample type as the fold sees it.
trait Sample: Copy + Into<i64> + Ord {
    /// Its polars column type (`i16` → Int16, …).
    type Polars: PolarsNumericType<Native = Self>;
    /// Σx² of a slice, exactly.
    fn sum_sq(xs: &[Self]) -> i128;
    /// Σx of a slice, exactly.
    fn sum(xs: &[Self]) -> i64 {
        xs.iter().map(|&x| x.into()).sum()
    }
}

impl Sample for i16 {
    type Polars = Int16Type;
    fn sum_sq(xs: &[i16]) -> i128 {
        // x² ≤ 2³⁰, so a batch (far below 2³³ values) cannot overflow i64.
        xs.iter().map(|&x| i64::from(x) * i64::from(x)).sum::<i64>() as i128
    }
}

impl Sample for i32 {
    type Polars = Int32Type;
    fn sum_sq(xs: &[i32]) -> i128 {
        xs.iter()
            .map(|&x| (i64::from(x) * i64::from(x)) as i128)
            .sum()
    }
}

/// One channel over one bin: extremes and exact sums.
#[derive(Clone, Copy, Debug)]
pub struct Moments {
    /// Smallest raw value.
    pub lo: i64,
    /// Largest raw value.
    pub hi: i64,
    /// Σx.
    pub sum: i128,
    /// Σx².
    pub sum_sq: i128,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            lo: i64::MAX,
            hi: i64::MIN,
            sum: 0,
            sum_sq: 0,
        }
    }
}

impl Moments {
    fn fold<T: Sample>(&mut self, xs: &[T]) {
        if let (Some(&lo), Some(&hi)) = (xs.iter().min(), xs.iter().max()) {
            self.lo = self.lo.min(lo.into());
            self.hi = self.hi.max(hi.into());
        }
        self.sum += i128::from(T::sum(xs));
        self.sum_sq += T::sum_sq(xs);
    }

    /// n × the variance of `n` values, from the exact sums: n·Σx² − (Σx)²
    /// is computed in integers, so a small signal on a large offset keeps
    /// its variance (E[x²] − E[x]² in f64 would not).
    fn m2(&self, n: u64) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let n = n as i128;
        match n
            .checked_mul(self.sum_sq)
            .and_then(|a| a.checked_sub(self.sum.checked_mul(self.sum)?))
        {
            Some(num) => num as f64 / n as f64,
            // Beyond i128 (bins of > 2³² full-scale i32 values): f64.
            None => self.sum_sq as f64 - (self.sum as f64).powi(2) / n as f64,
        }
    }
}

/// One bin of `seq`: its rows, its first time and every channel's moments.
#[derive(Clone, Debug)]
pub struct Bin {
    /// Rows in the bin.
    pub n: u64,
    /// Smallest `t_ns` in the bin.
    pub t_min: i64,
    /// Per channel.
    pub channels: Vec<Moments>,
}

/// Rows `off..off + len` of every channel, as f64.
struct Capture {
    off: u64,
    len: usize,
    bufs: Vec<Vec<f64>>,
}

impl Capture {
    fn new(off: u64, len: usize, channels: usize) -> Self {
        Capture {
            off,
            len,
            bufs: vec![Vec::with_capacity(len); channels],
        }
    }

    /// Appends channel `c`'s part of a batch that starts at row `row`.
    fn take<T: Sample>(&mut self, row: u64, c: usize, xs: &[T]) {
        let end = self.off + self.len as u64;
        let (a, b) = (self.off.max(row), end.min(row + xs.len() as u64));
        if b > a {
            let s = &xs[(a - row) as usize..(b - row) as usize];
            self.bufs[c].extend(s.iter().map(|&x| Into::<i64>::into(x) as f64));
        }
    }

    fn full(&self) -> bool {
        self.bufs.iter().all(|b| b.len() == self.len)
    }
}

/// Welch's method over the pass: Hann-windowed segments at planned rows,
/// each transformed as soon as it is whole, power summed.
pub struct Welch {
    /// Samples per segment.
    pub len: usize,
    offsets: Vec<u64>,
    next: usize,
    current: Option<Capture>,
    window: Vec<f64>,
    fft: std::sync::Arc<dyn rustfft::Fft<f64>>,
    /// Summed power per channel per bin (len / 2 bins).
    pub power: Vec<Vec<f64>>,
    /// Segments transformed.
    pub done: usize,
    /// Σ of the window (its coherent gain × len).
    pub gain: f64,
}

impl Welch {
    /// Plans `segments` segments of `len` samples spread evenly over
    /// `rows` (the first at row 0, the last ending at the last row).
    pub fn new(rows: u64, len: usize, segments: usize, channels: usize) -> Self {
        let offsets = (0..segments)
            .map(|k| {
                if segments <= 1 {
                    0
                } else {
                    k as u64 * (rows - len as u64) / (segments as u64 - 1)
                }
            })
            .collect();
        let window: Vec<f64> = (0..len)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / len as f64).cos())
            .collect();
        Welch {
            len,
            offsets,
            next: 0,
            current: None,
            gain: window.iter().sum(),
            window,
            fft: rustfft::FftPlanner::<f64>::new().plan_fft_forward(len.max(1)),
            power: vec![vec![0.0; len / 2]; channels],
            done: 0,
        }
    }

    /// The segment the batch at `row` (of `rows` rows) may feed, if any.
    fn open(&mut self, row: u64, rows: usize, channels: usize) -> Option<&mut Capture> {
        if self.current.is_none() {
            let off = *self.offsets.get(self.next)?;
            if off >= row + rows as u64 {
                return None;
            }
            self.current = Some(Capture::new(off, self.len, channels));
        }
        self.current.as_mut()
    }

    /// Transforms the segment once it is whole; says whether it was.
    fn close_if_full(&mut self) -> bool {
        let Some(cap) = self.current.take_if(|c| c.full()) else {
            return false;
        };
        for (c, x) in cap.bufs.iter().enumerate() {
            let mean = x.iter().sum::<f64>() / x.len().max(1) as f64;
            let mut buf: Vec<Complex<f64>> = x
                .iter()
                .zip(&self.window)
                .map(|(v, w)| Complex::new((v - mean) * w, 0.0))
                .collect();
            self.fft.process(&mut buf);
            for (p, b) in self.power[c].iter_mut().zip(&buf) {
                *p += b.norm_sqr();
            }
        }
        self.done += 1;
        self.next += 1;
        true
    }
}

/// What the pass is asked to collect, decided from the segments' records
/// before it starts.
pub struct Plan {
    /// `seq` of the first bin's start.
    pub seq_lo: i64,
    /// Scans per bin.
    pub bucket: i64,
    /// Rows the segments' records promise.
    pub rows: u64,
    /// Welch segment length (0: no spectrum) and count.
    pub welch: (usize, usize),
    /// The zoom window: first row and length.
    pub zoom: (u64, usize),
}

/// What the pass found.
pub struct Pass {
    /// Bins by index ((seq − seq_lo) / bucket), in order.
    pub bins: BTreeMap<i64, Bin>,
    /// Rows read.
    pub rows: u64,
    /// Smallest and largest `seq`.
    pub seq: (i64, i64),
    /// Smallest and largest `t_ns`.
    pub t: (i64, i64),
    /// The spectrum's accumulators.
    pub welch: Welch,
    /// The zoom window's rows, per channel (raw values).
    pub zoom: Vec<Vec<f64>>,
}

impl Pass {
    /// Every channel over the whole run: extremes, mean and variance (NaN
    /// extremes and mean, variance 0, when no row was read).
    pub fn totals(&self, channels: usize) -> Vec<(f64, f64, f64, f64)> {
        (0..channels)
            .map(|c| {
                let mut lo = i64::MAX;
                let mut hi = i64::MIN;
                let mut sum = 0i128;
                for b in self.bins.values() {
                    lo = lo.min(b.channels[c].lo);
                    hi = hi.max(b.channels[c].hi);
                    sum += b.channels[c].sum;
                }
                if self.rows == 0 {
                    return (f64::NAN, f64::NAN, f64::NAN, 0.0);
                }
                let mean = sum as f64 / self.rows as f64;
                (lo as f64, hi as f64, mean, self.variance(c, mean))
            })
            .collect()
    }

    /// Channel `c`'s variance: each bin's exact m2 combined by Chan et
    /// al.'s pairwise rule, so rounding is relative to the spread within a
    /// bin, never to the channel's offset.
    fn variance(&self, c: usize, mean: f64) -> f64 {
        let mut total = 0.0;
        for b in self.bins.values().filter(|b| b.n > 0) {
            let m = &b.channels[c];
            let d = m.sum as f64 / b.n as f64 - mean;
            total += m.m2(b.n) + b.n as f64 * d * d;
        }
        (total / self.rows.max(1) as f64).max(0.0)
    }
}

/// Reads `samples` (`seq`, `t_ns` and `names`, of sample type `format`)
/// once, in order, folding every batch.
pub fn run(samples: &LazyFrame, names: &[String], format: &str, plan: &Plan) -> Result<Pass> {
    match format {
        "i32" => fold::<i32>(samples, names, plan),
        _ => fold::<i16>(samples, names, plan),
    }
}

fn fold<T: Sample>(samples: &LazyFrame, names: &[String], plan: &Plan) -> Result<Pass> {
    let mut cols = vec![col("seq"), col("t_ns")];
    cols.extend(names.iter().map(|n| col(n.as_str())));
    let (tx, rx) = sync_channel::<DataFrame>(QUEUE);
    // The callback runs on polars' threads; a closed channel (the fold
    // failed) stops the query early.
    let query = samples.clone().select(cols).sink_batches(
        PlanCallback::new(move |df: DataFrame| Ok(tx.send(df).is_err())),
        true,
        // polars' own morsels, as decoded: buffering them to a size would
        // copy every value once more.
        None,
    )?;
    let mut pass = Pass {
        bins: BTreeMap::new(),
        rows: 0,
        seq: (i64::MAX, i64::MIN),
        t: (i64::MAX, i64::MIN),
        welch: Welch::new(plan.rows, plan.welch.0, plan.welch.1, names.len()),
        zoom: Vec::new(),
    };
    let mut zoom = Capture::new(plan.zoom.0, plan.zoom.1, names.len());
    std::thread::scope(|s| -> Result<()> {
        let reader = s.spawn(move || query.collect_with_engine(Engine::Streaming));
        let mut said = Instant::now();
        let folded: Result<()> = rx.iter().try_for_each(|df| {
            batch::<T>(&df, names, plan, &mut pass, &mut zoom)?;
            if said.elapsed() >= PROGRESS {
                said = Instant::now();
                eprintln!(
                    "analysis: read {} of {} scans ({:.0} %)",
                    pass.rows,
                    plan.rows,
                    100.0 * pass.rows as f64 / plan.rows.max(1) as f64
                );
            }
            Ok(())
        });
        // Dropping the receiver stops the reader if the fold failed.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the polars reader panicked"))?;
        folded?;
        read.context("cannot read the samples")?;
        Ok(())
    })?;
    pass.zoom = zoom.bufs;
    Ok(pass)
}

/// Folds one batch into the pass.
fn batch<T: Sample>(
    df: &DataFrame,
    names: &[String],
    plan: &Plan,
    pass: &mut Pass,
    zoom: &mut Capture,
) -> Result<()> {
    let rows = df.height();
    if rows == 0 {
        return Ok(());
    }
    let seq = df.column("seq")?.as_materialized_series().i64()?.rechunk();
    let seq = seq.cont_slice().context("`seq` has missing values")?;
    let t = df.column("t_ns")?.as_materialized_series().i64()?.rechunk();
    let t = t.cont_slice().context("`t_ns` has missing values")?;
    let ranges = bin_ranges(seq, plan.seq_lo, plan.bucket);
    for &(a, b, bin) in &ranges {
        let entry = pass.bins.entry(bin).or_insert_with(|| Bin {
            n: 0,
            t_min: i64::MAX,
            channels: vec![Moments::default(); names.len()],
        });
        entry.n += (b - a) as u64;
        entry.t_min = entry.t_min.min(*t[a..b].iter().min().unwrap_or(&i64::MAX));
    }
    pass.seq.0 = pass.seq.0.min(*seq.iter().min().unwrap_or(&i64::MAX));
    pass.seq.1 = pass.seq.1.max(*seq.iter().max().unwrap_or(&i64::MIN));
    pass.t.0 = pass.t.0.min(*t.iter().min().unwrap_or(&i64::MAX));
    pass.t.1 = pass.t.1.max(*t.iter().max().unwrap_or(&i64::MIN));
    let dtype = <T::Polars as PolarsDataType>::get_static_dtype();
    let series = names
        .iter()
        .map(|n| Ok(df.column(n)?.as_materialized_series().strict_cast(&dtype)?))
        .collect::<Result<Vec<Series>>>()?;
    let arrays = series
        .iter()
        .map(|s| Ok(s.unpack::<T::Polars>()?.rechunk()))
        .collect::<Result<Vec<_>>>()?;
    let columns = arrays
        .iter()
        .zip(names)
        .map(|(ca, n)| {
            ca.cont_slice()
                .with_context(|| format!("column {n} has missing values"))
        })
        .collect::<Result<Vec<&[T]>>>()?;
    let row = pass.rows;
    for (c, xs) in columns.iter().enumerate() {
        for &(a, b, bin) in &ranges {
            if let Some(e) = pass.bins.get_mut(&bin) {
                e.channels[c].fold(&xs[a..b]);
            }
        }
        zoom.take(row, c, xs);
    }
    // A batch may finish one Welch segment and hold the next ones.
    while let Some(cap) = pass.welch.open(row, rows, names.len()) {
        for (c, xs) in columns.iter().enumerate() {
            cap.take(row, c, xs);
        }
        if !pass.welch.close_if_full() {
            break;
        }
    }
    pass.rows += rows as u64;
    Ok(())
}

/// Splits a batch into runs of rows in the same bin of `seq`:
/// (start, end, bin). `seq` rises through a run, so this is a compare per
/// row; a row out of order only starts a new run.
fn bin_ranges(seq: &[i64], seq_lo: i64, bucket: i64) -> Vec<(usize, usize, i64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let bin = (seq[i] - seq_lo).div_euclid(bucket);
        let (lo, hi) = (seq_lo + bin * bucket, seq_lo + (bin + 1) * bucket);
        let j = i
            + 1
            + seq[i + 1..]
                .iter()
                .take_while(|&&s| s >= lo && s < hi)
                .count();
        out.push((i, j, bin));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ±0.5 LSB signal on an offset of 10⁹ (an i32 channel with a DC
    /// level): the exact sums keep the variance, E[x²] − E[x]² does not.
    #[test]
    fn variance_survives_a_large_offset() {
        let x: Vec<i32> = (0..4000).map(|i| 1_000_000_000 + (i % 2)).collect();
        let mut bins = BTreeMap::new();
        for (k, part) in x.chunks(1000).enumerate() {
            let mut m = Moments::default();
            m.fold(part);
            bins.insert(
                k as i64,
                Bin {
                    n: part.len() as u64,
                    t_min: 0,
                    channels: vec![m],
                },
            );
        }
        let pass = Pass {
            bins,
            rows: x.len() as u64,
            seq: (0, 0),
            t: (0, 0),
            welch: Welch::new(0, 0, 0, 1),
            zoom: Vec::new(),
        };
        let (lo, hi, mean, var) = pass.totals(1)[0];
        assert_eq!((lo, hi), (1e9, 1e9 + 1.0));
        assert!((mean - 1_000_000_000.5).abs() < 1e-6, "{mean}");
        assert!((var - 0.25).abs() < 1e-9, "{var}");
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let naive = xf.iter().map(|v| v * v).sum::<f64>() / xf.len() as f64 - mean * mean;
        assert!(
            (naive - 0.25).abs() > 1e-3,
            "the naive formula would have been fine: {naive}"
        );
    }

    /// Bins split where `seq` leaves a bin, including a jump back.
    #[test]
    fn ranges_follow_the_bins() {
        let seq = [10, 11, 12, 13, 14, 20, 21, 5, 6];
        let r = bin_ranges(&seq, 10, 3);
        assert_eq!(r, vec![(0, 3, 0), (3, 5, 1), (5, 7, 3), (7, 9, -2)]);
    }
}
