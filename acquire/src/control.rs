//! A running recording's control socket: `RUN/control.sock`, through which
//! `acquire mark` (or any script: one JSON line in, one out) drops a marker
//! into the recording at the sample the producer was taking at that
//! moment. The marker goes into the manifest's `events` with the next
//! segment to close (and so into that segment's copy of the manifest: a
//! run recovered after a crash keeps it).
//!
//! Request: `{"text": "valve opened"}` (optionally `"mono_ns"`: the
//! client's CLOCK_MONOTONIC when it asked). Reply: `{"at_seq": N,
//! "mono_ns": T}` or `{"error": "..."}`. The socket lives in the run folder, so whoever
//! may write the recording may mark it; it is removed when the run ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::counters::Live;
use crate::manifest::Event;

/// The socket's name in the run folder.
pub const SOCKET: &str = "control.sock";

/// The event kind of a marker dropped through the socket.
pub const MARKER: &str = "marker";

/// Longest marker text accepted, bytes.
pub const MAX_TEXT: usize = 1000;

/// Markers one run takes at most (each is copied into every later
/// segment's footer); beyond, `acquire mark` is refused, saying so.
pub const MAX_MARKERS: usize = 10_000;

/// How long one request may take to arrive, whole.
const REQUEST_DEADLINE: Duration = Duration::from_secs(1);

/// What a client asks.
#[derive(Serialize, Deserialize)]
struct Request {
    #[serde(default)]
    text: String,
    /// The client's CLOCK_MONOTONIC when it asked (`acquire mark` sends
    /// it), so a request that waited for the recorder keeps its moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mono_ns: Option<u64>,
}

/// What the recorder answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    /// The sample index the marker was put at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_seq: Option<u64>,
    /// CLOCK_MONOTONIC when the recorder took the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono_ns: Option<u64>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The serving thread; stops and removes the socket when dropped.
pub struct Control {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    /// Listens on `RUN/control.sock`. A run folder whose path is too long
    /// for a socket address (108 bytes) records without one: said once.
    pub fn start(run: &Path, live: Arc<Live>) -> Option<Control> {
        let path = run.join(SOCKET);
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "acquire: warning: no control socket ({}: {e}): `acquire mark` cannot reach this run",
                    path.display()
                );
                return None;
            }
        };
        let _ = listener.set_nonblocking(true);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hsdaq-control".into())
            .spawn(move || serve(listener, &live, &stop2))
            .ok()?;
        Some(Control {
            path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, live: &Live, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let _ = answer(s, live);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Reads one request line (at most 4 KiB, whole within
/// [`REQUEST_DEADLINE`]: a client that dribbles or says nothing holds the
/// socket that long at most) and answers it.
fn answer(s: UnixStream, live: &Live) -> std::io::Result<()> {
    let now = crate::units::monotonic_ns();
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    while !line.contains(&b'\n') && line.len() < 4096 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        s.set_read_timeout(Some(left))?;
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
    let line = String::from_utf8_lossy(&line);
    let reply = match mark_at(&line, now, live) {
        Ok((at, at_ns)) => Reply {
            at_seq: Some(at),
            mono_ns: Some(at_ns),
            error: None,
        },
        Err(e) => Reply {
            at_seq: None,
            mono_ns: None,
            error: Some(format!("{e:#}")),
        },
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_default();
    out.push('\n');
    (&s).write_all(out.as_bytes())
}

/// Places the marker a request asks for, at the sample taken at its
/// moment (the client's, else `now`); returns the sample and the moment.
fn mark_at(line: &str, now: u64, live: &Live) -> Result<(u64, u64)> {
    let req: Request = serde_json::from_str(line.trim())
        .context("a request is one JSON line: {\"text\": \"...\"}")?;
    if req.text.len() > MAX_TEXT {
        bail!("a marker's text is at most {MAX_TEXT} bytes");
    }
    if live.timeline.markers() >= MAX_MARKERS {
        bail!("this run already holds {MAX_MARKERS} markers, the most one run takes");
    }
    // The client's own moment when it gave one that is not in the future
    // and at most 10 s old (the same machine's CLOCK_MONOTONIC).
    let at_ns = req
        .mono_ns
        .filter(|&t| t <= now && now - t <= 10_000_000_000)
        .unwrap_or(now);
    let Some(at) = live.timeline.seq_at(at_ns) else {
        bail!("no sample has arrived yet: try again once the recording runs");
    };
    live.timeline.mark(Event {
        at_seq: at as i64,
        kind: MARKER.into(),
        detail: req.text,
    });
    Ok((at, at_ns))
}

/// Drops a marker into the recording running in `run` (`acquire mark`).
pub fn mark(run: &Path, text: &str) -> Result<Reply> {
    let path = run.join(SOCKET);
    if !path.exists() {
        bail!(
            "{}: no recording is running there (no {SOCKET}; it exists while `acquire record` runs)",
            run.display()
        );
    }
    let s = UnixStream::connect(&path).with_context(|| {
        format!(
            "cannot reach the recorder at {} (a recorder that was killed leaves its socket behind)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = serde_json::to_string(&Request {
        text: text.into(),
        mono_ns: Some(crate::units::monotonic_ns()),
    })?;
    req.push('\n');
    (&s).write_all(req.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let reply: Reply =
        serde_json::from_str(line.trim()).context("the recorder's answer is not JSON")?;
    if let Some(e) = &reply.error {
        bail!("the recorder refused the marker: {e}");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_lands_at_the_sample_of_its_moment() {
        let live = Live::default();
        assert!(
            mark_at("{\"text\":\"x\"}", 5, &live).is_err(),
            "no block yet"
        );
        // Scan 1000 stamped at t = 1 s, 1 µs per scan.
        *live.timeline.last_block.lock().unwrap() = Some((1000, 1_000_000_000, 1000 << 16));
        assert_eq!(
            mark_at("{\"text\":\"valve\"}", 1_000_250_000, &live).unwrap(),
            (1250, 1_000_250_000)
        );
        // The client's own moment, when it gives one (not a future one).
        let asked = "{\"text\":\"v2\",\"mono_ns\":1000100000}";
        assert_eq!(
            mark_at(asked, 1_000_250_000, &live).unwrap(),
            (1100, 1_000_100_000)
        );
        let future = "{\"text\":\"v3\",\"mono_ns\":2000000000}";
        assert_eq!(
            mark_at(future, 1_000_250_000, &live).unwrap(),
            (1250, 1_000_250_000)
        );
        assert!(mark_at("not json", 0, &live).is_err());
        let long = format!("{{\"text\":\"{}\"}}", "a".repeat(MAX_TEXT + 1));
        assert!(mark_at(&long, 0, &live).is_err());
        let ev = live.timeline.take_events();
        assert_eq!(ev.len(), 3);
        assert_eq!(
            (ev[0].at_seq, ev[0].kind.as_str(), ev[0].detail.as_str()),
            (1250, MARKER, "valve")
        );
    }
}
