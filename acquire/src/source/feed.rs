//! Sources that `acquire` reads instead of maps (an IIO device, a network
//! stream): a [`Feed`] hands over scans, and [`FeedDevice`] writes them,
//! from its own thread, into the same ring ABI the kernel driver and the
//! simulator write. So every source reaches the pipeline through one door
//! (block headers, loss accounting, gap kinds, the live view), and a new
//! source is only the code that reads it.
//!
//! Losses are told in two places, never mixed up: the feed says what the
//! *source* lost before a batch (counted from the stream's own numbering,
//! inferred from its timestamps, or a lower bound), and the pump counts
//! exactly what *acquire's ring* could not take (a full ring: the batch was
//! read, so the source's buffer keeps draining, and then dropped, counted).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsdaq_abi::ioctl::{FaultArgs, FAULT_DROP_BLOCKS, FAULT_STALL_US};
use hsdaq_abi::layout::*;

use crate::ring::{write_header, LocalRing, RingMap};
use crate::source::{Device, DeviceDescription};
use crate::units::monotonic_ns;

/// A block is published once it is full or this old (its first scan read
/// this long ago), so a slow stream reaches the file, the progress line and
/// the live view within a tenth of a second, whatever the block size.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// Longest a feed may block in one [`Feed::read`]: how soon a stop is seen.
pub const READ_WAIT: Duration = Duration::from_millis(50);

/// Scans a feed wrote into the payload, and what came before them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Batch {
    /// Scans written (≥ 1).
    pub scans: u32,
    /// Scans the source lost immediately before the first of them.
    pub lost_before: u64,
    /// What `lost_before` is worth.
    pub kind: Option<GapKind>,
    /// CLOCK_MONOTONIC ns of the first and the last scan, when the source
    /// timestamps its scans.
    pub times: Option<(u64, u64)>,
    /// The stream's own index of the first scan, when the source numbers
    /// its scans: the stream's first batch sets where `seq` starts.
    pub at: Option<u64>,
}

/// What one [`Feed::read`] produced.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// Nothing arrived within the wait.
    Nothing,
    /// Scans at the start of the payload.
    Scans(Batch),
    /// The next scans follow a gap, and a gap may only open a block: the
    /// pump publishes the scans it holds and asks again with an empty block.
    GapFirst,
}

/// A source read by `acquire` (see the module doc).
pub trait Feed: Send + 'static {
    /// Starts the source (enables the buffer, opens the socket).
    fn start(&mut self) -> Result<()>;
    /// Waits at most [`READ_WAIT`] for scans and writes up to `max_scans`
    /// interleaved scans in the stream's format at the start of `payload`.
    /// `block_empty` says whether they would open a block (see
    /// [`Read::GapFirst`]).
    fn read(&mut self, payload: &mut [u8], max_scans: u32, block_empty: bool) -> Result<Read>;
    /// Stops the source; scans not yet read are left to the source.
    fn stop(&mut self) -> Result<()>;
    /// Identity and settings.
    fn describe(&self) -> DeviceDescription;
    /// The source's own counters that attribute a loss (where it happened:
    /// a socket queue, a full kernel buffer), written to the manifest;
    /// never the loss count itself.
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// How this source's losses are detected, in words (manifest
    /// `stream.loss_detection`).
    fn loss_detection(&self) -> String;
    /// Where `t_ns` comes from (manifest `stream.timestamps`).
    fn timestamps(&self) -> String;
    /// Channel names, units, scale and offset, when the source knows them.
    fn channels(&self) -> Vec<hsdaq_format::manifest::ChannelInfo> {
        Vec::new()
    }
    /// Whether the values are abi's reference waveform (a test sender).
    fn signal(&self) -> &'static str {
        hsdaq_format::manifest::SIGNAL_EXTERNAL
    }
    /// Events at a sample index the source saw (context changes, a
    /// device's own loss flag), for the manifest.
    fn events(&self) -> Vec<hsdaq_format::manifest::Event> {
        Vec::new()
    }
    /// The source's own clock, when its stream is stamped.
    fn source_clock(&self) -> Option<Arc<crate::clock::SourceClock>> {
        None
    }
}

/// Wakes the drain when a block is published.
#[derive(Default)]
struct Doorbell {
    rung: Mutex<u64>,
    cv: Condvar,
}

impl Doorbell {
    fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let g = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *g;
        let _ = self.cv.wait_timeout_while(g, timeout, |n| *n == seen);
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    drop_blocks: AtomicU64,
    stall_us: AtomicU64,
    bell: Doorbell,
    failure: Mutex<Option<String>>,
}

/// A ring in this process's memory, filled by a [`Feed`] on its own thread.
///
/// The feed moves into that thread for the run and comes back when it is
/// joined; what the recorder reads of it meanwhile (identity, settings) is
/// taken once, before the start.
pub struct FeedDevice<F: Feed> {
    ring: LocalRing,
    shared: Arc<Shared>,
    /// `None` while the pump thread owns it.
    feed: Option<F>,
    thread: Option<JoinHandle<F>>,
    description: DeviceDescription,
    loss_detection: String,
    timestamps: String,
    channels: Vec<hsdaq_format::manifest::ChannelInfo>,
    signal: &'static str,
    source_clock: Option<Arc<crate::clock::SourceClock>>,
}

impl<F: Feed> FeedDevice<F> {
    /// A ring of `layout` for `feed`; `source` is a `SOURCE_*` constant.
    pub fn new(feed: F, layout: StreamLayout, source: u16, name: &str) -> Result<Self> {
        Ok(Self {
            ring: LocalRing::new(&layout, source, name.as_bytes(), "stream")?,
            shared: Arc::default(),
            description: feed.describe(),
            loss_detection: feed.loss_detection(),
            timestamps: feed.timestamps(),
            channels: feed.channels(),
            signal: feed.signal(),
            source_clock: feed.source_clock(),
            feed: Some(feed),
            thread: None,
        })
    }

    /// The feed, when no run holds it (before the start, after the stop).
    pub fn feed(&self) -> Option<&F> {
        self.feed.as_ref()
    }
}

impl<F: Feed> Device for FeedDevice<F> {
    fn ring(&self) -> RingMap {
        // The pump thread is joined before `self` (and the ring) drops.
        self.ring.view()
    }

    fn start(&mut self) -> Result<()> {
        let Some(mut feed) = self.feed.take() else {
            return Ok(()); // running already
        };
        if let Err(e) = feed.start() {
            self.feed = Some(feed);
            return Err(e);
        }
        let ring = self.ring.view();
        let shared = self.shared.clone();
        shared.stop.store(false, Ordering::Relaxed);
        let t = std::thread::Builder::new()
            .name("hsdaq-feed".into())
            .spawn(move || {
                crate::sched::short_slices();
                let c = ring.control();
                let r = pump(&ring, &mut feed, &shared);
                let _ = feed.stop();
                let status = match r {
                    Ok(()) => STATUS_STOPPED,
                    Err(e) => {
                        *shared.failure.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(format!("{e:#}"));
                        STATUS_ERROR
                    }
                };
                c.status.store(status, Ordering::Release);
                shared.bell.ring();
                feed
            })
            .context("cannot start the source thread")?;
        self.thread = Some(t);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let feed = t
                .join()
                .map_err(|_| anyhow::anyhow!("the source thread panicked"))?;
            self.feed = Some(feed);
        }
        Ok(())
    }

    fn wait(&self, timeout: Duration) -> Result<()> {
        self.shared.bell.wait(timeout);
        Ok(())
    }

    fn inject(&self, fault: FaultArgs) -> Result<()> {
        match fault.kind {
            FAULT_DROP_BLOCKS => self
                .shared
                .drop_blocks
                .fetch_add(fault.arg, Ordering::Relaxed),
            FAULT_STALL_US => self.shared.stall_us.fetch_add(fault.arg, Ordering::Relaxed),
            k => bail!("this source does not take fault kind {k} (drop blocks and stall only)"),
        };
        Ok(())
    }

    fn describe(&self) -> DeviceDescription {
        self.description.clone()
    }

    fn signal(&self) -> &'static str {
        self.signal
    }

    fn timestamps(&self) -> String {
        self.timestamps.clone()
    }

    fn events(&self) -> Vec<hsdaq_format::manifest::Event> {
        self.feed.as_ref().map(|f| f.events()).unwrap_or_default()
    }

    fn loss_detection(&self) -> String {
        self.loss_detection.clone()
    }

    fn channels(&self) -> Vec<hsdaq_format::manifest::ChannelInfo> {
        self.channels.clone()
    }

    fn source_counters(&self) -> BTreeMap<String, u64> {
        self.feed.as_ref().map(|f| f.counters()).unwrap_or_default()
    }

    fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn source_clock(&self) -> Option<Arc<crate::clock::SourceClock>> {
        self.source_clock.clone()
    }
}

impl<F: Feed> Drop for FeedDevice<F> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A block being assembled: in a ring slot, or in scratch memory when the
/// ring is full (its scans are then read, dropped and counted).
struct Open {
    pos: Option<u64>,
    /// A fault forced this block to be dropped.
    forced: bool,
    scans: u32,
    lost_before: u64,
    kind: GapKind,
    times: Option<(u64, u64)>,
    opened: Instant,
}

/// The producer loop: reads the feed into blocks and publishes them.
fn pump<F: Feed>(ring: &RingMap, feed: &mut F, shared: &Shared) -> Result<()> {
    let l = *ring.layout();
    let c = ring.control();
    let bs = l.block_scans();
    let scan_bytes = l.scan_bytes();
    let block_bytes = l.block_bytes as u64;
    // u64 words: scratch is aligned for any sample format, as a slot is.
    let mut scratch = vec![0u64; (l.block_bytes as usize).div_ceil(8)];
    let mut cursor = ring.producer();
    let mut next_scan = 0u64;
    let mut block_seq = 0u64;
    let epoch = c.epoch.load(Ordering::Relaxed);
    let mut pending = (0u64, GapKind::Counted);
    let mut was_full = false;
    let mut last_t = 0u64;
    let mut open: Option<Open> = None;
    // SAFETY: start_ns is written before the first head publish (Release)
    // and read by the consumer only after an Acquire load of head.
    unsafe {
        std::ptr::addr_of!(c.start_ns)
            .cast_mut()
            .write_volatile(monotonic_ns())
    };
    c.status.store(STATUS_RUNNING, Ordering::Release);
    while !shared.stop.load(Ordering::Relaxed) {
        let stall = shared.stall_us.swap(0, Ordering::Relaxed);
        if stall > 0 {
            let until = Instant::now() + Duration::from_micros(stall);
            while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
            }
        }
        let o = open.get_or_insert_with(|| {
            let forced = shared
                .drop_blocks
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            Open {
                pos: if forced {
                    None
                } else {
                    cursor.reserve(block_bytes)
                },
                forced,
                scans: 0,
                lost_before: 0,
                kind: GapKind::Counted,
                times: None,
                opened: Instant::now(),
            }
        });
        if o.pos.is_none() && o.scans == 0 && !o.forced {
            // Still empty: the ring may have room again.
            o.pos = cursor.reserve(block_bytes);
        }
        let payload: &mut [u8] = match o.pos {
            // SAFETY: `pos` was reserved by our cursor and is published only
            // after this borrow ends.
            Some(pos) => unsafe { &mut ring.slot_mut(pos)[BLOCK_HEADER_BYTES..] },
            None => {
                // SAFETY: u64 words reinterpreted as bytes (any bit pattern
                // is valid for both); exclusively borrowed.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(
                        scratch.as_mut_ptr().cast::<u8>(),
                        scratch.len() * 8,
                    )
                };
                &mut bytes[BLOCK_HEADER_BYTES..]
            }
        };
        let at = o.scans as usize * scan_bytes;
        let r = feed.read(&mut payload[at..], bs - o.scans, o.scans == 0)?;
        let full = match r {
            Read::Nothing => false,
            Read::GapFirst => {
                if o.scans == 0 {
                    bail!("the source asked for an empty block but was given one");
                }
                true
            }
            Read::Scans(b) => {
                if b.scans == 0 || b.scans > bs - o.scans {
                    bail!(
                        "the source returned {} scans for room of {}",
                        b.scans,
                        bs - o.scans
                    );
                }
                if b.lost_before > 0 && o.scans > 0 {
                    bail!("the source reported a gap inside a block");
                }
                if block_seq == 0 && o.scans == 0 && next_scan == 0 && pending.0 == 0 {
                    if let Some(at) = b.at {
                        // The stream numbers its scans: `seq` starts there.
                        next_scan = at;
                        c.first_scan.store(at, Ordering::Release);
                        c.next_scan.store(at, Ordering::Release);
                    }
                }
                if o.scans == 0 {
                    o.lost_before = b.lost_before;
                    o.kind = b.kind.unwrap_or(GapKind::Counted);
                    o.opened = Instant::now();
                }
                o.times = match (o.times, b.times) {
                    (Some((first, _)), Some((_, last))) => Some((first, last)),
                    (None, t) if o.scans == 0 => t,
                    _ => None,
                };
                o.scans += b.scans;
                o.scans == bs
            }
        };
        let o = open.as_mut().expect("opened above");
        let due = o.scans > 0 && o.opened.elapsed() >= FLUSH_AFTER;
        if !(full || due) {
            continue;
        }
        let o = open.take().expect("opened above");
        let lost = pending.0 + o.lost_before;
        let kind = if o.lost_before > 0 {
            pending.1.with(o.kind)
        } else {
            pending.1
        };
        match o.pos {
            Some(pos) => {
                let period_q16 = match o.times {
                    Some((first, last)) if o.scans > 1 && last > first => {
                        (((last - first) as u128) << 16) as u64 / (o.scans as u64 - 1)
                    }
                    _ => l.period_ns_q16(),
                };
                let mut flags = 0;
                if lost > 0 {
                    flags |= BLOCK_FLAG_AFTER_GAP | kind.flags();
                }
                // Measured times, never before the previous block's last scan.
                let t = match o.times {
                    Some((first, _)) => {
                        flags |= BLOCK_FLAG_TIME_MEASURED;
                        first.max(last_t + 1)
                    }
                    None => l.scan_time_ns(c.start_ns, next_scan + lost),
                };
                last_t = t + (((o.scans as u64 - 1) * period_q16) >> 16);
                let header = BlockHeader {
                    magic: BLOCK_MAGIC,
                    flags,
                    first_scan: next_scan + lost,
                    timestamp_ns: t,
                    lost_before: lost,
                    block_seq,
                    scans: o.scans,
                    channels: l.channels,
                    format: l.format as u16,
                    period_ns_q16: period_q16,
                    epoch,
                    _reserved: 0,
                };
                // SAFETY: as above: reserved by our cursor, published next.
                write_header(unsafe { ring.slot_mut(pos) }, &header);
                cursor.publish(block_bytes);
                block_seq += 1;
                pending = (0, GapKind::Counted);
                was_full = false;
                c.produced_blocks.store(block_seq, Ordering::Release);
                shared.bell.ring();
            }
            None => {
                // Read and dropped: counted exactly, on top of the source's
                // own; the next published block says how many.
                pending = (lost + o.scans as u64, kind);
                c.dropped_blocks.fetch_add(1, Ordering::Release);
                c.dropped_scans.fetch_add(o.scans as u64, Ordering::Release);
                if !was_full {
                    c.overruns.fetch_add(1, Ordering::Release);
                }
                was_full = true;
                c.next_scan.store(next_scan + pending.0, Ordering::Release);
                continue;
            }
        }
        // `next_scan`: the first scan no published block accounts for.
        next_scan += lost + o.scans as u64;
        c.next_scan.store(next_scan, Ordering::Release);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsdaq_abi::Format;
    use std::collections::VecDeque;

    /// A scripted source: each step is (lost before, kind, scans) or a
    /// pause; values are the scan index, timestamps 1 µs apart.
    struct Script {
        steps: VecDeque<Option<(u64, GapKind, u32)>>,
        next: u64,
        gap_held: bool,
        /// While set, a pause step waits here instead of sleeping.
        gate: Arc<AtomicBool>,
    }

    impl Feed for Script {
        fn start(&mut self) -> Result<()> {
            Ok(())
        }
        fn read(&mut self, payload: &mut [u8], max: u32, empty: bool) -> Result<Read> {
            let Some(step) = self.steps.front_mut() else {
                std::thread::sleep(Duration::from_millis(1));
                return Ok(Read::Nothing);
            };
            let Some((lost, kind, scans)) = *step else {
                if self.gate.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    return Ok(Read::Nothing);
                }
                self.steps.pop_front();
                std::thread::sleep(FLUSH_AFTER + Duration::from_millis(20));
                return Ok(Read::Nothing);
            };
            if lost > 0 && !empty {
                self.gap_held = true;
                return Ok(Read::GapFirst);
            }
            let n = scans.min(max);
            self.next += lost;
            for i in 0..n as usize {
                let v = (self.next + i as u64) as i16;
                payload[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
            }
            let first = self.next * 1000;
            self.next += n as u64;
            if n == scans {
                self.steps.pop_front();
            } else {
                *step = Some((0, kind, scans - n));
            }
            Ok(Read::Scans(Batch {
                scans: n,
                lost_before: lost,
                kind: Some(kind),
                times: Some((first, first + (n as u64 - 1) * 1000)),
                at: None,
            }))
        }
        fn stop(&mut self) -> Result<()> {
            Ok(())
        }
        fn describe(&self) -> DeviceDescription {
            DeviceDescription::default()
        }
        fn loss_detection(&self) -> String {
            "scripted".into()
        }
        fn timestamps(&self) -> String {
            "scripted".into()
        }
    }

    fn layout(data_size: u64) -> StreamLayout {
        StreamLayout {
            channels: 1,
            format: Format::I16,
            data_size,
            block_bytes: 256, // 96 scans of one i16
            rate_hz: 1_000_000,
        }
    }

    /// Drains every published block: (first_scan, scans, lost_before, flags).
    fn drain(dev: &FeedDevice<Script>, until_scan: u64) -> Vec<(u64, u32, u64, u32)> {
        let ring = dev.ring();
        let mut cur = ring.consumer();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(pos) = cur.peek(256).unwrap() {
                // SAFETY: from peek, released after use.
                let slot = unsafe { ring.slot(pos) };
                let h = crate::ring::read_header(slot, ring.layout()).unwrap();
                for i in 0..h.scans as usize {
                    let at = BLOCK_HEADER_BYTES + i * 2;
                    let v = i16::from_le_bytes([slot[at], slot[at + 1]]);
                    assert_eq!(
                        v,
                        (h.first_scan + i as u64) as i16,
                        "value at its scan index"
                    );
                }
                out.push((h.first_scan, h.scans, h.lost_before, h.flags));
                cur.release(256);
                if h.first_scan + h.scans as u64 >= until_scan {
                    break;
                }
            } else {
                dev.wait(Duration::from_millis(5)).unwrap();
            }
        }
        out
    }

    fn device(steps: Vec<Option<(u64, GapKind, u32)>>, data_size: u64) -> FeedDevice<Script> {
        let s = Script {
            steps: steps.into(),
            next: 0,
            gap_held: false,
            gate: Arc::default(),
        };
        FeedDevice::new(s, layout(data_size), SOURCE_IIO, "test").unwrap()
    }

    /// Gaps open blocks, carry their kind as flags, and scans land at their
    /// stream index; a slow source's partial block is published on time.
    #[test]
    fn gaps_open_blocks_with_their_kind() {
        let mut dev = device(
            vec![
                Some((0, GapKind::Counted, 50)),
                Some((7, GapKind::Inferred, 100)),
                None,
                Some((3, GapKind::Bounded, 10)),
            ],
            8192,
        );
        dev.start().unwrap();
        let blocks = drain(&dev, 170);
        dev.stop().unwrap();
        let inferred = BLOCK_FLAG_AFTER_GAP | BLOCK_FLAG_LOSS_INFERRED;
        let bounded = BLOCK_FLAG_AFTER_GAP | BLOCK_FLAG_LOSS_AT_LEAST;
        assert_eq!(
            blocks,
            vec![
                (0, 50, 0, BLOCK_FLAG_TIME_MEASURED),
                (57, 96, 7, inferred | BLOCK_FLAG_TIME_MEASURED),
                (153, 4, 0, BLOCK_FLAG_TIME_MEASURED),
                (160, 10, 3, bounded | BLOCK_FLAG_TIME_MEASURED),
            ]
        );
        assert!(dev.feed().unwrap().gap_held, "the held gap path ran");
    }

    /// A full ring: the pump keeps reading, drops whole blocks and counts
    /// every scan, and the next block published says how many, at its
    /// stream index.
    #[test]
    fn a_full_ring_drops_counted_scans() {
        // 8 KiB = 32 slots; 40 blocks' worth with nobody draining, then a
        // pause (held by the gate), then one more block.
        let mut dev = device(
            vec![
                Some((0, GapKind::Counted, 96 * 40)),
                None,
                Some((0, GapKind::Counted, 96)),
            ],
            8192,
        );
        let gate = dev.feed().unwrap().gate.clone();
        gate.store(true, Ordering::Relaxed);
        dev.start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while dev.stats().next_scan < 96 * 40 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = dev.stats();
        assert_eq!(s.produced_blocks, 32);
        assert_eq!(s.dropped_blocks, 8);
        assert_eq!(s.dropped_scans, 8 * 96);
        assert_eq!(s.overruns, 1);
        assert_eq!(s.next_scan, 40 * 96, "the dropped scans are accounted for");
        let mut blocks = drain(&dev, 32 * 96);
        gate.store(false, Ordering::Relaxed);
        blocks.extend(drain(&dev, 41 * 96));
        dev.stop().unwrap();
        assert_eq!(blocks.len(), 33);
        let after = BLOCK_FLAG_AFTER_GAP | BLOCK_FLAG_TIME_MEASURED;
        assert_eq!(blocks[32], (40 * 96, 96, 8 * 96, after));
    }
}
