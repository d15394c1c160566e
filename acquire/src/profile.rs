//! Board profiles (TOML): the settings a board's recordings use, including
//! channel names, units and scale, checked against the device they meet.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::manifest::ChannelInfo;
use crate::sink::codec::Codec;
use crate::sink::pages::ChannelEncoding;

/// A board profile, e.g. `boards/qemu-x86_64/acquire.toml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Board name, recorded in the manifest.
    pub board: Option<String>,
    /// One line about the board.
    pub description: Option<String>,
    /// Expected device settings.
    #[serde(default)]
    pub device: DeviceSettings,
    /// Recording settings.
    #[serde(default)]
    pub record: RecordSettings,
    /// Channels in column order.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelSpec>,
}

/// Device settings a profile asks for (simulator) or expects (kernel device).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeviceSettings {
    /// `sim` or `/dev/hsdaqN`.
    pub path: Option<String>,
    /// Scans per second: a number or the flags' grammar (`"1M"`); `rate`
    /// is the same key under the flag's name.
    #[serde(default, alias = "rate", deserialize_with = "rate")]
    pub rate_hz: Option<u64>,
    /// Values per scan.
    pub channels: Option<u16>,
    /// `i16` or `i32`.
    pub format: Option<String>,
    /// Block slot size, bytes: a number or `"64KiB"`.
    #[serde(default, deserialize_with = "block_bytes")]
    pub block_bytes: Option<u32>,
    /// Ring data area, bytes: a number or `"64MiB"`.
    #[serde(default, deserialize_with = "bytes")]
    pub buffer_bytes: Option<u64>,
}

/// A profile number: a TOML integer, or a string in the flags' grammar
/// ([`crate::units::parse_quantity`]), so `rate-hz = "1M"` means what
/// `--rate 1M` means.
#[derive(Deserialize)]
#[serde(untagged)]
enum Quantity {
    Int(u64),
    Text(String),
}

fn quantity<'de, D: serde::Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<u64>,
) -> std::result::Result<Option<u64>, D::Error> {
    match Option::<Quantity>::deserialize(d)? {
        None => Ok(None),
        Some(Quantity::Int(n)) => Ok(Some(n)),
        Some(Quantity::Text(t)) => parse(&t)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{e:#}"))),
    }
}

fn rate<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    quantity(d, crate::units::parse_rate)
}

fn bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    quantity(d, crate::units::parse_bytes)
}

fn block_bytes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    bytes(d)?
        .map(|b| u32::try_from(b).map_err(|_| serde::de::Error::custom("block-bytes too large")))
        .transpose()
}

/// Recording settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecordSettings {
    /// Segment policy (`1s`, `256MiB`).
    pub segment: Option<String>,
    /// Codec.
    pub compression: Option<Codec>,
    /// Channel column encoding (`delta`, `bss`).
    pub encoding: Option<ChannelEncoding>,
    /// Accept losses with exit status 0.
    pub allow_loss: Option<bool>,
}

/// One channel of a profile.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Column name.
    pub name: String,
    /// Unit after scaling.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// physical = raw × scale + offset.
    #[serde(default = "one")]
    pub scale: f64,
    /// physical = raw × scale + offset.
    #[serde(default)]
    pub offset: f64,
}

fn default_unit() -> String {
    "count".into()
}

fn one() -> f64 {
    1.0
}

impl Profile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let p: Profile =
            toml::from_str(&text).with_context(|| format!("invalid profile {}", path.display()))?;
        // A profile that sets nothing would check nothing against a kernel
        // device: almost certainly the wrong (or an empty) file.
        if p.board.is_none()
            && p.device == DeviceSettings::default()
            && p.record == RecordSettings::default()
            && p.channels.is_empty()
        {
            bail!(
                "invalid profile {}: it sets nothing (no board, [device], [record] or [[channel]])",
                path.display()
            );
        }
        if let Some(f) = &p.device.format {
            if hsdaq_abi::Format::from_name(f.as_bytes()).is_none() {
                bail!(
                    "invalid profile {}: device.format {f:?} is not i16 or i32",
                    path.display()
                );
            }
        }
        if let (Some(n), false) = (p.device.channels, p.channels.is_empty()) {
            if n as usize != p.channels.len() {
                bail!(
                    "invalid profile {}: device.channels = {n} but {} [[channel]] entries",
                    path.display(),
                    p.channels.len()
                );
            }
        }
        channel_infos(&p.channels, p.channels.len(), &[])
            .with_context(|| format!("invalid profile {}", path.display()))?;
        Ok(p)
    }
}

/// Channel descriptions for `n` channels: the profile's, else the
/// source's own (`device`, e.g. IIO names, scale and units), else `ch0…` in
/// counts. A profile entry replaces name, unit, scale and offset; how the
/// source stored the value (`raw`, `label`) stays the source's.
pub fn channel_infos(
    specs: &[ChannelSpec],
    n: usize,
    device: &[ChannelInfo],
) -> Result<Vec<ChannelInfo>> {
    if specs.is_empty() {
        if device.len() == n {
            return Ok(device.to_vec());
        }
        return Ok((0..n)
            .map(|i| ChannelInfo::counts(format!("ch{i}")))
            .collect());
    }
    if specs.len() != n {
        bail!(
            "the profile names {} channels but the device has {n}",
            specs.len()
        );
    }
    let mut seen = std::collections::HashSet::new();
    for s in specs {
        let ok = !s.name.is_empty()
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.name.starts_with(|c: char| c.is_ascii_digit());
        if !ok || s.name == "seq" || s.name == "t_ns" {
            bail!(
                "channel name {:?} must be an identifier other than seq and t_ns",
                s.name
            );
        }
        if !seen.insert(&s.name) {
            bail!("channel name {:?} appears twice", s.name);
        }
        if !s.scale.is_finite() || s.scale == 0.0 || !s.offset.is_finite() {
            bail!(
                "channel {:?}: scale must be finite and non-zero, offset finite",
                s.name
            );
        }
    }
    Ok(specs
        .iter()
        .enumerate()
        .map(|(i, s)| ChannelInfo {
            name: s.name.clone(),
            unit: s.unit.clone(),
            scale: s.scale,
            offset: s.offset,
            label: device.get(i).and_then(|d| d.label.clone()),
            raw: device.get(i).and_then(|d| d.raw.clone()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(body: &str) -> Result<DeviceSettings> {
        let p: Profile = toml::from_str(&format!("[device]\n{body}"))?;
        Ok(p.device)
    }

    #[test]
    fn profile_numbers_take_the_flags_grammar() {
        let d = device("rate-hz = \"2.5M\"\nblock-bytes = \"64KiB\"\nbuffer-bytes = \"64MiB\"")
            .unwrap();
        assert_eq!(d.rate_hz, Some(2_500_000));
        assert_eq!(d.block_bytes, Some(65536));
        assert_eq!(d.buffer_bytes, Some(64 << 20));
        let d = device("rate = 48000\nblock-bytes = 4096").unwrap();
        assert_eq!((d.rate_hz, d.block_bytes), (Some(48000), Some(4096)));
        for bad in [
            "rate-hz = \"fast\"",
            "block-bytes = \"1.2345KiB\"",
            "block-bytes = \"8GiB\"",
        ] {
            assert!(device(bad).is_err(), "{bad}");
        }
    }
}
