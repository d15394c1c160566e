//! Loss inferred from time: for a source whose scans carry timestamps but
//! no counter (an IIO device's timestamp channel), the scans missing before
//! a scan are the whole sample periods its timestamp lies beyond where the
//! stream's clock says it should be.
//!
//! "Where it should be" is tracked, not assumed: a small phase-and-frequency
//! loop follows the source's real rate (a crystal's ppm, a trigger's
//! rounding) and absorbs timestamp jitter, so neither drift nor a late
//! timestamp is taken for loss; only a step past the slack is. The result is
//! an estimate, and every gap it reports is marked inferred.

/// Infers scans lost between timestamped scans.
#[derive(Clone, Debug)]
pub struct TimeGaps {
    nominal_ns: f64,
    period_ns: f64,
    slack_ns: f64,
    expected: Option<f64>,
    /// The first stamp, the last one, and scan periods between them (lost
    /// scans included): their ratio sizes long gaps far better than the
    /// loop's noisy period.
    first: f64,
    last: f64,
    periods: u64,
}

/// Phase gain: the share of a residual the expected time follows.
const PHASE_GAIN: f64 = 1.0 / 16.0;
/// Frequency gain: the share of a residual the period estimate follows.
const FREQUENCY_GAIN: f64 = 1.0 / 512.0;
/// Furthest the tracked period may stray from the nominal one.
const MAX_RATE_ERROR: f64 = 0.1;
/// Periods after which the mean since the first stamp sizes gaps.
const MEAN_AFTER: u64 = 64;

impl TimeGaps {
    /// For a stream of `rate_hz` whose timestamps may be late by up to
    /// `jitter_ns` without a loss.
    pub fn new(rate_hz: f64, jitter_ns: f64) -> Self {
        let p = 1e9 / rate_hz;
        Self {
            nominal_ns: p,
            period_ns: p,
            slack_ns: p / 2.0 + jitter_ns,
            expected: None,
            first: 0.0,
            last: 0.0,
            periods: 0,
        }
    }

    /// The smallest step (ns beyond the scan grid) taken for a loss: gaps
    /// shorter than this go unseen.
    pub fn slack_ns(&self) -> f64 {
        self.slack_ns
    }

    fn restart(&mut self, t: f64) {
        self.expected = Some(t + self.period_ns);
        self.first = t;
        self.last = t;
        self.periods = 0;
    }

    /// Scans missing immediately before the scan stamped `t_ns`, given the
    /// next scan's stamp; `None` when a step past the slack needs that next
    /// stamp to tell loss (the next scan stays on the new grid) from one
    /// late stamp (it is back on the old one): ask again with it.
    pub fn observe(&mut self, t_ns: i64, next_ns: Option<i64>) -> Option<u64> {
        let t = t_ns as f64;
        let Some(expected) = self.expected else {
            self.restart(t);
            return Some(0);
        };
        let mut resid = t - expected;
        if resid < -self.slack_ns.max(self.period_ns) {
            // Time went backwards (a clock change): start over from here.
            self.restart(t);
            return Some(0);
        }
        let mut lost = 0;
        if resid > self.slack_ns {
            let next = next_ns? as f64;
            let mean = if self.periods >= MEAN_AFTER {
                (self.last - self.first) / self.periods as f64
            } else {
                self.period_ns
            };
            // Periods this scan and the next lie beyond the tracked grid
            // (which has absorbed the stamps' usual lateness).
            let this = (resid / mean).round().max(0.0) as u64;
            let after = ((next - expected - self.period_ns) / mean).round().max(0.0) as u64;
            lost = this.min(after);
            resid -= lost as f64 * self.period_ns;
        }
        // This scan's place on the grid, then one (re-estimated) period on.
        let here = expected + lost as f64 * self.period_ns;
        let lo = self.nominal_ns * (1.0 - MAX_RATE_ERROR);
        let hi = self.nominal_ns * (1.0 + MAX_RATE_ERROR);
        self.period_ns = (self.period_ns + FREQUENCY_GAIN * resid).clamp(lo, hi);
        self.expected = Some(here + self.period_ns + PHASE_GAIN * resid);
        self.periods += lost + 1;
        self.last = t;
        Some(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for jitter.
    fn noise(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 10_000) as f64 / 10_000.0
    }

    /// Timestamps of a stream with true period `period` (ns), jitter up to
    /// `jitter` late, and the scans in `drop` (start, count) missing.
    fn stamps(n: u64, period: f64, jitter: f64, drop: &[(u64, u64)]) -> Vec<(u64, i64)> {
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .filter(|i| !drop.iter().any(|&(s, c)| *i >= s && *i < s + c))
            .map(|i| {
                (
                    i,
                    (1e9 + i as f64 * period + jitter * noise(&mut seed)) as i64,
                )
            })
            .collect()
    }

    /// (index of the scan after the gap, scans lost) for every gap found.
    fn gaps(g: &mut TimeGaps, s: &[(u64, i64)]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (k, &(i, t)) in s.iter().enumerate() {
            let lost = match g.observe(t, None) {
                Some(l) => l,
                None => g.observe(t, s.get(k + 1).map(|x| x.1)).unwrap_or(0),
            };
            if lost > 0 {
                out.push((i, lost));
            }
        }
        out
    }

    #[test]
    fn jitter_and_drift_are_not_loss() {
        // 1 kHz, late by up to 0.9 ms with 0.5 ms of allowed jitter.
        let mut g = TimeGaps::new(1000.0, 500_000.0);
        assert!(gaps(&mut g, &stamps(200_000, 1e6, 900_000.0, &[])).is_empty());
        // One stamp late by 1.4 periods, none allowed: the next one is back
        // on the grid, so it was late, not after a loss.
        let mut g = TimeGaps::new(1000.0, 0.0);
        let mut s = stamps(1_000, 1e6, 0.0, &[]);
        s[500].1 += 1_400_000;
        assert!(gaps(&mut g, &s).is_empty());
        // A late stamp right after a real loss: the loss, not the lateness.
        let mut g = TimeGaps::new(1000.0, 0.0);
        let mut s = stamps(1_000, 1e6, 0.0, &[(500, 3)]);
        s[500].1 += 700_000;
        assert_eq!(gaps(&mut g, &s), vec![(503, 3)]);
        // A source 2 % slower and one 3 % faster than nominal.
        for true_period in [1.02e6, 0.97e6] {
            let mut g = TimeGaps::new(1000.0, 0.0);
            assert!(gaps(&mut g, &stamps(100_000, true_period, 100_000.0, &[])).is_empty());
        }
    }

    #[test]
    fn gaps_are_found_at_their_index_with_their_size() {
        let drop = [(5_000, 37), (20_000, 1), (60_000, 5_000)];
        let mut g = TimeGaps::new(10_000.0, 0.0);
        let found = gaps(&mut g, &stamps(100_000, 1e5, 20_000.0, &drop));
        assert_eq!(found, vec![(5_037, 37), (20_001, 1), (65_000, 5_000)]);
        // The same with a 1 % rate error the loop has to learn.
        let mut g = TimeGaps::new(10_000.0, 0.0);
        let found = gaps(&mut g, &stamps(100_000, 1.01e5, 20_000.0, &drop));
        assert_eq!(found, vec![(5_037, 37), (20_001, 1), (65_000, 5_000)]);
    }

    #[test]
    fn a_backward_clock_restarts_instead_of_inventing_loss() {
        let mut g = TimeGaps::new(1000.0, 0.0);
        for i in 0..100 {
            assert_eq!(g.observe(1_000_000_000 + i * 1_000_000, None), Some(0));
        }
        assert_eq!(g.observe(5_000, None), Some(0));
        assert_eq!(g.observe(1_005_000, None), Some(0));
    }
}
