//! A digitizer streaming over UDP as a source (`--device udp://ADDR:PORT`):
//! VITA 49 / DIFI packets or datagrams with a sequence counter, received in
//! batches and put into acquire's ring in stream order, so they reach the
//! same pipeline as every source.
//!
//! Only the stream's own numbering says how much was lost; the kernel's
//! counters say where. So: a sample index from the packets (a VRT sample
//! count or picosecond stamp, or a datagram counter × scans per datagram)
//! makes `seq` the stream's own index and every gap exact at its place; a
//! small reorder window puts late packets back (duplicates are counted and
//! dropped); VRT's 4-bit packet count alone bounds a gap (it may have
//! lapped) and says so; the trailer's sample-loss bit, context packets and
//! malformed datagrams become counted events. Socket-queue drops
//! (`SO_RXQ_OVFL`), the kernel's UDP errors and interface drops go into
//! `source_counters`, as attribution only.

pub mod send;
pub mod socket;
pub mod vrt;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsdaq_abi::layout::{GapKind, StreamLayout, SOURCE_NETWORK};
use hsdaq_abi::Format;
use hsdaq_format::manifest::{SIGNAL_EXTERNAL, SIGNAL_REFERENCE, TIMESTAMPS_NOMINAL};

use super::feed::{Batch, Feed, FeedDevice, Read, READ_WAIT};
use super::DeviceDescription;
use socket::Receiver;

/// How datagrams carry their position in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// VITA 49 signal data packets (big-endian items).
    Vrt,
    /// DIFI: VITA 49.2 with DIFI's class ID and UTC/picosecond stamps.
    Difi,
    /// A big-endian 32-bit datagram counter at byte offset N; the samples
    /// (little-endian) follow it.
    Seq32(usize),
    /// As `Seq32` with a 64-bit counter.
    Seq64(usize),
}

impl std::str::FromStr for Framing {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let at = |v: &str| -> Result<usize> {
            v.parse()
                .with_context(|| format!("--framing {s}: the offset after @ must be a byte count"))
        };
        Ok(match s.split_once('@') {
            None if s == "vrt" => Framing::Vrt,
            None if s == "difi" => Framing::Difi,
            Some(("seq32", o)) => Framing::Seq32(at(o)?),
            Some(("seq64", o)) => Framing::Seq64(at(o)?),
            _ => bail!("--framing {s:?}: expected vrt, difi, seq32@OFFSET or seq64@OFFSET"),
        })
    }
}

impl Framing {
    /// The name a user types.
    pub fn name(&self) -> String {
        match self {
            Framing::Vrt => "vrt".into(),
            Framing::Difi => "difi".into(),
            Framing::Seq32(o) => format!("seq32@{o}"),
            Framing::Seq64(o) => format!("seq64@{o}"),
        }
    }

    fn is_vrt(&self) -> bool {
        matches!(self, Framing::Vrt | Framing::Difi)
    }
}

/// What the user asked of a network source.
#[derive(Clone, Debug)]
pub struct NetRequest {
    /// Where to listen (a multicast group is joined).
    pub addr: SocketAddr,
    /// How datagrams are framed.
    pub framing: Framing,
    /// VRT: the stream to keep (others are counted and skipped).
    pub stream_id: Option<u32>,
    /// Values per scan (VRT: from the context packet when absent).
    pub channels: Option<u16>,
    /// Sample format (VRT: from the context packet when absent).
    pub format: Option<Format>,
    /// Scans per second (VRT: from the context packet when absent).
    pub rate_hz: Option<u64>,
    /// Packets held back to put late ones in order.
    pub reorder: usize,
    /// Receive buffer to ask for, bytes.
    pub rcvbuf: usize,
    /// The sender streams abi's reference waveform (`acquire send`):
    /// `verify` may recompute the values.
    pub reference: bool,
    /// Ring block and data area.
    pub block_bytes: u32,
    /// Ring data area.
    pub buffer_bytes: u64,
}

/// `udp://ADDR:PORT`.
pub fn parse_url(s: &str) -> Option<SocketAddr> {
    s.strip_prefix("udp://")?.parse().ok()
}

/// One datagram, read by its framing.
#[derive(Debug, PartialEq)]
enum Item {
    /// Samples at stream index `index` (or, VRT without stamps, the 4-bit
    /// packet count), `len` bytes from byte `offset` of the datagram.
    Data {
        index: Position,
        offset: usize,
        len: usize,
        loss: bool,
        /// Its first sample on the stream's own clock (VRT time stamps).
        time_ns: Option<i64>,
    },
    /// A VRT context packet.
    Context(vrt::Context),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Position {
    /// The stream's sample index of the first sample.
    Index(u64),
    /// Only VRT's 4-bit packet count.
    Count(u8),
    /// A datagram counter (wrapping at 2^32 for seq32).
    Counter(u64, bool),
}

/// Why a datagram was not recorded: a named, counted reason.
fn classify(f: Framing, d: &[u8], stream: Option<u32>, rate: u64) -> Result<Item, &'static str> {
    match f {
        Framing::Vrt | Framing::Difi => {
            let p = vrt::parse(d).map_err(|e| match e {
                vrt::Malformed::Short => "malformed-short",
                vrt::Malformed::Size => "malformed-size-field",
                vrt::Malformed::Type => "skipped-packet-type",
                _ => "malformed",
            })?;
            if stream.is_some() && p.stream_id != stream {
                return Err("skipped-stream-id");
            }
            if f == Framing::Difi && p.kind == vrt::Kind::Data && p.oui != Some(vrt::DIFI_OUI) {
                return Err("malformed-not-difi");
            }
            match p.kind {
                vrt::Kind::Context => Ok(Item::Context(
                    vrt::context(&p).map_err(|_| "malformed-context")?,
                )),
                vrt::Kind::Data => Ok(Item::Data {
                    index: p
                        .sample_index(rate)
                        .map_or(Position::Count(p.count), Position::Index),
                    offset: p.payload.as_ptr() as usize - d.as_ptr() as usize,
                    len: p.payload.len(),
                    loss: p.sample_loss(),
                    time_ns: p.time_ns(rate),
                }),
            }
        }
        Framing::Seq32(o) | Framing::Seq64(o) => {
            let w = if matches!(f, Framing::Seq32(_)) { 4 } else { 8 };
            let c = d.get(o..o + w).ok_or("malformed-short")?;
            let counter = if w == 4 {
                u32::from_be_bytes(c.try_into().expect("4")) as u64
            } else {
                u64::from_be_bytes(c.try_into().expect("8"))
            };
            Ok(Item::Data {
                index: Position::Counter(counter, w == 4),
                offset: o + w,
                len: d.len() - o - w,
                loss: false,
                time_ns: None,
            })
        }
    }
}

/// A packet waiting for its turn (copied out of the receive batch).
struct Held {
    payload: Vec<u8>,
    since: Instant,
}

/// The packet being copied into blocks.
enum Source {
    Batch(usize),
    Held(Held),
}

struct Current {
    src: Source,
    offset: usize,
    scans: u32,
    index: u64,
}

/// How long a held packet waits for the ones before it.
const REORDER_WAIT: Duration = Duration::from_millis(20);

/// A UDP stream read into acquire's ring.
pub struct NetFeed {
    req: NetRequest,
    rx: Receiver,
    rate: u64,
    channels: u16,
    format: Format,
    /// Bytes of one scan as sent.
    scan_bytes: usize,
    /// Scans per data datagram (fixed by the first one).
    per_packet: Option<u32>,
    big_endian: bool,
    next_in_batch: usize,
    batch_len: usize,
    current: Option<Current>,
    held: BTreeMap<u64, Held>,
    /// Next stream index to record.
    expected: Option<u64>,
    last_counter: Option<(u64, u8)>,
    last_arrival: Option<Instant>,
    /// Gap before the next packet: (scans, kind).
    gap: Option<(u64, GapKind)>,
    first: bool,
    recent_gaps: VecDeque<(u64, u64)>,
    counters: BTreeMap<String, u64>,
    kernel_before: (BTreeMap<String, u64>, BTreeMap<String, u64>),
    events: Vec<hsdaq_format::manifest::Event>,
    /// A context packet seen before the first data packet.
    context_pending: Option<String>,
    /// The stream kept: `--stream-id`, else the first data packet's.
    stream_id: Option<u32>,
    settings: BTreeMap<String, serde_json::Value>,
    /// VRT/DIFI: the stream's own time stamps, for the clock table.
    source_clock: Option<Arc<crate::clock::SourceClock>>,
}

impl NetFeed {
    /// Binds the socket and learns the stream's shape (flags, else the
    /// first context packet, waited for up to 2 s).
    pub fn open(req: &NetRequest) -> Result<Self> {
        let rx = Receiver::bind(req.addr, req.rcvbuf)?;
        // Port 0 asks the kernel for one: say which, so a sender (or a
        // test) knows where to send only once the socket is there.
        let mut req = req.clone();
        if req.addr.port() == 0 {
            req.addr.set_port(rx.local_addr()?.port());
        }
        eprintln!(
            "acquire: listening on udp://{} ({})",
            req.addr,
            req.framing.name()
        );
        let (asked, granted) = rx.rcvbuf;
        if granted < asked {
            eprintln!(
                "acquire: the receive buffer is {granted} B, not the {asked} B asked for: net.core.rmem_max is {} (raise it: sysctl -w net.core.rmem_max={asked})",
                socket::rmem_max().map_or("unknown".into(), |m| m.to_string())
            );
        }
        let mut me = Self {
            req: req.clone(),
            rx,
            rate: req.rate_hz.unwrap_or(0),
            channels: req.channels.unwrap_or(0),
            format: req.format.unwrap_or(Format::I16),
            scan_bytes: 0,
            per_packet: None,
            big_endian: req.framing.is_vrt(),
            next_in_batch: 0,
            batch_len: 0,
            current: None,
            held: BTreeMap::new(),
            expected: None,
            last_counter: None,
            last_arrival: None,
            gap: None,
            first: true,
            recent_gaps: VecDeque::new(),
            counters: BTreeMap::new(),
            kernel_before: (socket::udp_counters(), socket::interface_drops()),
            events: Vec::new(),
            context_pending: None,
            stream_id: req.stream_id,
            settings: BTreeMap::new(),
            source_clock: None,
        };
        if req.framing.is_vrt()
            && (req.rate_hz.is_none() || req.channels.is_none() || req.format.is_none())
        {
            me.learn_context()?;
        }
        if me.rate == 0 || me.channels == 0 {
            bail!(
                "udp://{}: give --rate and --channels (and --format): {}",
                req.addr,
                if req.framing.is_vrt() {
                    "no context packet said them within 2 s"
                } else {
                    "a counter framing does not carry them"
                }
            );
        }
        me.scan_bytes = me.channels as usize * me.format.bytes();
        if req.framing.is_vrt() {
            me.source_clock = Some(crate::clock::SourceClock::new(
                "VRT/DIFI packet time stamps: integer seconds of UTC or GPS time (TSI 1 or 2) + picoseconds or a sample count (TSF 2 or 1) of each data packet's first sample; absent when the packets carry no such stamp",
                me.rate,
            ));
        }
        let s = &mut me.settings;
        s.insert("rate-hz".into(), me.rate.into());
        s.insert("channels".into(), me.channels.into());
        s.insert("format".into(), me.format.name().into());
        s.insert("framing".into(), req.framing.name().into());
        s.insert("listen".into(), req.addr.to_string().into());
        s.insert(
            "receive".into(),
            format!("recvmmsg, {} datagrams per call", socket::BATCH).into(),
        );
        s.insert("rcvbuf-asked".into(), asked.into());
        s.insert("rcvbuf-granted".into(), granted.into());
        s.insert("reorder-window-packets".into(), req.reorder.into());
        if let Some(id) = req.stream_id {
            s.insert("stream-id".into(), id.into());
        }
        s.insert("block-bytes".into(), req.block_bytes.into());
        s.insert("buffer-bytes".into(), req.buffer_bytes.into());
        Ok(me)
    }

    /// Waits for a context packet and takes rate, channels and format from it.
    fn learn_context(&mut self) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let n = self.rx.recv(READ_WAIT)?;
            for i in 0..n {
                match classify(self.req.framing, self.rx.datagram(i), self.req.stream_id, 1) {
                    Ok(Item::Context(c)) => {
                        if let (None, Some(r)) = (self.req.rate_hz, c.rate_hz) {
                            self.rate = r.round() as u64;
                        }
                        if let Some((bits, complex)) = c.item {
                            if self.req.format.is_none() {
                                self.format = if bits <= 16 { Format::I16 } else { Format::I32 };
                            }
                            if self.req.channels.is_none() {
                                self.channels = if complex { 2 } else { 1 };
                            }
                        }
                        // The rest of this batch is the stream's: read on from there.
                        self.next_in_batch = i + 1;
                        self.batch_len = n;
                        self.count("context-packets", 1);
                        self.context_pending =
                            Some(format!("rate {:?} Hz, item {:?}", c.rate_hz, c.item));
                        return Ok(());
                    }
                    // The layout is not known yet: these cannot be placed.
                    _ => self.count("before-context-packets", 1),
                }
            }
        }
        Ok(())
    }

    /// The stream layout of acquire's ring.
    pub fn stream(&self) -> StreamLayout {
        StreamLayout {
            channels: self.channels,
            format: self.format,
            data_size: self.req.buffer_bytes,
            block_bytes: self.req.block_bytes,
            rate_hz: self.rate,
        }
    }

    /// The local address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.rx.local_addr()
    }

    fn count(&mut self, what: &str, n: u64) {
        *self.counters.entry(what.into()).or_default() += n;
    }

    fn event(&mut self, at_seq: u64, kind: &str, detail: String) {
        // Bounded: the first 10,000, then only counted.
        if self.events.len() < 10_000 {
            self.events.push(hsdaq_format::manifest::Event {
                at_seq: at_seq as i64,
                kind: kind.into(),
                detail,
            });
        } else {
            self.count("events-not-listed", 1);
        }
    }

    /// Declares the scans up to `to` lost (nothing before them will come).
    fn gap_to(&mut self, to: u64, kind: GapKind) {
        let e = self.expected.expect("a gap follows a first packet");
        if to > e {
            let (lost, k) = self.gap.unwrap_or((0, GapKind::Counted));
            self.gap = Some((lost + to - e, k.with(kind)));
            self.recent_gaps.push_back((e, to));
            if self.recent_gaps.len() > 64 {
                self.recent_gaps.pop_front();
            }
            self.expected = Some(to);
        }
    }

    /// The stream index of a data datagram, or why it is not recorded.
    fn index_of(&mut self, pos: Position, scans: u32) -> Option<u64> {
        let n = scans as u64;
        match pos {
            Position::Index(i) => Some(i),
            Position::Counter(c, wraps) => {
                // Unwrap a 32-bit counter against the last one seen.
                let c64 = match (wraps, self.last_counter) {
                    (true, Some((last, _))) => {
                        last.wrapping_add((c as u32).wrapping_sub(last as u32) as i32 as i64 as u64)
                    }
                    _ => c,
                };
                self.last_counter = Some((c64, 0));
                Some(c64 * n)
            }
            Position::Count(k) => {
                let Some(e) = self.expected else {
                    self.last_counter = Some((0, k));
                    return Some(0);
                };
                let last = self.last_counter.map_or(k, |x| x.1);
                let ahead = (k.wrapping_sub(last) & 0xf) as u64;
                self.last_counter = Some((0, k));
                if ahead == 0 {
                    self.count("duplicates", 1);
                    return None;
                }
                let at = e + (ahead - 1) * n;
                // A silence longer than 15 packets may hide whole laps.
                let period = Duration::from_secs_f64(n as f64 / self.rate as f64);
                let long = self.last_arrival.is_some_and(|t| t.elapsed() > period * 15);
                if ahead > 1 || long {
                    self.gap_to(
                        at,
                        if long {
                            GapKind::Bounded
                        } else {
                            GapKind::Counted
                        },
                    );
                }
                Some(self.expected.unwrap_or(at))
            }
        }
    }

    /// The next packet in stream order, if one is ready.
    fn next_packet(&mut self) -> Result<Option<Current>> {
        loop {
            if let (Some(e), Some((&k, _))) = (self.expected, self.held.first_key_value()) {
                let overdue = self.held.len() > self.req.reorder
                    || self
                        .held
                        .values()
                        .next()
                        .is_some_and(|h| h.since.elapsed() > REORDER_WAIT);
                if k == e || overdue {
                    // The packets before `k` are not coming: a counted gap.
                    self.gap_to(k, GapKind::Counted);
                    let h = self.held.remove(&k).expect("first key");
                    let scans = (h.payload.len() / self.scan_bytes) as u32;
                    return Ok(Some(Current {
                        src: Source::Held(h),
                        offset: 0,
                        scans,
                        index: k,
                    }));
                }
            }
            if self.next_in_batch >= self.batch_len {
                self.next_in_batch = 0;
                self.batch_len = self.rx.recv(if self.held.is_empty() {
                    READ_WAIT
                } else {
                    REORDER_WAIT / 4
                })?;
                if self.batch_len == 0 {
                    if self.held.is_empty() {
                        return Ok(None);
                    }
                    continue;
                }
            }
            let i = self.next_in_batch;
            self.next_in_batch += 1;
            let d = self.rx.datagram(i);
            let item = match classify(self.req.framing, d, self.stream_id, self.rate) {
                Ok(it) => it,
                Err(reason) => {
                    self.count(reason, 1);
                    continue;
                }
            };
            let (pos, offset, len, loss, time_ns) = match item {
                Item::Context(c) => {
                    let at = self.expected.unwrap_or(0);
                    self.count("context-packets", 1);
                    let rate_changed = c.rate_hz.is_some_and(|r| r.round() as u64 != self.rate);
                    let detail = format!("rate {:?} Hz, item {:?}", c.rate_hz, c.item);
                    if self.expected.is_none() {
                        // Placed at the first data packet's index, once known.
                        self.context_pending = Some(detail);
                    } else if rate_changed || self.events.iter().all(|e| e.kind != "vrt-context") {
                        self.event(at, "vrt-context", detail);
                    }
                    if rate_changed {
                        bail!(
                            "the stream's rate changed to {:?} Hz at seq {at} (recording at {} Hz): start a new recording",
                            c.rate_hz,
                            self.rate
                        );
                    }
                    continue;
                }
                Item::Data {
                    index,
                    offset,
                    len,
                    loss,
                    time_ns,
                } => (index, offset, len, loss, time_ns),
            };
            if len == 0 || len % self.scan_bytes != 0 {
                self.count("malformed-payload-size", 1);
                continue;
            }
            let scans = (len / self.scan_bytes) as u32;
            if *self.per_packet.get_or_insert(scans) != scans && !self.req.framing.is_vrt() {
                // Counter framings need a fixed datagram size to place samples.
                self.count("malformed-payload-size", 1);
                continue;
            }
            let Some(index) = self.index_of(pos, scans) else {
                continue;
            };
            if let (Some(c), Some(ns)) = (&self.source_clock, time_ns) {
                c.note(index, ns);
            }
            self.last_arrival = Some(Instant::now());
            if loss {
                self.count("trailer-sample-loss", 1);
                self.event(index, "device-sample-loss", "the VRT trailer's sample-loss indicator is set: the device lost samples before this packet (how many, it does not say)".into());
            }
            if self.stream_id.is_none() && self.req.framing.is_vrt() {
                // No --stream-id: the first data packet's stream is the one.
                self.stream_id = vrt::parse(self.rx.datagram(i))
                    .ok()
                    .and_then(|p| p.stream_id);
                if let Some(id) = self.stream_id {
                    let v = format!("{id} (the first data packet's)");
                    self.settings.insert("stream-id".into(), v.into());
                }
            }
            if let Some(c) = self.context_pending.take() {
                self.event(index, "vrt-context", c);
            }
            let e = *self.expected.get_or_insert(index);
            if index == e && self.held.is_empty() {
                return Ok(Some(Current {
                    src: Source::Batch(i),
                    offset,
                    scans,
                    index,
                }));
            }
            if index == e {
                // It fills the hole the held packets wait behind: late, put
                // back in order.
                self.count("reordered", 1);
            }
            if index < e {
                let late = self
                    .recent_gaps
                    .iter()
                    .any(|&(a, b)| index >= a && index < b);
                self.count(if late { "late-after-gap" } else { "duplicates" }, 1);
                continue;
            }
            if self.held.contains_key(&index) {
                self.count("duplicates", 1);
                continue;
            }
            let payload = self.rx.datagram(i)[offset..offset + len].to_vec();
            self.held.insert(
                index,
                Held {
                    payload,
                    since: Instant::now(),
                },
            );
        }
    }
}

impl Feed for NetFeed {
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    fn read(&mut self, payload: &mut [u8], max_scans: u32, block_empty: bool) -> Result<Read> {
        let sb = self.scan_bytes;
        let w = self.format.bytes();
        let mut n = 0u32;
        let mut lost = 0u64;
        let mut kind = None;
        let mut at = None;
        while n < max_scans {
            if self.current.is_none() {
                match self.next_packet()? {
                    Some(c) => self.current = Some(c),
                    None => break,
                }
            }
            if let Some((g, k)) = self.gap {
                if n > 0 || !block_empty {
                    if n == 0 {
                        return Ok(Read::GapFirst);
                    }
                    break;
                }
                lost = g;
                kind = Some(k);
                self.gap = None;
            }
            let c = self.current.as_mut().expect("set above");
            if self.first {
                at = Some(c.index);
                self.first = false;
            }
            let take = c.scans.min(max_scans - n);
            let src: &[u8] = match &c.src {
                Source::Batch(i) => &self.rx.datagram(*i)[c.offset..],
                Source::Held(h) => &h.payload[c.offset..],
            };
            let bytes = take as usize * sb;
            let dst = &mut payload[n as usize * sb..n as usize * sb + bytes];
            if self.big_endian {
                be_to_native(dst, &src[..bytes], w);
            } else {
                dst.copy_from_slice(&src[..bytes]);
            }
            n += take;
            c.offset += bytes;
            c.scans -= take;
            c.index += take as u64;
            if c.scans == 0 {
                let next = c.index;
                self.current = None;
                self.expected = Some(next);
            }
        }
        if n == 0 {
            return Ok(Read::Nothing);
        }
        Ok(Read::Scans(Batch {
            scans: n,
            lost_before: lost,
            kind,
            times: None,
            at,
        }))
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> DeviceDescription {
        DeviceDescription {
            path: format!("udp://{}", self.req.addr),
            name: format!("udp {}", self.req.framing.name()),
            compatible: String::new(),
            source: "network".into(),
            properties: self.settings.clone(),
            module_version: None,
        }
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let mut c = self.counters.clone();
        c.insert("socket-queue-drops".into(), self.rx.queue_drops());
        for (k, v) in socket::udp_counters() {
            let before = self.kernel_before.0.get(&k).copied().unwrap_or(0);
            if matches!(k.as_str(), "RcvbufErrors" | "InErrors" | "NoPorts") {
                c.insert(format!("kernel-udp-{k}"), v.saturating_sub(before));
            }
        }
        for (k, v) in socket::interface_drops() {
            let d = v.saturating_sub(self.kernel_before.1.get(&k).copied().unwrap_or(0));
            if d > 0 {
                c.insert(format!("interface-{k}-rx_dropped"), d);
            }
        }
        c
    }

    fn events(&self) -> Vec<hsdaq_format::manifest::Event> {
        self.events.clone()
    }

    fn loss_detection(&self) -> String {
        match self.req.framing {
            Framing::Vrt | Framing::Difi => "counted from the packets' sample-count or picosecond timestamps (a gap at its exact sample index); from the 4-bit packet count alone a gap is counted if short and a lower bound (bounded) after a silence that may hide laps; the trailer's sample-loss bit is an event; socket and interface drops are attribution (source_counters)".into(),
            _ => "counted from the datagram counter × scans per datagram (a gap at its exact sample index); socket and interface drops are attribution (source_counters)".into(),
        }
    }

    fn timestamps(&self) -> String {
        format!("{TIMESTAMPS_NOMINAL}: the first packet's arrival (CLOCK_MONOTONIC) + (seq - first_seq) x period; the stream's own timestamps give seq, not t_ns")
    }

    fn source_clock(&self) -> Option<Arc<crate::clock::SourceClock>> {
        self.source_clock.clone()
    }

    fn signal(&self) -> &'static str {
        if self.req.reference {
            SIGNAL_REFERENCE
        } else {
            SIGNAL_EXTERNAL
        }
    }
}

/// Copies big-endian `w`-byte items into native order (VRT's payloads).
fn be_to_native(dst: &mut [u8], src: &[u8], w: usize) {
    if w == 2 {
        for (d, s) in dst.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
            d.copy_from_slice(&u16::from_be_bytes([s[0], s[1]]).to_ne_bytes());
        }
    } else {
        for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            d.copy_from_slice(&u32::from_be_bytes([s[0], s[1], s[2], s[3]]).to_ne_bytes());
        }
    }
}

/// Opens a network source as a device the pipeline drains.
pub fn open(req: &NetRequest) -> Result<FeedDevice<NetFeed>> {
    let feed = NetFeed::open(req)?;
    let layout = feed.stream();
    FeedDevice::new(
        feed,
        layout,
        SOURCE_NETWORK,
        &format!("udp-{}", req.framing.name()),
    )
}

/// Whether this process may send to `addr`: loopback always; anything
/// else only from inside a named network namespace (`ip netns add`, whose
/// handle lives in /run/netns): a test's own veth pair, never a real
/// network.
pub fn may_send_to(addr: &SocketAddr) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    let me = std::fs::metadata("/proc/self/ns/net").map(|m| (m.dev(), m.ino()));
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::metadata(e.path()).map(|m| (m.dev(), m.ino())).ok()
                == me.as_ref().ok().copied()
        });
    if named {
        return Ok(());
    }
    Err(crate::units::usage(format!(
        "acquire send streams only to loopback, or from inside a network namespace made with `ip netns add` (a test's veth pair); {addr} is neither"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framings_parse_and_name() {
        assert_eq!("vrt".parse::<Framing>().unwrap(), Framing::Vrt);
        assert_eq!("seq32@4".parse::<Framing>().unwrap(), Framing::Seq32(4));
        assert_eq!("seq64@0".parse::<Framing>().unwrap().name(), "seq64@0");
        assert!("seq16@0".parse::<Framing>().is_err());
        assert!("seq32@x".parse::<Framing>().is_err());
        assert_eq!(
            parse_url("udp://127.0.0.1:5000"),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert!(may_send_to(&"127.0.0.1:9".parse().unwrap()).is_ok());
    }

    /// VRT with only its 4-bit packet count: a short gap is counted, one
    /// after a silence that may hide whole laps is a lower bound.
    #[test]
    fn a_packet_count_alone_counts_short_gaps_and_bounds_long_ones() {
        let req = NetRequest {
            addr: "127.0.0.1:0".parse().unwrap(),
            framing: Framing::Vrt,
            stream_id: None,
            channels: Some(1),
            format: Some(Format::I16),
            rate_hz: Some(100_000),
            reorder: 4,
            rcvbuf: 1 << 16,
            reference: false,
            block_bytes: 4096,
            buffer_bytes: 1 << 16,
        };
        let mut f = NetFeed::open(&req).unwrap();
        let n = 100; // scans per packet: 1 ms each
        let at = |f: &mut NetFeed, k: u8| {
            let i = f.index_of(Position::Count(k), n);
            f.last_arrival = Some(Instant::now());
            if let Some(i) = i {
                f.expected = Some(i + n as u64);
            }
            i
        };
        assert_eq!(at(&mut f, 3), Some(0));
        assert_eq!(at(&mut f, 4), Some(100));
        // Packets 5 and 6 missing: counted, exact.
        assert_eq!(at(&mut f, 7), Some(400));
        assert_eq!(f.gap.take(), Some((200, GapKind::Counted)));
        // The same count again: a duplicate, not recorded.
        assert_eq!(at(&mut f, 7), None);
        assert_eq!(f.counters["duplicates"], 1);
        // A silence of 30 ms (30 packets): the count says 2 missing, but
        // whole laps of 16 may hide in it: a lower bound.
        f.last_arrival = Some(Instant::now() - Duration::from_millis(30));
        assert_eq!(f.index_of(Position::Count(10), n), Some(700));
        assert_eq!(f.gap.take(), Some((200, GapKind::Bounded)));
    }

    #[test]
    fn a_seq32_counter_unwraps() {
        let d = |c: u32| {
            let mut v = c.to_be_bytes().to_vec();
            v.extend_from_slice(&[0; 8]);
            v
        };
        let a = d(u32::MAX);
        assert_eq!(
            classify(Framing::Seq32(0), &a, None, 1),
            Ok(Item::Data {
                index: Position::Counter(u32::MAX as u64, true),
                offset: 4,
                len: 8,
                loss: false,
                time_ns: None,
            })
        );
        assert_eq!(
            classify(Framing::Seq32(20), &a, None, 1),
            Err("malformed-short")
        );
    }
}
