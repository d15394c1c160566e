//! The recorder's own health over a run: `health.csv` (resident memory,
//! open descriptors, backlog, once a second) and each segment's close time
//! from the manifest. A soak is judged on these: flat memory, flat
//! descriptors, close times that do not creep up.

use std::path::Path;

use anyhow::{Context, Result};
use hsdaq_format::manifest::Manifest;
use serde::Serialize;

/// The file `acquire record` writes beside the segments.
pub use hsdaq_format::health::HEALTH_FILE;

/// One line of `health.csv`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the recorder started.
    pub t: f64,
    /// Resident set, MiB.
    pub rss_mib: f64,
    /// Open file descriptors.
    pub fds: u64,
    /// Chunks waiting for the encoder or the disk.
    pub backlog: u64,
}

/// What the report says about the recorder's health.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Samples (one a second); not in `summary.json`.
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// Resident set after the first 10 % of the run (warm-up done), MiB.
    pub rss_mib_settled: Option<f64>,
    /// Highest resident set, MiB.
    pub rss_mib_max: Option<f64>,
    /// Resident set at the end, MiB.
    pub rss_mib_last: Option<f64>,
    /// Fewest and most open descriptors after start-up.
    pub fds_range: Option<(u64, u64)>,
    /// Segment close times: (segment index, ms); not in `summary.json`.
    #[serde(skip)]
    pub close_ms: Vec<(u64, f64)>,
    /// Median and highest segment close time, ms.
    pub close_ms_p50_max: Option<(f64, f64)>,
}

/// Reads a run folder's health (an absent `health.csv` gives no samples).
pub fn read(dir: &Path, m: &Manifest) -> Result<Health> {
    let p = dir.join(HEALTH_FILE);
    let samples = if p.exists() {
        parse(&std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?)
            .with_context(|| format!("{} is damaged", p.display()))?
    } else {
        Vec::new()
    };
    let close_ms: Vec<(u64, f64)> = m
        .segments
        .iter()
        .filter_map(|s| s.close_ms.map(|c| (s.index, c)))
        .collect();
    let mut h = Health {
        samples,
        close_ms,
        ..Default::default()
    };
    // Start-up (mapping the ring, filling the chunk pool) is not a leak.
    let warm_up = (h.samples.len() / 10)
        .max(3)
        .min(h.samples.len().saturating_sub(1));
    let settled: Vec<&Sample> = h.samples.iter().skip(warm_up).collect();
    if let (Some(first), Some(last)) = (settled.first(), settled.last()) {
        h.rss_mib_settled = Some(first.rss_mib);
        h.rss_mib_last = Some(last.rss_mib);
        h.rss_mib_max = settled.iter().map(|s| s.rss_mib).reduce(f64::max);
        let fds = settled.iter().map(|s| s.fds);
        h.fds_range = Some((fds.clone().min().unwrap_or(0), fds.max().unwrap_or(0)));
    }
    if !h.close_ms.is_empty() {
        let mut c: Vec<f64> = h.close_ms.iter().map(|p| p.1).collect();
        c.sort_by(f64::total_cmp);
        h.close_ms_p50_max = Some((c[c.len() / 2], c[c.len() - 1]));
    }
    Ok(h)
}

/// Parses `health.csv` by its header's column names.
fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))
    };
    let (t, rss, fds, backlog) = (
        at("elapsed_s")?,
        at("rss_bytes")?,
        at("open_fds")?,
        at("backlog_chunks")?,
    );
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        // A power cut can leave the last line unfinished.
        if f.len() != header.len() {
            continue;
        }
        let num = |k: usize| -> Result<f64> {
            f[k].parse::<f64>()
                .with_context(|| format!("line {}: {:?} is not a number", i + 2, f[k]))
        };
        out.push(Sample {
            t: num(t)?,
            rss_mib: num(rss)? / 1048576.0,
            fds: num(fds)? as u64,
            backlog: num(backlog)? as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_header_and_skips_a_torn_last_line() {
        let s = parse(
            "elapsed_s,rss_bytes,open_fds,backlog_chunks,x\n0.5,1048576,7,1,0\n1.5,2097152,8,0,0\n2.5,31",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[1].t, s[1].rss_mib, s[1].fds, s[1].backlog),
            (1.5, 2.0, 8, 0)
        );
        assert!(parse("elapsed_s,rss_bytes\n1,2").is_err());
        assert!(parse("elapsed_s,rss_bytes,open_fds,backlog_chunks\n1,x,3,4").is_err());
    }
}
