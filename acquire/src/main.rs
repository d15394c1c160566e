//! `acquire`: record, verify and inspect hsdaq sample streams.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use hsdaq_abi::Format;
use hsdaq_acquire::faults::PlannedFault;
use hsdaq_acquire::profile::Profile;
use hsdaq_acquire::record::{self, RecordPlan};
use hsdaq_acquire::sink::codec::Codec;
use hsdaq_acquire::sink::pages::ChannelEncoding;
use hsdaq_acquire::source::{source_name, status_name};
use hsdaq_acquire::units::{
    parse_bytes, parse_positive_duration, parse_rate, parse_scan_count, SegmentPolicy,
    SegmentPolicyExt, UsageError,
};
use hsdaq_acquire::{bench, exit, units, verify};

/// Record high-speed sample streams from an hsdaq device (or the simulator) to Parquet.
#[derive(Parser)]
#[command(name = "acquire", about, propagate_version = true, after_help = exit::TABLE)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record a stream into a run folder of Parquet segments.
    Record(Box<RecordArgs>),
    /// Check structure, continuity against the gaps, timestamps and checksums;
    /// recompute every value when the source is the reference waveform.
    Verify {
        /// A run folder or one segment file.
        path: PathBuf,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
        /// Check a run whose manifest.json is lost or damaged against the
        /// segments' embedded records alone.
        #[arg(long)]
        trust_segments: bool,
    },
    /// Rebuild a run's manifest.json from its closed segments after the
    /// recorder stopped without closing it (killed, power cut).
    Recover {
        /// The run folder.
        dir: PathBuf,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Show a device's ABI version, layout and counters.
    Info {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure every pipeline stage against memcpy, per codec.
    Bench(BenchArgs),
    /// List the devices acquire can record: hsdaq nodes and IIO devices
    /// (channels, types, trigger, buffer kind).
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stream abi's reference waveform as UDP datagrams (VRT, DIFI or a
    /// counter), breaking it on purpose if asked: a test and benchmark
    /// sender, to loopback or a peer in the test's own network namespace only.
    Send(SendArgs),
    /// Drop a marker into a running recording: an event at the sample the
    /// producer is taking now (manifest `events`, kind `marker`).
    Mark {
        /// The run folder `acquire record --out` is writing.
        dir: PathBuf,
        /// What happened, in words (at most 1000 bytes).
        #[arg(long, default_value = "")]
        text: String,
        /// Print JSON ({"at_seq": N, "mono_ns": T}).
        #[arg(long)]
        json: bool,
    },
    /// List board profiles (BOARD/acquire.toml).
    Boards {
        /// Folder holding one sub-folder per board. Default: $HSDAQ_BOARDS,
        /// else ./boards in a checkout, else the installed profiles
        /// (/usr/share/hsdaq/boards, or ../share/hsdaq/boards beside the binary).
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with --dir write one page per subcommand.
    Manpage {
        /// Write acquire.1 and acquire-SUBCOMMAND.1 into this folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct ShapeArgs {
    /// `sim` for the built-in simulator, a device node such as /dev/hsdaq0,
    /// an IIO device (iio:NAME, iio:N or /dev/iio:deviceN: `acquire devices`
    /// lists them) or a network source (udp://ADDR:PORT). Default: the
    /// profile's device, else sim.
    #[arg(long)]
    device: Option<String>,
    /// Scans per second (simulator), e.g. 1000, 250k, 25M. A kernel device's rate must match if given.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Values per scan (simulator; checked against a kernel device), or for
    /// an IIO device the channels to record by name (voltage0,accel_x) or
    /// `all`; the timestamp channel is always added (it detects loss)
    /// unless `-timestamp` is listed.
    #[arg(long, value_parser = parse_channels)]
    channels: Option<ChannelsArg>,
    /// IIO devices: the trigger to attach (a name from `acquire devices`).
    #[arg(long, value_name = "NAME")]
    iio_trigger: Option<String>,
    /// Network sources: how datagrams are framed: vrt, difi, seq32@OFFSET or
    /// seq64@OFFSET (a big-endian datagram counter at byte OFFSET, samples after it).
    #[arg(long)]
    framing: Option<hsdaq_acquire::source::net::Framing>,
    /// Network sources (VRT): the stream ID to record; others are counted and skipped.
    #[arg(long, value_parser = parse_u32_auto)]
    stream_id: Option<u32>,
    /// Network sources: packets held back to put late ones in order (default 32).
    #[arg(long, value_parser = parse_count::<usize>)]
    reorder: Option<usize>,
    /// Network sources: receive buffer to ask for, e.g. 64MiB (capped by net.core.rmem_max).
    #[arg(long, value_parser = parse_bytes)]
    rcvbuf: Option<u64>,
    /// Network sources: the sender streams abi's reference waveform (acquire
    /// send), so verify may recompute every value.
    #[arg(long)]
    reference_signal: bool,
    /// Sample format (simulator; checked against a kernel device).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Block slot size (simulator), a power of two, e.g. 64KiB.
    #[arg(long, value_parser = parse_u32_bytes)]
    block_bytes: Option<u32>,
    /// Ring data area (simulator), a power of two, e.g. 64MiB.
    #[arg(long, value_parser = parse_bytes)]
    buffer_bytes: Option<u64>,
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Stop after this much stream time, e.g. 10s (above 0).
    #[arg(long, value_parser = parse_positive_duration, conflicts_with = "samples")]
    duration: Option<std::time::Duration>,
    /// Stop after this many scans (1 to 2^63-1).
    #[arg(long, value_parser = parse_scan_count)]
    samples: Option<u64>,
    /// Run folder to create.
    #[arg(long)]
    out: PathBuf,
    /// Segment size: a duration (1s) or sample bytes (256MiB). Default 1s.
    #[arg(long, value_parser = SegmentPolicy::parse)]
    segment: Option<SegmentPolicy>,
    /// Compression codec; `auto` picks, row group by row group, the strongest that keeps up. Default zstd.
    #[arg(long, value_enum)]
    compression: Option<Codec>,
    /// Encoding of the channel columns. Default delta.
    #[arg(long, value_enum)]
    encoding: Option<ChannelEncoding>,
    /// Encoder threads, each encoding whole chunks on one core (default: one
    /// per core); fewer leaves the rest to the drain, the producer and
    /// other work on the board.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    encoders: Option<u16>,
    /// Board profile (TOML).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Exit 0 even if samples were lost (losses are still recorded and reported).
    #[arg(long, overrides_with = "no_allow_loss")]
    allow_loss: bool,
    /// Exit 3 if samples were lost, whatever the profile says (the default).
    #[arg(long, overrides_with = "allow_loss")]
    no_allow_loss: bool,
    /// Print a JSON summary at the end instead of text.
    #[arg(long)]
    json: bool,
    /// Inject a fault (tests and drills), T after the start:
    /// overrun:BLOCKS@T, stall-producer:DUR@T, stall-consumer:DUR@T,
    /// jitter:DUR@T, slow-disk:BYTES@T (bytes per second),
    /// powercut:write|seal|sync|rename|manifest@T (reboots the machine
    /// without syncing: a test VM only, needs HSDAQ_POWERCUT=1).
    #[arg(long = "fault", value_parser = PlannedFault::parse, help_heading = "Testing (not for real recordings)")]
    faults: Vec<PlannedFault>,
    /// Simulator only: produce as fast as the recorder drains (waits when full) instead of at --rate.
    #[arg(long, help_heading = "Testing (not for real recordings)")]
    unpaced: bool,
    /// Simulator only: every channel carries a pure tone of this frequency
    /// (Hz) instead of the reference waveform (the live view's scope test).
    #[arg(long, value_name = "HZ", value_parser = parse_tone, help_heading = "Testing (not for real recordings)")]
    tone: Option<f64>,
    /// Serve a read-only live view (signal envelope, rate, losses) while
    /// recording, at ADDR (IP:PORT; default 127.0.0.1 on a free port). A
    /// non-loopback address exposes it to the network: the user's choice.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    live: Option<std::net::SocketAddr>,
    /// Add a PTP hardware clock (/dev/ptpN) to the run's clock-correlation
    /// table (clock/), beside CLOCK_MONOTONIC, REALTIME and TAI.
    #[arg(long, value_name = "DEVICE")]
    phc: Option<PathBuf>,
    #[command(flatten)]
    trigger: TriggerArgs,
}

/// Snapshot windows around a trigger, instead of the whole stream.
#[derive(Args)]
#[command(next_help_heading = "Triggers (record only windows around events)")]
struct TriggerArgs {
    /// Record only windows around events: 'CHANNEL > LEVEL' (rising
    /// through the level), 'CHANNEL < LEVEL' (falling), in the channel's
    /// physical unit (e.g. 'ch3 > 1.5V', 'ch0 < -200'), or `marker`
    /// (each `acquire mark` opens a window at its sample).
    #[arg(long, value_name = "CONDITION")]
    trigger: Option<String>,
    /// Stream time kept before the trigger (e.g. 2s; 0 for none), held in
    /// memory while armed: its size is said at the start, and refused above
    /// 192 MiB less a chunk per encoder beyond the first (at most three).
    #[arg(long, value_parser = units::parse_duration, requires = "trigger", default_value = "0s", hide_default_value = true)]
    pre: std::time::Duration,
    /// Stream time kept from the trigger on (e.g. 5s). A trigger inside a
    /// window is recorded as an event and does not extend it.
    #[arg(long, value_parser = parse_positive_duration, requires = "trigger")]
    post: Option<std::time::Duration>,
    /// Edge: fire where the value crosses the level (default); level: fire
    /// whenever it is beyond the level when armed.
    #[arg(long, value_enum, requires = "trigger", default_value_t = hsdaq_acquire::trigger::Mode::Edge)]
    trigger_mode: hsdaq_acquire::trigger::Mode,
    /// An edge re-arms only once the value is back past the level by this
    /// much (same unit as the level; default 0).
    #[arg(long, value_name = "LEVEL", requires = "trigger")]
    hysteresis: Option<String>,
    /// Re-arm after each window (default: stop after the first).
    #[arg(long, requires = "trigger")]
    rearm: bool,
    /// Stop after this many windows (with --rearm).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), requires = "trigger")]
    max_events: Option<u32>,
}

/// A test tone's frequency: a positive number of Hz.
fn parse_tone(s: &str) -> Result<f64> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => anyhow::bail!("expected a frequency in Hz above 0, e.g. 1000"),
    }
}

impl TriggerArgs {
    /// The request, or a usage error when --post is missing.
    fn request(self) -> Result<Option<record::TriggerRequest>> {
        let Some(expr) = self.trigger else {
            return Ok(None);
        };
        let Some(post) = self.post else {
            return Err(units::usage(
                "--trigger needs --post (how much to keep from the trigger on, e.g. 5s)",
            ));
        };
        Ok(Some(record::TriggerRequest {
            expr,
            pre: self.pre,
            post,
            mode: self.trigger_mode,
            hysteresis: self.hysteresis,
            rearm: self.rearm,
            max_events: self.max_events,
        }))
    }
}

#[derive(Args)]
struct SendArgs {
    /// Destination ADDR:PORT.
    #[arg(long)]
    to: std::net::SocketAddr,
    /// vrt, difi, seq32@OFFSET or seq64@OFFSET.
    #[arg(long)]
    framing: hsdaq_acquire::source::net::Framing,
    /// Scans per second, e.g. 1M.
    #[arg(long, value_parser = parse_rate)]
    rate: u64,
    /// Values per scan.
    #[arg(long, default_value_t = 2)]
    channels: u16,
    /// Sample format.
    #[arg(long, value_parser = parse_format, default_value = "i16")]
    format: Format,
    /// Scans per datagram.
    #[arg(long, default_value = "256", value_parser = parse_count::<u32>)]
    scans_per_datagram: u32,
    /// Datagrams to send (1 to 10^9).
    #[arg(long, value_parser = parse_scan_count)]
    datagrams: u64,
    /// The stream's index of the first sample.
    #[arg(long, default_value = "0", value_parser = parse_count::<u64>)]
    first_index: u64,
    /// VRT stream ID.
    #[arg(long, value_parser = parse_u32_auto, default_value = "1")]
    stream_id: u32,
    /// Break the stream: drop:N@K, dup@K, swap@K, corrupt@K, wrong-stream@K, loss-bit@K (K: datagram number).
    #[arg(long = "fault", help_heading = "Testing (not for real recordings)")]
    faults: Vec<hsdaq_acquire::source::net::send::Fault>,
    /// Send as fast as possible.
    #[arg(long)]
    unpaced: bool,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Seconds per full-pipeline run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes written for the disk limit (long enough that the disk, not the page cache, sets it).
    #[arg(long, value_parser = parse_bytes, default_value = "1GiB")]
    disk_bytes: u64,
    /// tmpfs folder for the in-memory pipeline runs ("none" skips them).
    #[arg(long, default_value = "/dev/shm")]
    tmpfs: PathBuf,
    /// Sustained recordings to --dir at these rates, e.g. 25M,30M (the highest loss-free one is the headline).
    #[arg(long, value_parser = parse_rate, value_delimiter = ',')]
    sustain: Vec<u64>,
    /// Seconds of each sustained recording.
    #[arg(long, default_value_t = 60.0)]
    sustain_seconds: f64,
    /// Values per scan.
    #[arg(long, default_value_t = 4)]
    channels: u16,
    /// Sample format.
    #[arg(long, value_parser = parse_format, default_value = "i16")]
    format: Format,
    /// Rate of the paced, loss-counted recording (0 skips it).
    #[arg(long, value_parser = parse_rate_or_zero, default_value = "10M")]
    paced_rate: u64,
    /// Seconds of the paced recording.
    #[arg(long, default_value_t = 5.0)]
    paced_seconds: f64,
    /// The output filesystem: temporary recordings and the disk limit go there.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    /// The same rules as `record`: a bad value is a usage error naming it.
    fn validate(&self) -> Result<()> {
        let usage = |m: String| -> Result<()> { Err(units::usage(m)) };
        if self.channels == 0 || self.channels > hsdaq_abi::layout::MAX_CHANNELS {
            return usage(format!(
                "--channels {}: expected 1 to {}",
                self.channels,
                hsdaq_abi::layout::MAX_CHANNELS
            ));
        }
        for (flag, v, min) in [
            ("--seconds", self.seconds, f64::MIN_POSITIVE),
            ("--paced-seconds", self.paced_seconds, 0.0),
            ("--sustain-seconds", self.sustain_seconds, f64::MIN_POSITIVE),
        ] {
            if !v.is_finite() || v < min || v > 3600.0 {
                return usage(format!(
                    "{flag} {v}: expected a number of seconds {} 0 and at most 3600",
                    if min > 0.0 { "above" } else { "from" }
                ));
            }
        }
        if self.runs == 0 || self.runs > 99 {
            return usage(format!("--runs {}: expected 1 to 99", self.runs));
        }
        if self.disk_bytes < 1 << 20 {
            return usage(format!(
                "--disk-bytes {}: expected at least 1MiB",
                self.disk_bytes
            ));
        }
        if self.tmpfs != std::path::Path::new("none") && !self.tmpfs.is_dir() {
            return usage(format!(
                "--tmpfs {}: no such directory (use --tmpfs none to skip the in-memory runs)",
                self.tmpfs.display()
            ));
        }
        if !self.dir.is_dir() {
            return usage(format!(
                "--dir {}: no such directory (bench writes its temporary recordings there)",
                self.dir.display()
            ));
        }
        Ok(())
    }
}

/// `--channels`: a count, or channel names (IIO).
#[derive(Clone, Debug)]
enum ChannelsArg {
    Count(u16),
    Names(Option<Vec<String>>),
}

fn parse_channels(s: &str) -> Result<ChannelsArg> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(ChannelsArg::Count(
            s.parse()
                .with_context(|| format!("--channels {s}: too large"))?,
        ));
    }
    if s == "all" {
        return Ok(ChannelsArg::Names(None));
    }
    let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(|n| n.is_empty()) {
        bail!("--channels {s:?}: an empty channel name");
    }
    Ok(ChannelsArg::Names(Some(names)))
}

impl ShapeArgs {
    fn count(&self) -> Option<u16> {
        match &self.channels {
            Some(ChannelsArg::Count(n)) => Some(*n),
            _ => None,
        }
    }
    fn names(&self) -> Option<Vec<String>> {
        match &self.channels {
            // `all` is `Names(None)`: every channel.
            Some(ChannelsArg::Names(n)) => n.clone(),
            _ => None,
        }
    }
    fn options(&self) -> record::SourceOptions {
        record::SourceOptions {
            channel_names: self.names(),
            iio_trigger: self.iio_trigger.clone(),
            framing: self.framing,
            stream_id: self.stream_id,
            reorder: self.reorder,
            rcvbuf: self.rcvbuf,
            reference_signal: self.reference_signal,
        }
    }
}

fn parse_u32_auto(s: &str) -> Result<u32> {
    match s.strip_prefix("0x") {
        Some(h) => {
            u32::from_str_radix(h, 16).with_context(|| format!("{s}: not a 32-bit hex number"))
        }
        None => s
            .parse()
            .with_context(|| format!("{s}: not a 32-bit number")),
    }
}

/// A count in the one number grammar (`units::parse_quantity`: `4k`,
/// `1Mi`), checked to fit its field.
fn parse_count<T: TryFrom<u64>>(s: &str) -> Result<T> {
    let n = units::parse_quantity(s, false)
        .context("invalid count (a whole number such as 256, 4k or 1Mi)")?;
    T::try_from(n).map_err(|_| anyhow::anyhow!("{s} is too large here"))
}

fn parse_format(s: &str) -> Result<Format> {
    Format::from_name(s.as_bytes()).with_context(|| format!("invalid format {s:?}: use i16 or i32"))
}

fn parse_u32_bytes(s: &str) -> Result<u32> {
    let b = parse_bytes(s)?;
    u32::try_from(b).with_context(|| format!("{s} is too large for a block"))
}

fn parse_rate_or_zero(s: &str) -> Result<u64> {
    if s == "0" {
        Ok(0)
    } else {
        parse_rate(s)
    }
}

fn main() -> ExitCode {
    // A recorder must see a full disk or a file-size limit as an error it
    // can report, not die from SIGXFSZ.
    // SAFETY: setting a signal's disposition to SIG_IGN at start-up, before
    // any thread exists, is async-signal-safe and has no other effect.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Pages and chunks are megabytes each: keep such allocations on the
    // heap for reuse instead of a fresh mmap (and page faults) every time.
    // Resident memory stays bounded by the chunk pool either way.
    // SAFETY: mallopt only tunes glibc's allocator; called before threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if !matches!(cli.cmd, Cmd::Record(_)) {
        // A listing piped into `head` ends quietly when the reader goes,
        // like any Unix tool. A recording keeps SIGPIPE ignored: a closed
        // progress pipe must not kill it before its segment is sealed.
        // SAFETY: restoring a signal's default disposition, before any
        // thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("acquire: error: {e:#}");
            // Usage errors are made as the root error (`units::usage`);
            // anyhow finds the root through any context added on the way.
            let is_usage = e.downcast_ref::<UsageError>().is_some();
            ExitCode::from(if is_usage { exit::USAGE } else { exit::FAILURE })
        }
    }
}

/// The clap command with the version line that names the ring ABI this
/// build speaks (a board's driver must match its major).
fn command() -> clap::Command {
    let v = format!(
        "{} (ring ABI {}.{}, reads {}.x)",
        env!("CARGO_PKG_VERSION"),
        hsdaq_abi::layout::ABI_MAJOR,
        hsdaq_abi::layout::ABI_MINOR,
        hsdaq_abi::layout::ABI_MAJOR
    );
    Cli::command()
        .version(v)
        .mut_subcommands(|c| c.after_help(exit::TABLE))
}

/// Marks an error as the user's (exit 2), keeping its message.
fn usage(e: anyhow::Error) -> anyhow::Error {
    units::usage(format!("{e:#}"))
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Record(a) => cmd_record(*a),
        Cmd::Verify {
            path,
            json,
            trust_segments,
        } => {
            let r = verify::verify(&path, trust_segments)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for p in &r.partial_skipped {
                    eprintln!("acquire: verify: skipped unfinished segment {p}");
                }
                if let Some(h) = &r.hint {
                    eprintln!("acquire: verify: {h}");
                }
                match &r.first_error {
                    None if r.nothing_recorded && !r.checks.is_empty() => {
                        println!("OK: a triggered run in which no window opened: nothing recorded");
                        for c in &r.checks {
                            println!("  checked {c}");
                        }
                    }
                    None if r.nothing_recorded => println!(
                        "OK: recovered run with no segment: the recorder stopped before its first segment was durable; nothing recorded, nothing to check"
                    ),
                    None => {
                        println!(
                            "OK: {} files, {} rows, {} values{}; {} gaps ({} scans lost{}) match the recorded gaps; t_ns strictly increasing",
                            r.files.len(),
                            r.rows,
                            r.values,
                            if r.values_compared {
                                " match the reference waveform"
                            } else {
                                " decoded (external signal: not compared)"
                            },
                            r.gaps,
                            r.lost,
                            if r.lost_inferred > 0 {
                                format!(", {} of them inferred", r.lost_inferred)
                            } else {
                                String::new()
                            }
                        );
                        for c in &r.checks {
                            println!("  checked {c}");
                        }
                    }
                    Some(e) => eprintln!("acquire: verify FAILED after {} rows: {e}", r.rows),
                }
            }
            Ok(if r.ok() { 0 } else { 1 })
        }
        Cmd::Recover { dir, json } => cmd_recover(&dir, json),
        Cmd::Info { shape, json } => cmd_info(shape, json),
        Cmd::Bench(b) => {
            b.validate()?;
            let cfg = bench::BenchConfig {
                channels: b.channels,
                format: b.format,
                seconds: b.seconds,
                runs: b.runs,
                disk_bytes: b.disk_bytes,
                paced_rate: b.paced_rate,
                paced_seconds: b.paced_seconds,
                sustain_rates: b.sustain,
                sustain_seconds: b.sustain_seconds,
                dir: b.dir,
                tmpfs: (b.tmpfs != std::path::Path::new("none")).then_some(b.tmpfs),
            };
            let json = b.json;
            // Progress goes to stderr, so `--json` keeps stdout one object.
            let r = bench::run(&cfg, |s| eprintln!("bench: {s}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                r.print_text();
            }
            Ok(0)
        }
        Cmd::Boards { dir, json } => cmd_boards(dir, json),
        Cmd::Mark { dir, text, json } => {
            if text.len() > hsdaq_acquire::control::MAX_TEXT {
                return Err(units::usage(format!(
                    "--text: at most {} bytes",
                    hsdaq_acquire::control::MAX_TEXT
                )));
            }
            let r = hsdaq_acquire::control::mark(&dir, &text)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("marker at seq {}", r.at_seq.unwrap_or(0));
            }
            Ok(0)
        }
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "acquire", &mut out);
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(0)
        }
        Cmd::Manpage { dir } => cmd_manpage(dir),
        Cmd::Devices { json } => cmd_devices(json),
        Cmd::Send(a) => {
            if a.channels == 0
                || a.channels > hsdaq_abi::layout::MAX_CHANNELS
                || a.scans_per_datagram == 0
            {
                return Err(units::usage(
                    "--channels 1..64 and --scans-per-datagram above 0",
                ));
            }
            let plan = hsdaq_acquire::source::net::send::SendPlan {
                to: a.to,
                framing: a.framing,
                rate_hz: a.rate,
                channels: a.channels,
                format: a.format,
                scans_per_datagram: a.scans_per_datagram,
                datagrams: a.datagrams,
                first_index: a.first_index,
                stream_id: a.stream_id,
                faults: a.faults,
                unpaced: a.unpaced,
            };
            let r = hsdaq_acquire::source::net::send::send(&plan, |s| eprintln!("send: {s}"))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "sent {} datagrams ({:.1} MB of samples) in {:.2} s; left out on purpose: {} datagrams ({} scans)",
                    r.datagrams, r.sample_bytes as f64 / 1e6, r.seconds, r.dropped, r.dropped_scans
                );
            }
            Ok(0)
        }
    }
}

fn cmd_record(a: RecordArgs) -> Result<i32> {
    // Every setting: the flag if given, else the profile's, else the default.
    let profile = a
        .profile
        .as_deref()
        .map(Profile::load)
        .transpose()
        .map_err(usage)?;
    let p = profile.clone().unwrap_or_default();
    let pf = p
        .device
        .format
        .as_deref()
        .map(parse_format)
        .transpose()
        .map_err(usage)?;
    let device = a
        .shape
        .device
        .clone()
        .or_else(|| p.device.path.clone())
        .unwrap_or_else(|| "sim".into());
    let iio = record::is_iio(&device);
    let segment = match (a.segment, &p.record.segment) {
        (Some(s), _) => s,
        (None, Some(s)) => SegmentPolicy::parse(s)
            .context("invalid record.segment in profile")
            .map_err(usage)?,
        (None, None) => SegmentPolicy::parse("1s")?,
    };
    let plan = RecordPlan {
        device,
        rate_hz: a.shape.rate.or(p.device.rate_hz),
        channels: a
            .shape
            .count()
            .or(if iio { None } else { p.device.channels }),
        source: a.shape.options(),
        format: a.shape.format.or(pf),
        block_bytes: a.shape.block_bytes.or(p.device.block_bytes),
        buffer_bytes: a.shape.buffer_bytes.or(p.device.buffer_bytes),
        scans: a.samples,
        duration: a.duration,
        out: a.out,
        segment,
        codec: a
            .compression
            .or(p.record.compression)
            .unwrap_or(record::DEFAULT_CODEC),
        encoders: a.encoders.map(usize::from),
        encoding: a
            .encoding
            .or(p.record.encoding)
            .unwrap_or(record::DEFAULT_ENCODING),
        allow_loss: if a.allow_loss || a.no_allow_loss {
            a.allow_loss
        } else {
            p.record.allow_loss.unwrap_or(false)
        },
        faults: a.faults,
        live: a.live,
        phc: a.phc,
        trigger: a.trigger.request()?,
        unpaced: a.unpaced,
        tone: a.tone,
        profile,
        json: a.json,
    };
    if plan.tone.is_some() && plan.device != "sim" {
        return Err(units::usage("--tone applies to the simulator only"));
    }
    if plan.unpaced && plan.device != "sim" {
        return Err(units::usage("--unpaced applies to the simulator only"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    let json = plan.json;
    let (summary, code) = record::record(plan, stop)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        if let Some(e) = &summary.error {
            eprintln!("acquire: error: {e}");
        }
    } else {
        summary.print_text();
    }
    Ok(code)
}

fn cmd_recover(dir: &std::path::Path, json: bool) -> Result<i32> {
    let r = hsdaq_acquire::recover::recover(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let was = r.previous_status.map_or("missing", |s| s.as_str());
        if r.rewritten {
            println!(
                "recovered {}: manifest.json (was {was}) rebuilt from {} closed segments ({} not listed before): {} scans, {} lost in recorded gaps",
                r.run_dir, r.segments, r.segments_added, r.scans_recorded, r.scans_lost
            );
        } else {
            println!(
                "{}: the run was closed (manifest status {was}); manifest.json left as it is, {} closed segments",
                r.run_dir, r.segments
            );
        }
        for s in &r.salvaged {
            println!("completed: {s} (sealed and synced, stopped before its rename)");
        }
        for p in &r.partial {
            println!("left in place: {} ({} bytes): {}", p.file, p.bytes, p.why);
        }
        for u in &r.unreadable {
            eprintln!("acquire: recover: unreadable segment, not in the manifest: {u}");
        }
        for d in &r.damage {
            eprintln!("acquire: recover: still damaged: {d}");
        }
    }
    Ok(if r.ok() { 0 } else { 1 })
}

fn cmd_info(shape: ShapeArgs, json: bool) -> Result<i32> {
    let plan = RecordPlan {
        channels: shape.count(),
        source: shape.options(),
        device: shape.device.unwrap_or_else(|| "sim".into()),
        rate_hz: shape.rate,
        format: shape.format,
        block_bytes: shape.block_bytes,
        buffer_bytes: shape.buffer_bytes,
        scans: None,
        duration: None,
        out: PathBuf::new(),
        segment: SegmentPolicy::Bytes(1),
        codec: Codec::None,
        encoding: record::DEFAULT_ENCODING,
        encoders: None,
        allow_loss: false,
        faults: Vec::new(),
        live: None,
        phc: None,
        trigger: None,
        unpaced: false,
        tone: None,
        profile: None,
        json,
    };
    let dev = record::open_device(&plan)?;
    let ring = dev.ring();
    let c = ring.control();
    let l = ring.layout();
    let s = dev.stats();
    let d = dev.describe();
    let v = serde_json::json!({
        "device": d,
        "abi": format!("{}.{}", c.abi_major, c.abi_minor),
        "source": source_name(c.source),
        "layout": {
            "control_bytes": c.control_bytes, "data_offset": c.data_offset, "data_size": c.data_size,
            "block_bytes": c.block_bytes, "block_scans": c.block_scans, "block_header_bytes": c.block_header_bytes,
            "channels": l.channels, "format": l.format.name(), "rate_hz": l.rate_hz,
        },
        "counters": {
            "head": s.head, "tail": s.tail, "produced_blocks": s.produced_blocks,
            "dropped_blocks": s.dropped_blocks, "dropped_scans": s.dropped_scans,
            "overruns": s.overruns, "next_scan": s.next_scan, "status": status_name(s.status),
            "epoch": s.epoch, "discarded_blocks": s.discarded_blocks,
        },
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "device    {} ({}, {})",
            d.path,
            d.name,
            source_name(c.source)
        );
        if !d.compatible.is_empty() {
            println!("compatible {}", d.compatible);
        }
        println!(
            "abi       {}.{} (this acquire speaks {}.x)",
            c.abi_major,
            c.abi_minor,
            hsdaq_abi::layout::ABI_MAJOR
        );
        println!(
            "stream    {} scans/s × {} ch × {}",
            l.rate_hz,
            l.channels,
            l.format.name()
        );
        println!(
            "layout    control {} B, data {} B at offset {}, blocks of {} B ({} scans) × {}",
            c.control_bytes,
            c.data_size,
            c.data_offset,
            c.block_bytes,
            c.block_scans,
            l.slots()
        );
        println!(
            "counters  head {} tail {} produced {} dropped {} blocks ({} scans) overruns {} next scan {} status {}",
            s.head,
            s.tail,
            s.produced_blocks,
            s.dropped_blocks,
            s.dropped_scans,
            s.overruns,
            s.next_scan,
            status_name(s.status)
        );
    }
    Ok(0)
}

fn cmd_devices(json: bool) -> Result<i32> {
    let mut hsdaq: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("hsdaq"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    hsdaq.sort();
    let iio = hsdaq_acquire::source::iio::list()?;
    if json {
        let v = serde_json::json!({"simulator": "sim", "hsdaq": hsdaq, "iio": iio});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("sim                  the built-in simulator (reference waveform)");
    for h in &hsdaq {
        println!("{h:<20} hsdaq kernel driver (acquire info --device {h})");
    }
    for d in &iio {
        let chans: Vec<String> = d["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["type"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "{:<20} IIO {}: trigger {}, buffer {}",
            d["device"].as_str().unwrap_or("?"),
            d["node"].as_str().unwrap_or("?"),
            d["trigger"]
                .as_str()
                .map_or("none".to_string(), |t| if t.is_empty() {
                    "not set".into()
                } else {
                    t.into()
                }),
            d["buffer"].as_str().unwrap_or("?")
        );
        println!("{:<20}   channels: {}", "", chans.join(", "));
    }
    if hsdaq.is_empty() && iio.is_empty() {
        println!("(no hsdaq or IIO device on this machine)");
    }
    Ok(0)
}

/// Where `boards` looks when no folder is given: `$HSDAQ_BOARDS`, then
/// `./boards` in a checkout, then the installed profiles.
fn boards_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("HSDAQ_BOARDS") {
        return Ok(PathBuf::from(d));
    }
    let mut tried = vec![PathBuf::from("boards")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(|b| b.parent()) {
            tried.push(prefix.join("share/hsdaq/boards"));
        }
    }
    tried.push(PathBuf::from("/usr/share/hsdaq/boards"));
    for d in &tried {
        if d.join(".").is_dir()
            && std::fs::read_dir(d)?
                .flatten()
                .any(|e| e.path().join("acquire.toml").is_file())
        {
            return Ok(d.clone());
        }
    }
    bail!(
        "no board profiles found (looked in {}): give a folder or set HSDAQ_BOARDS",
        tried
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn cmd_boards(dir: Option<PathBuf>, json: bool) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => boards_dir()?,
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("acquire.toml").exists())
        .collect();
    entries.sort();
    if entries.is_empty() {
        bail!("no board profiles (*/acquire.toml) under {}", dir.display());
    }
    let mut rows = Vec::new();
    let mut invalid = 0;
    for d in entries {
        let f = d.join("acquire.toml");
        let folder = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let row = match Profile::load(&f) {
            Ok(p) => serde_json::json!({
                "board": p.board.clone().unwrap_or_else(|| folder.clone()),
                "profile": f.display().to_string(),
                "device": p.device.path.clone().unwrap_or_else(|| "sim".into()),
                "channels": p.device.channels,
                "format": p.device.format,
                "rate_hz": p.device.rate_hz,
                "description": p.description,
            }),
            Err(e) => {
                invalid += 1;
                serde_json::json!({"board": folder, "profile": f.display().to_string(), "error": format!("{e:#}")})
            }
        };
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let or_q = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "?".to_string(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        for r in &rows {
            if let Some(e) = r.get("error") {
                println!("{:<14} INVALID: {}", or_q(&r["board"]), or_q(e));
            } else {
                println!(
                    "{:<14} {:<10} {} ch × {} @ {} scans/s  {}",
                    or_q(&r["board"]),
                    or_q(&r["device"]),
                    or_q(&r["channels"]),
                    or_q(&r["format"]),
                    or_q(&r["rate_hz"]),
                    r["description"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(if invalid > 0 {
        i32::from(exit::FAILURE)
    } else {
        0
    })
}

/// `acquire manpage`: the pages clap_mangen makes from the same clap
/// definitions `--help` prints, so the two never disagree.
fn cmd_manpage(dir: Option<PathBuf>) -> Result<i32> {
    let cmd = command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        return Ok(0);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("acquire".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("acquire-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(0)
}
