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
    /// The last stamp, and the sum and count of the steps between
    /// consecutive scans with no loss between them: their mean sizes long
    /// gaps far better than the loop's noisy period, and, taken only over
    /// loss-free steps, it cannot be skewed by the gaps it sizes.
    last: f64,
    clean_ns: f64,
    clean_steps: u64,
    /// The last loss-free step, counted only once the next step is loss-free
    /// too: a stamp right before a gap is often a late one (a late handler
    /// is why the trigger skipped), and would bias the mean.
    unconfirmed: Option<f64>,
}

/// Phase gain: the share of a residual the expected time follows.
const PHASE_GAIN: f64 = 1.0 / 16.0;
/// Frequency gain: the share of a residual the period estimate follows.
const FREQUENCY_GAIN: f64 = 1.0 / 512.0;
/// Furthest the tracked period may stray from the nominal one.
const MAX_RATE_ERROR: f64 = 0.1;
/// Loss-free steps after which their mean period may size gaps.
const MEAN_AFTER: u64 = 64;
/// How far the measured rate may stray from the announced one before it,
/// not the announced one, sizes gaps.
const RATE_TRUST: f64 = 0.005;

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
            last: 0.0,
            clean_ns: 0.0,
            clean_steps: 0,
            unconfirmed: None,
        }
    }

    /// The smallest step (ns beyond the scan grid) taken for a loss: gaps
    /// shorter than this go unseen.
    pub fn slack_ns(&self) -> f64 {
        self.slack_ns
    }

    /// The period that sizes a gap: the nominal one, unless the mean of the
    /// loss-free steps disagrees with it by more than [`RATE_TRUST`] (a
    /// device whose real rate is not the one it announces). Late stamps
    /// bias that mean a little (a scan before a gap is often a late one),
    /// so within the tolerance the announced rate is the better estimate.
    fn sizing_period(&self) -> f64 {
        if self.clean_steps < MEAN_AFTER {
            return self.nominal_ns;
        }
        let mean = self.clean_ns / self.clean_steps as f64;
        if (mean / self.nominal_ns - 1.0).abs() > RATE_TRUST {
            mean.clamp(
                self.nominal_ns * (1.0 - MAX_RATE_ERROR),
                self.nominal_ns * (1.0 + MAX_RATE_ERROR),
            )
        } else {
            self.nominal_ns
        }
    }

    fn restart(&mut self, t: f64) {
        self.expected = Some(t + self.period_ns);
        self.last = t;
        self.unconfirmed = None;
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
            let mean = self.sizing_period();
            // Scans missing between the last stamp and this one, and as the
            // next stamp (two steps on without a loss) tells it: a late
            // stamp followed by an on-time one is not a loss.
            let this = (((t - self.last) / mean).round() as u64).saturating_sub(1);
            let after = (((next - self.last) / mean).round() as u64).saturating_sub(2);
            lost = this.min(after);
            resid -= lost as f64 * self.period_ns;
        }
        // This scan's place on the grid, then one (re-estimated) period on.
        let here = expected + lost as f64 * self.period_ns;
        let lo = self.nominal_ns * (1.0 - MAX_RATE_ERROR);
        let hi = self.nominal_ns * (1.0 + MAX_RATE_ERROR);
        self.period_ns = (self.period_ns + FREQUENCY_GAIN * resid).clamp(lo, hi);
        self.expected = Some(here + self.period_ns + PHASE_GAIN * resid);
        let step = self.unconfirmed.take();
        if lost == 0 {
            if let Some(dt) = step {
                self.clean_ns += dt;
                self.clean_steps += 1;
            }
            self.unconfirmed = Some(t - self.last);
        }
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
        let mut gone = vec![false; n as usize];
        for &(s, c) in drop {
            gone[s as usize..(s + c).min(n) as usize].fill(true);
        }
        (0..n)
            .filter(|i| !gone[*i as usize])
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

    /// Heavy, irregular loss (a trigger that misses most of its ticks):
    /// the total stays right, because the period that sizes gaps is
    /// learnt only from steps with no loss.
    #[test]
    fn heavy_loss_is_sized_from_clean_steps() {
        let mut seed = 12345u64;
        let mut drop = Vec::new();
        let mut i = 100;
        while i < 200_000 {
            let n = 1 + (noise(&mut seed) * 4.0) as u64;
            drop.push((i, n));
            i += n + 1 + (noise(&mut seed) * 2.0) as u64;
        }
        let truth: u64 = drop.iter().map(|d| d.1).sum();
        let mut g = TimeGaps::new(10_000.0, 0.0);
        let found: u64 = gaps(&mut g, &stamps(200_000, 1e5, 20_000.0, &drop))
            .iter()
            .map(|x| x.1)
            .sum();
        assert!(truth > 100_000, "most ticks missed: {truth}");
        assert!(
            found.abs_diff(truth) <= truth / 1000,
            "{found} inferred, {truth} lost"
        );
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
