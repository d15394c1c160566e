//! The UDP source end to end on loopback: `acquire send` streams abi's
//! reference waveform with faults injected at known datagrams, `acquire
//! record` receives it, and the manifest must place every injected loss at
//! its exact sample index with its exact size, absorb what the reorder
//! window can, count the rest by reason, and verify against the waveform.
//! (tests/netns.sh does the same over a veth pair between two namespaces.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hsdaq_acquire::manifest::{GapKind, Manifest};

fn acquire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acquire"))
}

/// Starts `acquire record` on a port the kernel picks (port 0) and returns
/// it with the port, read from the recorder's own "listening on" line: the
/// socket exists before anything is sent, and no other test can hold the
/// port between a probe and the bind.
fn recorder(out: &Path, framing: &str, samples: u64, extra: &[&str]) -> (Recorder, u16) {
    let mut r = acquire()
        .args([
            "record",
            "--device",
            "udp://127.0.0.1:0",
            "--framing",
            framing,
        ])
        .args([
            "--reference-signal",
            "--samples",
            &samples.to_string(),
            "--json",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("acquire record runs");
    let stderr = r.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps draining stderr after the line so the recorder never blocks.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.split("listening on udp://").nth(1) {
                let port = a
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok().map(|a| a.port()));
                let _ = tx.send(port);
            } else {
                eprintln!("recorder: {line}");
            }
        }
    });
    let r = Recorder(r);
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the recorder says where it listens")
        .expect("a socket address");
    (r, port)
}

/// A running recorder, killed if the test fails before it ends, so no
/// recorder outlives its test.
struct Recorder(Child);

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send(port: u16, args: &[&str]) {
    let o = acquire()
        .args(["send", "--to", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("acquire send runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn finish(mut r: Recorder) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = r.0.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the recorder did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gaps(m: &Manifest) -> Vec<(i64, u64, GapKind)> {
    m.gaps.iter().map(|g| (g.at_seq, g.lost, g.kind)).collect()
}

fn counter(m: &Manifest, k: &str) -> u64 {
    m.source_counters.get(k).copied().unwrap_or(0)
}

/// VRT: every fault lands where it was injected.
#[test]
fn vrt_faults_land_at_their_sample_index() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let (n, first) = (256u64, 5_000_000u64);
    let (r, port) = recorder(&out, "vrt", 1000 * n, &[]);
    send(
        port,
        &[
            "--framing",
            "vrt",
            "--rate",
            "400k",
            "--channels",
            "2",
            "--datagrams",
            "1000",
            "--first-index",
            &first.to_string(),
            "--scans-per-datagram",
            &n.to_string(),
            "--fault",
            "drop:3@100",
            "--fault",
            "dup@200",
            "--fault",
            "swap@300",
            "--fault",
            "corrupt@400",
            "--fault",
            "wrong-stream@500",
            "--fault",
            "loss-bit@600",
        ],
    );
    assert_eq!(finish(r), 3, "samples were lost: exit 3");
    let m = Manifest::read(&out).unwrap();
    let at = |k: u64| (first + k * n) as i64;
    assert_eq!(
        gaps(&m),
        vec![
            (at(103), 3 * n, GapKind::Counted),
            (at(401), n, GapKind::Counted),
            (at(501), n, GapKind::Counted),
        ]
    );
    assert_eq!(m.stream.first_seq, first, "seq is the stream's own index");
    assert_eq!(m.counts.scans_recorded + m.counts.lost(), 1000 * n);
    assert_eq!(counter(&m, "duplicates"), 1);
    assert_eq!(counter(&m, "reordered"), 1);
    assert_eq!(counter(&m, "malformed-size-field"), 1);
    assert_eq!(counter(&m, "skipped-stream-id"), 1);
    assert_eq!(counter(&m, "trailer-sample-loss"), 1);
    let loss: Vec<i64> = m
        .events
        .iter()
        .filter(|e| e.kind == "device-sample-loss")
        .map(|e| e.at_seq)
        .collect();
    assert_eq!(loss, vec![at(600)]);
    assert!(m
        .events
        .iter()
        .any(|e| e.kind == "vrt-context" && e.at_seq == first as i64));
    let v = hsdaq_acquire::verify::verify(&out, false).unwrap();
    assert!(v.ok(), "{:?}", v.first_error);
    assert!(v.values_compared, "the reference signal was recomputed");
}

/// A 32-bit datagram counter that wraps mid-stream, behind a 4-byte
/// prefix; malformed datagrams from elsewhere are counted, not recorded.
#[test]
fn seq32_unwraps_and_counts_malformed_datagrams() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let n = 100u64;
    // The counter starts 5 short of 2^32.
    let first = ((1u64 << 32) - 5) * n;
    let (r, port) = recorder(
        &out,
        "seq32@4",
        400 * n,
        &["--rate", "200k", "--channels", "3", "--format", "i32"],
    );
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.send_to(&[1, 2, 3], ("127.0.0.1", port)).unwrap();
    send(
        port,
        &[
            "--framing",
            "seq32@4",
            "--rate",
            "200k",
            "--channels",
            "3",
            "--format",
            "i32",
            "--datagrams",
            "400",
            "--first-index",
            &first.to_string(),
            "--scans-per-datagram",
            &n.to_string(),
            "--fault",
            "drop:2@7",
            "--fault",
            "swap@50",
            "--fault",
            "corrupt@60",
        ],
    );
    assert_eq!(finish(r), 3);
    let m = Manifest::read(&out).unwrap();
    let at = |k: u64| (first + k * n) as i64;
    assert_eq!(
        gaps(&m),
        vec![
            (at(9), 2 * n, GapKind::Counted),
            (at(61), n, GapKind::Counted)
        ]
    );
    assert_eq!(counter(&m, "reordered"), 1);
    assert_eq!(counter(&m, "malformed-short"), 1, "the 3-byte datagram");
    assert_eq!(
        counter(&m, "malformed-payload-size"),
        1,
        "the cut-short one"
    );
    let v = hsdaq_acquire::verify::verify(&out, false).unwrap();
    assert!(v.ok(), "{:?}", v.first_error);
}

/// DIFI: complex 16-bit samples with UTC + picosecond stamps; the layout
/// comes from the context packet alone.
#[test]
fn difi_layout_comes_from_the_context_packet() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let (r, port) = recorder(&out, "difi", 300 * 128, &[]);
    send(
        port,
        &[
            "--framing",
            "difi",
            "--rate",
            "256000",
            "--channels",
            "2",
            "--datagrams",
            "300",
            "--scans-per-datagram",
            "128",
            "--first-index",
            "1000000000",
        ],
    );
    assert_eq!(finish(r), 0, "nothing lost");
    let m = Manifest::read(&out).unwrap();
    assert_eq!(
        (
            m.stream.rate_hz,
            m.stream.channels,
            m.stream.format.as_str()
        ),
        (256_000, 2, "i16")
    );
    assert_eq!(m.stream.first_seq, 1_000_000_000);
    assert!(m.gaps.is_empty());
    assert!(hsdaq_acquire::verify::verify(&out, false).unwrap().ok());
    // The sender stamps each packet with its first sample's time, index ÷
    // rate seconds of "UTC" (TSI 1, picoseconds): the clock table carries
    // that time for its rows' samples, to the nanosecond it was truncated to.
    assert!(m
        .stream
        .source_clock
        .as_deref()
        .is_some_and(|c| c.starts_with("VRT/DIFI")));
    let rows = hsdaq_format::clock::read_run(&out).unwrap();
    assert!(rows.len() >= 2, "{rows:?}");
    for r in &rows {
        let want = r.seq as i128 * 1_000_000_000 / 256_000;
        let got = r.source_ns.expect("a source time on every row") as i128;
        assert!(
            (got - want).abs() <= 1,
            "seq {}: source {got} ns, stamps say {want}",
            r.seq
        );
    }
}
