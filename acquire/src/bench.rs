//! `acquire bench`: how many samples per second this machine can record,
//! what limits it, and how close the recorder comes to that limit, all
//! measured in one run (these machines are noisy: only figures taken side
//! by side compare).
//!
//! 1. **Limits**: memcpy of the sample bytes; a raw sequential `write(2)`
//!    to the output filesystem with `fdatasync` inside the timer (the disk,
//!    not the page cache); each codec on the same page bodies in memory, on
//!    one core and on all cores.
//! 2. **Encodings**: size and single-core speed of every channel encoding ×
//!    codec on the reference waveform and on a noisier signal: the evidence
//!    for the defaults.
//! 3. **Stages**: drain + transpose, then the full pipeline (simulator →
//!    ring → drain → encoders → committer) per codec, to tmpfs and to the
//!    output filesystem. The timer runs until the last segment is fsynced
//!    and renamed. **Efficiency** = achieved ÷ min(disk limit ÷ bytes per
//!    sample byte, all-core codec limit).
//! 4. **Memory and latency**: peak RSS of a 3× longer recording, and the
//!    block latency (last scan of a block → drained) of a paced recording.
//!
//! Every figure is the median of `runs` runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hsdaq_abi::layout::{StreamLayout, BLOCK_HEADER_BYTES, BLOCK_MAGIC};
use hsdaq_abi::{BlockHeader, Format};
use serde::Serialize;

use crate::chunk::{BlockRec, Chunk, Column};
use crate::counters::Live;
use crate::pipeline::PipelineConfig;
use crate::record::{chunk_rows, DEFAULT_ENCODING};
use crate::ring::write_header;
use crate::sched::available_cores;
use crate::sink::codec::{Codec, Compressor, PageCodec};
use crate::sink::direct::DirectWriter;
use crate::sink::pages::{channel_page, page_ranges, ChannelEncoding};
use crate::sink::segment::SegmentFormat;
use crate::source::sim::{fill_payload, Overflow, SimConfig, SimDevice};

/// Bench settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Channels.
    pub channels: u16,
    /// Format.
    pub format: Format,
    /// Seconds per full-pipeline run.
    pub seconds: f64,
    /// Runs per figure (the median is reported).
    pub runs: usize,
    /// Bytes of the raw disk write limit.
    pub disk_bytes: u64,
    /// Paced, loss-checked recording rate (scans/s); 0 skips it.
    pub paced_rate: u64,
    /// Seconds of the paced recording.
    pub paced_seconds: f64,
    /// Sustained recordings to the output filesystem at these rates.
    pub sustain_rates: Vec<u64>,
    /// Seconds of each sustained recording.
    pub sustain_seconds: f64,
    /// The output filesystem: where recordings (and the disk limit) go.
    pub dir: PathBuf,
    /// A tmpfs folder for the in-memory pipeline runs (skipped if `None`).
    pub tmpfs: Option<PathBuf>,
}

/// The machine's limits, MB/s of sample data.
#[derive(Debug, Serialize, Clone, Default)]
pub struct Limits {
    /// memcpy of the sample bytes, one core.
    pub memcpy: f64,
    /// Sequential write of new data to the output filesystem as the
    /// recorder writes it (`O_DIRECT` where the filesystem has it),
    /// fdatasync inside the timer (MB/s of file bytes).
    pub disk_write: f64,
    /// The same through the page cache, for comparison.
    pub disk_write_buffered: f64,
    /// The same to the tmpfs folder (fresh pages: not free in a VM).
    pub tmpfs_write: Option<f64>,
    /// Page encode + codec, default encoding, per codec.
    pub codecs: Vec<CodecLimit>,
}

/// One codec's limit on the default encoding.
#[derive(Debug, Serialize, Clone)]
pub struct CodecLimit {
    /// Codec label.
    pub codec: String,
    /// MB/s of sample data on one core.
    pub single_core: f64,
    /// MB/s of sample data on every core.
    pub all_cores: f64,
    /// File bytes per sample byte on the reference waveform.
    pub size_ratio: f64,
}

/// The encodings row of the parquet crate's own column writer.
pub const STOCK_WRITER: &str = "delta_binary_packed (parquet crate's ColumnWriter)";

/// One encoding × codec × signal measurement.
#[derive(Debug, Serialize, Clone)]
pub struct EncodingFigure {
    /// `delta_binary_packed` or `byte_stream_split` (our page encoders), or
    /// [`STOCK_WRITER`]: the parquet crate's writer on the same data.
    pub encoding: String,
    /// Codec label.
    pub codec: String,
    /// `reference` (the simulator's waveform) or `noisy` (sine + 20 LSB noise).
    pub signal: String,
    /// Bits per stored value.
    pub bits_per_value: f64,
    /// MB/s of sample data, one core.
    pub mb_per_s: f64,
}

/// One measured stage.
#[derive(Debug, Serialize, Clone)]
pub struct Stage {
    /// What it measures (targets find stages by it).
    pub kind: StageKind,
    /// The codec of a pipeline stage.
    pub codec: Option<String>,
    /// Stage name, for people.
    pub name: String,
    /// Sample MB/s.
    pub mb_per_s: f64,
    /// Scans per second.
    pub scans_per_s: f64,
    /// Scans lost (pipeline stages).
    pub lost: Option<u64>,
    /// Peak resident set sampled during the stage, MiB.
    pub rss_mib: Option<f64>,
    /// Parquet bytes per sample byte (pipeline stages).
    pub size_ratio: Option<f64>,
    /// Block latency p99, µs (paced stages).
    pub latency_p99_us: Option<f64>,
    /// CPU the recorder spent per sample (one channel's value), ns, all its
    /// threads together; the simulator producer's own CPU is not counted.
    pub cpu_ns_per_sample: Option<f64>,
}

/// What a stage measures: targets find stages by this, never by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    /// The simulator's waveform: what a source costs before the recorder.
    Source,
    /// The pipeline's drain over a ring, chunks recycled.
    Drain,
    /// The drain with the live view's tap.
    DrainTap,
    /// The drain with the tap and a scope capturing at its budget.
    DrainScope,
    /// The full pipeline replaying the ring, to tmpfs.
    ReplayTmpfs,
    /// The full pipeline replaying the ring, to the disk.
    ReplayDisk,
    /// The full pipeline fed by the simulator's waveform, to the disk.
    SimulatorDisk,
    /// A recording paced at `--paced-rate` (block latency).
    Paced,
    /// A sustained recording at a `--sustain` rate (the headline).
    Sustained,
}

/// Efficiency of one codec's full pipeline.
#[derive(Debug, Serialize, Clone)]
pub struct Efficiency {
    /// Codec label.
    pub codec: String,
    /// Achieved ÷ min(tmpfs limit ÷ size ratio, codec limit), to tmpfs;
    /// each run against both limits measured once just before it; the
    /// figure is the median run's.
    pub tmpfs: Option<f64>,
    /// The highest `tmpfs` efficiency the cores allow: a write to tmpfs is
    /// the kernel copying every byte into new pages, CPU work on the same
    /// cores as the encoders, so both costs add up (see [`shared_cores`]).
    pub tmpfs_reachable: Option<f64>,
    /// Achieved ÷ min(disk limit ÷ size ratio, codec limit), to the disk;
    /// each run against both limits measured once just before it; the
    /// figure is the median run's.
    pub disk: f64,
    /// What bounds the disk run: `disk` or `codec`.
    pub bound: String,
}

/// The bench report (`--json` prints it).
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Channels × format.
    pub shape: String,
    /// Cores available.
    pub cores: usize,
    /// Runs per figure.
    pub runs: usize,
    /// Default channel encoding.
    pub encoding: String,
    /// Machine limits.
    pub limits: Limits,
    /// Encodings compared.
    pub encodings: Vec<EncodingFigure>,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// Per codec.
    pub efficiency: Vec<Efficiency>,
    /// The highest loss-free `--sustain` rate, said in a line (none when
    /// no sustained run was asked for or none was loss-free).
    pub headline: Option<String>,
    /// The project's targets against this run's figures.
    pub targets: Vec<Target>,
}

/// One target of the throughput issue, judged on this run.
#[derive(Debug, Serialize, Clone)]
pub struct Target {
    /// What is targeted.
    pub name: String,
    /// The target value.
    pub want: f64,
    /// This run's figure.
    pub got: f64,
    /// `met`, `missed`, or `limit` (the target is above a limit measured
    /// in this run, so no recorder could meet it here).
    pub status: String,
}

impl Target {
    /// `higher`: whether more is better.
    fn judge(name: String, want: f64, got: f64, higher: bool, limit: Option<f64>) -> Self {
        let met = if higher { got >= want } else { got <= want };
        let status = match (met, limit) {
            (true, _) => "met",
            (false, Some(l)) if higher && want > l => "limit",
            _ => "missed",
        };
        Self {
            name,
            want,
            got,
            status: status.into(),
        }
    }
}

/// The targets: sample MB/s to tmpfs per codec, efficiency ≥ 0.8, block
/// latency p99 < 1 ms at the paced rate, resident memory ≤ 256 MiB, and,
/// for 4 ch × i16 with `--sustain`, the headline (`best`, the highest
/// loss-free sustained rate) ≥ 50 M scans/s.
fn targets(
    cfg: &BenchConfig,
    limits: &Limits,
    stages: &[Stage],
    efficiency: &[Efficiency],
    best: Option<u64>,
) -> Vec<Target> {
    let mut t = Vec::new();
    for (codec, want) in [("none", 1000.0), ("lz4_raw", 600.0), ("zstd(1)", 400.0)] {
        let c = limits.codecs.iter().find(|c| c.codec == codec);
        let write = limits.tmpfs_write.or(Some(limits.disk_write));
        let limit = c
            .zip(write)
            .map(|(c, w)| shared_cores(c.all_cores, w / c.size_ratio));
        if let Some(s) = stages
            .iter()
            .find(|s| s.kind == StageKind::ReplayTmpfs && s.codec.as_deref() == Some(codec))
        {
            t.push(Target::judge(
                format!("{codec} to tmpfs, MB/s"),
                want,
                s.mb_per_s,
                true,
                limit,
            ));
        }
        if let Some(e) = efficiency.iter().find(|e| e.codec == codec) {
            t.push(Target::judge(
                format!("{codec} efficiency to disk"),
                0.8,
                e.disk,
                true,
                None,
            ));
            if let Some(x) = e.tmpfs {
                t.push(Target::judge(
                    format!("{codec} efficiency to tmpfs"),
                    0.8,
                    x,
                    true,
                    e.tmpfs_reachable,
                ));
            }
        }
    }
    let mb = |kind| stages.iter().find(|s| s.kind == kind).map(|s| s.mb_per_s);
    if let (Some(plain), Some(tapped)) = (mb(StageKind::Drain), mb(StageKind::DrainTap)) {
        t.push(Target::judge(
            "live view: drain + transpose throughput with the tap ÷ without".into(),
            0.95,
            tapped / plain,
            true,
            None,
        ));
    }
    if let (Some(plain), Some(scoped)) = (mb(StageKind::Drain), mb(StageKind::DrainScope)) {
        t.push(Target::judge(
            "live view with a scope open: drain + transpose throughput ÷ without".into(),
            0.95,
            scoped / plain,
            true,
            None,
        ));
    }
    for s in stages {
        if let (StageKind::Paced, Some(p99)) = (s.kind, s.latency_p99_us) {
            t.push(Target::judge(
                format!("{}: block latency p99, µs", s.name),
                1000.0,
                p99,
                false,
                None,
            ));
        }
        if let (StageKind::Sustained, Some(lost)) = (s.kind, s.lost) {
            t.push(Target::judge(
                format!("{}: scans lost", s.name),
                0.0,
                lost as f64,
                false,
                None,
            ));
        }
    }
    let rss = stages.iter().filter_map(|s| s.rss_mib).fold(0.0, f64::max);
    t.push(Target::judge(
        "peak resident set, MiB".into(),
        256.0,
        rss,
        false,
        None,
    ));
    if !cfg.sustain_rates.is_empty() && cfg.channels == 4 && cfg.format == Format::I16 {
        t.push(Target::judge(
            "headline: loss-free sustained rate to disk, M scans/s".into(),
            50.0,
            best.map_or(0.0, |r| r as f64 / 1e6),
            true,
            None,
        ));
    }
    t
}

const CODECS: [Codec; 3] = [Codec::None, Codec::Lz4, Codec::Zstd];

fn layout(cfg: &BenchConfig, rate_hz: u64) -> StreamLayout {
    StreamLayout {
        channels: cfg.channels,
        format: cfg.format,
        data_size: 64 << 20,
        block_bytes: 64 << 10,
        rate_hz,
    }
}

/// Current and peak resident set in MiB.
pub fn rss_mib() -> (f64, f64) {
    let (rss, peak) = crate::health::memory();
    (rss as f64 / 1048576.0, peak as f64 / 1048576.0)
}

/// The median of `runs` figures from `f`.
fn median_of(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    median((0..runs.max(1)).map(|_| f()).collect())
}

/// The median of a non-empty set of figures.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `runs` results of `f`, ordered by its first figure.
fn median_run<T>(runs: usize, mut f: impl FnMut() -> Result<(f64, T)>) -> Result<(f64, T)> {
    let mut all = (0..runs.max(1)).map(|_| f()).collect::<Result<Vec<_>>>()?;
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mid = all.len() / 2;
    Ok(all.swap_remove(mid))
}

/// A data area filled with real blocks of the reference waveform.
fn ring_image(l: &StreamLayout) -> Vec<u8> {
    let mut data = vec![0u8; l.data_size as usize];
    let bs = l.block_scans();
    for (i, slot) in data.chunks_exact_mut(l.block_bytes as usize).enumerate() {
        let first = i as u64 * bs as u64;
        let h = BlockHeader {
            magic: BLOCK_MAGIC,
            first_scan: first,
            scans: bs,
            channels: l.channels,
            format: l.format as u16,
            block_seq: i as u64,
            ..Default::default()
        };
        write_header(slot, &h);
        fill_payload(
            &mut slot[BLOCK_HEADER_BYTES..],
            l.format,
            l.channels,
            first,
            bs,
        );
    }
    data
}

/// Runs `f` repeatedly for about `secs`; returns bytes per second.
fn timed(secs: f64, bytes_per_call: u64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut calls = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        f();
        calls += 1;
    }
    (calls * bytes_per_call) as f64 / t.elapsed().as_secs_f64()
}

/// Samples RSS on a thread while `f` runs; returns f's value and peak MiB.
fn with_rss<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let kib = (rss_mib().0 * 1024.0) as u64;
                peak.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = f();
        stop.store(true, Ordering::Relaxed);
        r
    });
    (r, peak.load(Ordering::Relaxed) as f64 / 1024.0)
}

/// One chunk of `signal`, as the drain would build it.
fn sample_chunk(l: &StreamLayout, noisy: bool) -> Chunk {
    let rows = chunk_rows(&StreamLayout {
        rate_hz: 1 << 40,
        ..*l
    });
    let image = ring_image(&StreamLayout {
        data_size: (rows * l.scan_bytes()).next_power_of_two() as u64 * 2,
        ..*l
    });
    let mut chunk = Chunk::with_capacity(l.channels as usize, l.format, rows);
    let bs = l.block_scans() as usize;
    for (i, slot) in image.chunks_exact(l.block_bytes as usize).enumerate() {
        if chunk.rows() + bs > rows {
            break;
        }
        chunk.transpose(&slot[BLOCK_HEADER_BYTES..], bs);
        chunk.blocks.push(BlockRec {
            flags: 0,
            first_seq: (i * bs) as u64,
            scans: bs as u32,
            period_q16: 1 << 16,
            ..Default::default()
        });
    }
    if noisy {
        // A sine plus Gaussian-like noise of ~20 LSB (sum of 4 uniforms):
        // what a real ADC channel looks like.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as i32 & 0xFF
        };
        for (c, col) in chunk.columns.iter_mut().enumerate() {
            let f = 0.001 * (c + 1) as f64;
            let v = |i: usize, rnd: &mut dyn FnMut() -> i32| {
                let noise = (rnd() + rnd() + rnd() + rnd() - 510) * 20 / 148;
                (12000.0 * (i as f64 * f).sin()) as i32 + noise
            };
            match col {
                Column::I16(v16) => {
                    for (i, s) in v16.iter_mut().enumerate() {
                        *s = v(i, &mut rnd) as i16;
                    }
                }
                Column::I32(v32) => {
                    for (i, s) in v32.iter_mut().enumerate() {
                        *s = v(i, &mut rnd) << 12;
                    }
                }
            }
        }
    }
    chunk
}

/// Encodes and compresses every channel page of `chunk`; returns the bytes.
fn encode_pages(
    chunk: &Chunk,
    enc: ChannelEncoding,
    codec: PageCodec,
    comp: &mut Compressor,
) -> u64 {
    let mut out = 0u64;
    for col in &chunk.columns {
        for range in page_ranges(chunk.rows()) {
            let mut body = Vec::new();
            channel_page(col, range, enc, &mut body);
            out += comp
                .compress(codec, body)
                .expect("in-memory compression")
                .len() as u64;
        }
    }
    out
}

/// The drain stage: the pipeline's own drain (`pipeline::drain_only`) over
/// the simulator's ring, unpaced and replaying its first ring (the producer
/// writes headers only), its chunks recycled, for `secs`; sample MB/s.
/// With `tap` a thread empties the live view's tap every 50 ms as the view
/// does; with `scope` it also keeps the scope capturing at its budget.
fn drain_stage(l: StreamLayout, secs: f64, tap: bool, scope: bool) -> Result<(f64, f64)> {
    let mut dev = SimDevice::new(SimConfig {
        layout: l,
        paced: false,
        overflow: Overflow::Block,
        replay: true,
        tone: None,
    })?;
    let names: Vec<String> = (0..l.channels).map(|c| format!("ch{c}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = crate::live::tap::tap();
    let cfg = PipelineConfig {
        tap: tap.then_some(tx),
        scan_limit: None,
        segment_scans: u64::MAX / 2,
        chunk_rows: chunk_rows(&l),
        pool_chunks: crate::record::POOL_CHUNKS,
        faults: Vec::new(),
        stop: stop.clone(),
        dir: PathBuf::new(),
        format: SegmentFormat::new(&names, l.format, DEFAULT_ENCODING),
        codec: Codec::None,
        encode_threads: 1,
        log_segments: false,
        clocks: crate::clock::Clocks::system(),
        trigger: None,
    };
    let viewing = AtomicBool::new(tap);
    /// Ends the viewer thread however the drain ends.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _viewer_ends = Stop(&viewing);
        let stop = &stop;
        s.spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        });
        let viewing = &viewing;
        s.spawn(move || {
            let mut capture = crate::live::tap::Capture::default();
            let want = 1usize << 16;
            let (mut at, mut asked_at) = (0u64, 0u64);
            while viewing.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                while let Some(p) = ringbuf::traits::Consumer::try_pop(&mut rx.points) {
                    at = p.first_scan + u64::from(p.scans);
                }
                rx.scope.take(&mut capture);
                let due = asked_at + (want as f64 / crate::live::scope::DUTY) as u64;
                if scope && rx.scope.idle() && at >= due {
                    rx.scope.ask(want);
                    asked_at = at;
                }
            }
        });
        let cpu0 = crate::units::process_cpu_ns();
        let r = crate::pipeline::drain_only(&mut dev, cfg);
        viewing.store(false, Ordering::Relaxed);
        let cpu = crate::units::process_cpu_ns() - cpu0;
        let (scans, elapsed) = r?;
        let mb = scans as f64 * l.scan_bytes() as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
        let samples = (scans * u64::from(l.channels)).max(1) as f64;
        Ok((
            mb,
            cpu.saturating_sub(dev.producer_cpu_ns()) as f64 / samples,
        ))
    })
}

/// The same channel columns through the parquet crate's stock column
/// writer (DELTA_BINARY_PACKED, no dictionary, no statistics, no codec,
/// pages of `PAGE_VALUES`), into memory; returns the file's bytes. What the
/// hand-written page encoders (sink/pages.rs) must beat to be worth keeping.
fn stock_delta_file(chunk: &Chunk) -> u64 {
    use parquet::basic::{Compression, Encoding};
    use parquet::data_type::Int32Type;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::file::writer::SerializedFileWriter;
    let schema = std::sync::Arc::new(
        parquet::schema::parser::parse_message_type("message m { required int32 v; }")
            .expect("valid schema"),
    );
    let props = std::sync::Arc::new(
        WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .set_compression(Compression::UNCOMPRESSED)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_data_page_row_count_limit(crate::sink::pages::PAGE_VALUES)
            .set_data_page_size_limit(usize::MAX)
            .build(),
    );
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, props).expect("in-memory writer");
    let mut wide = Vec::with_capacity(chunk.rows());
    for col in &chunk.columns {
        // The stock writer takes INT32 values: i16 samples are widened
        // first, as a recorder using it would have to.
        wide.clear();
        match col {
            Column::I16(v) => wide.extend(v.iter().map(|&x| i32::from(x))),
            Column::I32(v) => wide.extend_from_slice(v),
        }
        let mut rg = w.next_row_group().expect("row group");
        let mut c = rg.next_column().expect("column").expect("one column");
        c.typed::<Int32Type>()
            .write_batch(&wide, None, None)
            .expect("in-memory write");
        c.close().expect("column close");
        rg.close().expect("row group close");
    }
    w.close().expect("footer");
    out.len() as u64
}

/// MB/s of sample data for encoding `chunk` on `threads` cores at once.
fn codec_speed(
    chunk: &Chunk,
    enc: ChannelEncoding,
    codec: PageCodec,
    threads: usize,
    secs: f64,
) -> f64 {
    let sample = (chunk.rows() * chunk.columns.len() * sample_bytes(chunk)) as u64;
    let total: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut comp = Compressor::new();
                    timed(secs, sample, || {
                        std::hint::black_box(encode_pages(chunk, enc, codec, &mut comp));
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("codec bench")).sum()
    });
    total / 1e6
}

fn sample_bytes(chunk: &Chunk) -> usize {
    match chunk.columns.first() {
        Some(Column::I32(_)) => 4,
        _ => 2,
    }
}

/// Sequential write of `bytes` of new data to `dir` in 4 MiB writes,
/// through the page cache or around it as the recorder does (`direct`),
/// fdatasync inside the timer; MB/s.
fn disk_write(dir: &Path, bytes: u64, direct: bool) -> Result<f64> {
    let path = dir.join(format!("hsdaq-bench-{}-disk", std::process::id()));
    let mut buf = vec![0u8; 4 << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for w in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    let r = (|| -> Result<f64> {
        let t = Instant::now();
        let fill = |f: &mut dyn Write, buf: &mut [u8]| -> std::io::Result<()> {
            let mut left = bytes;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                // Different bytes each time: nothing below can deduplicate.
                buf[0..8].copy_from_slice(&left.to_le_bytes());
                f.write_all(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        };
        let file = if direct {
            let mut w = DirectWriter::create(&path, 4 << 20)?;
            fill(&mut w, &mut buf)?;
            w.finish()?
        } else {
            let mut f = std::fs::File::create(&path)?;
            fill(&mut f, &mut buf)?;
            f
        };
        file.sync_data()?;
        Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
    })();
    let _ = std::fs::remove_file(&path);
    r.with_context(|| format!("disk write limit in {}", dir.display()))
}

fn fresh_dir(base: &Path, name: &str) -> Result<PathBuf> {
    let d = base.join(format!("hsdaq-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("blocks"))
        .with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// A full-pipeline run's figures.
#[derive(Clone, Copy, Debug)]
struct Run {
    mb_per_s: f64,
    lost: u64,
    size_ratio: f64,
    rss_mib: f64,
    latency_p99_us: Option<f64>,
    /// The recorder's CPU per sample (process CPU less the producer's), ns.
    cpu_ns_per_sample: f64,
}

/// What feeds a full-pipeline run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The simulator at the stream's rate, dropping when the ring is full.
    Paced,
    /// The simulator as fast as the recorder drains (waits when full).
    Unpaced,
    /// Unpaced, replaying the first ring's payloads: the recorder's own
    /// ceiling, without a waveform computed on the same cores.
    Replay,
}

/// Records into `base` for `secs`. The clock stops when the last segment
/// is durable.
fn pipeline(base: &Path, l: StreamLayout, codec: Codec, secs: f64, source: Source) -> Result<Run> {
    let dir = fresh_dir(base, &format!("pipeline-{}", codec.label()))?;
    let paced = source == Source::Paced;
    let mut dev = SimDevice::new(SimConfig {
        layout: l,
        paced,
        overflow: if paced {
            Overflow::Drop
        } else {
            Overflow::Block
        },
        replay: source == Source::Replay,
        tone: None,
    })?;
    let names: Vec<String> = (0..l.channels).map(|c| format!("ch{c}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let pc = PipelineConfig {
        tap: None,
        scan_limit: None,
        segment_scans: (256 << 20) / l.scan_bytes() as u64,
        chunk_rows: chunk_rows(&l),
        pool_chunks: crate::record::POOL_CHUNKS,
        faults: Vec::new(),
        stop: stop.clone(),
        dir: dir.clone(),
        format: SegmentFormat::new(&names, l.format, DEFAULT_ENCODING),
        codec,
        encode_threads: available_cores(),
        log_segments: false,
        clocks: crate::clock::Clocks::system(),
        trigger: None,
    };
    let live = Arc::new(Live::default());
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let t = Instant::now();
    let cpu0 = crate::units::process_cpu_ns();
    let (outcome, rss) = with_rss(|| {
        let m = bench_manifest(&dev, &l, codec);
        crate::pipeline::run(&mut dev, pc, m, live.clone())
    });
    let wall = t.elapsed().as_secs_f64();
    let cpu = crate::units::process_cpu_ns() - cpu0;
    let _ = timer.join();
    std::fs::remove_dir_all(&dir).ok();
    let outcome = outcome?;
    if let crate::pipeline::End::Failed(e) = &outcome.end {
        anyhow::bail!("bench recording failed: {e}");
    }
    let m = outcome.manifest;
    let sample = m.counts.scans_recorded * l.scan_bytes() as u64;
    Ok(Run {
        mb_per_s: sample as f64 / wall / 1e6,
        lost: m.counts.lost().max(m.device_counters.dropped_scans),
        size_ratio: m.counts.bytes_written as f64 / sample.max(1) as f64,
        rss_mib: rss,
        // Unpaced, blocks wait in a full ring by design: no latency figure.
        latency_p99_us: paced.then(|| live.latency.quantile(0.99) as f64 / 1e3),
        cpu_ns_per_sample: cpu.saturating_sub(dev.producer_cpu_ns()) as f64
            / (m.counts.scans_recorded * u64::from(l.channels)).max(1) as f64,
    })
}

fn bench_manifest(
    dev: &dyn crate::source::Device,
    l: &StreamLayout,
    codec: Codec,
) -> crate::manifest::Manifest {
    let channels =
        crate::profile::channel_infos(&[], l.channels as usize, &[]).expect("default names");
    let mut m = crate::record::start_manifest(
        dev,
        l,
        channels,
        codec,
        DEFAULT_ENCODING,
        crate::units::SegmentPolicy::Bytes(256 << 20),
        None,
    );
    m.status = crate::manifest::RunStatus::Bench;
    m
}

/// Runs every measurement; `progress` hears each figure as it is taken.
pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> Result<BenchReport> {
    let l = layout(cfg, 1 << 40);
    let quick = (cfg.seconds / 2.0).clamp(0.2, 2.0);
    let mut limits = measure_limits(cfg, &l, quick, &mut progress)?;
    let encodings = measure_encodings(cfg, &l, quick, &mut limits, &mut progress);
    let mut stages = Stages {
        scan_bytes: l.scan_bytes(),
        list: Vec::new(),
    };
    measure_source_and_drain(cfg, &l, quick, &mut stages, &mut progress)?;
    let efficiency = measure_pipelines(cfg, quick, &mut stages, &mut progress)?;
    let best = measure_paced(cfg, &mut stages, &mut progress)?;
    let stages = stages.list;
    Ok(BenchReport {
        headline: best.map(|rate| headline(cfg, rate)),
        targets: targets(cfg, &limits, &stages, &efficiency, best),
        shape: format!("{} × {}", cfg.channels, cfg.format.name()),
        cores: available_cores(),
        runs: cfg.runs,
        encoding: DEFAULT_ENCODING.label().into(),
        limits,
        encodings,
        stages,
        efficiency,
    })
}

/// The stages measured so far, each said as it is measured.
struct Stages {
    scan_bytes: usize,
    list: Vec<Stage>,
}

impl Stages {
    /// Adds a stage: its kind, the codec of a pipeline stage, its name,
    /// sample MB/s, the pipeline run's figures, and a CPU figure of its own
    /// (else the run's).
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        kind: StageKind,
        codec: Option<Codec>,
        name: String,
        mb: f64,
        run: Option<Run>,
        cpu: Option<f64>,
        progress: &mut dyn FnMut(&str),
    ) {
        let s = Stage {
            kind,
            codec: codec.map(|c| c.label().to_string()),
            cpu_ns_per_sample: cpu.or(run.map(|r| r.cpu_ns_per_sample)),
            name,
            mb_per_s: mb,
            scans_per_s: mb * 1e6 / self.scan_bytes as f64,
            lost: run.map(|r| r.lost),
            rss_mib: run.map(|r| r.rss_mib),
            size_ratio: run.map(|r| r.size_ratio),
            latency_p99_us: run.and_then(|r| r.latency_p99_us),
        };
        progress(&format!("{:<44} {:>8.0} MB/s", s.name, s.mb_per_s));
        self.list.push(s);
    }
}

/// The machine's limits: memcpy of the sample bytes, and writing to the
/// disk (direct and buffered, fdatasync inside the timer) and to tmpfs.
fn measure_limits(
    cfg: &BenchConfig,
    l: &StreamLayout,
    quick: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<Limits> {
    let mut limits = Limits::default();
    progress("memcpy of the sample bytes");
    let image = ring_image(l);
    let mut dst = vec![0u8; image.len()];
    limits.memcpy = median_of(cfg.runs, || {
        timed(quick, image.len() as u64, || {
            dst.copy_from_slice(std::hint::black_box(&image))
        }) / 1e6
    });
    drop((dst, image));

    progress(&format!(
        "disk: {} MiB of new data to {} with fdatasync",
        cfg.disk_bytes >> 20,
        cfg.dir.display()
    ));
    if let Some(t) = &cfg.tmpfs {
        let bytes = cfg.disk_bytes.min(512 << 20);
        let write = || Ok((disk_write(t, bytes, true)?, ()));
        limits.tmpfs_write = Some(median_run(cfg.runs, write)?.0);
    }
    for (direct, out) in [
        (true, &mut limits.disk_write),
        (false, &mut limits.disk_write_buffered),
    ] {
        let write = || Ok((disk_write(&cfg.dir, cfg.disk_bytes, direct)?, ()));
        *out = median_run(cfg.runs, write)?.0;
    }
    Ok(limits)
}

/// Every encoding × codec on one core, the parquet crate's stock writer
/// beside ours, and each codec on every core (a limit, into `limits`).
fn measure_encodings(
    cfg: &BenchConfig,
    l: &StreamLayout,
    quick: f64,
    limits: &mut Limits,
    progress: &mut dyn FnMut(&str),
) -> Vec<EncodingFigure> {
    progress("encodings × codecs on the reference and a noisy signal, one core");
    let mut encodings = Vec::new();
    let reference = sample_chunk(l, false);
    let noisy = sample_chunk(l, true);
    for enc in [ChannelEncoding::Delta, ChannelEncoding::Bss] {
        for codec in [
            PageCodec::None,
            PageCodec::Lz4,
            PageCodec::Zstd(1),
            PageCodec::Zstd(3),
        ] {
            for (signal, chunk) in [("reference", &reference), ("noisy", &noisy)] {
                let bytes = encode_pages(chunk, enc, codec, &mut Compressor::new());
                let values = (chunk.rows() * chunk.columns.len()) as f64;
                encodings.push(EncodingFigure {
                    encoding: enc.label().into(),
                    codec: codec.label().into(),
                    signal: signal.into(),
                    bits_per_value: bytes as f64 * 8.0 / values,
                    mb_per_s: median_of(cfg.runs, || {
                        codec_speed(chunk, enc, codec, 1, quick / 2.0)
                    }),
                });
            }
        }
    }
    // The stock writer on the same columns, same encoding, no codec.
    for (signal, chunk) in [("reference", &reference), ("noisy", &noisy)] {
        let bytes = stock_delta_file(chunk);
        let values = (chunk.rows() * chunk.columns.len()) as f64;
        let sample = (chunk.rows() * chunk.columns.len() * sample_bytes(chunk)) as u64;
        encodings.push(EncodingFigure {
            encoding: STOCK_WRITER.into(),
            codec: PageCodec::None.label().into(),
            signal: signal.into(),
            bits_per_value: bytes as f64 * 8.0 / values,
            mb_per_s: median_of(cfg.runs, || {
                timed(quick / 2.0, sample, || {
                    std::hint::black_box(stock_delta_file(chunk));
                }) / 1e6
            }),
        });
    }
    progress(&format!("codecs on {} cores", available_cores()));
    for codec in CODECS {
        let level = codec.first_level();
        let single = encodings
            .iter()
            .find(|e| {
                e.encoding == DEFAULT_ENCODING.label()
                    && e.codec == level.label()
                    && e.signal == "reference"
            })
            .expect("measured above");
        limits.codecs.push(CodecLimit {
            codec: codec.label().into(),
            single_core: single.mb_per_s,
            all_cores: median_of(cfg.runs, || {
                codec_speed(
                    &reference,
                    DEFAULT_ENCODING,
                    level,
                    available_cores(),
                    quick,
                )
            }),
            size_ratio: single.bits_per_value / 8.0 / cfg.format.bytes() as f64,
        });
    }
    encodings
}

/// What a source costs before the recorder (the simulator's waveform), and
/// the pipeline's own drain over a ring (drain_stage) with and without the
/// live view's tap (`--live`), alternating, so the ratios come from one
/// run. The tap is emptied as the view empties it; the third variant has a
/// page open whose scope captures as much as its budget allows: a
/// twentieth of the stream (`scope::DUTY`).
fn measure_source_and_drain(
    cfg: &BenchConfig,
    l: &StreamLayout,
    quick: f64,
    stages: &mut Stages,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut slot = vec![0u8; l.block_bytes as usize];
    let mut first = 0u64;
    let payload = l.block_scans() as u64 * l.scan_bytes() as u64;
    let mb = median_of(cfg.runs, || {
        timed(quick, payload, || {
            fill_payload(
                &mut slot[BLOCK_HEADER_BYTES..],
                l.format,
                l.channels,
                first,
                l.block_scans(),
            );
            first += l.block_scans() as u64;
        }) / 1e6
    });
    let name = "simulator waveform (source)".to_string();
    stages.add(StageKind::Source, None, name, mb, None, None, progress);

    let dl = layout(cfg, 100_000_000);
    let variants = [
        (StageKind::Drain, false, false, "drain + transpose"),
        (
            StageKind::DrainTap,
            true,
            false,
            "drain + transpose + live tap",
        ),
        (
            StageKind::DrainScope,
            true,
            true,
            "drain + transpose + live tap + scope at its budget",
        ),
    ];
    let mut runs: [Vec<(f64, f64)>; 3] = Default::default();
    for _ in 0..cfg.runs.max(1) {
        for (i, (_, tap, scope, _)) in variants.iter().enumerate() {
            runs[i].push(drain_stage(dl, quick, *tap, *scope)?);
        }
    }
    for ((kind, _, _, name), r) in variants.into_iter().zip(runs) {
        // Each variant's median MB/s, and its median CPU per sample.
        let (mb, cpu): (Vec<f64>, Vec<f64>) = r.into_iter().unzip();
        let (mb, cpu) = (median(mb), median(cpu));
        stages.add(kind, None, name.into(), mb, None, Some(cpu), progress);
    }
    Ok(())
}

/// The full pipeline per codec, replaying the ring (the recorder alone) to
/// tmpfs and to disk, and its efficiency against the limits; then with the
/// simulator as the source (its waveform on the same cores), once 3× longer
/// (resident memory must not grow with it).
///
/// Each run's efficiency is taken against limits measured just before it
/// (the codec on every core, and the tmpfs or disk write): on a shared
/// machine the cores and the disk a neighbour leaves change by tens of per
/// cent within a minute, and a ratio is only worth the two figures'
/// agreement in time. The stage row is the run of median efficiency.
fn measure_pipelines(
    cfg: &BenchConfig,
    quick: f64,
    stages: &mut Stages,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Efficiency>> {
    let unpaced = layout(cfg, 100_000_000);
    let reference = sample_chunk(&layout(cfg, 1 << 40), false);
    let mut efficiency = Vec::new();
    for codec in CODECS {
        // One run with its own limits, keyed by its efficiency.
        let paired = |dir: &Path, bytes: u64| -> Result<(f64, Paired)> {
            let level = codec.first_level();
            let all = codec_speed(
                &reference,
                DEFAULT_ENCODING,
                level,
                available_cores(),
                quick,
            );
            let write_mb = disk_write(dir, bytes, true)?;
            let run = pipeline(dir, unpaced, codec, cfg.seconds, Source::Replay)?;
            let write = write_mb / run.size_ratio;
            let bound = write.min(all);
            let p = Paired {
                run,
                reachable: shared_cores(all, write) / bound,
                bound: if write < all { "disk" } else { "codec" },
            };
            Ok((run.mb_per_s / bound, p))
        };
        let tmpfs = match &cfg.tmpfs {
            Some(t) => {
                let (eff, p) = median_run(cfg.runs, || paired(t, cfg.disk_bytes.min(512 << 20)))?;
                let name = format!("full pipeline, {}, replay → tmpfs", codec.label());
                let kind = StageKind::ReplayTmpfs;
                let mb = p.run.mb_per_s;
                stages.add(kind, Some(codec), name, mb, Some(p.run), None, progress);
                Some((eff, p.reachable))
            }
            None => None,
        };
        let (eff, p) = median_run(cfg.runs, || paired(&cfg.dir, cfg.disk_bytes))?;
        let name = format!("full pipeline, {}, replay → disk", codec.label());
        let kind = StageKind::ReplayDisk;
        let mb = p.run.mb_per_s;
        stages.add(kind, Some(codec), name, mb, Some(p.run), None, progress);
        efficiency.push(Efficiency {
            codec: codec.label().into(),
            tmpfs: tmpfs.map(|t| t.0),
            tmpfs_reachable: tmpfs.map(|t| t.1),
            disk: eff,
            bound: p.bound.into(),
        });
    }
    let codec = crate::record::DEFAULT_CODEC;
    for (len, label) in [(1.0, ""), (3.0, ", 3× longer")] {
        let r = pipeline(&cfg.dir, unpaced, codec, cfg.seconds * len, Source::Unpaced)?;
        let name = format!("full pipeline, {}, simulator → disk{label}", codec.label());
        let kind = StageKind::SimulatorDisk;
        stages.add(kind, Some(codec), name, r.mb_per_s, Some(r), None, progress);
    }
    Ok(efficiency)
}

/// A pipeline run measured beside its own limits.
struct Paired {
    run: Run,
    /// The highest efficiency the shared cores allow (tmpfs).
    reachable: f64,
    /// What bounds it: `disk` (the write) or `codec`.
    bound: &'static str,
}

/// Sample MB/s the cores reach when every byte is both encoded (`codec`,
/// sample MB/s on every core) and copied by the kernel into a tmpfs file
/// (`write`, sample MB/s on one core, the writer thread's): the two CPU
/// costs add on the same cores, so the bound is below the smaller of the
/// two.
fn shared_cores(codec: f64, write: f64) -> f64 {
    let cores = available_cores() as f64;
    // The copy runs on the one writer thread: never above `write`.
    (cores / (cores / codec + 1.0 / write)).min(write)
}

/// The headline sentence: `rate` is the highest loss-free `--sustain` rate.
fn headline(cfg: &BenchConfig, rate: u64) -> String {
    let tried: Vec<String> = cfg
        .sustain_rates
        .iter()
        .map(|r| format!("{}M", *r as f64 / 1e6))
        .collect();
    format!(
        "{} M scans/s × {} ch × {} to the disk for {} s with {}, loss-free (the highest loss-free of {} tried)",
        rate as f64 / 1e6,
        cfg.channels,
        cfg.format.name(),
        cfg.sustain_seconds,
        crate::record::DEFAULT_CODEC.label(),
        tried.join(", ")
    )
}

/// Recordings paced at a rate to the disk: block latency at `--paced-rate`,
/// and the sustained runs (`--sustain`) whose highest loss-free rate is
/// the headline (returned).
fn measure_paced(
    cfg: &BenchConfig,
    stages: &mut Stages,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<u64>> {
    let codec = crate::record::DEFAULT_CODEC;
    if cfg.paced_rate > 0 {
        let l = layout(cfg, cfg.paced_rate);
        let r = pipeline(&cfg.dir, l, codec, cfg.paced_seconds, Source::Paced)?;
        let name = format!("paced {} M scans/s, disk", cfg.paced_rate as f64 / 1e6);
        stages.add(
            StageKind::Paced,
            Some(codec),
            name,
            r.mb_per_s,
            Some(r),
            None,
            progress,
        );
    }
    let mut best = None;
    for &rate in &cfg.sustain_rates {
        let l = layout(cfg, rate);
        let r = pipeline(&cfg.dir, l, codec, cfg.sustain_seconds, Source::Paced)?;
        if r.lost == 0 {
            best = best.max(Some(rate));
        }
        let name = format!(
            "sustained {} M scans/s {} s, disk",
            rate as f64 / 1e6,
            cfg.sustain_seconds
        );
        let kind = StageKind::Sustained;
        stages.add(kind, Some(codec), name, r.mb_per_s, Some(r), None, progress);
    }
    Ok(best)
}

impl BenchReport {
    /// Prints the tables.
    pub fn print_text(&self) {
        let l = &self.limits;
        println!(
            "hsdaq acquire bench: {} scans, {} cores, median of {} runs, channels {}",
            self.shape, self.cores, self.runs, self.encoding
        );
        println!(
            "limits: memcpy {:.0} MB/s; disk write with fdatasync {:.0} MB/s as recorded (O_DIRECT), {:.0} MB/s through the page cache; tmpfs write {} MB/s",
            l.memcpy,
            l.disk_write,
            l.disk_write_buffered,
            l.tmpfs_write.map_or("-".into(), |v| format!("{v:.0}"))
        );
        println!(
            "{:<10} {:>12} {:>12} {:>7}",
            "codec", "1 core MB/s", "all MB/s", "size"
        );
        for c in &l.codecs {
            println!(
                "{:<10} {:>12.0} {:>12.0} {:>7.2}",
                c.codec, c.single_core, c.all_cores, c.size_ratio
            );
        }
        println!(
            "\n{:<22} {:<10} {:<10} {:>10} {:>10}",
            "encoding", "codec", "signal", "bits/value", "MB/s"
        );
        for e in &self.encodings {
            println!(
                "{:<22} {:<10} {:<10} {:>10.2} {:>10.0}",
                e.encoding, e.codec, e.signal, e.bits_per_value, e.mb_per_s
            );
        }
        for signal in ["reference", "noisy"] {
            let find = |enc: &str| {
                self.encodings
                    .iter()
                    .find(|e| e.encoding == enc && e.codec == "none" && e.signal == signal)
            };
            if let (Some(ours), Some(stock)) = (find("delta_binary_packed"), find(STOCK_WRITER)) {
                println!(
                    "our DELTA pages vs the parquet crate's writer ({signal}): {:.1}x the speed, {:.3} vs {:.3} bits/value",
                    ours.mb_per_s / stock.mb_per_s.max(1e-9),
                    ours.bits_per_value,
                    stock.bits_per_value
                );
            }
        }
        println!(
            "\n{:<44} {:>8} {:>12} {:>8} {:>8} {:>6} {:>8} {:>9}",
            "stage", "MB/s", "scans/s", "lost", "rss MiB", "size", "p99 µs", "CPU ns/S"
        );
        let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        for s in &self.stages {
            println!(
                "{:<44} {:>8.0} {:>12.3e} {:>8} {:>8} {:>6} {:>8} {:>9}",
                s.name,
                s.mb_per_s,
                s.scans_per_s,
                s.lost.map_or("-".into(), |v| v.to_string()),
                opt(s.rss_mib, 0),
                opt(s.size_ratio, 2),
                opt(s.latency_p99_us, 0),
                opt(s.cpu_ns_per_sample, 2),
            );
        }
        println!("\nefficiency (achieved ÷ min(write limit ÷ size, all-core codec), both measured just before each run):");
        for e in &self.efficiency {
            println!(
                "  {:<10} tmpfs {:>5} (reachable {:>6})  disk {:>5.2} ({}-bound)",
                e.codec,
                opt(e.tmpfs, 2),
                opt(e.tmpfs_reachable, 3),
                e.disk,
                e.bound
            );
        }
        println!("  (reachable: the tmpfs write is the kernel's copy on the same cores as the encoders; both costs add)");
        if let Some(h) = &self.headline {
            println!("\nheadline: {h}");
        }
        println!("\ntargets:");
        for t in &self.targets {
            let digits = if t.want.abs() < 10.0 { 2 } else { 1 };
            println!(
                "  {:<52} want {:>8.digits$}  got {:>8.digits$}  {}",
                t.name, t.want, t.got, t.status
            );
        }
    }
}
