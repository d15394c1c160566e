//! When the samples happened: the run's clock-correlation table
//! (`hsdaq_format::clock`) read back as the sample rate measured against
//! each clock, how far it drifted, and how well the clocks were known.

use std::path::Path;

use anyhow::Result;
use hsdaq_format::clock::{file_for, read_file, read_run, Clock, Timebase};
use serde::Serialize;

/// The rate of the stream against one clock.
#[derive(Debug, Serialize, Clone)]
pub struct ClockRate {
    /// `monotonic`, `realtime`, `tai` or `phc`.
    pub clock: &'static str,
    /// Samples per second of that clock (least squares over the table).
    pub rate_hz: f64,
    /// Its departure from the nominal rate, ppm.
    pub vs_nominal_ppm: f64,
    /// The change of rate from the first half of the run to the second, ppm
    /// (None with fewer than four rows).
    pub drift_ppm: Option<f64>,
}

/// The run's time base, as the report shows it.
#[derive(Debug, Serialize, Clone)]
pub struct TimebaseSummary {
    /// Rows in the table.
    pub rows: usize,
    /// The rate against each clock that was read.
    pub rates: Vec<ClockRate>,
    /// The largest offset uncertainty of any row, ns (± half the bracket).
    pub max_uncertainty_ns: i64,
    /// The first recorded sample's time, UTC (RFC 3339, ns).
    pub first_sample_utc: String,
    /// The same on CLOCK_REALTIME, ns since the epoch.
    pub first_sample_realtime_ns: i64,
    /// The same on CLOCK_TAI, ns.
    pub first_sample_tai_ns: i64,
    /// The kernel's discipline of REALTIME at the last row.
    pub sync: String,
    /// The kernel's maximum error of REALTIME at the last row, ns.
    pub sync_maxerror_ns: Option<i64>,
    /// TAI − UTC the kernel held (0: unset, TAI read as UTC).
    pub tai_offset_s: i64,
}

/// Reads the table of the run at `path` (None: a run from before tables,
/// or one too short to have two rows).
pub fn read(path: &Path, nominal_hz: u64, first_seq: i64) -> Result<Option<TimebaseSummary>> {
    // A run folder, or one segment file (its own table, beside it).
    let rows = if path.is_dir() {
        read_run(path)?
    } else {
        let (dir, name) = (path.parent(), path.file_name().and_then(|n| n.to_str()));
        match (dir, name) {
            (Some(d), Some(n)) if file_for(d, n).exists() => read_file(&file_for(d, n))?,
            _ => Vec::new(),
        }
    };
    let Some(last) = rows.last().cloned() else {
        return Ok(None);
    };
    let max_uncertainty_ns = rows.iter().map(|r| r.uncertainty_ns).max().unwrap_or(0);
    let Some(tb) = Timebase::new(rows) else {
        return Ok(None);
    };
    let rates = Clock::ALL
        .iter()
        .filter_map(|&c| {
            let r = tb.rate_hz(c)?;
            Some(ClockRate {
                clock: c.name(),
                rate_hz: r,
                vs_nominal_ppm: (r / nominal_hz.max(1) as f64 - 1.0) * 1e6,
                drift_ppm: tb.drift_ppm(c),
            })
        })
        .collect();
    let first = tb.time_ns(first_seq, Clock::Realtime).unwrap_or(0);
    let first_tai = tb.time_ns(first_seq, Clock::Tai).unwrap_or(0);
    Ok(Some(TimebaseSummary {
        rows: tb.rows().len(),
        rates,
        max_uncertainty_ns,
        first_sample_utc: utc(first),
        first_sample_realtime_ns: first,
        first_sample_tai_ns: first_tai,
        sync: last.sync,
        sync_maxerror_ns: last.sync_maxerror_ns,
        tai_offset_s: last.tai_offset_s,
    }))
}

/// RFC 3339 with nanoseconds, UTC (times before 1970 as plain ns).
pub fn utc(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(n) => humantime::format_rfc3339_nanos(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(n),
        )
        .to_string(),
        Err(_) => format!("{ns} ns since 1970"),
    }
}

/// The report's lines about the time base.
pub fn text(t: &TimebaseSummary) -> String {
    let rates: Vec<String> = t
        .rates
        .iter()
        .map(|r| {
            format!(
                "{:.3} Hz vs {} ({:+.2} ppm of nominal{})",
                r.rate_hz,
                r.clock.to_uppercase(),
                r.vs_nominal_ppm,
                r.drift_ppm
                    .map(|d| format!(", drift {d:+.3} ppm"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "  time base: {} clock rows; first sample at {} (REALTIME, ±{:.1} µs); REALTIME {}{}{}\n  measured rate {}\n",
        t.rows,
        t.first_sample_utc,
        t.max_uncertainty_ns as f64 / 1e3,
        t.sync,
        t.sync_maxerror_ns
            .map(|e| format!(" (kernel max error {:.1} ms)", e as f64 / 1e6))
            .unwrap_or_default(),
        if t.tai_offset_s == 0 {
            "; TAI offset unset (CLOCK_TAI reads as UTC)".to_string()
        } else {
            format!("; TAI = UTC + {} s", t.tai_offset_s)
        },
        rates.join(", ")
    )
}

/// One run placed on the common time axis of several.
#[derive(Debug, Serialize, Clone)]
pub struct Aligned {
    /// The run's label.
    pub label: String,
    /// Its first sample, UTC.
    pub first_sample_utc: String,
    /// The axis: `TAI` when every run's machine knew the same TAI − UTC,
    /// else `UTC` ([`axis`]).
    pub axis: &'static str,
    /// Seconds from the earliest run's first sample to this run's, on it.
    pub offset_s: f64,
    /// How well the offset is known from the clock reads alone: both
    /// runs' largest bracket, summed, s.
    pub read_uncertainty_s: f64,
    /// The kernel's maximum error of this run's REALTIME at its end, s:
    /// what separate machines add to the uncertainty (on one machine the
    /// clock is shared and this cancels).
    pub clock_maxerror_s: Option<f64>,
}

/// The axis several runs share: TAI when every machine knew the same
/// TAI − UTC (TAI does not jump at a leap second), else UTC (a machine
/// whose kernel TAI offset is unset reads CLOCK_TAI as UTC: comparing its
/// TAI with another's would be 37 s off).
pub fn axis(runs: &[(&str, &TimebaseSummary)]) -> &'static str {
    let first = runs.first().map_or(0, |r| r.1.tai_offset_s);
    if first != 0 && runs.iter().all(|r| r.1.tai_offset_s == first) {
        "TAI"
    } else {
        "UTC"
    }
}

/// Puts runs with a time base on one axis ([`axis`]), the earliest first;
/// runs without a table are left out (named by the caller).
pub fn align(runs: &[(&str, &TimebaseSummary)]) -> Vec<Aligned> {
    let tai = axis(runs) == "TAI";
    let at = |t: &TimebaseSummary| {
        if tai {
            t.first_sample_tai_ns
        } else {
            t.first_sample_realtime_ns
        }
    };
    let Some(first) = runs.iter().min_by_key(|(_, t)| at(t)) else {
        return Vec::new();
    };
    let (t0, u0) = (at(first.1), first.1.max_uncertainty_ns);
    let mut out: Vec<Aligned> = runs
        .iter()
        .map(|(label, t)| Aligned {
            label: label.to_string(),
            first_sample_utc: t.first_sample_utc.clone(),
            axis: if tai { "TAI" } else { "UTC" },
            offset_s: (at(t) - t0) as f64 * 1e-9,
            read_uncertainty_s: (t.max_uncertainty_ns + u0) as f64 * 1e-9,
            clock_maxerror_s: t.sync_maxerror_ns.map(|e| e as f64 * 1e-9),
        })
        .collect();
    out.sort_by(|a, b| a.offset_s.total_cmp(&b.offset_s));
    out
}

/// The alignment as text.
pub fn align_text(a: &[Aligned], without: &[String]) -> String {
    let axis = a.first().map_or("UTC", |r| r.axis);
    let mut s = format!(
        "runs on one time axis ({axis}; offset of each run's first sample from the earliest):\n"
    );
    for r in a {
        s.push_str(&format!(
            "  {:<24} {:>+14.6} s ± {:.1} µs (clock reads){}   first sample {}\n",
            r.label,
            r.offset_s,
            r.read_uncertainty_s * 1e6,
            r.clock_maxerror_s
                .map(|e| format!(
                    ", + the machine's clock error (kernel max {:.1} ms)",
                    e * 1e3
                ))
                .unwrap_or_default(),
            r.first_sample_utc
        ));
    }
    for w in without {
        s.push_str(&format!(
            "  {w:<24} no clock table (recorded before hsdaq had them): not aligned\n"
        ));
    }
    s
}
