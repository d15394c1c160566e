//! Any Linux IIO device as a source (`--device iio:NAME`): its buffered
//! channels are enabled, its trigger and rate set, and its scans read (by
//! DMABUF where the buffer has a DMA queue, by `read()` otherwise), each
//! value converted by the rule in [`scan`] into acquire's ring.
//!
//! IIO counts none of its own losses: a full kfifo drops the newest scan
//! silently. What can be seen is said: with a timestamp channel, gaps are
//! inferred from time ([`super::timegaps`]) and marked inferred; without
//! one, the manifest says loss detection in the device is unavailable; a
//! kfifo found full at a read is counted as where losses happened; and what
//! acquire's own ring could not take is counted exactly, as for every source.
//! Every setting acquire changed is put back when it is done.

pub mod dmabuf;
pub mod scan;
pub mod sysfs;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hsdaq_abi::layout::{StreamLayout, SOURCE_IIO};
use hsdaq_format::manifest::{
    ChannelInfo, LOSS_UNAVAILABLE, TIMESTAMPS_MEASURED, TIMESTAMPS_NOMINAL,
};

use super::feed::{Batch, Feed, FeedDevice, Read, READ_WAIT};
use super::timegaps::TimeGaps;
use super::DeviceDescription;
use scan::{ScanLayout, ScanType};
use sysfs::Info;

/// Timestamp lateness (beyond half a period) not taken for loss without
/// looking further. None is needed: an IIO timestamp is taken when the
/// trigger's handler runs, which a busy core delays, but a late stamp is
/// told from a loss by the next one (`TimeGaps::observe`).
pub const TIMESTAMP_JITTER_NS: f64 = 0.0;

/// What the user asked of an IIO source.
#[derive(Clone, Debug, Default)]
pub struct IioRequest {
    /// `NAME`, `N`, `iio:deviceN` or `/dev/iio:deviceN`.
    pub device: String,
    /// IIO channel names to record (`None`: every buffered channel).
    pub channels: Option<Vec<String>>,
    /// Trigger to attach (`None`: keep the current one).
    pub trigger: Option<String>,
    /// Sampling frequency to set (`None`: keep the current one).
    pub rate_hz: Option<u64>,
    /// Ring block size (bytes), ring size.
    pub block_bytes: u32,
    /// Ring data area.
    pub buffer_bytes: u64,
}

/// Settings acquire changed, put back (in reverse) when it is done.
#[derive(Default)]
struct Restore(Vec<(PathBuf, String)>);

impl Restore {
    /// Writes `value` to `path`, remembering what was there.
    fn set(&mut self, path: &Path, value: &str) -> Result<()> {
        let old = sysfs::read(path);
        if old.as_deref() == Some(value) {
            return Ok(());
        }
        sysfs::write(path, value)?;
        if let Some(old) = old {
            self.0.push((path.to_path_buf(), old));
        }
        Ok(())
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (p, v) in self.0.drain(..).rev() {
            // A trigger name reads back as "" when none was set; writing ""
            // detaches whatever is attached now.
            let _ = std::fs::write(&p, if v.is_empty() { "\n" } else { &v });
        }
    }
}

/// Where the scans come from once the buffer is enabled.
enum Input {
    /// `read()` into a staging buffer (kfifo buffers).
    Read {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
    /// The device writes DMABUF blocks (DMA buffers).
    Dmabuf(dmabuf::Queue),
}

/// An IIO device read into acquire's ring.
pub struct IioFeed {
    // Dropped first: a DMABUF queue detaches through the buffer descriptor.
    input: Input,
    info: Info,
    layout: ScanLayout,
    rate_hz: u64,
    node: File,
    buffer: Option<OwnedFd>,
    gaps: Option<TimeGaps>,
    /// CLOCK_MONOTONIC − the device's timestamp clock, ns.
    clock_offset: i64,
    clock: String,
    /// Scans lost before the next scan in the input, already inferred.
    pending: u64,
    /// The last scan read waits for the next one (see `TimeGaps::observe`).
    want_more: bool,
    /// First and last timestamp seen, and scans recorded or inferred lost
    /// between them: the span check of [`Feed::counters`].
    span: Option<(i64, i64)>,
    placed: u64,
    available: Option<File>,
    length: u64,
    counters: BTreeMap<String, u64>,
    channels: Vec<ChannelInfo>,
    settings: BTreeMap<String, serde_json::Value>,
    restore: Restore,
}

/// A column name for an IIO channel (`voltage1-voltage2` → `voltage1_voltage2`).
pub fn column_name(iio: &str) -> String {
    let s: String = iio
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s == "seq" || s == "t_ns" {
        format!("in_{s}")
    } else {
        s
    }
}

/// How a raw value became the recorded one, for the manifest.
fn rule(ty: &ScanType, to: hsdaq_abi::Format) -> String {
    format!(
        "iio {ty}: bits {}..{} of a {}-endian {}-bit word, {}-extended into {}",
        ty.shift,
        ty.shift as u32 + ty.real_bits as u32 - 1,
        if ty.big_endian { "big" } else { "little" },
        ty.storage_bits,
        if ty.signed { "sign" } else { "zero" },
        to.name()
    )
}

/// The nanoseconds to add to a timestamp of `clock` to get CLOCK_MONOTONIC.
fn offset_to_monotonic(clock: &str) -> Option<i64> {
    let id = match clock {
        "monotonic" => return Some(0),
        "realtime" => libc::CLOCK_REALTIME,
        "monotonic_raw" => libc::CLOCK_MONOTONIC_RAW,
        "realtime_coarse" => libc::CLOCK_REALTIME_COARSE,
        "monotonic_coarse" => libc::CLOCK_MONOTONIC_COARSE,
        "boottime" => libc::CLOCK_BOOTTIME,
        "tai" => libc::CLOCK_TAI,
        _ => return None,
    };
    let now = |id| {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid timespec to fill.
        unsafe { libc::clock_gettime(id, &mut t) };
        // time_t and c_long are 32-bit on armv7: the casts are not no-ops there.
        #[allow(clippy::unnecessary_cast)]
        let ns = t.tv_sec as i64 * 1_000_000_000 + t.tv_nsec as i64;
        ns
    };
    let (a, b, c) = (
        now(libc::CLOCK_MONOTONIC),
        now(id),
        now(libc::CLOCK_MONOTONIC),
    );
    Some((a + c) / 2 - b)
}

impl IioFeed {
    /// Finds, configures and opens the device under sysfs `root`.
    pub fn open(root: &Path, req: &IioRequest) -> Result<Self> {
        let info = sysfs::find(root, &req.device)?;
        let mut restore = Restore::default();
        let buffer = info.buffer.clone().with_context(|| {
            format!(
                "IIO device {} (iio:device{}) has no buffer: it cannot stream (only single reads via in_*_raw)",
                info.name, info.number
            )
        })?;
        // Enable the asked channels (and the timestamp, which loss detection
        // needs, unless `-timestamp` is asked), disable the rest.
        let no_ts = req.channels.iter().flatten().any(|n| n == "-timestamp");
        let wanted = |c: &sysfs::Channel| match &req.channels {
            _ if c.name == "timestamp" => !no_ts,
            None => true,
            Some(v) => {
                v.iter().all(|n| n.starts_with('-'))
                    || v.iter().any(|n| *n == c.name || *n == column_name(&c.name))
            }
        };
        if let Some(v) = &req.channels {
            for n in v.iter().filter(|n| n.as_str() != "-timestamp") {
                if !info
                    .channels
                    .iter()
                    .any(|c| *n == c.name || *n == column_name(&c.name))
                {
                    let have: Vec<&str> = info.channels.iter().map(|c| c.name.as_str()).collect();
                    return Err(crate::units::usage(format!(
                        "IIO device {} has no buffered channel {n:?}; it has {}",
                        info.name,
                        have.join(", ")
                    )));
                }
            }
        }
        let scan_dir = [info.dir.join("buffer0"), info.dir.join("scan_elements")]
            .into_iter()
            .find(|d| d.is_dir())
            .expect("channels were read from one of them");
        let mut chosen = Vec::new();
        for c in &info.channels {
            let on = wanted(c);
            restore.set(
                &scan_dir.join(format!("in_{}_en", c.name)),
                if on { "1" } else { "0" },
            )?;
            if on {
                let ty =
                    c.ty.clone()
                        .map_err(|e| anyhow::anyhow!("channel {}: {e}", c.name))?;
                chosen.push((c.name.clone(), c.index, ty));
            }
        }
        let layout =
            ScanLayout::new(chosen).with_context(|| format!("IIO device {}", info.name))?;
        // Trigger and rate.
        let trig_attr = info.dir.join("trigger/current_trigger");
        if let Some(t) = &req.trigger {
            if !sysfs::triggers(root).iter().any(|(n, _)| n == t) {
                let names: Vec<String> = sysfs::triggers(root).into_iter().map(|t| t.0).collect();
                return Err(crate::units::usage(format!(
                    "no IIO trigger {t:?}; present: {}",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            restore.set(&trig_attr, t)?;
        }
        let current = sysfs::read(&trig_attr);
        if current.as_deref() == Some("") {
            let names: Vec<String> = sysfs::triggers(root).into_iter().map(|t| t.0).collect();
            return Err(crate::units::usage(format!(
                "IIO device {} needs a trigger and has none: name one with --iio-trigger (present: {})",
                info.name,
                if names.is_empty() { "none; e.g. create an hrtimer trigger in configfs".into() } else { names.join(", ") }
            )));
        }
        let trigger_dir = current.as_ref().and_then(|n| {
            sysfs::triggers(root)
                .into_iter()
                .find(|t| &t.0 == n)
                .map(|t| t.1)
        });
        let freq = [
            trigger_dir.as_ref().map(|d| d.join("sampling_frequency")),
            Some(info.dir.join("sampling_frequency")),
            Some(info.dir.join("in_sampling_frequency")),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.exists());
        if let Some(r) = req.rate_hz {
            let f = freq.as_ref().with_context(|| {
                format!(
                    "--rate: IIO device {} has no sampling_frequency to set (nor has its trigger)",
                    info.name
                )
            })?;
            restore.set(f, &r.to_string())?;
        }
        let rate = freq
            .as_ref()
            .and_then(|f| sysfs::read(f))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|r| *r >= 1.0)
            .map(|r| r.round() as u64)
            .or(req.rate_hz)
            .with_context(|| {
                format!(
                    "IIO device {}: no sampling_frequency to read: give --rate",
                    info.name
                )
            })?;
        if let Some(r) = req.rate_hz.filter(|&r| r != rate) {
            eprintln!(
                "acquire: IIO device {} runs at {rate} Hz (asked {r} Hz)",
                info.name
            );
        }
        // The timestamp clock: monotonic where the device lets us choose.
        let clock_attr = info.dir.join("current_timestamp_clock");
        if info.clock.is_some() {
            let _ = restore.set(&clock_attr, "monotonic");
        }
        let clock = sysfs::read(&clock_attr).unwrap_or_else(|| "realtime".into());
        let clock_offset = offset_to_monotonic(&clock).with_context(|| {
            format!("IIO timestamp clock {clock:?} is not one acquire can map to CLOCK_MONOTONIC")
        })?;
        // Kernel buffer: a quarter second or four ring blocks, whichever is more.
        let block_scans = ((req.block_bytes as usize - hsdaq_abi::layout::BLOCK_HEADER_BYTES)
            / (layout.values() * layout.format.bytes())) as u64;
        let length = (rate / 4).max(4 * block_scans).clamp(64, 1 << 22);
        let watermark = (rate / 200).clamp(1, length / 4);
        restore.set(&buffer.join("enable"), "0")?;
        restore.set(&buffer.join("length"), &length.to_string())?;
        if buffer.join("watermark").exists() {
            restore.set(&buffer.join("watermark"), &watermark.to_string())?;
        }
        let node_path = info.node();
        let node = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&node_path)
            .with_context(|| {
                format!(
                    "cannot open {} (busy, or no permission)",
                    node_path.display()
                )
            })?;
        let buffer_fd = dmabuf::buffer_fd(&node)?;
        let read_fd = buffer_fd
            .as_ref()
            .map_or(node.as_raw_fd(), |b| b.as_raw_fd());
        let raw_block = block_scans as usize * layout.scan_bytes;
        let (input, access) = match dmabuf::probe(read_fd) {
            Ok(()) => match dmabuf::Queue::new(read_fd, 4, raw_block) {
                Ok(q) => (
                    Input::Dmabuf(q),
                    "dmabuf: the device writes 4 mapped blocks, zero copy".to_string(),
                ),
                Err(e) => (
                    staging(raw_block),
                    format!("read(): the buffer takes DMABUF but {e:#}"),
                ),
            },
            Err(why) => (staging(raw_block), format!("read(): {why}")),
        };
        let gaps = layout
            .timestamp
            .is_some()
            .then(|| TimeGaps::new(rate as f64, TIMESTAMP_JITTER_NS));
        let channels = channel_infos(&info, &layout);
        let mut settings = BTreeMap::new();
        settings.insert("rate-hz".into(), rate.into());
        settings.insert(
            "iio-channels".into(),
            layout
                .channels
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .into(),
        );
        settings.insert("scan-bytes".into(), layout.scan_bytes.into());
        settings.insert("format".into(), layout.format.name().into());
        settings.insert(
            "trigger".into(),
            current
                .clone()
                .unwrap_or_else(|| "none (the device paces itself)".into())
                .into(),
        );
        settings.insert("timestamp-clock".into(), clock.clone().into());
        settings.insert("kernel-buffer-scans".into(), length.into());
        settings.insert("watermark-scans".into(), watermark.into());
        settings.insert("access".into(), access.clone().into());
        settings.insert("block-bytes".into(), req.block_bytes.into());
        settings.insert("buffer-bytes".into(), req.buffer_bytes.into());
        Ok(Self {
            available: File::open(buffer.join("data_available")).ok(),
            info,
            layout,
            rate_hz: rate,
            node,
            buffer: buffer_fd,
            input,
            gaps,
            clock_offset,
            clock,
            pending: 0,
            want_more: false,
            span: None,
            placed: 0,
            length,
            counters: BTreeMap::new(),
            channels,
            settings,
            restore,
        })
    }

    /// The stream layout of acquire's ring for this device.
    pub fn stream(&self, block_bytes: u32, buffer_bytes: u64) -> StreamLayout {
        StreamLayout {
            channels: self.layout.values() as u16,
            format: self.layout.format,
            data_size: buffer_bytes,
            block_bytes,
            rate_hz: self.rate_hz,
        }
    }

    fn read_fd(&self) -> RawFd {
        self.buffer
            .as_ref()
            .map_or(self.node.as_raw_fd(), |b| b.as_raw_fd())
    }

    /// The buffer's `enable` attribute (`open` refuses a device without one).
    fn enable_attr(&self) -> PathBuf {
        self.info
            .buffer
            .as_ref()
            .expect("checked at open")
            .join("enable")
    }

    fn count(&mut self, what: &str, n: u64) {
        *self.counters.entry(what.into()).or_default() += n;
    }

    /// Notes a kfifo found full (losses happened there, uncounted by IIO).
    fn check_full(&mut self) {
        let mut b = [0u8; 24];
        let full = self
            .available
            .as_ref()
            .and_then(|f| f.read_at(&mut b, 0).ok())
            .and_then(|n| {
                std::str::from_utf8(&b[..n])
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        if full.is_some_and(|n| n >= self.length) {
            self.count("kernel-buffer-found-full", 1);
        }
    }
}

fn staging(raw_block: usize) -> Input {
    Input::Read {
        buf: vec![0; raw_block.max(4096) * 2],
        start: 0,
        end: 0,
    }
}

fn channel_infos(info: &Info, layout: &ScanLayout) -> Vec<ChannelInfo> {
    let mut v = Vec::new();
    for e in &layout.channels {
        let c = info
            .channels
            .iter()
            .find(|c| c.name == e.name)
            .expect("laid out from these");
        for k in 0..e.ty.repeat {
            let base = column_name(&e.name);
            let scale = c.scale.filter(|s| s.is_finite() && *s != 0.0);
            v.push(ChannelInfo {
                name: if e.ty.repeat > 1 {
                    format!("{base}_{k}")
                } else {
                    base
                },
                unit: if scale.is_some() {
                    sysfs::unit_of(&e.name).into()
                } else {
                    "count".into()
                },
                scale: scale.unwrap_or(1.0),
                // IIO: physical = (raw + offset) × scale.
                offset: c.offset.unwrap_or(0.0) * scale.unwrap_or(1.0),
                label: c.label.clone(),
                raw: Some(rule(&e.ty, layout.format)),
            });
        }
    }
    v
}

impl Feed for IioFeed {
    fn start(&mut self) -> Result<()> {
        if let Input::Dmabuf(q) = &mut self.input {
            q.enqueue_all()?;
        }
        let enable = self.enable_attr();
        self.restore.set(&enable, "1").with_context(|| {
            format!(
                "cannot enable the buffer of IIO device {} (is its trigger running?)",
                self.info.name
            )
        })
    }

    fn read(&mut self, payload: &mut [u8], max_scans: u32, block_empty: bool) -> Result<Read> {
        if self.pending > 0 && !block_empty {
            return Ok(Read::GapFirst);
        }
        let sb = self.layout.scan_bytes;
        let fd = self.read_fd();
        let dmabuf = matches!(self.input, Input::Dmabuf(_));
        let data: &[u8] = match &mut self.input {
            Input::Read { buf, start, end } => {
                if *end - *start < sb || self.want_more {
                    buf.copy_within(*start..*end, 0);
                    *end -= *start;
                    *start = 0;
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, READ_WAIT.as_millis() as libc::c_int) };
                    // SAFETY: reads into the unused tail of our buffer.
                    let n = unsafe {
                        libc::read(fd, buf[*end..].as_mut_ptr().cast(), buf.len() - *end)
                    };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        match e.raw_os_error() {
                            Some(libc::EAGAIN | libc::EINTR) => return Ok(Read::Nothing),
                            Some(libc::ENODEV) => bail!("IIO device {} went away", self.info.name),
                            _ => return Err(e).context("read from the IIO buffer failed"),
                        }
                    }
                    *end += n as usize;
                    *self.counters.entry("reads".into()).or_default() += 1;
                }
                &buf[*start..*end]
            }
            Input::Dmabuf(q) => q.data(READ_WAIT)?,
        };
        let whole = (data.len() / sb).min(max_scans as usize);
        if whole == 0 {
            return Ok(Read::Nothing);
        }
        let mut lost = std::mem::take(&mut self.pending);
        let vb = self.layout.values() * self.layout.format.bytes();
        let mut n = 0usize;
        let mut times = None::<(u64, u64)>;
        let mut gap_next = 0;
        let scans = data.len() / sb;
        let period_ns = 1e9 / self.rate_hz as f64;
        self.want_more = false;
        for i in 0..whole {
            let scan = &data[i * sb..(i + 1) * sb];
            if let Some(ts) = self.layout.timestamp(scan) {
                let next = if i + 1 < scans {
                    self.layout.timestamp(&data[(i + 1) * sb..])
                } else if dmabuf {
                    // The next block is not dequeued yet: take the step as
                    // the new grid (the next scan one period on).
                    Some(ts + period_ns as i64)
                } else {
                    None
                };
                // The first scan's gap was taken when it was held back.
                let k = match &mut self.gaps {
                    Some(g) if !(i == 0 && lost > 0) => match g.observe(ts, next) {
                        Some(k) => k,
                        None => {
                            // Undecided until the next scan arrives: hold this one.
                            self.want_more = true;
                            break;
                        }
                    },
                    _ => 0,
                };
                if k > 0 && (n > 0 || !block_empty) {
                    // A gap may only open a block: hold this scan back.
                    gap_next = k;
                    break;
                }
                lost += k;
                self.span = Some((self.span.map_or(ts, |s| s.0), ts));
                let t = (ts + self.clock_offset).max(0) as u64;
                times = Some((times.map_or(t, |x| x.0), t));
            }
            self.layout
                .convert(scan, &mut payload[n * vb..(n + 1) * vb]);
            n += 1;
        }
        let consumed = n * sb;
        match &mut self.input {
            Input::Read { start, .. } => *start += consumed,
            Input::Dmabuf(q) => q.consume(consumed),
        }
        self.pending = gap_next;
        if matches!(self.input, Input::Read { .. }) {
            self.check_full();
        }
        if self.span.is_some() {
            self.placed += n as u64 + lost;
        }
        if n == 0 {
            return Ok(if gap_next > 0 {
                Read::GapFirst
            } else {
                Read::Nothing
            });
        }
        Ok(Read::Scans(Batch {
            scans: n as u32,
            lost_before: lost,
            kind: (lost > 0).then_some(hsdaq_abi::layout::GapKind::Inferred),
            times,
            at: None,
        }))
    }

    fn stop(&mut self) -> Result<()> {
        sysfs::write(&self.enable_attr(), "0")
    }

    fn describe(&self) -> DeviceDescription {
        DeviceDescription {
            path: self.info.node().display().to_string(),
            name: self.info.name.clone(),
            compatible: String::new(),
            source: "iio".into(),
            properties: self.settings.clone(),
            module_version: None,
        }
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let mut c = self.counters.clone();
        if let Some((first, last)) = self.span {
            // What the timestamps' span says the trigger produced, beside
            // what the per-scan inference placed: when stamps jitter by
            // more than a period, the second falls short of the first.
            let span = ((last - first) as f64 * self.rate_hz as f64 / 1e9).round() as u64 + 1;
            c.insert("timestamp-span-scans".into(), span);
            c.insert("recorded-or-placed-scans".into(), self.placed);
        }
        c
    }

    fn loss_detection(&self) -> String {
        match &self.gaps {
            Some(g) => format!(
                "inferred: from the timestamp channel ({} clock), a step of more than {:.0} µs beyond the scan grid that the next scan confirms; IIO itself counts no loss (a full kernel buffer drops scans silently); acquire's ring counts its own drops; where stamps jitter by more than a period, per-scan inference falls short (source_counters: timestamp-span-scans vs recorded-or-placed-scans, and a warning)",
                self.clock,
                g.slack_ns() / 1e3
            ),
            None => format!(
                "{LOSS_UNAVAILABLE}: the device has no timestamp channel and IIO counts no loss, so scans dropped in the kernel buffer go unseen (kernel-buffer-found-full counts reads that found it full); acquire's ring counts its own drops"
            ),
        }
    }

    fn timestamps(&self) -> String {
        if self.gaps.is_some() {
            format!("{TIMESTAMPS_MEASURED}: the IIO timestamp channel ({} clock, mapped to CLOCK_MONOTONIC); per block the first scan's stamp and the block's mean period", self.clock)
        } else {
            format!("{TIMESTAMPS_NOMINAL}: stream start + seq x period (the device has no timestamp channel)")
        }
    }

    fn channels(&self) -> Vec<ChannelInfo> {
        self.channels.clone()
    }
}

/// Opens an IIO source as a device the pipeline drains.
pub fn open(req: &IioRequest) -> Result<FeedDevice<IioFeed>> {
    let feed = IioFeed::open(Path::new(sysfs::ROOT), req)?;
    let layout = feed.stream(req.block_bytes, req.buffer_bytes);
    let name = format!("iio:{}", feed.info.name);
    FeedDevice::new(feed, layout, SOURCE_IIO, &name)
}

/// `acquire devices`: one entry per IIO device (name, channels and types,
/// trigger, buffer kind).
pub fn list() -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for i in sysfs::list(Path::new(sysfs::ROOT))? {
        let channels: Vec<serde_json::Value> = i
            .channels
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "index": c.index,
                    "type": c.ty.as_ref().map(|t| t.to_string()).unwrap_or_else(|e| e.clone()),
                    "scale": c.scale, "offset": c.offset, "label": c.label,
                })
            })
            .collect();
        let kind = match &i.buffer {
            None => "none (no buffered capture)".to_string(),
            Some(_) => match std::fs::OpenOptions::new().read(true).open(i.node()) {
                Err(e) => format!("unknown ({}: {e})", i.node().display()),
                Ok(node) => {
                    let fd = dmabuf::buffer_fd(&node).ok().flatten();
                    match dmabuf::probe(fd.as_ref().map_or(node.as_raw_fd(), |f| f.as_raw_fd())) {
                        Ok(()) => "dma (DMABUF zero copy)".into(),
                        Err(why) => format!("read() ({why})"),
                    }
                }
            },
        };
        out.push(serde_json::json!({
            "device": format!("iio:{}", i.name), "node": i.node(), "number": i.number,
            "channels": channels, "trigger": i.trigger, "buffer": kind,
            "timestamp_clock": i.clock,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a fake iio_dummy tree: channels are enabled as asked, the
    /// trigger and buffer set, every change put back afterwards, and the
    /// manifest's channels carry IIO's names, units, scale and offset.
    #[test]
    fn configures_and_restores_a_fake_device() {
        let t = tempfile::tempdir().unwrap();
        sysfs::fake::dummy(t.path());
        let d = t.path().join("iio:device0");
        let req = IioRequest {
            device: "dummy".into(),
            channels: Some(vec!["voltage0".into(), "accel_x".into()]),
            trigger: Some("t0".into()),
            rate_hz: Some(500),
            block_bytes: 4096,
            buffer_bytes: 1 << 20,
        };
        // No /dev/iio:device0 here: open fails at the node, after the
        // settings, which must then be put back.
        let e = IioFeed::open(t.path(), &req)
            .err()
            .expect("no node in a fake tree");
        assert!(
            format!("{e:#}").contains("cannot open /dev/iio:device0"),
            "{e:#}"
        );
        let r = |f: &str| sysfs::read(&d.join(f)).unwrap();
        assert_eq!(r("buffer0/in_voltage0_en"), "0", "restored");
        assert_eq!(r("trigger/current_trigger"), "", "restored");
        assert_eq!(r("current_timestamp_clock"), "realtime", "restored");
        assert_eq!(r("../trigger0/sampling_frequency"), "100", "restored");
        // The layout and channel metadata the open would record.
        let info = sysfs::find(t.path(), "dummy").unwrap();
        let chosen = info
            .channels
            .iter()
            .filter(|c| ["voltage0", "voltage1-voltage2", "timestamp"].contains(&c.name.as_str()))
            .map(|c| (c.name.clone(), c.index, c.ty.clone().unwrap()))
            .collect();
        let l = ScanLayout::new(chosen).unwrap();
        let ch = channel_infos(&info, &l);
        assert_eq!(ch[0].name, "voltage0");
        assert_eq!(ch[0].unit, "mV");
        assert!((ch[0].offset - 3.5 * 0.001333).abs() < 1e-12);
        assert_eq!(ch[1].name, "voltage1_voltage2");
        assert!(ch[1].raw.as_deref().unwrap().contains("le:s12/16>>0"));
        assert!(ch[1]
            .raw
            .as_deref()
            .unwrap()
            .contains("sign-extended into i16"));
    }

    #[test]
    fn unknown_channels_and_triggers_are_named() {
        let t = tempfile::tempdir().unwrap();
        sysfs::fake::dummy(t.path());
        let mut req = IioRequest {
            device: "dummy".into(),
            channels: Some(vec!["voltage9".into()]),
            block_bytes: 4096,
            buffer_bytes: 1 << 20,
            ..Default::default()
        };
        let e = format!("{:#}", IioFeed::open(t.path(), &req).err().unwrap());
        assert!(e.contains("no buffered channel \"voltage9\""), "{e}");
        req.channels = None;
        req.trigger = Some("nope".into());
        let e = format!("{:#}", IioFeed::open(t.path(), &req).err().unwrap());
        assert!(e.contains("no IIO trigger \"nope\"; present: t0"), "{e}");
        req.trigger = None;
        let e = format!("{:#}", IioFeed::open(t.path(), &req).err().unwrap());
        assert!(
            e.contains("needs a trigger and has none: name one with --iio-trigger (present: t0)"),
            "{e}"
        );
    }
}
