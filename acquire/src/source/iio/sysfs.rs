//! What sysfs says about IIO devices (`/sys/bus/iio/devices`): names,
//! buffered channels with their types, scale, offset and labels, triggers.
//! Every function takes the sysfs root, so the tests run on a fake tree.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::scan::ScanType;

/// The real sysfs root of IIO devices.
pub const ROOT: &str = "/sys/bus/iio/devices";

/// One buffered input channel (a `scan_elements/in_*_en` file).
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// IIO name without `in_` (`voltage0`, `voltage1-voltage2`, `accel_x`).
    pub name: String,
    /// `*_index`: its place in the scan.
    pub index: u32,
    /// `*_type`, or why it cannot be read.
    pub ty: Result<ScanType, String>,
    /// `*_en` is 1.
    pub enabled: bool,
    /// IIO `scale` (own or shared by type), if any.
    pub scale: Option<f64>,
    /// IIO `offset` (own or shared by type), if any.
    pub offset: Option<f64>,
    /// `*_label`, if any.
    pub label: Option<String>,
}

/// One IIO device.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    /// Its sysfs folder.
    pub dir: PathBuf,
    /// `N` of `iio:deviceN`.
    pub number: u32,
    /// `name`.
    pub name: String,
    /// Buffered input channels, by scan index.
    pub channels: Vec<Channel>,
    /// `trigger/current_trigger` when the device takes a trigger.
    pub trigger: Option<String>,
    /// Where `length`, `enable`, `watermark` live (`buffer0/` or `buffer/`).
    pub buffer: Option<PathBuf>,
    /// `current_timestamp_clock`, if the device has one.
    pub clock: Option<String>,
}

impl Info {
    /// The character device.
    pub fn node(&self) -> PathBuf {
        PathBuf::from(format!("/dev/iio:device{}", self.number))
    }
}

/// Reads a sysfs attribute, trimmed.
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Writes a sysfs attribute, naming it on failure.
pub fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

/// The IIO type word of a channel name (`voltage` of `voltage1-voltage2`,
/// `accel` of `accel_x`).
pub fn type_word(name: &str) -> &str {
    let end = name
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(name.len());
    &name[..end]
}

/// Candidates for a channel attribute: its own, then shared by type.
fn attr_names(name: &str, attr: &str) -> Vec<String> {
    let no_digits: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
    let mut v = vec![
        format!("in_{name}_{attr}"),
        format!("in_{no_digits}_{attr}"),
        format!("in_{}_{attr}", type_word(name)),
        format!("in_{attr}"),
    ];
    v.dedup();
    v
}

fn channel_attr(dir: &Path, name: &str, attr: &str) -> Option<String> {
    attr_names(name, attr)
        .into_iter()
        .find_map(|f| read(&dir.join(f)))
}

/// The unit IIO's ABI gives a type's values after `scale`.
pub fn unit_of(name: &str) -> &'static str {
    match type_word(name) {
        "voltage" | "altvoltage" => "mV",
        "current" => "mA",
        "power" => "mW",
        "accel" => "m/s^2",
        "anglvel" => "rad/s",
        "magn" => "Gauss",
        "temp" => "m°C",
        "pressure" => "kPa",
        "humidityrelative" => "m%",
        "illuminance" => "lux",
        "angl" => "rad",
        "distance" | "altitude" => "m",
        "velocity" => "m/s",
        "resistance" => "ohm",
        "capacitance" => "nF",
        "rot" => "deg",
        _ => "count",
    }
}

fn channels(dev: &Path) -> Result<Vec<Channel>> {
    let scan = [dev.join("buffer0"), dev.join("scan_elements")]
        .into_iter()
        .find(|d| {
            std::fs::read_dir(d).is_ok_and(|mut it| {
                it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with("_en")))
            })
        });
    let Some(scan) = scan else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(&scan).with_context(|| format!("cannot list {}", scan.display()))? {
        let f = e?.file_name().to_string_lossy().into_owned();
        let Some(name) = f.strip_prefix("in_").and_then(|f| f.strip_suffix("_en")) else {
            continue;
        };
        let index = read(&scan.join(format!("in_{name}_index")))
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!(
                    "{}: in_{name}_index is missing or not a number",
                    scan.display()
                )
            })?;
        let ty = read(&scan.join(format!("in_{name}_type")))
            .ok_or_else(|| format!("in_{name}_type is missing"))
            .and_then(|t| t.parse::<ScanType>().map_err(|e| e.to_string()));
        let num = |attr| channel_attr(dev, name, attr).and_then(|s| s.parse::<f64>().ok());
        out.push(Channel {
            name: name.to_string(),
            index,
            ty,
            enabled: read(&scan.join(&f)).as_deref() == Some("1"),
            scale: num("scale"),
            offset: num("offset"),
            label: read(&dev.join(format!("in_{name}_label"))),
        });
    }
    out.sort_by_key(|c| c.index);
    Ok(out)
}

/// Reads one device folder.
pub fn info(dir: &Path) -> Result<Info> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = base
        .strip_prefix("iio:device")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{} is not an iio:deviceN folder", dir.display()))?;
    let buffer = [dir.join("buffer0"), dir.join("buffer")]
        .into_iter()
        .find(|b| b.join("enable").exists());
    Ok(Info {
        dir: dir.to_path_buf(),
        number,
        name: read(&dir.join("name")).unwrap_or_default(),
        channels: channels(dir)?,
        trigger: read(&dir.join("trigger/current_trigger")),
        buffer,
        clock: read(&dir.join("current_timestamp_clock")),
    })
}

/// Every IIO device under `root`, by number.
pub fn list(root: &Path) -> Result<Vec<Info>> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(Vec::new());
    };
    let mut v = Vec::new();
    for e in rd {
        let p = e?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("iio:device"))
        {
            v.push(info(&p)?);
        }
    }
    v.sort_by_key(|i| i.number);
    Ok(v)
}

/// The device `sel` names: its `name`, its number, `iio:deviceN` or
/// `/dev/iio:deviceN`.
pub fn find(root: &Path, sel: &str) -> Result<Info> {
    let all = list(root)?;
    let by_node = sel
        .strip_prefix("/dev/iio:device")
        .or_else(|| sel.strip_prefix("iio:device"))
        .or(Some(sel))
        .and_then(|n| n.parse::<u32>().ok());
    let hit: Vec<&Info> = all
        .iter()
        .filter(|i| Some(i.number) == by_node || (by_node.is_none() && i.name == sel))
        .collect();
    match hit.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let names: Vec<String> = all
                .iter()
                .map(|i| format!("{} (iio:device{})", i.name, i.number))
                .collect();
            bail!(
                "no IIO device {sel:?} under {}; present: {}",
                root.display(),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )
        }
        many => bail!(
            "{} IIO devices are named {sel:?}: name one by number (iio:{})",
            many.len(),
            many[0].number
        ),
    }
}

/// Triggers under `root`: (name, folder).
pub fn triggers(root: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("trigger"))
        })
        .filter_map(|p| read(&p.join("name")).map(|n| (n, p)))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake sysfs tree shaped like `iio_dummy`'s.
    use std::path::Path;

    fn put(root: &Path, rel: &str, v: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }

    /// `iio:device0` named `dummy` with iio_dummy's channels, a trigger.
    pub fn dummy(root: &Path) {
        let d = "iio:device0";
        put(root, &format!("{d}/name"), "dummy");
        for (ch, idx, ty) in [
            ("voltage0", 0, "le:u13/16>>0"),
            ("voltage1-voltage2", 1, "le:s12/16>>0"),
            ("voltage3-voltage4", 2, "le:s11/16>>0"),
            ("accel_x", 3, "le:s16/16>>0"),
            ("timestamp", 4, "le:s64/64>>0"),
        ] {
            for dir in ["scan_elements", "buffer0"] {
                put(root, &format!("{d}/{dir}/in_{ch}_en"), "0");
                put(root, &format!("{d}/{dir}/in_{ch}_index"), &idx.to_string());
                put(root, &format!("{d}/{dir}/in_{ch}_type"), ty);
            }
        }
        put(root, &format!("{d}/in_voltage0_scale"), "0.001333");
        put(root, &format!("{d}/in_voltage0_offset"), "3.5");
        put(
            root,
            &format!("{d}/in_voltage-voltage_scale"),
            "0.000001344",
        );
        put(root, &format!("{d}/in_accel_x_label"), "front");
        put(root, &format!("{d}/in_accel_scale"), "0.000122");
        for f in ["enable", "length", "watermark", "data_available"] {
            put(root, &format!("{d}/buffer0/{f}"), "0");
        }
        put(root, &format!("{d}/trigger/current_trigger"), "");
        put(root, &format!("{d}/current_timestamp_clock"), "realtime");
        put(root, "trigger0/name", "t0");
        put(root, "trigger0/sampling_frequency", "100");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_dummy_tree() {
        let t = tempfile::tempdir().unwrap();
        fake::dummy(t.path());
        let i = find(t.path(), "dummy").unwrap();
        assert_eq!(i.number, 0);
        assert_eq!(find(t.path(), "0").unwrap(), i);
        assert_eq!(find(t.path(), "/dev/iio:device0").unwrap(), i);
        let names: Vec<&str> = i.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "voltage0",
                "voltage1-voltage2",
                "voltage3-voltage4",
                "accel_x",
                "timestamp"
            ]
        );
        let v0 = &i.channels[0];
        assert_eq!((v0.scale, v0.offset), (Some(0.001333), Some(3.5)));
        assert_eq!(i.channels[1].scale, Some(0.000001344), "shared by type");
        assert_eq!(
            i.channels[3].scale,
            Some(0.000122),
            "shared by the modified type"
        );
        assert_eq!(i.channels[3].label.as_deref(), Some("front"));
        assert_eq!(i.trigger.as_deref(), Some(""));
        assert_eq!(i.clock.as_deref(), Some("realtime"));
        assert!(i.buffer.is_some());
        assert_eq!(triggers(t.path())[0].0, "t0");
        let e = find(t.path(), "nope").unwrap_err().to_string();
        assert!(e.contains("present: dummy (iio:device0)"), "{e}");
        assert_eq!(unit_of("voltage1-voltage2"), "mV");
        assert_eq!(unit_of("accel_x"), "m/s^2");
    }
}
