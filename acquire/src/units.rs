//! Parsing of the human units used on the command line and in profiles.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Parses a duration such as `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim())
        .with_context(|| format!("invalid duration {s:?} (try 10s, 500ms, 2m)"))
}

/// Parses a byte size such as `4096`, `64KiB`, `256MiB`, `1GB`.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid size {s:?} (try 4096, 64KiB, 256MiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => bail!("invalid size unit {u:?} in {s:?} (use B, KiB, MiB, GiB, kB, MB, GB)"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} overflows"))
}

/// Parses a rate in scans per second: `1000`, `250k`, `25M`.
pub fn parse_rate(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'M')) => (&t[..i], 1_000_000),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid rate {s:?} (try 1000, 250k, 25M)"))?;
    let r = n.checked_mul(mult).context("rate overflows")?;
    if r == 0 {
        bail!("rate must be above 0 scans/s");
    }
    Ok(r)
}

pub use hsdaq_format::manifest::SegmentPolicy;

/// Parses and applies `--segment`.
pub trait SegmentPolicyExt: Sized {
    /// Parses `1s` / `500ms` (time) or `256MiB` (sample bytes).
    fn parse(s: &str) -> Result<Self>;
    /// Scans per segment for a stream of `rate` scans/s and `scan_bytes`;
    /// a usage error naming `--segment` when that is beyond a recording.
    fn scans(&self, rate: u64, scan_bytes: usize) -> Result<u64>;
}

impl SegmentPolicyExt for SegmentPolicy {
    fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let is_size = t.ends_with('B') || t.chars().all(|c| c.is_ascii_digit());
        let p = if is_size {
            SegmentPolicy::Bytes(parse_bytes(t)?)
        } else {
            SegmentPolicy::Duration(
                parse_duration(t).context("invalid --segment (try 1s or 256MiB)")?,
            )
        };
        match p {
            SegmentPolicy::Bytes(0) => bail!("--segment size must be above 0"),
            SegmentPolicy::Duration(d) if d.is_zero() => {
                bail!("--segment duration must be above 0")
            }
            _ => Ok(p),
        }
    }

    fn scans(&self, rate: u64, scan_bytes: usize) -> Result<u64> {
        match *self {
            SegmentPolicy::Duration(d) => scans_in(d, rate, "--segment"),
            SegmentPolicy::Bytes(b) => Ok((b / scan_bytes as u64).max(1)),
        }
    }
}

/// A mistake in how the tool was invoked (exit status 2, as clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Most scans a recording can index: `seq` is a signed 64-bit column.
pub const MAX_SCANS: u64 = i64::MAX as u64;

/// `floor(d × rate / 1 s)` scans, at least 1, checked: a duration whose scan
/// count a recording cannot index is a usage error naming `flag`.
pub fn scans_in(d: Duration, rate: u64, flag: &str) -> Result<u64> {
    let n = d
        .as_nanos()
        .checked_mul(u128::from(rate))
        .map(|x| x / 1_000_000_000);
    match n
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n <= MAX_SCANS)
    {
        Some(n) => Ok(n.max(1)),
        None => Err(UsageError(format!(
            "{flag} {} at {rate} scans/s is more scans than a recording can index (2^63 - 1)",
            humantime::format_duration(d)
        ))
        .into()),
    }
}

/// Parses a duration that must be above zero (`--duration`).
pub fn parse_positive_duration(s: &str) -> Result<Duration> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        bail!("a duration of 0 records nothing: give a positive duration such as 10s");
    }
    Ok(d)
}

/// Parses a scan count in `1..=2^63-1` (`--samples`).
pub fn parse_scan_count(s: &str) -> Result<u64> {
    let n: u64 = s
        .trim()
        .parse()
        .with_context(|| format!("invalid scan count {s:?} (a whole number such as 1000000)"))?;
    if n == 0 {
        bail!("0 scans records nothing: give a positive count");
    }
    if n > MAX_SCANS {
        bail!("{n} scans is more than a recording can index (2^63 - 1)");
    }
    Ok(n)
}

/// `uname -r` and the host name.
pub fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (s(&u.release), s(&u.nodename))
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the kernel stamps blocks with.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_reject() {
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1GB").unwrap(), 1_000_000_000);
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(parse_rate("25M").unwrap(), 25_000_000);
        assert_eq!(parse_rate("250k").unwrap(), 250_000);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(
            SegmentPolicy::parse("1s").unwrap(),
            SegmentPolicy::Duration(Duration::from_secs(1))
        );
        assert_eq!(
            SegmentPolicy::parse("64MiB").unwrap(),
            SegmentPolicy::Bytes(64 << 20)
        );
        assert_eq!(
            SegmentPolicy::parse("2s").unwrap().scans(1000, 8).unwrap(),
            2000
        );
        assert!(SegmentPolicy::parse("0s").is_err());
    }

    /// Scan counts are checked, never truncated by a cast: the overflow is a
    /// usage error naming the flag.
    #[test]
    fn scan_counts_overflow_into_a_usage_error() {
        let d = Duration::from_secs(18_446_744_073_710);
        let e = scans_in(d, 1_000_000, "--duration").unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some());
        assert!(e.to_string().contains("--duration"), "{e}");
        assert_eq!(
            scans_in(Duration::from_secs(9_223_372_036), 1_000_000_000, "x").unwrap(),
            9_223_372_036_000_000_000
        );
        assert_eq!(scans_in(Duration::from_nanos(1), 1, "x").unwrap(), 1);
    }
}
