//! `acquire send`: a test and benchmark sender that streams abi's
//! reference waveform as VRT, DIFI or counter-framed datagrams at a given
//! rate, and breaks the stream on purpose (drop, duplicate, reorder,
//! corrupt, trailer loss bit), bounded in count and time, to loopback or a
//! peer inside the test's own network namespace only
//! ([`super::may_send_to`]).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsdaq_abi::{waveform, Format};
use serde::Serialize;

use super::{vrt, Framing};

/// Longest a send may run.
pub const MAX_SECONDS: f64 = 3600.0;
/// Most datagrams a send may emit.
pub const MAX_DATAGRAMS: u64 = 1_000_000_000;

/// A fault at datagram `at` (0-based, in stream order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Skip `n` datagrams from `at`.
    Drop(u64, u64),
    /// Send `at` twice.
    Duplicate(u64),
    /// Send `at + 1` before `at`.
    Swap(u64),
    /// Send `at` with a wrong size field (VRT) or cut short (counters).
    Corrupt(u64),
    /// Send `at` with another stream ID (VRT).
    WrongStream(u64),
    /// Set the trailer's sample-loss bit on `at` (VRT).
    LossBit(u64),
}

impl std::str::FromStr for Fault {
    type Err = anyhow::Error;

    /// `drop:N@K`, `dup@K`, `swap@K`, `corrupt@K`, `wrong-stream@K`, `loss-bit@K`.
    fn from_str(s: &str) -> Result<Self> {
        let (what, at) = s
            .rsplit_once('@')
            .with_context(|| format!("--fault {s:?}: expected KIND@DATAGRAM"))?;
        let at: u64 = at
            .parse()
            .with_context(|| format!("--fault {s:?}: the datagram after @ must be a number"))?;
        Ok(match what.split_once(':') {
            Some(("drop", n)) => Fault::Drop(at, n.parse().with_context(|| format!("--fault {s:?}: drop:N needs a count"))?),
            None if what == "dup" => Fault::Duplicate(at),
            None if what == "swap" => Fault::Swap(at),
            None if what == "corrupt" => Fault::Corrupt(at),
            None if what == "wrong-stream" => Fault::WrongStream(at),
            None if what == "loss-bit" => Fault::LossBit(at),
            _ => bail!("--fault {s:?}: expected drop:N@K, dup@K, swap@K, corrupt@K, wrong-stream@K or loss-bit@K"),
        })
    }
}

/// What to send.
#[derive(Clone, Debug)]
pub struct SendPlan {
    /// Destination.
    pub to: SocketAddr,
    /// Framing.
    pub framing: Framing,
    /// Scans per second.
    pub rate_hz: u64,
    /// Values per scan.
    pub channels: u16,
    /// Sample format.
    pub format: Format,
    /// Scans per datagram.
    pub scans_per_datagram: u32,
    /// Datagrams to send.
    pub datagrams: u64,
    /// First sample index (the stream's own numbering).
    pub first_index: u64,
    /// VRT stream ID.
    pub stream_id: u32,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Send as fast as possible instead of at the rate.
    pub unpaced: bool,
}

/// What was sent.
#[derive(Debug, Default, Serialize)]
pub struct SendReport {
    /// Datagrams sent (duplicates included).
    pub datagrams: u64,
    /// Sample bytes sent.
    pub sample_bytes: u64,
    /// Datagrams left out on purpose, with the scans they held.
    pub dropped: u64,
    /// Scans in those.
    pub dropped_scans: u64,
    /// Seconds.
    pub seconds: f64,
}

fn payload(p: &SendPlan, index: u64, out: &mut Vec<u8>) {
    let n = p.scans_per_datagram as usize * p.channels as usize;
    out.clear();
    let be = matches!(p.framing, Framing::Vrt | Framing::Difi);
    match p.format {
        Format::I16 => {
            let mut v = vec![0i16; n];
            waveform::fill_i16(&mut v, p.channels as usize, index);
            for x in v {
                out.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
            }
        }
        Format::I32 => {
            let mut v = vec![0i32; n];
            waveform::fill_i32(&mut v, p.channels as usize, index);
            for x in v {
                out.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
            }
        }
    }
}

/// Datagram `k` of the stream (before faults that reorder or repeat it).
fn datagram(p: &SendPlan, k: u64, buf: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    let index = p.first_index + k * p.scans_per_datagram as u64;
    payload(p, index, scratch);
    let fault = |f: fn(&Fault, u64) -> bool| p.faults.iter().any(|x| f(x, k));
    match p.framing {
        Framing::Vrt | Framing::Difi => {
            let pro = vrt::Prologue {
                stream_id: if fault(|f, k| *f == Fault::WrongStream(k)) {
                    p.stream_id ^ 0xffff
                } else {
                    p.stream_id
                },
                difi: p.framing == Framing::Difi,
                count: (k & 0xf) as u8,
                index,
                rate_hz: p.rate_hz,
                loss: fault(|f, k| *f == Fault::LossBit(k)),
            };
            vrt::build_data(buf, &pro, scratch);
            if fault(|f, k| *f == Fault::Corrupt(k)) {
                buf[3] = buf[3].wrapping_add(1);
            }
        }
        Framing::Seq32(o) | Framing::Seq64(o) => {
            buf.clear();
            buf.resize(o, 0);
            let counter = p.first_index / p.scans_per_datagram.max(1) as u64 + k;
            if matches!(p.framing, Framing::Seq32(_)) {
                buf.extend_from_slice(&(counter as u32).to_be_bytes());
            } else {
                buf.extend_from_slice(&counter.to_be_bytes());
            }
            buf.extend_from_slice(scratch);
            if fault(|f, k| *f == Fault::Corrupt(k)) {
                buf.truncate(buf.len() - 1);
            }
        }
    }
}

/// Sends one datagram. A refusal (an earlier datagram found nobody
/// listening: ICMP port unreachable) is not the sender's error: UDP says
/// nothing about delivery, and the receiver counts what it missed.
fn put(sock: &UdpSocket, d: &[u8]) -> Result<()> {
    match sock.send(d) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e).context("send failed"),
    }
}

/// Streams the plan; `progress` hears a line a second.
pub fn send(p: &SendPlan, mut progress: impl FnMut(&str)) -> Result<SendReport> {
    super::may_send_to(&p.to)?;
    if p.datagrams == 0 || p.datagrams > MAX_DATAGRAMS {
        bail!("--datagrams: expected 1 to {MAX_DATAGRAMS}");
    }
    let seconds = p.datagrams as f64 * p.scans_per_datagram as f64 / p.rate_hz as f64;
    if !p.unpaced && seconds > MAX_SECONDS {
        bail!("this send would take {seconds:.0} s; at most {MAX_SECONDS} s");
    }
    if matches!(p.framing, Framing::Difi) && p.channels != 2 {
        bail!("DIFI carries complex samples: --channels 2 (I and Q)");
    }
    let bind = if p.to.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).context("cannot open a UDP socket")?;
    sock.connect(p.to)
        .with_context(|| format!("cannot reach {}", p.to))?;
    if p.framing == Framing::Vrt || p.framing == Framing::Difi {
        let mut ctx = Vec::new();
        let bits = (p.format.bytes() * 8) as u8;
        vrt::build_context(&mut ctx, p.stream_id, p.rate_hz, bits, p.channels == 2);
        // Sent twice: a receiver that learns the stream's shape from it
        // should not depend on one datagram.
        put(&sock, &ctx)?;
        put(&sock, &ctx)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut r = SendReport::default();
    let (mut buf, mut held, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    let period = Duration::from_secs_f64(p.scans_per_datagram as f64 / p.rate_hz as f64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(MAX_SECONDS);
    let mut last_note = start;
    let mut k = 0u64;
    while k < p.datagrams {
        if Instant::now() > deadline {
            bail!("stopped at the {MAX_SECONDS} s bound");
        }
        if !p.unpaced {
            let due = start + period.mul_f64(k as f64);
            let now = Instant::now();
            if due > now + Duration::from_micros(200) {
                std::thread::sleep(due - now);
            }
        }
        if let Some(&Fault::Drop(_, n)) = p
            .faults
            .iter()
            .find(|f| matches!(f, Fault::Drop(at, _) if *at == k))
        {
            r.dropped += n.min(p.datagrams - k);
            r.dropped_scans += n.min(p.datagrams - k) * p.scans_per_datagram as u64;
            k += n;
            continue;
        }
        datagram(p, k, &mut buf, &mut scratch);
        if p.faults.contains(&Fault::Swap(k)) && k + 1 < p.datagrams {
            datagram(p, k + 1, &mut held, &mut scratch);
            put(&sock, &held)?;
            put(&sock, &buf)?;
            r.datagrams += 2;
            r.sample_bytes += (held.len() + buf.len()) as u64;
            k += 2;
            continue;
        }
        let times = if p.faults.contains(&Fault::Duplicate(k)) {
            2
        } else {
            1
        };
        for _ in 0..times {
            put(&sock, &buf)?;
            r.datagrams += 1;
            r.sample_bytes += scratch.len() as u64;
        }
        k += 1;
        if last_note.elapsed() >= Duration::from_secs(1) {
            last_note = Instant::now();
            progress(&format!(
                "sent {} datagrams ({:.0} % of {})",
                r.datagrams,
                k as f64 * 100.0 / p.datagrams as f64,
                p.datagrams
            ));
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!("drop:3@100".parse::<Fault>().unwrap(), Fault::Drop(100, 3));
        assert_eq!("dup@7".parse::<Fault>().unwrap(), Fault::Duplicate(7));
        assert_eq!("loss-bit@9".parse::<Fault>().unwrap(), Fault::LossBit(9));
        assert!("drop@1".parse::<Fault>().is_err());
        assert!("explode@1".parse::<Fault>().is_err());
    }

    #[test]
    fn only_loopback_outside_a_namespace() {
        let p = SendPlan {
            to: "192.0.2.1:9".parse().unwrap(),
            framing: Framing::Vrt,
            rate_hz: 1000,
            channels: 1,
            format: Format::I16,
            scans_per_datagram: 10,
            datagrams: 1,
            first_index: 0,
            stream_id: 1,
            faults: vec![],
            unpaced: false,
        };
        // This test runs in the machine's own namespace.
        let e = send(&p, |_| {}).unwrap_err().to_string();
        assert!(e.contains("only to loopback"), "{e}");
    }
}
