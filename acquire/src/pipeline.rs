//! The recording pipeline: a drain thread reads ring blocks in place and
//! transposes them into recycled column chunks; encoder threads (one per
//! core, each on a whole chunk) turn chunks into Parquet row groups and
//! hand them to a writer thread, which puts them back in stream order,
//! writes them, rotates segments and makes each finished one durable
//! (fsync, rename, manifest): a slow write or fsync never stops the
//! encoders while there is room in the pool. Chunks travel through two
//! `ringbuf` queues (full → encoders, taken under one lock; empty → drain),
//! so memory is a fixed pool, and encoders run at most a few row groups
//! ahead of the writer: a slow disk never stalls the drain, which only
//! stops reading when the whole pool is in flight, and then the producer's
//! own drop counter records what was lost, exactly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsdaq_abi::layout::{StreamLayout, BLOCK_HEADER_BYTES, STATUS_GONE, STATUS_RUNNING};
use ringbuf::traits::{Consumer as _, Observer as _, Producer as _, Split as _};
use ringbuf::HeapRb;

use crate::chunk::{BlockRec, Chunk};
use crate::counters::Live;
use crate::faults::{Fault, PlannedFault};
use crate::manifest::{CodecChange, Manifest, SegmentInfo, SegmentLog};
use crate::ring::{read_header, RingMap};
use crate::sink::codec::{Adapt, Codec, PageCodec};
use crate::sink::segment::{PageEncoder, RowGroup, SegmentFormat, SegmentWriter};
use crate::sink::{Checkpoint, Hook};
use crate::source::Device;
use crate::units::monotonic_ns;

/// Pipeline settings.
pub struct PipelineConfig {
    /// Record scans with index below this; `None` until stopped.
    pub scan_limit: Option<u64>,
    /// Scans per segment (rounded up to whole blocks).
    pub segment_scans: u64,
    /// Rows per chunk (row group), a multiple of the block size.
    pub chunk_rows: usize,
    /// Chunks in the pool.
    pub pool_chunks: usize,
    /// Faults to inject.
    pub faults: Vec<PlannedFault>,
    /// Set by signal handlers: finish cleanly.
    pub stop: Arc<AtomicBool>,
    /// Run folder.
    pub dir: PathBuf,
    /// Parquet schema and properties.
    pub format: SegmentFormat,
    /// Codec asked for.
    pub codec: Codec,
    /// Encoder threads (each encodes whole chunks on one core).
    pub encode_threads: usize,
    /// Print a line per durable segment.
    pub log_segments: bool,
    /// The live view's tap (`--live`), fed per block without waiting.
    pub tap: Option<crate::live::tap::TapTx>,
    /// The clocks the clock-correlation table reads.
    pub clocks: crate::clock::Clocks,
    /// Record only windows around triggers (`--trigger`).
    pub trigger: Option<crate::trigger::TriggerPlan>,
}

/// How often the drain adds a clock-table row (besides the first block of
/// every segment and the run's last).
const CLOCK_EVERY_NS: u64 = 1_000_000_000;

/// Why the drain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The requested number of scans was recorded.
    Limit,
    /// SIGINT/SIGTERM.
    Signal,
    /// A failure (device gone, corrupt ring, disk).
    Failed(String),
}

/// What a finished pipeline reports.
pub struct Outcome {
    /// Why it ended.
    pub end: End,
    /// The final manifest (segments, gaps, counts).
    pub manifest: Manifest,
    /// Wall time from start to the last block drained.
    pub elapsed: Duration,
}

type ChunkProd = <HeapRb<Chunk> as ringbuf::traits::Split>::Prod;
type ChunkCons = <HeapRb<Chunk> as ringbuf::traits::Split>::Cons;

/// Shared between the drain and the encoders.
#[derive(Default)]
struct Handoff {
    drain_done: AtomicBool,
    encoder_failed: AtomicBool,
    /// The threads that wait for full chunks, woken when one is sent.
    encoder_threads: Mutex<Vec<std::thread::Thread>>,
    /// Row groups the writer has taken to write (counted as it starts each
    /// one): how far the encoders may run ahead of it.
    written: AtomicU64,
}

impl Handoff {
    /// Registers the calling thread as one that waits for full chunks.
    fn wait_here(&self) {
        let me = std::thread::current();
        self.encoder_threads.lock().unwrap().push(me);
    }

    /// Wakes every thread waiting for full chunks.
    fn wake_encoders(&self) {
        for t in self.encoder_threads.lock().unwrap().iter() {
            t.unpark();
        }
    }
}

/// Runs a recording to its end. `device` must be stopped; it is started here.
pub fn run(
    device: &mut dyn Device,
    mut cfg: PipelineConfig,
    manifest: Manifest,
    live: Arc<Live>,
) -> Result<Outcome> {
    let ring = device.ring();
    let layout = *ring.layout();
    // A triggered run's history is drawn from the pool, beyond what the
    // encoder may hold.
    let mut windows = cfg
        .trigger
        .take()
        .map(|t| crate::trigger::Windows::new(t, &live));
    let chunks = pool_total(&cfg)
        + windows.as_ref().map_or(0, |w| {
            crate::trigger::Windows::extra_chunks(w.pre(), cfg.chunk_rows)
        });
    let ((mut full_tx, full_rx), (free_tx, free_rx)) = pool(&layout, cfg.chunk_rows, chunks);
    let hand = Arc::new(Handoff::default());
    let enc = {
        let hand = hand.clone();
        let live = live.clone();
        let settings = EncodeSettings {
            dir: cfg.dir.clone(),
            format: cfg.format.clone(),
            codec: cfg.codec,
            threads: cfg.encode_threads,
            pool: cfg.pool_chunks,
            rate_hz: layout.rate_hz,
            slow_disk: cfg.faults.iter().find_map(|f| match f.fault {
                Fault::SlowDisk(rate) => Some((f.at, rate)),
                _ => None,
            }),
            power_cut: cfg.faults.iter().find_map(|f| match f.fault {
                Fault::PowerCut(c) => Some((c, Instant::now() + f.at)),
                _ => None,
            }),
            log_segments: cfg.log_segments,
        };
        std::thread::Builder::new()
            .name("hsdaq-encode".into())
            .spawn(move || {
                crate::sched::yield_to_drain();
                let r = encode(full_rx, free_tx, &hand, &live, &settings, manifest);
                if r.is_err() {
                    hand.encoder_failed.store(true, Ordering::Release);
                }
                r
            })
            .context("cannot start the encoder thread")?
    };
    // The driver's counters only grow (ABI v2) and do not move while the
    // producer is stopped: this recording's share is the difference from here.
    let base = device.stats();
    crate::sched::short_slices();
    device.start()?;
    let started = Instant::now();
    let mut next_expected = 0;
    let mut tap = cfg.tap.take();
    let drained = drain(
        device,
        &cfg,
        DrainIo {
            ring: ring.clone(),
            layout,
            full_tx: &mut full_tx,
            free_rx,
            hand: &hand,
            live: &live,
            tap: tap.as_mut(),
            windows: windows.as_mut(),
        },
        &mut next_expected,
    );
    let elapsed = started.elapsed();
    let stop_err = device.stop().err();
    // Where the stopped producer got to: scans it dropped after the last
    // block we drained (below the limit) are lost at the end of the run.
    let produced_to = (ring.control().status.load(Ordering::Acquire) != STATUS_GONE)
        .then(|| ring.control().next_scan.load(Ordering::Acquire));
    hand.drain_done.store(true, Ordering::Release);
    hand.wake_encoders();
    let encoded = enc
        .join()
        .map_err(|_| anyhow::anyhow!("encoder thread panicked"))?;
    let (mut manifest, enc_err) = match encoded {
        Ok(m) => (m, None),
        Err(b) => (b.0, Some(b.1)),
    };
    let end = match (drained, enc_err) {
        (_, Some(e)) => End::Failed(crate::sink::segment::explain_write_error(&e)),
        (Err(e), None) => End::Failed(format!("{e:#}")),
        (Ok(end), None) => match stop_err {
            Some(e) if end != End::Signal => End::Failed(format!("{e:#}")),
            _ => end,
        },
    };
    if matches!(end, End::Limit | End::Signal) {
        let to = produced_to
            .unwrap_or(0)
            .min(limit_of(&ring, cfg.scan_limit));
        let first = ring.control().first_scan.load(Ordering::Acquire);
        let from = next_expected.max(first);
        let at_end = to.saturating_sub(from);
        live.lost.fetch_add(at_end, Ordering::Relaxed);
        match windows.as_ref() {
            None => manifest.counts.scans_lost_at_end = at_end,
            Some(w) => {
                // In an open window up to its end; past it (or between
                // windows) outside, where a trigger may have been lost,
                // unless the last window was written (nothing was wanted).
                let inside = w.open_end().map_or(0, |e| e.min(to).saturating_sub(from));
                manifest.counts.scans_lost_at_end = inside;
                live.outside_windows
                    .fetch_add(at_end - inside, Ordering::Relaxed);
                if !w.done() {
                    live.lost_outside_windows
                        .fetch_add(at_end - inside, Ordering::Relaxed);
                }
            }
        }
    }
    manifest.counts.scans_outside_windows = live.outside_windows.load(Ordering::Relaxed);
    manifest.counts.scans_lost_outside_windows = live.lost_outside_windows.load(Ordering::Relaxed);
    let s = device.stats();
    manifest.source_counters = device.source_counters();
    manifest.events.extend(device.events());
    manifest.events.extend(live.timeline.take_events());
    manifest.events.sort_by_key(|e| e.at_seq);
    manifest.device_counters = crate::manifest::DeviceCounters {
        produced_blocks: s.produced_blocks.saturating_sub(base.produced_blocks),
        dropped_blocks: s.dropped_blocks.saturating_sub(base.dropped_blocks),
        dropped_scans: s.dropped_scans.saturating_sub(base.dropped_scans),
        overruns: s.overruns.saturating_sub(base.overruns),
    };
    Ok(Outcome {
        end,
        manifest,
        elapsed,
    })
}

/// Runs the pipeline's own drain alone over `device`'s ring, its chunks
/// handed straight back to the pool (no encoder, no writer), until
/// `cfg.stop` or `cfg.scan_limit`: what `acquire bench` times as the drain
/// stage, so the ring protocol and the drain's bookkeeping are inside the
/// timer. Returns the scans drained and the time it took.
pub fn drain_only(device: &mut dyn Device, mut cfg: PipelineConfig) -> Result<(u64, Duration)> {
    let ring = device.ring();
    let layout = *ring.layout();
    let ((mut full_tx, mut full_rx), (mut free_tx, free_rx)) =
        pool(&layout, cfg.chunk_rows, cfg.pool_chunks);
    let hand = Handoff::default();
    let live = Live::default();
    let mut tap = cfg.tap.take();
    /// Ends the recycler however the drain ends (an error, a panic).
    struct Done<'a>(&'a Handoff);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.drain_done.store(true, Ordering::Release);
            self.0.wake_encoders();
        }
    }
    std::thread::scope(|s| {
        let hand = &hand;
        let done = Done(hand);
        s.spawn(move || {
            hand.wait_here();
            loop {
                let done = hand.drain_done.load(Ordering::Acquire);
                while let Some(mut c) = full_rx.try_pop() {
                    c.clear();
                    let _ = free_tx.try_push(c);
                }
                if done {
                    return;
                }
                std::thread::park_timeout(Duration::from_millis(1));
            }
        });
        device.start()?;
        let started = Instant::now();
        let mut next = 0;
        let end = drain(
            device,
            &cfg,
            DrainIo {
                ring: ring.clone(),
                layout,
                full_tx: &mut full_tx,
                free_rx,
                hand,
                live: &live,
                tap: tap.as_mut(),
                windows: None,
            },
            &mut next,
        );
        let elapsed = started.elapsed();
        let stopped = device.stop();
        drop(done);
        end?;
        stopped?;
        Ok((live.scans.load(Ordering::Relaxed), elapsed))
    })
}

/// Encoders that get a chunk of their own in the pool: more share it, so
/// the pool (and memory) stays bounded whatever `--encoders` says.
const OWN_CHUNK_ENCODERS: usize = 4;

/// Chunks the pool adds for `encoders` encoders: each beyond the first
/// holds one while it encodes, up to [`OWN_CHUNK_ENCODERS`].
pub fn encoder_chunks(encoders: usize) -> usize {
    encoders.clamp(1, OWN_CHUNK_ENCODERS) - 1
}

/// The pool of a run without trigger history: the configured chunks and
/// the encoders' own (what the live backlog is counted against).
pub fn pool_total(cfg: &PipelineConfig) -> usize {
    cfg.pool_chunks + encoder_chunks(cfg.encode_threads)
}

/// The chunk pool: `chunks` empty chunks in the free queue, and the full
/// queue they travel back by, each queue holding them all.
fn pool(
    layout: &StreamLayout,
    chunk_rows: usize,
    chunks: usize,
) -> ((ChunkProd, ChunkCons), (ChunkProd, ChunkCons)) {
    let full = HeapRb::<Chunk>::new(chunks).split();
    let (mut free_tx, free_rx) = HeapRb::<Chunk>::new(chunks).split();
    for _ in 0..chunks {
        // Room for one more block past `chunk_rows`: a chunk goes out once
        // it holds `chunk_rows`, whatever size its blocks are (a source that
        // reads its scans publishes partial blocks).
        let _ = free_tx.try_push(Chunk::with_capacity(
            layout.channels as usize,
            layout.format,
            chunk_rows + layout.block_scans() as usize,
        ));
    }
    (full, (free_tx, free_rx))
}

struct DrainState {
    chunk: Option<Chunk>,
    segment: u64,
    segment_rows: u64,
    expected: Option<u64>,
    /// When the next clock-table row is due (CLOCK_MONOTONIC ns).
    clock_due: u64,
    /// The last scan recorded: segment, seq, stamp (for the run's last
    /// clock-table row).
    last: Option<(u64, u64, u64)>,
    /// The window the open segment belongs to (triggered runs).
    window: Option<u32>,
    /// The segment the last chunk went to.
    sent_segment: u64,
    /// Scans per segment, in whole blocks.
    segment_scans: u64,
}

/// What the drain works with besides the device and its settings: the
/// ring, the chunk queues to and from the encoder, the shared counters, and
/// the optional live-view tap and trigger windows.
struct DrainIo<'a> {
    ring: RingMap,
    layout: StreamLayout,
    full_tx: &'a mut ChunkProd,
    free_rx: ChunkCons,
    hand: &'a Handoff,
    live: &'a Live,
    tap: Option<&'a mut crate::live::tap::TapTx>,
    windows: Option<&'a mut crate::trigger::Windows>,
}

/// Reads ring blocks in place until the end of the recording, transposing
/// them into chunks for the encoder; `next_expected` follows the first
/// scan not yet drained (what `run` needs to count losses at the end).
fn drain(
    device: &mut dyn Device,
    cfg: &PipelineConfig,
    io: DrainIo,
    next_expected: &mut u64,
) -> Result<End> {
    let DrainIo {
        ring,
        layout,
        full_tx,
        mut free_rx,
        hand,
        live,
        mut tap,
        mut windows,
    } = io;
    let layout = &layout;
    let block_bytes = layout.block_bytes as u64;
    let segment_scans =
        cfg.segment_scans.div_ceil(layout.block_scans() as u64) * layout.block_scans() as u64;
    let mut cur = ring.consumer();
    // The stream START began; a block of another epoch is not ours.
    let epoch = ring.control().epoch.load(Ordering::Acquire);
    let mut st = DrainState {
        chunk: None,
        segment: 0,
        segment_rows: 0,
        expected: None,
        clock_due: 0,
        last: None,
        window: None,
        sent_segment: 0,
        segment_scans,
    };
    let mut faults = cfg.faults.clone();
    faults.sort_by_key(|f| f.at);
    let mut faults = faults.into_iter().peekable();
    let start = Instant::now();
    let mut stop = Stop::default();
    let end = loop {
        // Counted from the stream's first scan, which a numbered source
        // sets with its first block.
        let limit = limit_of(&ring, cfg.scan_limit);
        if hand.encoder_failed.load(Ordering::Acquire) {
            break End::Failed("encoder failed".into());
        }
        if !stop.stopping && cfg.stop.load(Ordering::Relaxed) {
            // Stop the producer, then drain what it already published.
            device.stop()?;
            stop.stopping = true;
        }
        stop.past_limit(device, &ring, limit)?;
        while let Some(f) = faults.next_if(|f| start.elapsed() >= f.at) {
            match (f.fault, f.device_args()) {
                (Fault::StallConsumer(d), _) => std::thread::sleep(d),
                (_, Some(args)) => device.inject(args)?,
                _ => {}
            }
        }
        let Some(pos) = cur.peek(block_bytes)? else {
            if stop.stopping {
                break if stop.at_limit {
                    End::Limit
                } else {
                    End::Signal
                };
            }
            let status = ring.control().status.load(Ordering::Acquire);
            if status == STATUS_GONE {
                bail!("the device went away (driver unbound or module removed)");
            }
            if status != STATUS_RUNNING
                && start.elapsed() > Duration::from_secs(2)
                && cur.peek(block_bytes)?.is_none()
            {
                match device.failure() {
                    Some(why) => bail!("the source failed: {why}"),
                    None => bail!(
                        "the device stopped producing (status {})",
                        crate::source::status_name(status)
                    ),
                }
            }
            device.wait(Duration::from_millis(50))?;
            continue;
        };
        // A driver that is unbinding revokes the mapping shortly after it
        // says GONE (module/README.md): stop touching it as soon as it does.
        if ring.control().status.load(Ordering::Acquire) == STATUS_GONE {
            bail!("the device went away (driver unbound or module removed)");
        }
        // SAFETY: `pos` came from peek and the slot is released only below,
        // after the last use of `slot`.
        let slot = unsafe { ring.slot(pos) };
        let h = read_header(slot, layout)
            .with_context(|| format!("corrupt block at ring offset {pos}"))?;
        if st.expected.is_none() {
            // SAFETY: a plain u64 of the live control page, written by the
            // producer before the head store our peek Acquire-loaded.
            let start_ns = unsafe { std::ptr::addr_of!(ring.control().start_ns).read_volatile() };
            live.start_ns.store(start_ns, Ordering::Relaxed);
            live.first_scan.store(
                ring.control().first_scan.load(Ordering::Acquire),
                Ordering::Relaxed,
            );
        }
        if h.epoch != epoch {
            bail!(
                "ring corrupt: block {} belongs to stream epoch {}, this recording is epoch {epoch}",
                h.block_seq,
                h.epoch
            );
        }
        let expected = st
            .expected
            .unwrap_or(h.first_scan - h.lost_before.min(h.first_scan));
        if h.first_scan != expected + h.lost_before {
            bail!(
                "ring corrupt: block {} starts at scan {} but {} + {} lost was expected",
                h.block_seq,
                h.first_scan,
                expected,
                h.lost_before
            );
        }
        let mut scans = h.scans as u64;
        if h.first_scan >= limit {
            cur.release(block_bytes);
            break End::Limit;
        }
        scans = scans.min(limit - h.first_scan);
        let fill = (cur.cached_fill() * 1000 / layout.data_size) as u32;
        live.ring_fill_permille.store(fill, Ordering::Relaxed);
        live.ring_fill_max_permille
            .fetch_max(fill, Ordering::Relaxed);
        let rec = BlockRec {
            flags: h.flags,
            first_seq: h.first_scan,
            scans: scans as u32,
            t_ns: h.timestamp_ns,
            period_q16: h.period_ns_q16,
            lost_before: h.lost_before,
            arrival_ns: monotonic_ns(),
            ring_fill_permille: fill,
        };
        *live.timeline.last_block.lock().unwrap() = Some((rec.first_seq, rec.t_ns, rec.period_q16));
        if windows.is_none() {
            clock_row(cfg, live, &mut st, &rec);
        }
        let last_scan_ns = rec.time_of(h.scans.max(1) as u64 - 1) as u64;
        live.latency
            .record(rec.arrival_ns.saturating_sub(last_scan_ns));
        let chunk = match st.chunk.as_mut() {
            Some(c) => c,
            None => {
                let spare = windows.as_deref_mut().and_then(|w| w.spare.pop());
                let c = spare.map_or_else(
                    || {
                        take_free(&mut free_rx, hand, &mut || {
                            // Waiting on a slow disk: the producer may pass the
                            // end meanwhile, and must be stopped there too.
                            stop.past_limit(device, &ring, limit)
                        })
                    },
                    Ok,
                )?;
                let waiting = pool_total(cfg).saturating_sub(free_rx.occupied_len() + 1);
                live.backlog.store(waiting as u32, Ordering::Relaxed);
                st.chunk.insert(c)
            }
        };
        chunk.segment = st.segment;
        let payload = &slot[BLOCK_HEADER_BYTES..];
        match tap.as_deref_mut() {
            Some(t) => t.append(chunk, payload, h.first_scan, scans as usize, h.lost_before),
            None => chunk.transpose(payload, scans as usize),
        }
        chunk.blocks.push(rec);
        cur.release(block_bytes);
        st.expected = Some(h.first_scan + h.scans as u64);
        *next_expected = h.first_scan + scans;
        if h.lost_before > 0 {
            live.lost.fetch_add(h.lost_before, Ordering::Relaxed);
            live.gaps.fetch_add(1, Ordering::Relaxed);
        }
        live.scans.fetch_add(scans, Ordering::Relaxed);
        if let Some(w) = windows.as_deref_mut() {
            if chunk.rows() >= cfg.chunk_rows {
                let c = st.chunk.take().expect("chunk present");
                to_windows(w, c, cfg, live, &mut st, full_tx, &mut free_rx, hand)?;
                if w.done() && !stop.stopping {
                    // The last window is written: what the producer makes
                    // from here on is not wanted.
                    device.stop()?;
                    stop.stopping = true;
                    stop.at_limit = true;
                }
            }
            if h.first_scan + scans >= limit {
                break End::Limit;
            }
            continue;
        }
        st.segment_rows += scans;
        let end = scans.saturating_sub(1);
        st.last = Some((st.segment, h.first_scan + end, rec.time_of(end) as u64));
        let segment_full = st.segment_rows >= segment_scans;
        if segment_full || chunk.rows() >= cfg.chunk_rows {
            send(full_tx, st.chunk.take().expect("chunk present"), hand)?;
        }
        if segment_full {
            st.segment += 1;
            st.segment_rows = 0;
        }
        if h.first_scan + scans >= limit {
            break End::Limit;
        }
    };
    if let Some(w) = windows {
        if let Some(c) = st.chunk.take().filter(|c| c.rows() > 0) {
            to_windows(w, c, cfg, live, &mut st, full_tx, &mut free_rx, hand)?;
        }
        w.finish(live, st.last.map(|(_, seq, _)| seq));
    }
    if let Some((segment, seq, t)) = st.last {
        let row = cfg.clocks.sample(seq, t);
        live.timeline
            .clock_rows
            .lock()
            .unwrap()
            .push((segment, row));
    }
    if let Some(c) = st.chunk.take().filter(|c| c.rows() > 0) {
        send(full_tx, c, hand)?;
    }
    Ok(end)
}

/// Hands a full chunk to the trigger windows, which send what lies in a
/// window on to the encoder through [`commit_window`].
#[allow(clippy::too_many_arguments)]
fn to_windows(
    w: &mut crate::trigger::Windows,
    c: Chunk,
    cfg: &PipelineConfig,
    live: &Live,
    st: &mut DrainState,
    full_tx: &mut ChunkProd,
    free_rx: &mut ChunkCons,
    hand: &Handoff,
) -> Result<()> {
    let mut commit = |c: Chunk| commit_window(c, cfg, live, st, full_tx, hand);
    let mut fresh = || take_free(free_rx, hand, &mut || Ok(()));
    w.push(
        c,
        &mut crate::trigger::Io {
            commit: &mut commit,
            fresh: &mut fresh,
            live,
        },
    )
}

/// Sends a window's chunk to the encoder: a new window starts a new
/// segment, a full segment ends one, and the clock table gets its rows.
fn commit_window(
    mut c: Chunk,
    cfg: &PipelineConfig,
    live: &Live,
    st: &mut DrainState,
    full_tx: &mut ChunkProd,
    hand: &Handoff,
) -> Result<()> {
    if c.rows() == 0 {
        // Only the loss at its window's end: to the window's last segment,
        // still open in the writer (no later chunk went out).
        c.segment = st.sent_segment;
        return send(full_tx, c, hand);
    }
    let index = c.window.map(|w| w.index);
    if st.window != index {
        if st.segment_rows > 0 {
            st.segment += 1;
            st.segment_rows = 0;
        }
        st.window = index;
    }
    c.segment = st.segment;
    st.sent_segment = st.segment;
    for rec in &c.blocks {
        clock_row(cfg, live, st, rec);
        st.segment_rows += rec.scans as u64;
    }
    if let Some(b) = c.blocks.last() {
        let end = b.scans.saturating_sub(1) as u64;
        st.last = Some((st.segment, b.first_seq + end, b.time_of(end) as u64));
    }
    send(full_tx, c, hand)?;
    if st.segment_rows >= st.segment_scans {
        st.segment += 1;
        st.segment_rows = 0;
    }
    Ok(())
}

/// At the first block of a segment and once a second, adds a clock-table
/// row for the block's first scan.
fn clock_row(cfg: &PipelineConfig, live: &Live, st: &mut DrainState, rec: &BlockRec) {
    let t = &live.timeline;
    if st.segment_rows == 0 || rec.arrival_ns >= st.clock_due {
        let row = cfg.clocks.sample(rec.first_seq, rec.t_ns);
        t.clock_rows.lock().unwrap().push((st.segment, row));
        st.clock_due = rec.arrival_ns + CLOCK_EVERY_NS;
    }
}

/// The first scan index beyond the recording: `scans` from the stream's
/// first scan (`ControlPage::first_scan`, 0 unless the source numbers scans).
fn limit_of(ring: &RingMap, scans: Option<u64>) -> u64 {
    scans.map_or(u64::MAX, |n| {
        ring.control()
            .first_scan
            .load(Ordering::Acquire)
            .saturating_add(n)
    })
}

/// Whether the drain stopped the producer, and whether at the scan limit.
#[derive(Default)]
struct Stop {
    stopping: bool,
    at_limit: bool,
}

impl Stop {
    /// Stops the producer once it has passed the end of the recording
    /// (checked by the drain loop and while it waits for a free chunk).
    fn past_limit(&mut self, device: &mut dyn Device, ring: &RingMap, limit: u64) -> Result<()> {
        if !self.stopping && past_limit(ring, limit) {
            device.stop()?;
            self.stopping = true;
            self.at_limit = true;
        }
        Ok(())
    }
}

/// True once the producer has passed the end of the recording while the
/// drain catches up: it is then stopped, so it neither spends CPU nor drops
/// blocks nobody asked for (what it published is still drained).
fn past_limit(ring: &RingMap, limit: u64) -> bool {
    limit != u64::MAX
        && ring.control().status.load(Ordering::Acquire) != STATUS_GONE
        && ring.control().next_scan.load(Ordering::Acquire) >= limit
}

/// Takes an empty chunk, waiting while all are in flight (the writer is
/// behind); `waiting` runs between polls.
fn take_free(
    free_rx: &mut ChunkCons,
    hand: &Handoff,
    waiting: &mut dyn FnMut() -> Result<()>,
) -> Result<Chunk> {
    loop {
        if let Some(c) = free_rx.try_pop() {
            return Ok(c);
        }
        if hand.encoder_failed.load(Ordering::Acquire) {
            bail!("encoder failed");
        }
        waiting()?;
        std::thread::park_timeout(Duration::from_micros(500));
    }
}

fn send(full_tx: &mut ChunkProd, chunk: Chunk, hand: &Handoff) -> Result<()> {
    if full_tx.try_push(chunk).is_err() {
        // Cannot happen: the pool holds exactly the queue's capacity.
        bail!("chunk queue overflow");
    }
    hand.wake_encoders();
    Ok(())
}

type EncodeResult = std::result::Result<Manifest, Box<(Manifest, anyhow::Error)>>;

/// What the encoder thread needs besides the queues.
struct EncodeSettings {
    dir: PathBuf,
    format: SegmentFormat,
    codec: Codec,
    threads: usize,
    pool: usize,
    rate_hz: u64,
    /// `--fault slow-disk`: from when, bytes per second.
    slow_disk: Option<(Duration, u64)>,
    /// `--fault powercut`: where, and from when after the start.
    power_cut: Option<(Checkpoint, Instant)>,
    /// Print a line per durable segment (plain progress on a non-terminal).
    log_segments: bool,
}

/// Holds the writer to a byte rate (the `slow-disk` fault): waits as long
/// as a disk of that speed would still be busy with what was written.
struct Throttle {
    start: Instant,
    from: Duration,
    rate: u64,
    bytes: u64,
}

impl Throttle {
    fn wrote(&mut self, bytes: u64) {
        if self.start.elapsed() < self.from {
            return;
        }
        self.bytes += bytes;
        let due = self.from + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// An encoded row group on its way to the writer: its place in the
/// stream (chunks are numbered as the encoders take them), the row group,
/// and the codec change it starts, if any.
type ToWrite = (u64, RowGroup, Option<CodecChange>);

/// Row groups encoded ahead of the writer: encoding the next one overlaps
/// writing this one, and memory stays bounded.
const WRITE_QUEUE: usize = 2;

/// How many chunks the encoders may take beyond the last row group written:
/// one per encoder and the write queue. While one encoder is slow on its
/// chunk the others stop there, so the row groups the writer holds back
/// for order stay few.
fn run_ahead(encoders: usize) -> u64 {
    (encoders + WRITE_QUEUE) as u64
}

/// The encoder side: one encoder per core, each taking whole chunks and
/// encoding them into row groups, and a writer thread, which puts them
/// back in stream order, writes, seals and commits the segments. A slow
/// disk or fsync backs up through the queue into the pool, where the
/// producer's drop counter accounts for it.
fn encode(
    full_rx: ChunkCons,
    free_tx: ChunkProd,
    hand: &Handoff,
    live: &Live,
    set: &EncodeSettings,
    manifest: Manifest,
) -> EncodeResult {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ToWrite>(WRITE_QUEUE);
    let intake = Mutex::new(Intake {
        full_rx,
        free_tx,
        adapt: Adapt::new(set.codec.first_level()),
        busy: 0.0,
        taken: 0,
        first: true,
        encoders: set.threads.max(1),
    });
    let joined = std::thread::scope(|s| {
        let m = manifest.clone();
        let w = std::thread::Builder::new()
            .name("hsdaq-write".into())
            .spawn_scoped(s, move || {
                crate::sched::yield_to_drain();
                write(rx, m, live, set, hand)
            });
        let w = match w {
            Ok(w) => w,
            Err(e) => return Err(Box::new((manifest.clone(), e.into()))),
        };
        let mut helpers = Vec::new();
        for _ in 1..set.threads.max(1) {
            let (tx, intake) = (tx.clone(), &intake);
            let h = std::thread::Builder::new()
                .name("hsdaq-encode".into())
                .spawn_scoped(s, move || {
                    crate::sched::yield_to_drain();
                    encode_chunks(intake, hand, set, tx)
                });
            match h {
                Ok(h) => helpers.push(h),
                // Fewer encoders than asked is slower, not wrong.
                Err(e) => eprintln!("acquire: one encoder thread fewer: {e}"),
            }
        }
        intake.lock().unwrap().encoders = helpers.len() + 1;
        let mut encoded = encode_chunks(&intake, hand, set, tx);
        for h in helpers {
            let r = h.join().expect("encoder panicked");
            encoded = encoded.and(r);
        }
        let written = w.join().expect("writer panicked");
        Ok((encoded, written))
    });
    let (encoded, written) = joined?;
    match (encoded, written) {
        (Ok(()), Ok(m)) => Ok(m),
        (Err(e), Ok(m)) => Err(Box::new((m, e))),
        // The writer's failure is the cause when both failed.
        (_, Err(b)) => Err(b),
    }
}

/// What the encoders share: the chunk queues and the `auto` codec's
/// controller, taken under one lock once per chunk, so chunks are numbered
/// and codec changes decided in stream order.
struct Intake {
    full_rx: ChunkCons,
    free_tx: ChunkProd,
    adapt: Adapt,
    /// The encoders' latest busy fraction (`auto`'s signal).
    busy: f64,
    /// Chunks taken so far: the next one's number.
    taken: u64,
    /// No codec change recorded yet (the first row group records one).
    first: bool,
    /// Encoder threads running.
    encoders: usize,
}

/// What an encoder finds when it asks for a chunk.
enum Take {
    /// The next chunk: its number, the chunk, its codec, and the codec
    /// change it starts.
    Chunk(u64, Chunk, PageCodec, Option<CodecChange>),
    /// No full chunk is waiting.
    Empty,
    /// One is, but the encoders are as far ahead of the writer as they may go.
    Ahead,
}

impl Intake {
    /// Takes the next full chunk, if any and if the encoders are not too
    /// far ahead of the writer, and decides its codec.
    fn take(&mut self, set: &EncodeSettings, hand: &Handoff) -> Take {
        let written = hand.written.load(Ordering::Acquire);
        if self.full_rx.is_empty() {
            return Take::Empty;
        }
        if self.taken >= written + run_ahead(self.encoders) {
            return Take::Ahead;
        }
        let Some(chunk) = self.full_rx.try_pop() else {
            return Take::Empty;
        };
        let backlog = self.full_rx.occupied_len();
        let changed = match set.codec {
            Codec::Auto => self.adapt.observe(backlog, set.pool, self.busy),
            _ => None,
        };
        let change = chunk
            .blocks
            .first()
            .filter(|_| changed.is_some() || self.first)
            .map(|b| CodecChange {
                at_seq: b.first_seq as i64,
                segment: chunk.segment,
                codec: self.adapt.current().label().into(),
                backlog,
            });
        self.first &= change.is_none();
        self.taken += 1;
        Take::Chunk(self.taken - 1, chunk, self.adapt.current(), change)
    }
}

/// Stops the drain and the encoders however the thread holding it ends
/// early (an error, a panic): an encoder's later row groups, or the
/// writer's, cannot be written in order. Forgotten on a normal end.
struct Failing<'a>(&'a Handoff);

impl Drop for Failing<'_> {
    fn drop(&mut self) {
        self.0.encoder_failed.store(true, Ordering::Release);
        self.0.wake_encoders();
    }
}

/// One encoder's loop: chunks in, row groups out (and chunks back to the
/// pool as soon as they are encoded).
fn encode_chunks(
    intake: &Mutex<Intake>,
    hand: &Handoff,
    set: &EncodeSettings,
    tx: std::sync::mpsc::SyncSender<ToWrite>,
) -> Result<()> {
    let failing = Failing(hand);
    hand.wait_here();
    let mut encoder = PageEncoder::default();
    loop {
        // Load `done` before taking: the drain pushes its last chunk
        // before it sets `done`, so "done and empty" means finished.
        let done = hand.drain_done.load(Ordering::Acquire);
        if hand.encoder_failed.load(Ordering::Acquire) {
            // Another encoder or the writer failed: stop taking chunks.
            std::mem::forget(failing);
            return Ok(());
        }
        let taken = intake.lock().unwrap().take(set, hand);
        let (number, mut chunk, codec, change) = match taken {
            Take::Chunk(n, c, codec, change) => (n, c, codec, change),
            Take::Empty if done => {
                std::mem::forget(failing);
                return Ok(());
            }
            Take::Empty | Take::Ahead => {
                std::thread::park_timeout(Duration::from_millis(5));
                continue;
            }
        };
        let rg = encoder
            .encode(&chunk, set.format.encoding(), codec)
            .with_context(|| {
                format!(
                    "encoding {}",
                    crate::sink::segment::segment_name(chunk.segment)
                )
            })?;
        chunk.clear();
        let mut i = intake.lock().unwrap();
        if rg.rows > 0 {
            // The fraction of the encoders' time this chunk took.
            let covers = rg.rows as f64 / set.rate_hz.max(1) as f64;
            i.busy = rg.encoding_time.as_secs_f64() / covers.max(1e-9) / i.encoders as f64;
        }
        let _ = i.free_tx.try_push(chunk);
        drop(i);
        tx.send((number, rg, change))
            .map_err(|_| anyhow::anyhow!("the segment writer stopped"))?;
    }
}

/// The writer loop: puts row groups back in stream order and writes them
/// into segments; when a segment ends, seals it and makes it durable and
/// visible, then records it in the manifest (written atomically as
/// [`Listing`] decides).
fn write(
    rx: std::sync::mpsc::Receiver<ToWrite>,
    mut manifest: Manifest,
    live: &Live,
    set: &EncodeSettings,
    hand: &Handoff,
) -> EncodeResult {
    let mut writer: Option<SegmentWriter> = None;
    let cut = set.power_cut;
    let at: Hook = &move |c| crate::faults::power_cut_at(cut, c);
    let mut throttle = set.slow_disk.map(|(from, rate)| Throttle {
        start: Instant::now(),
        from,
        rate,
        bytes: 0,
    });
    let failing = Failing(hand);
    // Row groups that came before one still being encoded: the encoders
    // run at most `run_ahead` chunks past the last one written.
    let mut early = std::collections::BTreeMap::new();
    let mut next = 0u64;
    let mut listing = Listing::default();
    let r = (|| -> Result<()> {
        for (number, rg, change) in rx {
            early.insert(number, (rg, change));
            while let Some((rg, change)) = early.remove(&next) {
                next += 1;
                hand.written.store(next, Ordering::Release);
                hand.wake_encoders();
                if writer.as_ref().is_some_and(|w| w.index() != rg.segment) {
                    let w = writer.take().expect("open");
                    close_segment(w, &mut manifest, &mut listing, live, set, at)?;
                }
                manifest.compression_changes.extend(change);
                let name = crate::sink::segment::segment_name(rg.segment);
                if writer.is_none() {
                    let w = SegmentWriter::create(&set.dir, rg.segment, &set.format)
                        .with_context(|| format!("creating {name}"))?;
                    writer = Some(w);
                }
                let w = writer.as_mut().expect("open");
                let before = w.bytes_written();
                w.write_row_group(rg)
                    .with_context(|| format!("writing {name}"))?;
                at(Checkpoint::Write);
                if let Some(t) = throttle.as_mut() {
                    t.wrote(w.bytes_written() - before);
                }
            }
        }
        if let Some(w) = writer.take() {
            close_segment(w, &mut manifest, &mut listing, live, set, at)?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            std::mem::forget(failing);
            Ok(manifest)
        }
        Err(e) => {
            // Stop the drain and the encoders before cleaning up.
            drop(failing);
            if let Some(w) = writer.take() {
                w.abandon();
            }
            Err(Box::new((manifest, e)))
        }
    }
}

/// Seals a segment, makes it durable and visible, and records it (an empty
/// one is removed); with `log_segments`, says so on stderr once durable.
fn close_segment(
    w: SegmentWriter,
    manifest: &mut Manifest,
    listing: &mut Listing,
    live: &Live,
    set: &EncodeSettings,
    at: Hook,
) -> Result<()> {
    if w.rows() == 0 {
        // Its clock rows (if any) describe nothing that was written.
        drop(live.timeline.take_clock_rows(w.index()));
        w.abandon();
        return Ok(());
    }
    let name = crate::sink::segment::segment_name(w.index());
    let t0 = Instant::now();
    manifest.stream.first_seq = live.first_scan.load(Ordering::Relaxed);
    // Markers dropped so far go into this segment's copy of the manifest,
    // so a run recovered after a crash keeps them.
    manifest.events.extend(live.timeline.take_events());
    manifest.events.sort_by_key(|e| e.at_seq);
    let clock_rows = live.timeline.take_clock_rows(w.index());
    let mut info = w
        .seal(manifest, &clock_rows)
        .and_then(|sealed| {
            at(Checkpoint::Seal);
            sealed.commit(at)
        })
        .with_context(|| format!("closing {name}"))?;
    info.close_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
    let (bytes, rows, close_ms) = (info.bytes, info.rows, info.close_ms.unwrap_or(0.0));
    manifest.count_segment(&info);
    if let Err(e) = listing.push(&set.dir, &info) {
        // Durable and counted: the run's last manifest lists it after the
        // log's records (the run ends here).
        manifest.segments.push(info);
        return Err(e);
    }
    live.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    live.segments.fetch_add(1, Ordering::Relaxed);
    if listing.due(bytes) {
        let size = manifest
            .write_logged(&set.dir, || at(Checkpoint::Manifest))
            .context("updating manifest.json")?;
        listing.wrote(size);
    }
    if set.log_segments {
        eprintln!(
            "acquire: {name} durable: {rows} scans, {:.1} MB, closed in {close_ms:.0} ms",
            bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// The writer's record of the closed segments: their list is the run's
/// segment log (`SEGMENT_LOG`), not memory, where it grew with the run, and
/// this decides when `manifest.json` is rewritten from it after a segment
/// closes. The manifest lists every segment (~300 bytes each) and a rewrite
/// is its whole size and an fsync, so after every segment the cost grew
/// with the run: a day of 1 s segments would rewrite 26 MB every second. A
/// small manifest is rewritten after every segment; a larger one once the
/// segments closed since outweigh it [`MANIFEST_SHARE`] times, which keeps
/// its rewrites below 1/[`MANIFEST_SHARE`] of the bytes recorded past
/// [`MANIFEST_ALWAYS`] (with no bound in time: a slow stream's manifest may
/// lag by hours). The run's end writes it (record.rs; not a crash or a
/// panic); after a crash `acquire recover` finds the closed segments it
/// does not list yet from their own records, as every crash needs anyway.
#[derive(Default)]
struct Listing {
    /// The segment log, created at the first close.
    log: Option<SegmentLog>,
    /// Size of the last rewrite (0: none yet).
    size: u64,
    /// Segment bytes closed since.
    since: u64,
}

/// Up to this size the manifest is rewritten after every segment (~350
/// segments).
const MANIFEST_ALWAYS: u64 = 64 << 10;
/// Segment bytes per manifest byte between two rewrites of a larger one.
const MANIFEST_SHARE: u64 = 32;

impl Listing {
    /// Appends a closed segment's record to the log.
    fn push(&mut self, dir: &std::path::Path, info: &SegmentInfo) -> Result<()> {
        let log = match &mut self.log {
            Some(log) => log,
            None => self.log.insert(SegmentLog::create(dir)?),
        };
        log.push(info)
    }

    /// A segment of `bytes` closed: is a rewrite due?
    fn due(&mut self, bytes: u64) -> bool {
        self.since += bytes;
        self.size <= MANIFEST_ALWAYS || self.since >= self.size * MANIFEST_SHARE
    }

    /// A rewrite of `size` bytes is durable.
    fn wrote(&mut self, size: u64) {
        (self.size, self.since) = (size, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_rewrites_stay_a_bounded_share_of_the_bytes_recorded() {
        let mut c = Listing::default();
        // Small: after every segment, however small the segment.
        assert!(c.due(1));
        c.wrote(MANIFEST_ALWAYS);
        assert!(c.due(1));
        // Large: only once the segments since outweigh it.
        c.wrote(1 << 20);
        let seg = 100 << 10;
        let skipped = (0..).take_while(|_| !c.due(seg)).count() as u64;
        assert_eq!(
            (skipped + 1) * seg,
            (MANIFEST_SHARE << 20).div_ceil(seg) * seg
        );
        c.wrote(1 << 20);
        assert!(!c.due(seg));
    }

    #[test]
    fn encoders_add_a_bounded_number_of_chunks() {
        let added: Vec<usize> = [0, 1, 2, 3, 4, 5, 1024].map(encoder_chunks).to_vec();
        assert_eq!(added, [0, 0, 1, 2, 3, 3, 3]);
    }
}
