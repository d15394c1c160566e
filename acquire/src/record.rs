//! `acquire record`: open the device, plan the run, run the pipeline, write
//! the final manifest and summarise.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hsdaq_abi::layout::StreamLayout;
use hsdaq_abi::Format;
use serde::Serialize;

use crate::counters::Live;
use crate::exit;
use crate::faults::PlannedFault;
use crate::manifest::{sync_dir, Counts, Manifest, RunStatus, SegmentLog, StreamInfo, Versions};
use crate::pipeline::{End, PipelineConfig};
use crate::profile::{channel_infos, Profile};
use crate::sink::codec::Codec;
use crate::sink::pages::ChannelEncoding;
use crate::sink::segment::SegmentFormat;
use crate::source::chardev::CharDevice;
use crate::source::sim::{Overflow, SimConfig, SimDevice};
use crate::source::Device;
use crate::units::uname;
use crate::units::{SegmentPolicy, SegmentPolicyExt};

/// A usage error (exit 2): the flags or profile, not the machine, are wrong.
macro_rules! usage_err {
    ($($t:tt)*) => { crate::units::usage(format!($($t)*)) };
}
macro_rules! usage_bail {
    ($($t:tt)*) => { return Err(usage_err!($($t)*)) };
}

/// Chunks in the recorder's pool: one filling, one encoding, the rest absorb
/// a slow disk or a codec step (memory: `POOL_CHUNKS` × 8 MiB of INT32); the
/// pipeline adds one per encoder beyond the first, up to three
/// (`pipeline::encoder_chunks`), since each holds a chunk while it encodes.
pub const POOL_CHUNKS: usize = 6;

/// The codec when neither flag nor profile names one (docs/BENCHMARKS.md "Encodings").
pub const DEFAULT_CODEC: Codec = Codec::Zstd;
/// The channel encoding when neither flag nor profile names one.
pub const DEFAULT_ENCODING: ChannelEncoding = ChannelEncoding::Delta;

/// Everything `record` was asked for, after merging profile and flags.
#[derive(Clone, Debug)]
pub struct RecordPlan {
    /// `sim` or a device node.
    pub device: String,
    /// Simulator shape (ignored for kernel devices except as expectations).
    pub rate_hz: Option<u64>,
    /// Values per scan.
    pub channels: Option<u16>,
    /// Settings only some sources take (IIO, network).
    pub source: SourceOptions,
    /// Sample format.
    pub format: Option<Format>,
    /// Block slot size.
    pub block_bytes: Option<u32>,
    /// Ring data area size.
    pub buffer_bytes: Option<u64>,
    /// Stop after this many scans.
    pub scans: Option<u64>,
    /// Stop after this much stream time.
    pub duration: Option<Duration>,
    /// Run folder.
    pub out: PathBuf,
    /// Segment policy.
    pub segment: SegmentPolicy,
    /// Codec.
    pub codec: Codec,
    /// Encoding of the channel columns.
    pub encoding: ChannelEncoding,
    /// Encoder threads (`None`: one per core).
    pub encoders: Option<usize>,
    /// Exit 0 despite losses.
    pub allow_loss: bool,
    /// Faults to inject.
    pub faults: Vec<PlannedFault>,
    /// Serve the live view on this address (`--live`).
    pub live: Option<std::net::SocketAddr>,
    /// A PTP hardware clock for the clock-correlation table (`--phc`).
    pub phc: Option<PathBuf>,
    /// Record only windows around triggers (`--trigger`).
    pub trigger: Option<TriggerRequest>,
    /// Simulator runs unpaced.
    pub unpaced: bool,
    /// Simulator carries a test tone (Hz) instead of the reference waveform.
    pub tone: Option<f64>,
    /// Profile, if any.
    pub profile: Option<Profile>,
    /// Machine-readable output.
    pub json: bool,
}

/// `--trigger` and its companions, as typed (the condition is parsed
/// against the stream's channels once the device is open).
#[derive(Clone, Debug)]
pub struct TriggerRequest {
    /// `CHANNEL > LEVEL`, `CHANNEL < LEVEL` or `marker`.
    pub expr: String,
    /// Stream time kept before the trigger.
    pub pre: Duration,
    /// Stream time kept from the trigger on.
    pub post: Duration,
    /// Edge or level.
    pub mode: crate::trigger::Mode,
    /// Hysteresis in the channel's unit.
    pub hysteresis: Option<String>,
    /// Re-arm after each window.
    pub rearm: bool,
    /// Stop after this many windows.
    pub max_events: Option<u32>,
}

/// Pre-trigger history the recorder will hold at most (beside its pool),
/// less the chunks of encoders beyond the first (at most three,
/// `pipeline::encoder_chunks`): with the pool this keeps `acquire` within
/// 256 MiB at any rate.
pub const MAX_HISTORY_BYTES: u64 = 192 << 20;

/// The trigger plan of a request, checked against the stream: an unknown
/// channel, a level in the wrong unit or a history beyond
/// [`MAX_HISTORY_BYTES`] are usage errors, said before anything is written.
fn trigger_plan(
    req: &TriggerRequest,
    channels: &[crate::manifest::ChannelInfo],
    layout: &StreamLayout,
    chunk_rows: usize,
    encoders: usize,
) -> Result<crate::trigger::TriggerPlan> {
    use crate::trigger::{Condition, Level, TriggerPlan, Windows};
    let condition = if req.expr.trim() == "marker" {
        if req.hysteresis.is_some() {
            usage_bail!("--hysteresis applies to a level trigger, not `marker`");
        }
        Condition::Marker
    } else {
        Condition::Level(
            Level::parse(&req.expr, channels, req.hysteresis.as_deref(), req.mode)
                .map_err(|e| usage_err!("{e:#}"))?,
        )
    };
    let pre = if req.pre.is_zero() {
        0
    } else {
        crate::units::scans_in(req.pre, layout.rate_hz, "--pre")?
    };
    let post = crate::units::scans_in(req.post, layout.rate_hz, "--post")?;
    let chunk_bytes = chunk_rows as u64 * layout.scan_bytes() as u64;
    let history = Windows::extra_chunks(pre, chunk_rows) as u64 * chunk_bytes;
    let own = crate::pipeline::encoder_chunks(encoders) as u64 * chunk_bytes;
    let ceiling = MAX_HISTORY_BYTES.saturating_sub(own);
    if history > ceiling {
        usage_bail!(
            "--pre {} at {} scans/s needs {} MiB of pre-trigger history; the ceiling is {} MiB: shorten --pre",
            humantime::format_duration(req.pre),
            layout.rate_hz,
            history >> 20,
            ceiling >> 20
        );
    }
    if req.max_events.is_some() && !req.rearm {
        usage_bail!("--max-events needs --rearm (without it the run stops after the first window)");
    }
    eprintln!(
        "acquire: trigger {}: windows of {pre} scans before and {post} from the trigger; holding up to {:.1} MiB for the pre-trigger history and its working chunks{}",
        req.expr.trim(),
        history as f64 / (1u64 << 20) as f64,
        match (req.rearm, req.max_events) {
            (false, _) => ", one window".to_string(),
            (true, Some(n)) => format!(", re-armed, at most {n} windows"),
            (true, None) => ", re-armed after each window".to_string(),
        }
    );
    Ok(TriggerPlan {
        condition,
        text: req.expr.trim().to_string(),
        pre,
        post,
        rearm: req.rearm,
        max_events: req.max_events,
    })
}

/// Settings only some sources take.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// Channels to record by name (IIO).
    pub channel_names: Option<Vec<String>>,
    /// The IIO trigger to attach (`--iio-trigger`).
    pub iio_trigger: Option<String>,
    /// How datagrams are framed (network).
    pub framing: Option<crate::source::net::Framing>,
    /// The VRT stream to keep (network).
    pub stream_id: Option<u32>,
    /// Packets held back to put late ones in order (network).
    pub reorder: Option<usize>,
    /// Receive buffer to ask for (network).
    pub rcvbuf: Option<u64>,
    /// The sender streams abi's reference waveform (network).
    pub reference_signal: bool,
}

/// The end-of-run summary (`--json` prints it).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Run folder.
    pub run_dir: String,
    /// `complete`, `interrupted` or `failed`.
    pub status: RunStatus,
    /// Failure, if any.
    pub error: Option<String>,
    /// Scans recorded.
    pub scans_recorded: u64,
    /// Scans lost: in recorded gaps and at the end.
    pub scans_lost: u64,
    /// Of those, scans dropped after the last recorded one (no gap row).
    pub scans_lost_at_end: u64,
    /// Of those, scans in inferred gaps: the source's estimate from time,
    /// not a count.
    pub scans_lost_inferred: u64,
    /// Gaps.
    pub gaps: u64,
    /// First gaps (at_seq, lost).
    pub first_gaps: Vec<crate::manifest::Gap>,
    /// Segments closed.
    pub segments: usize,
    /// Parquet bytes.
    pub bytes_written: u64,
    /// Sample bytes recorded.
    pub sample_bytes: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Sample MB/s.
    pub sample_mb_per_s: f64,
    /// Scans per second achieved.
    pub scans_per_s: f64,
    /// Producer's counters.
    pub device_counters: crate::manifest::DeviceCounters,
    /// Highest ring fill seen, percent.
    pub ring_fill_max_percent: f64,
    /// How the source's losses were detected (manifest `stream.loss_detection`).
    pub loss_detection: String,
    /// Triggered runs: windows written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<usize>,
    /// Triggered runs: scans between windows, not kept.
    pub scans_outside_windows: u64,
    /// Of those, scans the source lost (a trigger may have been in them).
    pub scans_lost_outside_windows: u64,
}

/// Whether `device` names an IIO device (`iio:NAME`, `/dev/iio:deviceN`).
pub fn is_iio(device: &str) -> bool {
    device.starts_with("iio:") || device.starts_with("/dev/iio:")
}

/// The simulator's block size when none is asked for: the largest power of
/// two whose block spans at most ~10 ms of the stream, so that progress, the
/// live view and the file follow a slow stream within a fraction of a second
/// (a 64 KiB block is 8 s of a 1 kHz × 4 ch × i16 stream). Bounded below by
/// a header and four scans (and the ABI's minimum), above by 64 KiB, which
/// fast streams need to keep the per-block cost small.
pub fn default_block_bytes(rate_hz: u64, scan_bytes: usize) -> u32 {
    use hsdaq_abi::layout::{BLOCK_HEADER_BYTES, MIN_BLOCK_BYTES};
    const MAX: u64 = 64 << 10;
    let per_10ms = (u128::from(rate_hz) * scan_bytes as u128 / 100) as u64;
    let want = (per_10ms + BLOCK_HEADER_BYTES as u64).min(MAX);
    let floor_pow2 = 1u64 << (63 - want.leading_zeros());
    let min = ((BLOCK_HEADER_BYTES + 4 * scan_bytes) as u64)
        .next_power_of_two()
        .max(u64::from(MIN_BLOCK_BYTES));
    floor_pow2.clamp(min, MAX.max(min)) as u32
}

/// Opens the device named by the plan.
pub fn open_device(plan: &RecordPlan) -> Result<Box<dyn Device>> {
    let o = &plan.source;
    if o.channel_names.is_some() && !is_iio(&plan.device) {
        usage_bail!(
            "--channels by name applies to IIO devices (--device iio:NAME); give a count for {}",
            plan.device
        );
    }
    if o.iio_trigger.is_some() && !is_iio(&plan.device) {
        usage_bail!("--iio-trigger applies to IIO devices (--device iio:NAME)");
    }
    let net = crate::source::net::parse_url(&plan.device);
    let net_only = o.framing.is_some()
        || o.stream_id.is_some()
        || o.reorder.is_some()
        || o.rcvbuf.is_some()
        || o.reference_signal;
    if net.is_none() && net_only {
        usage_bail!("--framing, --stream-id, --reorder, --rcvbuf and --reference-signal apply to network sources (--device udp://ADDR:PORT)");
    }
    if plan.device.starts_with("udp://") && net.is_none() {
        usage_bail!(
            "--device {}: expected udp://ADDR:PORT, e.g. udp://0.0.0.0:4991 or udp://239.1.2.3:4991",
            plan.device
        );
    }
    if let Some(addr) = net {
        let Some(framing) = o.framing else {
            usage_bail!("a network source needs --framing vrt|difi|seq32@OFFSET|seq64@OFFSET");
        };
        let req = crate::source::net::NetRequest {
            addr,
            framing,
            stream_id: o.stream_id,
            channels: plan.channels,
            format: plan.format,
            rate_hz: plan.rate_hz,
            reorder: o.reorder.unwrap_or(32),
            rcvbuf: o.rcvbuf.unwrap_or(64 << 20) as usize,
            reference: o.reference_signal,
            block_bytes: plan.block_bytes.unwrap_or(64 << 10),
            buffer_bytes: plan.buffer_bytes.unwrap_or(64 << 20),
        };
        return Ok(Box::new(crate::source::net::open(&req)?));
    }
    if is_iio(&plan.device) {
        if plan.channels.is_some() || plan.format.is_some() {
            usage_bail!("an IIO device's channels and format come from the device: name channels with --channels NAME,NAME");
        }
        let req = crate::source::iio::IioRequest {
            device: plan
                .device
                .strip_prefix("iio:")
                .unwrap_or(&plan.device)
                .to_string(),
            channels: o.channel_names.clone(),
            trigger: o.iio_trigger.clone(),
            rate_hz: plan.rate_hz,
            block_bytes: plan.block_bytes.unwrap_or(16 << 10),
            buffer_bytes: plan.buffer_bytes.unwrap_or(16 << 20),
        };
        return Ok(Box::new(crate::source::iio::open(&req)?));
    }
    if plan.device == "sim" {
        let (channels, format) = (
            plan.channels.unwrap_or(4),
            plan.format.unwrap_or(Format::I16),
        );
        let rate_hz = plan.rate_hz.unwrap_or(1_000_000);
        let scan_bytes = channels as usize * format.bytes();
        let layout = StreamLayout {
            channels,
            format,
            data_size: plan.buffer_bytes.unwrap_or(64 << 20),
            block_bytes: plan
                .block_bytes
                .unwrap_or_else(|| default_block_bytes(rate_hz, scan_bytes)),
            rate_hz,
        };
        if let Err(e) = layout.validate() {
            usage_bail!(
                "invalid --{}: {} (channels 1..=64, block bytes a power of two >= 256 and <= buffer/2, buffer a power of two 8KiB..1GiB, rate 1..=100M)",
                e.field().replace("-hz", ""),
                match e.field() {
                    "channels" => layout.channels.to_string(),
                    "rate-hz" => layout.rate_hz.to_string(),
                    "block-bytes" => layout.block_bytes.to_string(),
                    _ => layout.data_size.to_string(),
                }
            );
        }
        // Unpaced runs measure the recorder's ceiling: the producer waits
        // for space instead of dropping, so nothing is lost by design.
        let overflow = if plan.unpaced {
            Overflow::Block
        } else {
            Overflow::Drop
        };
        return Ok(Box::new(SimDevice::new(SimConfig {
            layout,
            paced: !plan.unpaced,
            overflow,
            replay: false,
            tone: plan.tone,
        })?));
    }
    let dev = CharDevice::open(Path::new(&plan.device))?;
    let i = *dev.info();
    let fmt = Format::from_raw(i.format);
    let mismatch = |what: &str, want: String, have: String| {
        usage_err!("{what} {want} was asked for, but {} delivers {have}: change the profile/flags or the device's firmware properties", plan.device)
    };
    if let Some(c) = plan.channels.filter(|&c| c != i.channels) {
        return Err(mismatch("channels", c.to_string(), i.channels.to_string()));
    }
    if let Some(f) = plan.format.filter(|&f| Some(f) != fmt) {
        return Err(mismatch(
            "format",
            f.name().into(),
            fmt.map_or("unknown", |f| f.name()).into(),
        ));
    }
    if let Some(r) = plan.rate_hz.filter(|&r| r != i.rate_hz) {
        return Err(mismatch("rate", r.to_string(), i.rate_hz.to_string()));
    }
    Ok(Box::new(dev))
}

/// Creates the run folder; refuses one that already holds a recording.
fn prepare_dir(out: &Path) -> Result<()> {
    if out.join("manifest.json").exists() {
        usage_bail!(
            "{} already holds a recording (manifest.json): choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("blocks"))
        .with_context(|| format!("cannot create run folder {}", out.display()))?;
    // A log left by a run that never wrote its manifest lists nothing of
    // this one.
    SegmentLog::remove(out)?;
    // The new folders' names are durable before any segment relies on them.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)?;
    sync_dir(out)
}

/// Runs `record`; returns the summary and the process exit status.
pub fn record(plan: RecordPlan, stop: Arc<AtomicBool>) -> Result<(Summary, i32)> {
    let mut device = open_device(&plan)?;
    let ring = device.ring();
    let layout = *ring.layout();
    let specs = plan
        .profile
        .as_ref()
        .map(|p| p.channels.clone())
        .unwrap_or_default();
    let channels = channel_infos(&specs, layout.channels as usize, &device.channels())
        .with_context(|| format!("profile does not fit {}", plan.device))
        .map_err(|e| usage_err!("{e:#}"))?;
    // Checked before anything is written: an impossible size is a usage error.
    let scan_limit = match (plan.scans, plan.duration) {
        (Some(n), _) => Some(n),
        (None, Some(d)) => Some(crate::units::scans_in(d, layout.rate_hz, "--duration")?),
        (None, None) => None,
    };
    let segment_scans = plan.segment.scans(layout.rate_hz, layout.scan_bytes())?;
    let chunk_rows = chunk_rows(&layout);
    let encoders = plan.encoders.unwrap_or_else(crate::sched::available_cores);
    let trigger = plan
        .trigger
        .as_ref()
        .map(|t| trigger_plan(t, &channels, &layout, chunk_rows, encoders))
        .transpose()?;
    let clocks = match &plan.phc {
        Some(p) => crate::clock::Clocks::with_phc(p).map_err(|e| usage_err!("{e:#}"))?,
        None => crate::clock::Clocks::system(),
    }
    .with_source(device.source_clock());
    let live = Arc::new(Live::default());
    // Bound before the run folder exists: a busy port leaves nothing behind.
    let (view, tap) = match plan.live {
        Some(addr) => {
            let (tx, rx) = crate::live::tap::tap();
            let meta = crate::live::Meta {
                rate_hz: layout.rate_hz,
                channels: channels.clone(),
                scan_limit,
                bits: 8 * layout.format.bytes() as u32,
                trigger: trigger.as_ref().and_then(|t| match &t.condition {
                    crate::trigger::Condition::Level(l) => Some(l.clone()),
                    crate::trigger::Condition::Marker => None,
                }),
            };
            let view = crate::live::LiveView::start(addr, meta, rx, live.clone())?;
            if !addr.ip().is_loopback() {
                eprintln!(
                    "acquire: the live view listens on {addr}: anyone who reaches it can watch (it is read-only)"
                );
            }
            eprintln!("acquire: live view at {}", view.url());
            (Some(view), Some(tx))
        }
        None => (None, None),
    };
    prepare_dir(&plan.out)?;
    let manifest = start_manifest(
        device.as_ref(),
        &layout,
        channels.clone(),
        plan.codec,
        plan.encoding,
        plan.segment,
        plan.profile.as_ref().and_then(|p| p.board.clone()),
    );
    manifest.write(&plan.out)?;
    let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
    let cfg = PipelineConfig {
        scan_limit,
        segment_scans,
        chunk_rows,
        pool_chunks: POOL_CHUNKS,
        faults: plan.faults.clone(),
        stop: stop.clone(),
        dir: plan.out.clone(),
        format: SegmentFormat::new(&names, layout.format, plan.encoding),
        codec: plan.codec,
        encode_threads: encoders,
        log_segments: !plan.json && !std::io::IsTerminal::is_terminal(&std::io::stderr()),
        tap,
        clocks,
        trigger,
    };
    // `acquire mark` reaches the run through it; gone when the run ends.
    let control = crate::control::Control::start(&plan.out, live.clone());
    let pool = crate::pipeline::pool_total(&cfg);
    let mut progress = crate::progress::Progress::new(plan.json, layout.scan_bytes(), pool);
    let mut health = crate::health::Health::create(&plan.out)?;
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        let live2 = live.clone();
        let h = s.spawn(|| {
            let r = crate::pipeline::run(device.as_mut(), cfg, manifest, live2);
            done.store(true, Ordering::Release);
            r
        });
        while !done.load(Ordering::Acquire) {
            progress.update(&live);
            health.tick(&live);
            std::thread::sleep(Duration::from_millis(100));
        }
        h.join().map_err(|_| anyhow::anyhow!("pipeline panicked"))?
    })?;
    drop(control);
    progress.finish();
    if let Some(v) = view {
        v.stop();
    }
    let mut m = outcome.manifest;
    // Markers taken after the pipeline's last look, before the socket closed.
    m.events.extend(live.timeline.take_events());
    m.events.sort_by_key(|e| e.at_seq);
    m.start_monotonic_ns = live.start_ns.load(Ordering::Relaxed);
    let (status, error) = match &outcome.end {
        End::Limit => (RunStatus::Complete, None),
        // With no --duration/--samples a signal is the planned end.
        End::Signal if scan_limit.is_none() => (RunStatus::Complete, None),
        End::Signal => (RunStatus::Interrupted, None),
        End::Failed(e) => (RunStatus::Failed, Some(e.clone())),
    };
    m.status = status;
    m.error = error.clone();
    // The closed segments' list is the segment log (pipeline::Listing).
    m.write_logged(&plan.out, || {})
        .context("cannot write the final manifest")?;
    let windows = plan.trigger.as_ref().map(|_| {
        SegmentLog::windows(&plan.out).unwrap_or_else(|e| {
            eprintln!("acquire: warning: triggered windows not counted: {e:#}");
            0
        })
    });
    if let Err(e) = SegmentLog::remove(&plan.out) {
        eprintln!("acquire: warning: {e:#} (manifest.json lists every segment)");
    }
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let sample_bytes = m.counts.scans_recorded * layout.scan_bytes() as u64;
    let summary = Summary {
        run_dir: plan.out.display().to_string(),
        status,
        error,
        scans_recorded: m.counts.scans_recorded,
        scans_lost: m.counts.lost(),
        scans_lost_at_end: m.counts.scans_lost_at_end,
        scans_lost_inferred: m.counts.scans_lost_inferred,
        gaps: m.counts.gaps,
        first_gaps: m.gaps.iter().take(10).copied().collect(),
        segments: live.segments.load(Ordering::Relaxed) as usize,
        bytes_written: m.counts.bytes_written,
        sample_bytes,
        seconds: secs,
        sample_mb_per_s: sample_bytes as f64 / secs / 1e6,
        scans_per_s: m.counts.scans_recorded as f64 / secs,
        device_counters: m.device_counters,
        ring_fill_max_percent: live.ring_fill_max_permille.load(Ordering::Relaxed) as f64 / 10.0,
        loss_detection: m.stream.loss_detection.clone(),
        windows,
        scans_outside_windows: m.counts.scans_outside_windows,
        scans_lost_outside_windows: m.counts.scans_lost_outside_windows,
    };
    if let (Some(span), Some(placed)) = (
        m.source_counters.get("timestamp-span-scans"),
        m.source_counters.get("recorded-or-placed-scans"),
    ) {
        if span.abs_diff(*placed) > placed / 100 {
            eprintln!(
                "acquire: warning: the source's timestamps span {span} scans but {placed} were recorded or placed in gaps: its timestamps jitter by more than a sample period, so the inferred gaps are {} by about {} scans",
                if span > placed { "short" } else { "over" },
                span.abs_diff(*placed)
            );
        }
    }
    let code = i32::from(if summary.status == RunStatus::Failed {
        exit::FAILURE
    } else if (summary.scans_lost > 0 || summary.scans_lost_outside_windows > 0) && !plan.allow_loss
    {
        exit::SAMPLES_LOST
    } else if summary.status == RunStatus::Interrupted {
        exit::INTERRUPTED
    } else {
        exit::COMPLETE
    });
    Ok((summary, code))
}

/// The manifest a run starts with, before its first segment (`record` and
/// `bench` both build it here).
pub fn start_manifest(
    device: &dyn Device,
    layout: &StreamLayout,
    channels: Vec<crate::manifest::ChannelInfo>,
    codec: Codec,
    encoding: ChannelEncoding,
    segment_policy: SegmentPolicy,
    board: Option<String>,
) -> Manifest {
    let (kernel_release, host) = uname();
    let desc = device.describe();
    Manifest {
        kind: "hsdaq-run".into(),
        manifest_version: crate::manifest::MANIFEST_VERSION,
        status: RunStatus::Recording,
        error: None,
        board,
        stream: StreamInfo {
            rate_hz: layout.rate_hz,
            channels: layout.channels,
            format: layout.format.name().into(),
            block_bytes: layout.block_bytes,
            block_scans: layout.block_scans(),
            buffer_bytes: layout.data_size,
            signal: device.signal().into(),
            timestamps: device.timestamps(),
            loss_detection: device.loss_detection(),
            first_seq: 0,
            source_clock: device.source_clock().map(|c| c.name.clone()),
        },
        channels,
        kernel_release,
        host,
        versions: Versions {
            acquire: env!("CARGO_PKG_VERSION").into(),
            abi: format!(
                "{}.{}",
                hsdaq_abi::layout::ABI_MAJOR,
                hsdaq_abi::layout::ABI_MINOR
            ),
            module: desc.module_version.clone(),
        },
        device: desc,
        start_wall_clock: humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string(),
        start_monotonic_ns: 0,
        compression: codec.name().into(),
        compression_changes: Vec::new(),
        channel_encoding: encoding.label().into(),
        segment_policy,
        counts: Counts::default(),
        device_counters: Default::default(),
        gaps: Vec::new(),
        gaps_not_listed: 0,
        source_counters: Default::default(),
        events: Vec::new(),
        segments: Vec::new(),
    }
}

/// Rows per chunk: about 8 MiB of widened values and at most a quarter
/// second of data, in whole blocks.
pub fn chunk_rows(layout: &StreamLayout) -> usize {
    let bs = layout.block_scans() as usize;
    let by_bytes = (8 << 20) / (layout.channels as usize * 4);
    let by_time = (layout.rate_hz / 4) as usize;
    (by_bytes.min(by_time) / bs).max(1) * bs
}

impl Summary {
    /// The human summary.
    pub fn print_text(&self) {
        println!(
            "{}: {} scans ({:.1} MB of samples) in {:.2} s = {:.1} MB/s, {:.0} scans/s; {} segments, {:.1} MB Parquet in {}",
            self.status,
            self.scans_recorded,
            self.sample_bytes as f64 / 1e6,
            self.seconds,
            self.sample_mb_per_s,
            self.scans_per_s,
            self.segments,
            self.bytes_written as f64 / 1e6,
            self.run_dir
        );
        // The producer may drop blocks past the end of the recording while
        // the recorder catches up; those were never asked for.
        let beyond = self
            .device_counters
            .dropped_scans
            .saturating_sub(self.scans_lost + self.scans_lost_outside_windows);
        println!(
            "ring: max fill {:.1}%; producer dropped {} blocks ({} scans{}) in {} overruns",
            self.ring_fill_max_percent,
            self.device_counters.dropped_blocks,
            self.device_counters.dropped_scans,
            match beyond {
                0 => String::new(),
                n => format!(", {n} of them after the recording's end"),
            },
            self.device_counters.overruns
        );
        if let Some(n) = self.windows {
            println!(
                "triggered: {n} windows; {} scans between them not kept{}",
                self.scans_outside_windows,
                match self.scans_lost_outside_windows {
                    0 => String::new(),
                    l => format!(
                        "; LOST {l} of them (outside every window, but a trigger may have been among them)"
                    ),
                }
            );
        }
        if self.scans_lost > 0 {
            let list: Vec<String> = self
                .first_gaps
                .iter()
                .map(|g| match g.kind {
                    crate::manifest::GapKind::Counted => {
                        format!("{} before seq {}", g.lost, g.at_seq)
                    }
                    crate::manifest::GapKind::Bounded => {
                        format!("at least {} before seq {} (bounded)", g.lost, g.at_seq)
                    }
                    // An estimate is never printed as if it were a count.
                    kind => format!("~{} before ~seq {} ({})", g.lost, g.at_seq, kind.name()),
                })
                .collect();
            let mut end = match self.scans_lost_at_end {
                0 => String::new(),
                n => format!("; {n} after the last recorded scan"),
            };
            if self.scans_lost_inferred > 0 {
                end += &format!(
                    "; {} of them inferred from time by the source (estimates, not counts)",
                    self.scans_lost_inferred
                );
            }
            println!(
                "LOST {} scans in {} gaps: {}{}{end}",
                self.scans_lost,
                self.gaps,
                list.join(", "),
                if self.gaps > 10 { ", …" } else { "" }
            );
        } else if self
            .loss_detection
            .starts_with(crate::manifest::LOSS_UNAVAILABLE)
        {
            println!(
                "no loss seen, but loss detection was unavailable: {}",
                self.loss_detection
            );
        } else {
            println!("no samples lost");
        }
        if let Some(e) = &self.error {
            eprintln!("acquire: error: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_blocks_span_at_most_about_ten_ms() {
        use hsdaq_abi::layout::BLOCK_HEADER_BYTES;
        for (rate, scan) in [
            (1_000u64, 8usize),
            (10_000, 8),
            (48_000, 16),
            (250_000, 16),
            (1_000_000, 8),
            (25_000_000, 8),
            (1_000, 256),
        ] {
            let b = default_block_bytes(rate, scan);
            assert!(
                b.is_power_of_two() && (256..=64 << 10).contains(&b),
                "{rate} {scan}: {b}"
            );
            let scans = (b as usize - BLOCK_HEADER_BYTES) / scan;
            assert!(scans >= 4, "{rate} {scan}: {scans} scans");
            let ms = scans as f64 * 1e3 / rate as f64;
            // ~10 ms unless the floor (4 scans, 256 B) or the 64 KiB cap decides.
            assert!(
                ms <= 10.0 || b == 256 || scans == 4,
                "{rate} {scan}: {ms} ms"
            );
            if b < 64 << 10 && b > 256 {
                assert!(ms > 2.5, "{rate} {scan}: {ms} ms is needlessly small");
            }
        }
        assert_eq!(
            default_block_bytes(1_000_000, 8),
            64 << 10,
            "fast streams keep 64 KiB"
        );
        assert_eq!(default_block_bytes(10_000, 8), 512);
    }
}
