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

/// When to close a segment and open the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentPolicy {
    /// After this much stream time (by scan count at the nominal rate).
    Duration(#[serde(with = "humantime_serde_compat")] Duration),
    /// After this many bytes of sample data.
    Bytes(u64),
}

impl SegmentPolicy {
    /// Parses `1s` / `500ms` (time) or `256MiB` (sample bytes).
    pub fn parse(s: &str) -> Result<Self> {
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

    /// Scans per segment for a stream of `rate` scans/s and `scan_bytes`.
    pub fn scans(&self, rate: u64, scan_bytes: usize) -> u64 {
        match *self {
            SegmentPolicy::Duration(d) => {
                ((d.as_nanos() * rate as u128) / 1_000_000_000).max(1) as u64
            }
            SegmentPolicy::Bytes(b) => (b / scan_bytes as u64).max(1),
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
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
        assert_eq!(SegmentPolicy::parse("2s").unwrap().scans(1000, 8), 2000);
        assert!(SegmentPolicy::parse("0s").is_err());
    }
}
