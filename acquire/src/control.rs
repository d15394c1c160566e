//! A running recording's control socket: `RUN/control.sock`, through which
//! `acquire mark` (or any script: one JSON line in, one out) drops a marker
//! into the recording at the sample the producer was taking at that
//! moment. The marker goes into the manifest's `events` with the next
//! segment to close (and so into that segment's copy of the manifest: a
//! run recovered after a crash keeps it).
//!
//! Request: `{"text": "valve opened"}`. Reply: `{"at_seq": N, "mono_ns": T}`
//! or `{"error": "..."}`. The socket lives in the run folder, so whoever
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

/// What a client asks.
#[derive(Serialize, Deserialize)]
struct Request {
    #[serde(default)]
    text: String,
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

/// Reads one request line (at most 4 KiB, within a second) and answers it.
fn answer(s: UnixStream, live: &Live) -> std::io::Result<()> {
    let now = crate::units::monotonic_ns();
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut line = String::new();
    BufReader::new((&s).take(4096)).read_line(&mut line)?;
    let reply = match mark_at(&line, now, live) {
        Ok(at) => Reply {
            at_seq: Some(at),
            mono_ns: Some(now),
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

/// Places the marker a request asks for, at the sample taken at `now`.
fn mark_at(line: &str, now: u64, live: &Live) -> Result<u64> {
    let req: Request = serde_json::from_str(line.trim())
        .context("a request is one JSON line: {\"text\": \"...\"}")?;
    if req.text.len() > MAX_TEXT {
        bail!("a marker's text is at most {MAX_TEXT} bytes");
    }
    let Some(at) = live.timeline.seq_at(now) else {
        bail!("no sample has arrived yet: try again once the recording runs");
    };
    live.timeline.mark(Event {
        at_seq: at as i64,
        kind: MARKER.into(),
        detail: req.text,
    });
    Ok(at)
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
    let mut req = serde_json::to_string(&Request { text: text.into() })?;
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
            1250
        );
        assert!(mark_at("not json", 0, &live).is_err());
        let long = format!("{{\"text\":\"{}\"}}", "a".repeat(MAX_TEXT + 1));
        assert!(mark_at(&long, 0, &live).is_err());
        let ev = live.timeline.take_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].at_seq, ev[0].kind.as_str(), ev[0].detail.as_str()),
            (1250, MARKER, "valve")
        );
    }
}
