//! Progress while recording: a live line on a terminal (indicatif), a
//! status line every few seconds otherwise, nothing with `--json`.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::counters::Live;

/// Reports a recording's progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_plain: Instant,
    started: Instant,
    scan_bytes: u64,
    pool_chunks: usize,
}

impl Progress {
    /// Chooses the display for stderr.
    pub fn new(json: bool, scan_bytes: usize, pool_chunks: usize) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && !json).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} recording {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            bar,
            plain: !tty && !json,
            last_plain: Instant::now(),
            started: Instant::now(),
            scan_bytes: scan_bytes as u64,
            pool_chunks,
        }
    }

    /// Refreshes the display from the live counters.
    pub fn update(&mut self, live: &Live) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let scans = live.scans.load(Relaxed);
        let msg = format!(
            "{} scans ({:.1} MB/s), {:.1} MB written in {} segments, backlog {}/{} chunks, ring {:.1}% (max {:.1}%), lost {} in {} gaps",
            human(scans),
            scans as f64 * self.scan_bytes as f64 / secs / 1e6,
            live.bytes_written.load(Relaxed) as f64 / 1e6,
            live.segments.load(Relaxed),
            live.backlog.load(Relaxed),
            self.pool_chunks,
            live.ring_fill_permille.load(Relaxed) as f64 / 10.0,
            live.ring_fill_max_permille.load(Relaxed) as f64 / 10.0,
            live.lost.load(Relaxed),
            live.gaps.load(Relaxed),
        );
        if let Some(b) = &self.bar {
            b.set_message(msg);
        } else if self.plain && self.last_plain.elapsed() >= Duration::from_secs(5) {
            self.last_plain = Instant::now();
            eprintln!("acquire: {secs:.0} s: {msg}");
        }
    }

    /// Removes the live line.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A count as a person reads it: `950`, `12.3 k`, `4.56 M`, `7.89 G`.
fn human(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1} k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} M", n as f64 / 1e6),
        _ => format!("{:.2} G", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_at_every_rate() {
        assert_eq!(super::human(950), "950");
        assert_eq!(super::human(12_345), "12.3 k");
        assert_eq!(super::human(4_560_000), "4.56 M");
        assert_eq!(super::human(7_890_000_000), "7.89 G");
    }
}
