//! `acquire bench`: where the time goes, stage by stage, in one run.
//!
//! Every stage moves the same sample bytes (4 channels × i16 unless told
//! otherwise) and is reported as MB/s of sample data, scans/s and its ratio
//! to memcpy of those bytes measured in the same run, because these
//! machines are noisy and only ratios travel. Peak resident memory is
//! sampled during a short and a 3× longer full-pipeline recording: equal
//! figures show it does not grow with the length of a recording.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hsdaq_abi::layout::{StreamLayout, BLOCK_HEADER_BYTES, BLOCK_MAGIC};
use hsdaq_abi::{BlockHeader, Format};
use serde::Serialize;

use crate::pipeline::{transpose, Live, PipelineConfig};
use crate::record::chunk_rows;
use crate::ring::{read_header, write_header, ConsumerCursor, ProducerCursor};
use crate::segment::{Chunk, Codec, SegmentFormat, SegmentWriter};
use crate::sim::{fill_payload, Overflow, SimConfig, SimDevice};

/// Bench settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Channels.
    pub channels: u16,
    /// Format.
    pub format: Format,
    /// Seconds per full-pipeline stage.
    pub seconds: f64,
    /// Paced, loss-checked recording rate (scans/s); 0 skips it.
    pub paced_rate: u64,
    /// Seconds of the paced recording.
    pub paced_seconds: f64,
    /// Where temporary recordings go.
    pub dir: PathBuf,
}

/// One measured stage.
#[derive(Debug, Serialize, Clone)]
pub struct Stage {
    /// Stage name.
    pub stage: String,
    /// Sample MB/s.
    pub mb_per_s: f64,
    /// Scans per second.
    pub scans_per_s: f64,
    /// Ratio to memcpy of the same bytes.
    pub vs_memcpy: f64,
    /// Scans lost (pipeline stages).
    pub lost: Option<u64>,
    /// Peak resident set sampled during the stage, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Parquet bytes per sample byte (encoding stages).
    pub size_ratio: Option<f64>,
}

/// The bench report.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Channels × format.
    pub shape: String,
    /// Cores available.
    pub cores: usize,
    /// Stages in order.
    pub stages: Vec<Stage>,
}

fn layout(cfg: &BenchConfig, data_size: u64) -> StreamLayout {
    StreamLayout {
        channels: cfg.channels,
        format: cfg.format,
        data_size,
        block_bytes: 64 << 10,
        rate_hz: 100_000_000,
    }
}

/// Current and peak resident set in MiB, from /proc/self/status.
pub fn rss_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A data area filled with real blocks (the drain stages read it).
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

/// Runs every stage.
pub fn run(cfg: &BenchConfig, mut report_stage: impl FnMut(&Stage)) -> Result<BenchReport> {
    let l = layout(cfg, 64 << 20);
    let scan_bytes = l.scan_bytes() as f64;
    let payload = (l.block_scans() as usize * l.scan_bytes()) as u64;
    let image = ring_image(&l);
    let slots = l.slots();
    let sample_bytes_per_pass = payload * slots;
    let mut stages: Vec<Stage> = Vec::new();
    let quick = (cfg.seconds / 2.0).clamp(0.3, 2.0);
    let mut push = |stages: &mut Vec<Stage>, name: &str, bps: f64, lost, rss, size| {
        let memcpy = stages.first().map_or(bps, |s| s.mb_per_s * 1e6);
        let s = Stage {
            stage: name.into(),
            mb_per_s: bps / 1e6,
            scans_per_s: bps / scan_bytes,
            vs_memcpy: bps / memcpy,
            lost,
            peak_rss_mib: rss,
            size_ratio: size,
        };
        report_stage(&s);
        stages.push(s);
    };

    // 1. memcpy of the same bytes.
    let mut dst = vec![0u8; image.len()];
    let bps = timed(quick, sample_bytes_per_pass, || {
        dst.copy_from_slice(std::hint::black_box(&image))
    });
    push(&mut stages, "memcpy", bps, None, None, None);

    // 2. drain only: the ring protocol plus reading every block in place.
    let head = AtomicU64::new(0);
    let tail = AtomicU64::new(0);
    let mut sum = 0u64;
    let bps = timed(quick, sample_bytes_per_pass, || {
        let mut p = ProducerCursor::new(&head, &tail, l.data_size);
        let mut c = ConsumerCursor::new(&head, &tail, l.data_size);
        for _ in 0..slots {
            p.reserve(l.block_bytes as u64).expect("space");
            p.publish(l.block_bytes as u64);
            let pos = c.peek(l.block_bytes as u64).expect("sane").expect("block");
            let slot = &image[pos as usize..pos as usize + l.block_bytes as usize];
            let h = read_header(slot, &l).expect("valid block");
            let body = &slot[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + payload as usize];
            sum = sum.wrapping_add(h.first_scan);
            sum = body.chunks_exact(8).fold(sum, |a, w| {
                a.wrapping_add(u64::from_ne_bytes(w.try_into().unwrap()))
            });
            c.release(l.block_bytes as u64);
        }
    });
    std::hint::black_box(sum);
    push(&mut stages, "drain (read in place)", bps, None, None, None);

    // 3. drain + transpose into column chunks.
    let rows = chunk_rows(&StreamLayout {
        rate_hz: 1 << 40,
        ..l
    });
    let mut chunk = Chunk::with_capacity(l.channels as usize, l.format.bytes(), rows);
    let bps = timed(quick, sample_bytes_per_pass, || {
        for slot in image.chunks_exact(l.block_bytes as usize) {
            let h = read_header(slot, &l).expect("valid block");
            if chunk.rows() + h.scans as usize > rows {
                chunk.clear();
            }
            transpose(
                &slot[BLOCK_HEADER_BYTES..],
                l.format,
                h.scans as usize,
                &mut chunk.streams,
            );
        }
    });
    push(&mut stages, "drain + transpose", bps, None, None, None);

    // 4. encode only, per codec: full chunks to Parquet on disk.
    let names: Vec<String> = (0..l.channels).map(|c| format!("ch{c}")).collect();
    chunk.clear();
    let bs = l.block_scans();
    let mut first = 0u64;
    while chunk.rows() + bs as usize <= rows {
        let slot = &image[((first / bs as u64) % slots) as usize * l.block_bytes as usize..]
            [..l.block_bytes as usize];
        transpose(
            &slot[BLOCK_HEADER_BYTES..],
            l.format,
            bs as usize,
            &mut chunk.streams,
        );
        chunk.blocks.push(crate::segment::BlockRec {
            first_seq: first,
            scans: bs,
            period_q16: 1 << 16,
            ..Default::default()
        });
        first += bs as u64;
    }
    let chunk_bytes = (chunk.rows() * l.scan_bytes()) as u64;
    let m = bench_manifest(&l);
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        let dir = fresh_dir(&cfg.dir, &format!("encode-{}", codec.label()))?;
        let fmt = SegmentFormat::new(&names, l.format, codec);
        let mut w = SegmentWriter::create(&dir, 0, &fmt)?;
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < quick {
            w.write_chunk(&chunk)?;
            n += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        let info = w.close(&m)?;
        let sample = n * chunk_bytes;
        let bps = sample as f64 / secs;
        push(
            &mut stages,
            &format!("encode only, {}", codec.label()),
            bps,
            None,
            None,
            Some(info.bytes as f64 / sample as f64),
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    // 5. full pipeline: simulator (unpaced, waits when full) → Parquet.
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        let (s, rss) = full_pipeline(cfg, codec, cfg.seconds, Overflow::Block, 0)?;
        push(
            &mut stages,
            &format!("full pipeline, {}", codec.label()),
            s.0,
            Some(s.1),
            Some(rss),
            Some(s.2),
        );
    }

    // 6. resident memory must not grow with the length of a recording.
    let (s, rss) = full_pipeline(cfg, Codec::Zstd, cfg.seconds * 3.0, Overflow::Block, 0)?;
    push(
        &mut stages,
        "full pipeline, zstd(1), 3× longer",
        s.0,
        Some(s.1),
        Some(rss),
        Some(s.2),
    );

    // 7. paced, real-time recording with drops counted (the target check).
    if cfg.paced_rate > 0 {
        let (s, rss) = full_pipeline(
            cfg,
            Codec::Zstd,
            cfg.paced_seconds,
            Overflow::Drop,
            cfg.paced_rate,
        )?;
        push(
            &mut stages,
            &format!("paced {} M scans/s, zstd(1)", cfg.paced_rate as f64 / 1e6),
            s.0,
            Some(s.1),
            Some(rss),
            Some(s.2),
        );
    }
    Ok(BenchReport {
        shape: format!("{} × {}", cfg.channels, cfg.format.name()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stages,
    })
}

fn fresh_dir(base: &Path, name: &str) -> Result<PathBuf> {
    let d = base.join(format!("hsdaq-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("blocks"))?;
    Ok(d)
}

fn bench_manifest(l: &StreamLayout) -> crate::manifest::Manifest {
    crate::manifest::Manifest {
        kind: "hsdaq-run".into(),
        manifest_version: 1,
        status: "bench".into(),
        error: None,
        board: None,
        device: Default::default(),
        stream: crate::manifest::StreamInfo {
            rate_hz: l.rate_hz,
            channels: l.channels,
            format: l.format.name().into(),
            block_bytes: l.block_bytes,
            block_scans: l.block_scans(),
            buffer_bytes: l.data_size,
        },
        channels: crate::profile::channel_infos(&[], l.channels as usize).expect("default names"),
        kernel_release: String::new(),
        host: String::new(),
        versions: crate::manifest::Versions {
            acquire: env!("CARGO_PKG_VERSION").into(),
            abi: "1.0".into(),
            module: None,
        },
        start_wall_clock: String::new(),
        start_monotonic_ns: 0,
        compression: String::new(),
        segment_policy: crate::units::SegmentPolicy::Bytes(256 << 20),
        counts: Default::default(),
        device_counters: Default::default(),
        gaps: Vec::new(),
        gaps_not_listed: 0,
        segments: Vec::new(),
    }
}

/// Records from the simulator for `secs`; returns ((sample B/s, lost, size ratio), peak RSS MiB).
fn full_pipeline(
    cfg: &BenchConfig,
    codec: Codec,
    secs: f64,
    overflow: Overflow,
    rate: u64,
) -> Result<((f64, u64, f64), f64)> {
    let paced = rate > 0;
    let l = StreamLayout {
        rate_hz: if paced { rate } else { 100_000_000 },
        ..layout(cfg, 64 << 20)
    };
    let dir = fresh_dir(&cfg.dir, &format!("pipeline-{}", codec.label()))?;
    let mut dev = SimDevice::new(SimConfig {
        layout: l,
        paced,
        overflow,
    })?;
    let names: Vec<String> = (0..l.channels).map(|c| format!("ch{c}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let pc = PipelineConfig {
        scan_limit: None,
        segment_scans: (256 << 20) / l.scan_bytes() as u64,
        chunk_rows: chunk_rows(&l),
        pool_chunks: 6,
        faults: Vec::new(),
        stop: stop.clone(),
        dir: dir.clone(),
        format: SegmentFormat::new(&names, l.format, codec),
    };
    let live = Arc::new(Live::default());
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let (outcome, rss) =
        with_rss(|| crate::pipeline::run(&mut dev, pc, bench_manifest(&l), live.clone()));
    let _ = timer.join();
    let outcome = outcome?;
    if let crate::pipeline::End::Failed(e) = &outcome.end {
        anyhow::bail!("bench recording failed: {e}");
    }
    let m = outcome.manifest;
    let sample = m.counts.scans_recorded * l.scan_bytes() as u64;
    let lost = m.counts.scans_lost
        + m.device_counters
            .dropped_scans
            .saturating_sub(m.counts.scans_lost);
    std::fs::remove_dir_all(&dir).ok();
    Ok((
        (
            sample as f64 / outcome.elapsed.as_secs_f64(),
            lost,
            m.counts.bytes_written as f64 / sample.max(1) as f64,
        ),
        rss,
    ))
}

impl BenchReport {
    /// Prints the table.
    pub fn print_text(&self) {
        println!(
            "hsdaq acquire bench: {} scans, {} cores",
            self.shape, self.cores
        );
        println!(
            "{:<36} {:>10} {:>12} {:>9} {:>8} {:>9} {:>7}",
            "stage", "MB/s", "scans/s", "÷memcpy", "lost", "rss MiB", "size"
        );
        for s in &self.stages {
            println!(
                "{:<36} {:>10.0} {:>12.3e} {:>9.3} {:>8} {:>9} {:>7}",
                s.stage,
                s.mb_per_s,
                s.scans_per_s,
                s.vs_memcpy,
                s.lost.map_or("-".into(), |v| v.to_string()),
                s.peak_rss_mib.map_or("-".into(), |v| format!("{v:.0}")),
                s.size_ratio.map_or("-".into(), |v| format!("{v:.2}")),
            );
        }
    }
}
