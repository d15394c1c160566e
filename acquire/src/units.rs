//! Parsing of the human units used on the command line and in profiles.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Parses a duration such as `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim())
        .with_context(|| format!("invalid duration {s:?} (try 10s, 500ms, 2m)"))
}

/// The multipliers of [`parse_quantity`]'s grammar: SI and binary.
const MULTIPLIERS: [(&str, u128); 7] = [
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
];

/// The one grammar for every number a user types, in flags and profile
/// keys alike: a whole or decimal number, then an optional multiplier,
/// SI `k`/`K`, `M`, `G` (×10³, ×10⁶, ×10⁹) or binary `Ki`, `Mi`, `Gi`
/// (×2¹⁰, ×2²⁰, ×2³⁰); sizes may end in `B` (`64KiB`, `1MB`, `4096B`).
/// `2.5M` is 2 500 000; a value that is not a whole number (`1.5`) is
/// refused, as is an overflow. A bare `K` means 1000 here as on a rate:
/// one meaning per letter, everywhere.
pub fn parse_quantity(s: &str, bytes: bool) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num == "." {
        bail!("{s:?} is not a number");
    }
    let mut unit = unit.trim();
    if bytes {
        unit = unit.strip_suffix('B').unwrap_or(unit);
    }
    let mult: u128 = match MULTIPLIERS.iter().find(|m| m.0 == unit) {
        Some(m) => m.1,
        None if unit.is_empty() => 1,
        None => bail!(
            "unknown multiplier {:?} in {s:?} (use k, M, G or Ki, Mi, Gi{})",
            unit,
            if bytes {
                ", optionally followed by B"
            } else {
                ""
            }
        ),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || frac.len() > 9 {
        bail!("{s:?} is not a number");
    }
    let digits = format!("{whole}{frac}");
    let mantissa: u128 = digits
        .parse()
        .with_context(|| format!("{s:?} is not a number"))?;
    let scaled = mantissa
        .checked_mul(mult)
        .with_context(|| format!("{s:?} is too large"))?;
    let div = 10u128.pow(frac.len() as u32);
    if scaled % div != 0 {
        bail!("{s:?} is not a whole number");
    }
    u64::try_from(scaled / div).with_context(|| format!("{s:?} is too large"))
}

/// Parses a byte size such as `4096`, `64KiB`, `256MiB`, `1GB` ([`parse_quantity`]).
pub fn parse_bytes(s: &str) -> Result<u64> {
    parse_quantity(s, true).context("invalid size (try 4096, 64KiB, 256MiB, 1GB)")
}

/// Parses a rate in scans per second: `1000`, `250k`, `2.5M` ([`parse_quantity`]).
pub fn parse_rate(s: &str) -> Result<u64> {
    let r = parse_quantity(s, false).context("invalid rate (try 1000, 250k, 25M)")?;
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
        // A size ends in B, is a bare number, or ends in a multiplier of
        // the one grammar (`256M`, `1Gi`): `M` is never months here.
        let is_size = t.ends_with('B')
            || t.chars().all(|c| c.is_ascii_digit())
            || MULTIPLIERS.iter().any(|(m, _)| {
                t.strip_suffix(m)
                    .is_some_and(|n| n.ends_with(|c: char| c.is_ascii_digit() || c == '.'))
            });
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

/// A usage error (exit 2) with this message: the one way code says the
/// user's flags or profile, not the machine, are wrong.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

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
        None => Err(usage(format!(
            "{flag} {} at {rate} scans/s is more scans than a recording can index (2^63 - 1)",
            humantime::format_duration(d)
        ))),
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
    let n = parse_quantity(s, false)
        .context("invalid count (a whole number such as 1000000, 50M or 4Mi)")?;
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

/// CPU time of `clock` (CLOCK_PROCESS_CPUTIME_ID: every thread of this
/// process; CLOCK_THREAD_CPUTIME_ID: the calling thread), ns.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both CPU clocks exist on
    // every Linux this runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time every thread of this process has used, ns.
pub fn process_cpu_ns() -> u64 {
    cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time the calling thread has used, ns.
pub fn thread_cpu_ns() -> u64 {
    cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
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
    }

    #[test]
    fn one_grammar_for_counts_rates_and_sizes() {
        // The same letter means the same factor in every kind of number.
        for (text, want) in [
            ("50M", 50_000_000),
            ("2.5M", 2_500_000),
            ("12500k", 12_500_000),
            ("64K", 64_000),
            ("4Mi", 4 << 20),
            ("1G", 1_000_000_000),
            ("0.5k", 500),
        ] {
            assert_eq!(parse_quantity(text, false).unwrap(), want, "{text}");
            assert_eq!(parse_scan_count(text).unwrap(), want, "{text}");
            assert_eq!(parse_rate(text).unwrap(), want, "{text}");
            assert_eq!(parse_bytes(&format!("{text}B")).unwrap(), want, "{text}B");
        }
        assert_eq!(parse_bytes("64KiB").unwrap(), 65536);
        assert_eq!(parse_bytes("64Ki").unwrap(), 65536);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        for bad in [
            "1.5",
            "-5",
            "",
            ".",
            "1..2",
            "5X",
            "1KiBB",
            "1e6",
            "99999999999999999999G",
        ] {
            assert!(parse_scan_count(bad).is_err(), "{bad:?}");
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_rate("50MB").is_err(), "a rate takes no B");
        // --segment: M is a size multiplier, never months; m is minutes.
        assert_eq!(
            SegmentPolicy::parse("256M").unwrap(),
            SegmentPolicy::Bytes(256_000_000)
        );
        assert_eq!(
            SegmentPolicy::parse("1Gi").unwrap(),
            SegmentPolicy::Bytes(1 << 30)
        );
        assert_eq!(
            SegmentPolicy::parse("64MiB").unwrap(),
            SegmentPolicy::Bytes(64 << 20)
        );
        assert_eq!(
            SegmentPolicy::parse("2m").unwrap(),
            SegmentPolicy::Duration(std::time::Duration::from_secs(120))
        );
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
