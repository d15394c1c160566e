//! `acquire record --live`: one read-only page that shows the signal while
//! it is recorded — an oscilloscope view (raw samples held on a trigger
//! edge) and a spectrum of the first channels ([`scope`]), a min/max
//! envelope per channel over the last seconds, in the profile's names and
//! units, the rate, ring fill, bytes written, segments, and every loss as it
//! happens — pushed over a WebSocket 20 times a second. The page is self-contained (no asset from the internet), so a
//! board with no display serves it to a laptop.
//!
//! Nothing here can slow the recording: the drain feeds a bounded tap
//! ([`tap`]) without waiting, a broadcaster thread turns it into frames, and
//! each browser gets a bounded queue of frames; a queue that is full (a slow
//! network, a sleeping tab) loses frames, counted, never samples. Nothing on
//! the page can change the recording: the server answers `GET /` and the
//! WebSocket at `/ws` and never reads what a client sends. Nothing but the
//! page itself can read it ([`origin`]: loopback or IP-literal `Host`, the
//! WebSocket's `Origin` equal to the page's, and the random token of the
//! printed URL on every request).

pub mod origin;
pub mod scope;
pub mod tap;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hsdaq_format::manifest::ChannelInfo;
use ringbuf::traits::Consumer;
use serde_json::json;

use crate::counters::Live;
use tap::{TapRx, TAP_CHANNELS};

/// Frames per second sent to each page.
const FRAME_HZ: u64 = 20;
/// Seconds of history a page draws (and a new page receives at once).
const WINDOW_S: u64 = 5;
/// Frames queued per page before frames are dropped for it.
const CLIENT_QUEUE: usize = 64;
/// Pages served at once.
const MAX_CLIENTS: usize = 8;
/// Losses remembered for pages that connect later.
const LOSSES_KEPT: usize = 1000;

const PAGE: &str = include_str!("page.html");

/// What the page is told once: the stream's shape and the channels.
pub struct Meta {
    pub rate_hz: u64,
    pub channels: Vec<ChannelInfo>,
    pub scan_limit: Option<u64>,
    /// Bits per sample (the scope's full scale).
    pub bits: u32,
    /// The `--trigger` level, which the scope holds its trace on.
    pub trigger: Option<crate::trigger::Level>,
}

/// Scope window a page gets when it names none (`scope_ms` in the URL).
const SCOPE_MS_DEFAULT: u32 = 10;

/// A connected page: its frame queue and its scope window.
struct Client {
    tx: SyncSender<Arc<str>>,
    scope_ms: u32,
}

/// A running live view; [`LiveView::stop`] ends it.
pub struct LiveView {
    url: String,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Pages connected and what they were sent.
#[derive(Default)]
struct Hub {
    clients: Mutex<Vec<Client>>,
    /// Frames of the last WINDOW_S seconds, for pages that connect later.
    history: Mutex<VecDeque<Arc<str>>>,
    losses: Mutex<VecDeque<serde_json::Value>>,
    /// The latest markers (`acquire mark`), for pages that join later.
    markers: Mutex<VecDeque<serde_json::Value>>,
    frames_dropped: AtomicU64,
    init: Mutex<String>,
}

impl LiveView {
    /// Binds `addr` (port 0: a free one) and starts serving.
    pub fn start(addr: SocketAddr, meta: Meta, rx: TapRx, live: Arc<Live>) -> Result<LiveView> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("--live: cannot listen on {addr}: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .context("--live: not an IP listener")?;
        let server = Arc::new(server);
        let token =
            origin::Token::new().context("--live: cannot read /dev/urandom for the token")?;
        let query = token.query();
        let stop = Arc::new(AtomicBool::new(false));
        let hub = Arc::new(Hub::default());
        *hub.init.lock().unwrap() = json!({
            "type": "init", "rate_hz": meta.rate_hz, "window_s": WINDOW_S, "frame_hz": FRAME_HZ,
            "scan_limit": meta.scan_limit,
            "channels": meta.channels.iter().take(TAP_CHANNELS)
                .map(|c| json!({"name": c.name, "unit": c.unit, "scale": c.scale, "offset": c.offset}))
                .collect::<Vec<_>>(),
            "scope_channels": meta.channels.len().min(tap::SCOPE_CHANNELS),
            "scope_ms_default": SCOPE_MS_DEFAULT,
            "trigger": meta.trigger.is_some(),
            "channels_total": meta.channels.len(),
        })
        .to_string();
        let broadcaster = {
            let (hub, stop) = (hub.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hsdaq-live".into())
                .spawn(move || broadcast(rx, meta, live, &hub, &stop))?
        };
        let http = {
            let (hub, server, stop) = (hub.clone(), server.clone(), stop.clone());
            let port = bound.port();
            std::thread::Builder::new()
                .name("hsdaq-http".into())
                .spawn(move || serve(&server, &hub, &stop, port, &token))?
        };
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        Ok(LiveView {
            url: format!("http://{host}:{}/{query}", bound.port()),
            server,
            stop,
            threads: vec![broadcaster, http],
        })
    }

    /// Where the page is.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving (open pages see the connection close).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.server.unblock();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Answers requests until stopped: the page, the WebSocket, 403/404/405.
fn serve(
    server: &tiny_http::Server,
    hub: &Arc<Hub>,
    stop: &AtomicBool,
    port: u16,
    token: &origin::Token,
) {
    for rq in server.incoming_requests() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let field = |name: &'static str| {
            rq.headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let path = rq.url().split('?').next().unwrap_or("").to_owned();
        let checked = origin::check(field("Host").as_deref(), field("Origin").as_deref(), port)
            .and_then(|()| token.admits(rq.url()));
        let r = if let Err(why) = checked {
            rq.respond(tiny_http::Response::from_string(format!("{why}\n")).with_status_code(403))
        } else if *rq.method() != tiny_http::Method::Get {
            rq.respond(tiny_http::Response::from_string("read-only\n").with_status_code(405))
        } else {
            match path.as_str() {
                "/" | "/index.html" => rq.respond(
                    tiny_http::Response::from_string(PAGE)
                        .with_header(header("Content-Type", "text/html; charset=utf-8")),
                ),
                "/ws" => {
                    upgrade(rq, hub);
                    Ok(())
                }
                _ => rq
                    .respond(tiny_http::Response::from_string("not found\n").with_status_code(404)),
            }
        };
        let _ = r;
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Completes a WebSocket handshake and hands the socket to a sender thread.
fn upgrade(rq: tiny_http::Request, hub: &Arc<Hub>) {
    let key = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv("Sec-WebSocket-Key"))
        .map(|h| h.value.as_str().to_owned());
    let Some(key) = key else {
        let _ =
            rq.respond(tiny_http::Response::from_string("WebSocket only\n").with_status_code(400));
        return;
    };
    let scope_ms = scope_ms(rq.url());
    let (tx, rx) = sync_channel::<Arc<str>>(CLIENT_QUEUE);
    {
        let mut clients = hub.clients.lock().unwrap();
        if clients.len() >= MAX_CLIENTS {
            drop(clients);
            let _ = rq.respond(
                tiny_http::Response::from_string("too many viewers\n").with_status_code(503),
            );
            return;
        }
        // The page's first messages: the stream's shape, the losses so
        // far, the recent frames; queued before the page joins the hub so
        // no frame arrives ahead of them.
        let _ = tx.try_send(Arc::from(hub.init.lock().unwrap().as_str()));
        let losses: Vec<_> = hub.losses.lock().unwrap().iter().cloned().collect();
        let _ = tx.try_send(Arc::from(
            json!({"type": "losses", "losses": losses}).to_string(),
        ));
        let markers: Vec<_> = hub.markers.lock().unwrap().iter().cloned().collect();
        let _ = tx.try_send(Arc::from(
            json!({"type": "markers", "markers": markers}).to_string(),
        ));
        for f in hub
            .history
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(CLIENT_QUEUE - 4)
            .rev()
        {
            let _ = tx.try_send(f.clone());
        }
        clients.push(Client { tx, scope_ms });
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = tiny_http::Response::empty(101)
        .with_header(header("Upgrade", "websocket"))
        .with_header(header("Connection", "Upgrade"))
        .with_header(header("Sec-WebSocket-Accept", &accept));
    let stream = rq.upgrade("websocket", response);
    let _ = std::thread::Builder::new()
        .name("hsdaq-live-ws".into())
        .spawn(move || send_frames(stream, rx));
}

/// The page's scope window from its WebSocket URL (`scope_ms=N`, 1 to
/// 1000; anything else is the default): the one thing a page chooses, and
/// it chooses only what it is sent.
fn scope_ms(url: &str) -> u32 {
    url.split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .find_map(|kv| kv.strip_prefix("scope_ms="))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|ms| (1..=1000).contains(ms))
        .unwrap_or(SCOPE_MS_DEFAULT)
}

/// Sends a page its frames until it goes away or the recording ends.
fn send_frames(stream: Box<dyn tiny_http::ReadWrite + Send>, rx: Receiver<Arc<str>>) {
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    loop {
        let msg = match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(frame) => tungstenite::Message::text(frame.as_ref()),
            // Nothing to say: a ping finds a page that is gone.
            Err(RecvTimeoutError::Timeout) => tungstenite::Message::Ping(Default::default()),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if ws.send(msg).is_err() {
            return;
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Turns tap points into frames FRAME_HZ times a second and offers each to
/// every page; a page whose queue is full misses the frame (counted).
fn broadcast(mut rx: TapRx, meta: Meta, live: Arc<Live>, hub: &Hub, stop: &AtomicBool) {
    let n = meta.channels.len().min(TAP_CHANNELS);
    let period = Duration::from_millis(1000 / FRAME_HZ);
    let mut rate = RateMeter::default();
    let mut next = Instant::now();
    let mut view = scope::ScopeView::new(meta.rate_hz, meta.bits, meta.trigger.clone());
    let mut capture = tap::Capture::default();
    let mut asked = Instant::now() - Duration::from_secs(60);
    while !stop.load(Ordering::Acquire) {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (mut lo, mut hi) = ([i32::MAX; TAP_CHANNELS], [i32::MIN; TAP_CHANNELS]);
        let (mut scans, mut last) = (0u64, None);
        while let Some(p) = rx.points.try_pop() {
            for c in 0..n {
                lo[c] = lo[c].min(p.min[c]);
                hi[c] = hi[c].max(p.max[c]);
            }
            scans += u64::from(p.scans);
            last = Some(p.first_scan + u64::from(p.scans));
        }
        let mut losses = Vec::new();
        while let Some(l) = rx.losses.try_pop() {
            let v = json!({"at_scan": l.at_scan, "at_s": l.at_scan as f64 / meta.rate_hz as f64, "size": l.size});
            let mut kept = hub.losses.lock().unwrap();
            if kept.len() == LOSSES_KEPT {
                kept.pop_front();
            }
            kept.push_back(v.clone());
            losses.push(v);
        }
        let marked = std::mem::take(&mut *live.timeline.live_markers.lock().unwrap());
        let markers: Vec<_> = marked
            .into_iter()
            .map(|e| {
                let v = json!({"at_scan": e.at_seq, "at_s": e.at_seq as f64 / meta.rate_hz as f64, "text": e.detail});
                let mut kept = hub.markers.lock().unwrap();
                if kept.len() == LOSSES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(v.clone());
                v
            })
            .collect();
        // A finished capture becomes every page's scope; the next is asked
        // for as long as a page is open (and only then does the drain copy).
        let shot = rx.scope.take(&mut capture).then(|| view.shot(&capture));
        let widest = hub.clients.lock().unwrap().iter().map(|c| c.scope_ms).max();
        if let Some(ms) = widest {
            let want = view.capture_scans(ms);
            if asked.elapsed() >= view.ask_every(want) && rx.scope.idle() {
                rx.scope.ask(want);
                asked = Instant::now();
            }
        }
        let drained = live.scans.load(Ordering::Relaxed);
        let has_envelope = last.is_some();
        let envelope = last.map(|end| {
            let (min, max): (Vec<f64>, Vec<f64>) = (0..n)
                .map(|c| {
                    let ch = &meta.channels[c];
                    let (a, b) = (
                        lo[c] as f64 * ch.scale + ch.offset,
                        hi[c] as f64 * ch.scale + ch.offset,
                    );
                    (a.min(b), a.max(b))
                })
                .unzip();
            json!({"t_s": end as f64 / meta.rate_hz as f64, "scans": scans, "min": min, "max": max})
        });
        let fv = json!({
                "type": "frame",
                "envelope": envelope,
                "losses": losses,
                "markers": markers,
                "stats": {
                    "scans": drained,
                    "rate_hz": rate.update(drained),
                    "ring_fill_permille": live.ring_fill_permille.load(Ordering::Relaxed),
                    "bytes_written": live.bytes_written.load(Ordering::Relaxed),
                    "segments": live.segments.load(Ordering::Relaxed),
                    "scans_lost": live.lost.load(Ordering::Relaxed),
                    "gaps": live.gaps.load(Ordering::Relaxed),
                    "backlog_chunks": live.backlog.load(Ordering::Relaxed),
                    "frames_dropped": hub.frames_dropped.load(Ordering::Relaxed),
                    "tap_points_dropped": rx.drops.points.load(Ordering::Relaxed),
                    "tap_losses_dropped": rx.drops.losses.load(Ordering::Relaxed),
                },
        });
        let base: Arc<str> = Arc::from(fv.to_string());
        // Each scope window's frame, made once for the pages that share it.
        let mut scoped: Vec<(u32, Arc<str>)> = Vec::new();
        let mut frame_for = |ms: u32| -> Arc<str> {
            let Some(shot) = &shot else {
                return base.clone();
            };
            if let Some((_, f)) = scoped.iter().find(|(m, _)| *m == ms) {
                return f.clone();
            }
            let mut v = fv.clone();
            v["scope"] = view.trace(&capture, shot, ms);
            let f: Arc<str> = Arc::from(v.to_string());
            scoped.push((ms, f.clone()));
            f
        };
        if has_envelope {
            let mut h = hub.history.lock().unwrap();
            if h.len() as u64 >= WINDOW_S * FRAME_HZ {
                h.pop_front();
            }
            h.push_back(base.clone());
        }
        hub.clients
            .lock()
            .unwrap()
            .retain(|c| match c.tx.try_send(frame_for(c.scope_ms)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    hub.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
    // Dropping the senders ends every page's connection.
    hub.clients.lock().unwrap().clear();
}

/// Scans per second over the last second or so.
#[derive(Default)]
struct RateMeter {
    marks: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    fn update(&mut self, scans: u64) -> f64 {
        let now = Instant::now();
        self.marks.push_back((now, scans));
        while self.marks.len() > 2 && now - self.marks[0].0 > Duration::from_secs(1) {
            self.marks.pop_front();
        }
        let (t0, s0) = self.marks[0];
        let dt = (now - t0).as_secs_f64();
        if dt > 0.0 {
            (scans - s0) as f64 / dt
        } else {
            0.0
        }
    }
}
