//! Triggers and snapshot windows (`record --trigger`): record only the
//! scans around an event, like a scope's reference trigger.
//!
//! The drain hands every full chunk to [`Windows`]. While armed, chunks are
//! held as pre-trigger history (just enough to cover `--pre`, so memory is
//! bounded and said before the run) and the trigger condition is evaluated
//! on each one, sample by sample. When it fires at scan T, the held history
//! is cut at `T − pre` and, with what follows up to `T + post`, sent to the
//! encoder tagged with its [`Window`]; each window starts its own segment.
//! A trigger inside an open window is recorded as an event and does not
//! extend it. Scans between windows are counted, not kept.

use std::collections::VecDeque;

use anyhow::{bail, Result};
use hsdaq_format::manifest::{ChannelInfo, Event, Window};

use crate::chunk::{Chunk, Column};
use crate::counters::Live;

/// What opens a window.
#[derive(Clone, Debug)]
pub enum Condition {
    /// A channel's value crossing a level.
    Level(Level),
    /// A marker (`acquire mark`, the control socket), at the sample it names.
    Marker,
}

/// Edge: fire where the value crosses the level (it must first be back
/// past the level by the hysteresis); level: fire at the first sample
/// beyond it whenever armed, even if it already was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Fire on a crossing (the default, as a scope triggers).
    Edge,
    /// Fire whenever the condition holds while armed.
    Level,
}

/// A comparison in raw counts, the channel's physical level turned back
/// through its scale and offset once, so the per-sample test is one integer
/// compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawCmp {
    above: bool,
    t: i64,
}

impl RawCmp {
    #[inline]
    fn holds(self, v: i64) -> bool {
        if self.above {
            v > self.t
        } else {
            v < self.t
        }
    }

    /// The complement: holds exactly where `self` does not.
    fn not(self) -> RawCmp {
        if self.above {
            RawCmp {
                above: false,
                t: self.t.saturating_add(1),
            }
        } else {
            RawCmp {
                above: true,
                t: self.t.saturating_sub(1),
            }
        }
    }
}

/// `physical OP level` as a raw comparison (physical = raw × scale + offset).
fn raw_cmp(ch: &ChannelInfo, greater: bool, level: f64) -> RawCmp {
    let x = (level - ch.offset) / ch.scale;
    // 1.4 V at 1 mV per count is count 1400, not 1399.9999999999998.
    let x = if (x - x.round()).abs() <= 1e-9 * x.abs().max(1.0) {
        x.round()
    } else {
        x
    };
    // A negative scale turns a rising physical value into a falling count.
    if greater == (ch.scale > 0.0) {
        RawCmp {
            above: true,
            t: x.floor() as i64,
        }
    } else {
        RawCmp {
            above: false,
            t: x.ceil() as i64,
        }
    }
}

/// A level condition on one channel.
#[derive(Clone, Debug)]
pub struct Level {
    /// Channel (column) index.
    pub channel: usize,
    fire: RawCmp,
    /// Holds once the value is back past the level by the hysteresis.
    rearm: RawCmp,
    mode: Mode,
}

impl Level {
    /// Parses `NAME > VALUE[UNIT]` or `NAME < VALUE[UNIT]` against the run's
    /// channels; `hysteresis` is in the same units (≥ 0).
    pub fn parse(
        expr: &str,
        channels: &[ChannelInfo],
        hysteresis: Option<&str>,
        mode: Mode,
    ) -> Result<Level> {
        let (name, greater, value) = match (expr.split_once('>'), expr.split_once('<')) {
            (Some((n, v)), None) => (n.trim(), true, v.trim()),
            (None, Some((n, v))) => (n.trim(), false, v.trim()),
            _ => bail!("--trigger {expr:?}: expected CHANNEL > LEVEL, CHANNEL < LEVEL or `marker` (e.g. 'ch3 > 1.5V')"),
        };
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        let Some(channel) = names.iter().position(|n| *n == name) else {
            bail!(
                "--trigger: no channel {name:?} in this stream (it has {})",
                names.join(", ")
            );
        };
        let ch = &channels[channel];
        if ch.scale == 0.0 || !ch.scale.is_finite() {
            bail!(
                "--trigger: channel {name} has scale {}: no level can be turned into counts",
                ch.scale
            );
        }
        let level = physical(value, ch, "--trigger")?;
        let h = match hysteresis {
            Some(h) => physical(h, ch, "--hysteresis")?,
            None => 0.0,
        };
        if h < 0.0 {
            bail!("--hysteresis must not be negative");
        }
        let fire = raw_cmp(ch, greater, level);
        let back = if greater { level - h } else { level + h };
        Ok(Level {
            channel,
            fire,
            rearm: raw_cmp(ch, greater, back).not(),
            mode,
        })
    }
}

impl Level {
    /// The channel (column index) it watches.
    pub fn channel(&self) -> usize {
        self.channel
    }

    /// The first edge in `v` for a search that starts disarmed (the live
    /// view's scope holds its trace on it, like a scope's edge trigger).
    pub fn first_edge(&self, v: &[i32]) -> Option<usize> {
        // Edges only (not window-armed), from a disarmed start.
        let mut d = Detector {
            level: self.clone(),
            armed: false,
            seen_to: 0,
        };
        d.scan(v, false)
    }

    /// A rising edge through the middle of `lo..=hi` with an eighth of the
    /// span as hysteresis: the scope's automatic trigger when none is set.
    pub fn auto(channel: usize, lo: i32, hi: i32) -> Level {
        let (lo, hi) = (i64::from(lo), i64::from(hi));
        let mid = lo + (hi - lo) / 2;
        Level {
            channel,
            fire: RawCmp {
                above: true,
                t: mid,
            },
            rearm: RawCmp {
                above: false,
                t: mid - (hi - lo) / 8,
            },
            mode: Mode::Edge,
        }
    }
}

/// A level in a channel's physical unit: `1.5V`, `1500mV`, `-0.2 V`, or a
/// bare number (in the channel's unit, counts for a raw channel).
fn physical(text: &str, ch: &ChannelInfo, flag: &str) -> Result<f64> {
    let t = text.trim();
    let end = t
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+') && (i == 0 || t[..i].ends_with(['e', 'E'])))
                || ((c == 'e' || c == 'E')
                    && t[i + 1..]
                        .starts_with(|d: char| d.is_ascii_digit() || d == '-' || d == '+')))
        })
        .map_or(t.len(), |(i, _)| i);
    let (num, unit) = (&t[..end], t[end..].trim());
    let Ok(v) = num.parse::<f64>() else {
        bail!("{flag} {text:?}: expected a number with an optional unit, e.g. 1.5V");
    };
    let factor = if unit.is_empty() || unit == ch.unit {
        1.0
    } else {
        let mut cs = unit.chars();
        let prefix = cs.next().expect("not empty");
        let rest = cs.as_str();
        match (prefix, rest == ch.unit) {
            ('n', true) => 1e-9,
            ('u' | 'µ', true) => 1e-6,
            ('m', true) => 1e-3,
            ('k', true) => 1e3,
            ('M', true) => 1e6,
            _ => bail!(
                "{flag} {text:?}: channel {} is in {}; give the level in {} (or without a unit)",
                ch.name,
                ch.unit,
                ch.unit
            ),
        }
    };
    let v = v * factor;
    if !v.is_finite() {
        bail!("{flag} {text:?} is not a finite number");
    }
    Ok(v)
}

/// Follows one channel sample by sample: edge state, and how far it has
/// looked (each sample is looked at once, whichever path holds it).
struct Detector {
    level: Level,
    armed: bool,
    /// One past the last scan looked at.
    seen_to: u64,
}

impl Detector {
    /// The first row in `from..to` of `c` where the condition fires, looking
    /// only at scans not seen before; with `window_armed` a level-mode
    /// condition fires on any sample beyond the level.
    fn next(&mut self, c: &Chunk, from: usize, to: usize, window_armed: bool) -> Option<usize> {
        let from = from.max(c.row_at_or_after(self.seen_to)).min(to);
        let hit = match &c.columns[self.level.channel] {
            Column::I16(v) => self.scan(&v[from..to], window_armed),
            Column::I32(v) => self.scan(&v[from..to], window_armed),
        };
        let upto = hit.map_or(to, |i| from + i + 1);
        if upto > 0 {
            self.seen_to = self.seen_to.max(c.seq_at_row(upto - 1) + 1);
        }
        hit.map(|i| from + i)
    }

    fn scan<T: Copy + Into<i64>>(&mut self, v: &[T], window_armed: bool) -> Option<usize> {
        let level = window_armed && self.level.mode == Mode::Level;
        for (i, &x) in v.iter().enumerate() {
            let x: i64 = x.into();
            if (self.armed || level) && self.level.fire.holds(x) {
                self.armed = false;
                return Some(i);
            }
            if !self.armed && self.level.rearm.holds(x) {
                self.armed = true;
            }
        }
        None
    }
}

/// What `record --trigger` asked for.
#[derive(Clone, Debug)]
pub struct TriggerPlan {
    /// What opens a window.
    pub condition: Condition,
    /// The condition as typed (for events and the summary).
    pub text: String,
    /// Scans before the trigger.
    pub pre: u64,
    /// Scans from the trigger on.
    pub post: u64,
    /// Re-arm after each window (else stop after the first).
    pub rearm: bool,
    /// Stop after this many windows.
    pub max_events: Option<u32>,
}

/// Triggers noted inside one window before only their count is kept.
const IN_WINDOW_EVENTS: u32 = 10;

enum State {
    Armed,
    Open(Window),
    Done,
}

/// The drain's side of a triggered recording: history, trigger, windows.
pub struct Windows {
    plan: TriggerPlan,
    detector: Option<Detector>,
    state: State,
    /// Pre-trigger history, oldest first, and the rows it holds.
    history: VecDeque<Chunk>,
    held: u64,
    /// Empty chunks to fill next (history that fell out of `--pre`).
    pub spare: Vec<Chunk>,
    /// Windows opened.
    opened: u32,
    /// One past the last scan of the last window.
    last_end: u64,
    /// Marker seqs not yet reached.
    markers: Vec<u64>,
    /// Triggers seen inside the open window.
    in_window: u32,
}

/// How the drain takes chunks from the windows, and gives them chunks.
pub struct Io<'a> {
    /// Sends a window's rows to the encoder (the chunk carries its window).
    pub commit: &'a mut dyn FnMut(Chunk) -> Result<()>,
    /// An empty chunk from the pool.
    pub fresh: &'a mut dyn FnMut() -> Result<Chunk>,
    /// Counters and events.
    pub live: &'a Live,
}

impl Windows {
    /// Windows for `plan`.
    pub fn new(plan: TriggerPlan, live: &Live) -> Self {
        let detector = match &plan.condition {
            Condition::Level(l) => Some(Detector {
                armed: l.mode == Mode::Level,
                level: l.clone(),
                seen_to: 0,
            }),
            Condition::Marker => {
                live.timeline
                    .markers_trigger
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                None
            }
        };
        Self {
            plan,
            detector,
            state: State::Armed,
            history: VecDeque::new(),
            held: 0,
            spare: Vec::new(),
            opened: 0,
            last_end: 0,
            markers: Vec::new(),
            in_window: 0,
        }
    }

    /// Chunks the history needs beyond the recorder's pool: enough to hold
    /// `--pre` before the chunk being looked at, that chunk, the one
    /// filling, and one for a window's end cut.
    pub fn extra_chunks(pre: u64, chunk_rows: usize) -> usize {
        pre.div_ceil(chunk_rows as u64) as usize + 3
    }

    /// Scans of pre-trigger history asked for.
    pub fn pre(&self) -> u64 {
        self.plan.pre
    }

    /// No more windows will open: the producer may stop.
    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The end (one past the last scan) of the open window, if one is.
    pub fn open_end(&self) -> Option<u64> {
        match self.state {
            State::Open(w) => Some(w.end_seq as u64),
            _ => None,
        }
    }

    /// Takes a full chunk from the drain (in stream order).
    pub fn push(&mut self, chunk: Chunk, io: &mut Io) -> Result<()> {
        let mut queue = VecDeque::from([chunk]);
        while let Some(c) = queue.pop_front() {
            match self.state {
                State::Done => self.discard(c, io.live),
                State::Open(w) => {
                    if let Some(tail) = self.extend(c, w, io)? {
                        queue.push_front(tail);
                    }
                }
                State::Armed => match self.find(&c, io.live) {
                    None => self.hold(c, io.live),
                    Some(t) => {
                        self.history.push_back(c);
                        self.held = 0;
                        let held: Vec<Chunk> = self.history.drain(..).collect();
                        let w = self.open_window(t, held.first().expect("held"), io.live);
                        for h in held.into_iter().rev() {
                            queue.push_front(h);
                        }
                        self.cut_front(&mut queue, w, io.live);
                    }
                },
            }
        }
        Ok(())
    }

    /// The run ended: a window still open was cut short (said as an event),
    /// the history goes uncounted into "outside".
    pub fn finish(&mut self, live: &Live, last_seq: Option<u64>) {
        if let State::Open(w) = self.state {
            let got = last_seq.map_or(0, |s| (s as i64 + 1 - w.trigger_seq).max(0));
            let asked = w.end_seq - w.trigger_seq;
            live.timeline.events.lock().unwrap().push(Event {
                at_seq: last_seq.map_or(w.trigger_seq, |s| s as i64),
                kind: "window-cut".into(),
                detail: format!(
                    "window {}: the run ended after {got} of its {asked} post-trigger scans",
                    w.index
                ),
            });
        }
        for c in std::mem::take(&mut self.history) {
            self.discard(c, live);
        }
        self.held = 0;
    }

    /// The trigger scan in `c`, if the condition fires there (or a marker
    /// names a scan up to its end).
    fn find(&mut self, c: &Chunk, live: &Live) -> Option<u64> {
        let end = c.end_seq()?;
        if let Some(d) = self.detector.as_mut() {
            return d.next(c, 0, c.rows(), true).map(|r| c.seq_at_row(r));
        }
        self.markers
            .extend(live.timeline.marker_seqs.lock().unwrap().drain(..));
        self.markers.sort_unstable();
        // A marker inside an earlier window opened nothing; it is an event.
        self.markers.retain(|&s| s >= self.last_end);
        let first = *self.markers.first()?;
        (first < end).then(|| {
            self.markers.remove(0);
            first
        })
    }

    /// Holds `c` as history, first letting go of what `--pre` no longer needs.
    fn hold(&mut self, c: Chunk, live: &Live) {
        while let Some(front) = self.history.front() {
            if self.held - front.rows() as u64 >= self.plan.pre {
                let f = self.history.pop_front().expect("front");
                self.held -= f.rows() as u64;
                self.discard(f, live);
            } else {
                break;
            }
        }
        self.held += c.rows() as u64;
        self.history.push_back(c);
    }

    /// Counts `c`'s scans as outside every window and keeps it for reuse.
    fn discard(&mut self, mut c: Chunk, live: &Live) {
        use std::sync::atomic::Ordering::Relaxed;
        let lost = c.lost_before_row(c.rows());
        live.outside_windows
            .fetch_add(c.rows() as u64 + lost, Relaxed);
        live.lost_outside_windows.fetch_add(lost, Relaxed);
        c.clear();
        self.spare.push(c);
    }

    /// Opens the window of a trigger at `t`, `oldest` being the first held
    /// chunk: says so in an event and returns it.
    fn open_window(&mut self, t: u64, oldest: &Chunk, live: &Live) -> Window {
        self.opened += 1;
        self.in_window = 0;
        let oldest_seq = oldest.blocks.first().map_or(t, |b| b.first_seq);
        // A marker whose moment already left the history (the drain was
        // further behind than --pre): the window starts at the oldest scan
        // held, which is then also its trigger.
        let late = (t < oldest_seq).then_some(t);
        let t = t.max(oldest_seq);
        let want = t.saturating_sub(self.plan.pre);
        let start = want.max(oldest_seq).max(self.last_end).min(t);
        let w = Window {
            index: self.opened,
            trigger_seq: t as i64,
            start_seq: start as i64,
            end_seq: (t + self.plan.post) as i64,
            pre_asked: self.plan.pre,
            pre_held: t - start,
        };
        let short = if w.pre_held < w.pre_asked {
            format!(
                " (pre-trigger history held only {} of {} scans: {})",
                w.pre_held,
                w.pre_asked,
                if self.opened > 1 && start == self.last_end {
                    "the previous window had just ended"
                } else {
                    "the run had just started"
                }
            )
        } else {
            String::new()
        };
        let short = match late {
            Some(m) => {
                format!("{short} (the marker named seq {m}, which had already left the history)")
            }
            None => short,
        };
        let e = Event {
            at_seq: t as i64,
            kind: "trigger".into(),
            detail: format!(
                "window {}: {} at seq {t}; scans {}..{} ({} before, {} from the trigger){short}",
                w.index, self.plan.text, w.start_seq, w.end_seq, w.pre_held, self.plan.post
            ),
        };
        // On the live page too, with the markers.
        live.timeline.show(&e);
        live.timeline.events.lock().unwrap().push(e);
        self.state = State::Open(w);
        w
    }

    /// Drops the queued history before the window's first scan.
    fn cut_front(&mut self, queue: &mut VecDeque<Chunk>, w: Window, live: &Live) {
        use std::sync::atomic::Ordering::Relaxed;
        let start = w.start_seq as u64;
        while let Some(c) = queue.front_mut() {
            if c.end_seq().is_some_and(|e| e <= start) {
                let c = queue.pop_front().expect("front");
                self.discard(c, live);
                continue;
            }
            let row = c.row_at_or_after(start);
            let mut lost = c.lost_before_row(row);
            c.drop_front(row);
            // The window's first block: a gap before it belongs to the
            // window only from `start` on.
            if let Some(b) = c.blocks.first_mut() {
                let inside = b.first_seq.saturating_sub(start).min(b.lost_before);
                lost += b.lost_before - inside;
                b.lost_before = inside;
                if inside == 0 {
                    b.flags &= hsdaq_abi::layout::BLOCK_FLAG_TIME_MEASURED;
                }
            }
            live.outside_windows.fetch_add(row as u64 + lost, Relaxed);
            live.lost_outside_windows.fetch_add(lost, Relaxed);
            break;
        }
    }

    /// Sends `c`'s rows inside the open window `w`; returns the rows after
    /// its end (the next history), closing the window there.
    fn extend(&mut self, mut c: Chunk, w: Window, io: &mut Io) -> Result<Option<Chunk>> {
        let end = w.end_seq as u64;
        let split = c.row_at_or_after(end);
        self.note_in_window(&c, split, w, io.live);
        let tail = if split < c.rows() {
            let mut tail = match self.spare.pop() {
                Some(t) => t,
                None => (io.fresh)()?,
            };
            c.split_off_into(split, &mut tail);
            // A gap that straddles the window's end: its part before the
            // end is lost inside the window, the rest outside it.
            if let Some(b) = tail.blocks.first_mut() {
                let inside = end
                    .saturating_sub(b.first_seq - b.lost_before)
                    .min(b.lost_before);
                b.lost_before -= inside;
                c.lost_after = inside;
            }
            Some(tail)
        } else {
            None
        };
        let reached = tail.is_some() || c.end_seq().is_some_and(|e| e >= end);
        // Even with no row (the window ended in a gap at this chunk's
        // start) the chunk goes on: it carries the window's last loss.
        if c.rows() > 0 || c.lost_after > 0 {
            c.window = Some(w);
            (io.commit)(c)?;
        } else {
            self.spare.push(c);
        }
        if reached {
            self.close(w, io.live);
        }
        Ok(tail)
    }

    /// Triggers inside the open window: events (bounded), no extension.
    fn note_in_window(&mut self, c: &Chunk, to: usize, w: Window, live: &Live) {
        let Some(d) = self.detector.as_mut() else {
            return;
        };
        let mut from = 0;
        while let Some(r) = d.next(c, from, to, false) {
            self.in_window += 1;
            if self.in_window <= IN_WINDOW_EVENTS {
                live.timeline.events.lock().unwrap().push(Event {
                    at_seq: c.seq_at_row(r) as i64,
                    kind: "trigger-in-window".into(),
                    detail: format!(
                        "window {}: {} again; recorded as an event, the window was not extended",
                        w.index, self.plan.text
                    ),
                });
            }
            from = r + 1;
        }
    }

    /// The window reached its end: re-arm, or stop after the last.
    fn close(&mut self, w: Window, live: &Live) {
        if self.in_window > IN_WINDOW_EVENTS {
            live.timeline.events.lock().unwrap().push(Event {
                at_seq: w.end_seq - 1,
                kind: "trigger-in-window".into(),
                detail: format!(
                    "window {}: {} more triggers inside the window, not listed",
                    w.index,
                    self.in_window - IN_WINDOW_EVENTS
                ),
            });
        }
        self.last_end = w.end_seq as u64;
        let more = self.plan.max_events.is_none_or(|m| self.opened < m);
        self.state = if self.plan.rearm && more {
            State::Armed
        } else {
            State::Done
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volts(scale: f64, offset: f64) -> Vec<ChannelInfo> {
        vec![ChannelInfo {
            name: "ch3".into(),
            unit: "V".into(),
            scale,
            offset,
            label: None,
            raw: None,
        }]
    }

    #[test]
    fn levels_in_physical_units_become_one_integer_compare() {
        // 1 mV per count: 1.5 V is count 1500; above it fires.
        let l = Level::parse("ch3 > 1.5V", &volts(0.001, 0.0), Some("100mV"), Mode::Edge).unwrap();
        assert!(!l.fire.holds(1500) && l.fire.holds(1501));
        assert!(
            l.rearm.holds(1400) && !l.rearm.holds(1401),
            "back at 1.4 V re-arms"
        );
        assert_eq!(
            Level::parse("ch3 > 1500mV", &volts(0.001, 0.0), None, Mode::Edge)
                .unwrap()
                .fire,
            l.fire
        );
        // A negative scale turns a rising voltage into falling counts.
        let n = Level::parse("ch3 > 1.5", &volts(-0.001, 0.0), None, Mode::Edge).unwrap();
        assert!(n.fire.holds(-1501) && !n.fire.holds(-1500));
        // Offset, and a falling trigger.
        let f = Level::parse("ch3 < 0.5 V", &volts(0.001, 1.0), None, Mode::Edge).unwrap();
        assert!(f.fire.holds(-501) && !f.fire.holds(-500));
    }

    #[test]
    fn wrong_units_and_names_are_refused() {
        let ch = volts(0.001, 0.0);
        for (e, says) in [
            ("ch3 > 1.5A", "is in V"),
            ("ch4 > 1", "no channel"),
            ("ch3 > x", "expected a number"),
            ("ch3 >< 1", "expected CHANNEL"),
        ] {
            let err = Level::parse(e, &ch, None, Mode::Edge)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{e}: {err}");
        }
        assert!(Level::parse("ch3 > 1", &ch, Some("-1"), Mode::Edge).is_err());
    }

    /// A one-channel chunk of blocks (first seq, lost before, values).
    fn chunk(blocks: &[(u64, u64, &[i16])]) -> Chunk {
        let mut c = Chunk::with_capacity(1, hsdaq_abi::Format::I16, 64);
        for &(first_seq, lost_before, v) in blocks {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
            c.transpose(&bytes, v.len());
            c.blocks.push(crate::chunk::BlockRec {
                first_seq,
                scans: v.len() as u32,
                lost_before,
                period_q16: 1 << 16,
                ..Default::default()
            });
        }
        c
    }

    /// Pushes `chunks` through windows of `pre`/`post` on `ch0 > 10`;
    /// returns what was committed (first seq, rows, lost before the first
    /// row, lost after) and the live counters.
    fn run(pre: u64, post: u64, chunks: Vec<Chunk>) -> (Vec<(u64, usize, u64, u64)>, Live) {
        let live = Live::default();
        let level =
            Level::parse("ch0 > 10", &[ChannelInfo::counts("ch0")], None, Mode::Edge).unwrap();
        let plan = TriggerPlan {
            condition: Condition::Level(level),
            text: "ch0 > 10".into(),
            pre,
            post,
            rearm: true,
            max_events: None,
        };
        let mut w = Windows::new(plan, &live);
        let mut sent = Vec::new();
        for c in chunks {
            let mut commit = |c: Chunk| {
                sent.push((
                    c.blocks.first().map_or(0, |b| b.first_seq),
                    c.rows(),
                    c.blocks.first().map_or(0, |b| b.lost_before),
                    c.lost_after,
                ));
                Ok(())
            };
            let mut fresh = || Ok(Chunk::with_capacity(1, hsdaq_abi::Format::I16, 64));
            let mut io = Io {
                commit: &mut commit,
                fresh: &mut fresh,
                live: &live,
            };
            w.push(c, &mut io).unwrap();
        }
        w.finish(&live, None);
        (sent, live)
    }

    #[test]
    fn a_gap_across_a_window_end_is_split_at_the_end() {
        use std::sync::atomic::Ordering::Relaxed;
        // Armed at seq 0, fires at 3: window 1..13. Scans 8..20 are lost;
        // 8..13 inside the window, 13..20 outside.
        let (sent, live) = run(
            2,
            10,
            vec![
                chunk(&[(0, 0, &[0, 0, 0, 20, 0, 0, 0, 0])]),
                chunk(&[(20, 12, &[0, 0, 0, 0])]),
            ],
        );
        assert_eq!(sent, [(1, 7, 0, 0), (0, 0, 0, 5)]);
        // Outside: scan 0, the 7 lost after the end, the 4 rows after it.
        assert_eq!(live.outside_windows.load(Relaxed), 1 + 7 + 4);
        assert_eq!(live.lost_outside_windows.load(Relaxed), 7);
    }

    #[test]
    fn a_window_start_on_a_block_boundary_keeps_its_gap() {
        use std::sync::atomic::Ordering::Relaxed;
        // Fires at 9: window 7..11 starts inside the gap 6..8 before the
        // second block (a cut on a block boundary): 1 lost scan is the
        // window's, 1 is outside, with the first block's 6 rows.
        let (sent, live) = run(
            2,
            2,
            vec![chunk(&[
                (0, 0, &[0, 0, 0, 0, 0, 0]),
                (8, 2, &[0, 20, 0, 0, 0, 0, 0, 0]),
            ])],
        );
        assert_eq!(sent[0], (8, 3, 1, 0), "{sent:?}");
        assert_eq!(live.lost_outside_windows.load(Relaxed), 1);
        // 6 rows + 1 lost before the window, 5 rows after it.
        assert_eq!(live.outside_windows.load(Relaxed), 6 + 1 + 5);
    }

    #[test]
    fn an_edge_needs_the_signal_back_below_first() {
        let ch = vec![ChannelInfo::counts("ch0")];
        let l = Level::parse("ch0 > 10", &ch, Some("5"), Mode::Edge).unwrap();
        let mut d = Detector {
            level: l.clone(),
            armed: false,
            seen_to: 0,
        };
        // Starts above: no edge until it has been at or below 5.
        assert_eq!(d.scan(&[20i16, 20, 7, 11, 4, 11, 12][..], true), Some(5));
        let mut lv = Detector {
            level: Level {
                mode: Mode::Level,
                ..l
            },
            armed: true,
            seen_to: 0,
        };
        assert_eq!(
            lv.scan(&[20i16][..], true),
            Some(0),
            "level mode fires at once"
        );
    }
}
