//! The live view's oscilloscope: turns one raw capture from the tap into
//! what the page draws — a trace per channel held on a trigger edge (the
//! `--trigger` level when one is set, else an automatic rising edge through
//! the middle of the signal; free-running when no edge is found), cut to
//! each page's time window and thinned to at most [`TRACE_POINTS`] values,
//! and a spectrum per channel in dBFS on a log-frequency axis. All of it
//! runs on the view's thread, never in the drain.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde_json::{json, Value};

use super::tap::{Capture, CAPTURE_MAX_SCANS};
use crate::trigger::Level;

/// Values a trace sends per channel: raw below it, min/max pairs above.
pub const TRACE_POINTS: usize = 1000;
/// Longest FFT (resolution: rate ÷ this).
const FFT_MAX: usize = 1 << 14;
/// Points of the spectrum sent per channel (log-spaced, max of each span).
const SPECTRUM_POINTS: usize = 400;
/// The trigger sits this far into the trace (a fifth of the window).
const PRE_FRACTION: usize = 5;
/// Scans a second the scope may copy however fast the stream: below this
/// the copy costs the drain nothing worth counting.
const FREE_SCANS_PER_S: f64 = 330_000.0;
/// Above it, the share of the stream the scope copies at most (the drain
/// pays about a quarter more for the blocks it copies: `acquire bench`).
pub const DUTY: f64 = 0.05;

/// The scope's settings and its FFT plan.
pub struct ScopeView {
    rate_hz: u64,
    /// Full scale of the sample type, in counts (dBFS reference).
    full_scale: f64,
    trigger: Option<Level>,
    fft: Option<(usize, Arc<dyn Fft<f64>>)>,
    planner: FftPlanner<f64>,
}

/// One capture, triggered and analysed: shared by every page.
pub struct Shot {
    capture_first: u64,
    /// Scans held.
    len: usize,
    /// Where the trigger fired in the capture, and how it was found.
    spectrum: Value,
}

impl ScopeView {
    /// A scope for a stream of `rate_hz` whose samples are `bits` wide.
    pub fn new(rate_hz: u64, bits: u32, trigger: Option<Level>) -> Self {
        Self {
            rate_hz,
            full_scale: 2f64.powi(bits as i32 - 1),
            trigger,
            fft: None,
            planner: FftPlanner::new(),
        }
    }

    /// Scans to capture for pages whose widest window is `window_ms`: two
    /// windows (one to find the edge in, one to show after it), and at
    /// least a quarter second or FFT_MAX scans for the spectrum.
    pub fn capture_scans(&self, window_ms: u32) -> usize {
        let window = self.window_scans(window_ms);
        let spectrum = (self.rate_hz as usize / 4).min(FFT_MAX);
        (2 * window).max(spectrum).clamp(16, CAPTURE_MAX_SCANS)
    }

    /// How long after asking for a capture of `scans` the scope may ask for
    /// the next: a twentieth of a second, or longer so that it copies at
    /// most [`DUTY`] of a fast stream.
    pub fn ask_every(&self, scans: usize) -> std::time::Duration {
        let duration = scans as f64 / self.rate_hz.max(1) as f64;
        let budget = (duration / DUTY).min(scans as f64 / FREE_SCANS_PER_S);
        std::time::Duration::from_secs_f64(budget.max(0.05))
    }

    /// Scans in a window of `ms` (at least 8, at most half a capture).
    pub fn window_scans(&self, ms: u32) -> usize {
        let n = (u64::from(ms) * self.rate_hz / 1000) as usize;
        n.clamp(8, CAPTURE_MAX_SCANS / 2)
    }

    /// The spectrum of a capture (computed once, for every page).
    pub fn shot(&mut self, c: &Capture) -> Shot {
        Shot {
            capture_first: c.first_scan,
            len: c.len(),
            spectrum: self.spectrum(c),
        }
    }

    /// The trace a page with a `window_ms` window draws from `c`.
    pub fn trace(&self, c: &Capture, shot: &Shot, window_ms: u32) -> Value {
        let w = self.window_scans(window_ms).min(shot.len);
        let pre = w / PRE_FRACTION;
        let (found, how) = self.find_edge(c, pre, w);
        let start = match found {
            Some(i) => i - pre,
            None => shot.len - w,
        };
        let step = w.div_ceil(TRACE_POINTS / 2).max(1);
        let channels: Vec<Value> = c
            .cols
            .iter()
            .map(|v| {
                let v = &v[start..start + w];
                if w <= TRACE_POINTS {
                    json!({ "v": v })
                } else {
                    let (lo, hi): (Vec<i32>, Vec<i32>) = v
                        .chunks(step)
                        .map(|b| (*b.iter().min().unwrap(), *b.iter().max().unwrap()))
                        .unzip();
                    json!({ "min": lo, "max": hi })
                }
            })
            .collect();
        json!({
            "first_scan": shot.capture_first + start as u64,
            "window_scans": w,
            "window_s": w as f64 / self.rate_hz as f64,
            "step": if w <= TRACE_POINTS { 1 } else { step },
            "trigger_at": found.map(|_| pre),
            "trigger": how,
            "channels": channels,
            "spectrum": shot.spectrum,
        })
    }

    /// The edge the trace is held on: the first in the capture with `pre`
    /// scans before it and `w − pre` after. Returns where, and in words how.
    fn find_edge(&self, c: &Capture, pre: usize, w: usize) -> (Option<usize>, String) {
        // `w` is at most the capture's length (`trace`).
        let len = c.len();
        let region = pre..len - (w - pre) + 1;
        let (level, how) = match &self.trigger {
            Some(t) if t.channel() < c.cols.len() => (t.clone(), "the --trigger edge".to_string()),
            _ => {
                let v = &c.cols[0];
                let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
                if i64::from(hi) - i64::from(lo) < 4 {
                    return (None, "free run (channel 0 is flat)".into());
                }
                (
                    Level::auto(0, lo, hi),
                    "auto: channel 0 rising through its middle".into(),
                )
            }
        };
        let v = &c.cols[level.channel()][region.clone()];
        match level.first_edge(v) {
            Some(i) => (Some(region.start + i), how),
            None => (None, format!("free run (no edge for {how})")),
        }
    }

    /// Per channel: Hann-windowed FFT of the capture's first power-of-two
    /// scans, magnitude in dBFS (a full-scale sine reads 0 dB), thinned to
    /// log-spaced points (the largest bin of each span), and the peak.
    fn spectrum(&mut self, c: &Capture) -> Value {
        let len = c.len();
        if len < 16 {
            return Value::Null;
        }
        let n = (1usize << (usize::BITS - 1 - len.leading_zeros())).min(FFT_MAX);
        let fft = match &self.fft {
            Some((m, f)) if *m == n => f.clone(),
            _ => {
                let f = self.planner.plan_fft_forward(n);
                self.fft = Some((n, f.clone()));
                f
            }
        };
        let hann: Vec<f64> = (0..n)
            .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
            .collect();
        let gain: f64 = hann.iter().sum::<f64>() / 2.0;
        let bin_hz = self.rate_hz as f64 / n as f64;
        let edges = log_edges(n / 2, SPECTRUM_POINTS);
        let mut buf = vec![Complex::new(0.0, 0.0); n];
        let mut db = Vec::new();
        let mut peaks = Vec::new();
        for col in &c.cols {
            let mean = col[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
            for (b, (&x, h)) in buf.iter_mut().zip(col.iter().zip(&hann)) {
                *b = Complex::new((f64::from(x) - mean) * h, 0.0);
            }
            fft.process(&mut buf);
            let mag: Vec<f64> = buf[..n / 2]
                .iter()
                .map(|z| 20.0 * (z.norm() / gain / self.full_scale).max(1e-12).log10())
                .collect();
            let peak = (1..n / 2)
                .max_by(|&a, &b| mag[a].total_cmp(&mag[b]))
                .unwrap_or(1);
            peaks.push(peak as f64 * bin_hz);
            db.push(
                edges
                    .windows(2)
                    .map(|e| {
                        let m = mag[e[0]..e[1]].iter().copied().fold(f64::MIN, f64::max);
                        (m * 10.0).round() / 10.0
                    })
                    .collect::<Vec<f64>>(),
            );
        }
        let freqs: Vec<f64> = edges.windows(2).map(|e| e[0] as f64 * bin_hz).collect();
        json!({ "fft_len": n, "bin_hz": bin_hz, "freqs": freqs, "db": db, "peak_hz": peaks })
    }
}

/// Bin indexes 1..=bins split into at most `points` log-spaced spans
/// (each at least one bin): the edges, ascending.
fn log_edges(bins: usize, points: usize) -> Vec<usize> {
    let mut edges = vec![1];
    let ratio = (bins as f64).powf(1.0 / points as f64);
    let mut x = 1.0f64;
    while *edges.last().unwrap() < bins {
        x *= ratio;
        let e = (x.round() as usize)
            .max(edges.last().unwrap() + 1)
            .min(bins);
        edges.push(e);
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u64, hz: f64, n: usize, phase: f64) -> Capture {
        let v = (0..n)
            .map(|i| {
                (16000.0 * (std::f64::consts::TAU * hz * i as f64 / rate as f64 + phase).sin())
                    .round() as i32
            })
            .collect();
        Capture {
            first_scan: 1000,
            want: n,
            cols: vec![v],
        }
    }

    #[test]
    fn a_tone_is_held_on_its_rising_edge_and_peaks_at_its_frequency() {
        let mut s = ScopeView::new(200_000, 16, None);
        for phase in [0.0, 1.0, 2.5] {
            let c = tone(200_000, 1000.0, 20_000, phase);
            let shot = s.shot(&c);
            let t = s.trace(&c, &shot, 5);
            let v: Vec<i64> = serde_json::from_value(t["channels"][0]["v"].clone()).unwrap();
            let at = t["trigger_at"].as_u64().expect("an edge") as usize;
            assert_eq!((v.len(), at), (1000, 200));
            // Whatever the capture's phase, the trace crosses upward at the
            // trigger point and peaks a quarter period (50 scans) later.
            assert!(
                v[at - 1] <= 0 && v[at] > 0,
                "{phase}: {} {}",
                v[at - 1],
                v[at]
            );
            assert!(v[at + 50] > 15_900, "{phase}: {}", v[at + 50]);
            let peak = t["spectrum"]["peak_hz"][0].as_f64().unwrap();
            let bin = t["spectrum"]["bin_hz"].as_f64().unwrap();
            assert!((peak - 1000.0).abs() <= bin, "peak {peak} Hz, bin {bin} Hz");
            let top = t["spectrum"]["db"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .fold(f64::MIN, f64::max);
            // 16000 of 32768 full scale: −6.2 dBFS.
            assert!((top + 6.2).abs() < 0.6, "{top} dBFS");
        }
    }

    #[test]
    fn a_flat_signal_free_runs_and_wide_windows_send_min_max_pairs() {
        let mut s = ScopeView::new(200_000, 16, None);
        let c = Capture {
            first_scan: 0,
            want: 40_000,
            cols: vec![vec![7; 40_000]],
        };
        let shot = s.shot(&c);
        let t = s.trace(&c, &shot, 100);
        assert!(t["trigger_at"].is_null());
        assert!(t["trigger"].as_str().unwrap().starts_with("free run"));
        assert_eq!(t["channels"][0]["min"].as_array().unwrap().len(), 500);
        assert_eq!(t["first_scan"], 20_000);
    }
}
