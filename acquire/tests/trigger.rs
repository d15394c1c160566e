//! Triggers and snapshot windows (`record --trigger`), end to end: windows
//! land at the reference waveform's computable crossings with exactly the
//! asked pre/post scans, a marker opens a window at its sample, bad
//! requests are refused before anything is written, and a killed triggered
//! run recovers to windows `verify` accepts.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hsdaq_abi::{waveform, Format};
use hsdaq_acquire::manifest::{Manifest, Window};
use hsdaq_acquire::verify::verify;

mod common;
use common::{acquire, run, run_bounded, s, text};

/// Each window of a run (from its segments), with the scans it holds
/// (first, last, rows).
fn windows(m: &Manifest) -> Vec<(Window, i64, i64, u64)> {
    let mut out: Vec<(Window, i64, i64, u64)> = Vec::new();
    for seg in &m.segments {
        let w = seg
            .window
            .expect("every segment of a triggered run has its window");
        match out.last_mut() {
            Some(last) if last.0.index == w.index => {
                last.2 = seg.last_seq;
                last.3 += seg.rows;
            }
            _ => out.push((w, seg.first_seq, seg.last_seq, seg.rows)),
        }
    }
    out
}

/// The trigger seqs an edge trigger `ch > level` with `hysteresis` must fire
/// at on the reference waveform, windows of `pre`/`post` scans, re-armed:
/// an independent reading of the rule (arm once at or below level −
/// hysteresis, fire at the first sample above the level; a fire inside an
/// open window opens nothing).
fn expected_triggers(ch: u32, level: i32, hysteresis: i32, post: u64, n: usize) -> Vec<u64> {
    let mut armed = false;
    let mut open_until = 0;
    let mut out = Vec::new();
    let mut seq = 0u64;
    while out.len() < n {
        let v = waveform::value(Format::I16, seq, ch);
        if armed && v > level {
            armed = false;
            if seq >= open_until {
                out.push(seq);
                open_until = seq + post;
            }
        } else if !armed && v <= level - hysteresis {
            armed = true;
        }
        seq += 1;
    }
    out
}

#[test]
fn windows_land_at_the_crossings_with_exactly_their_scans() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    // 200 k scans/s: pre 2 ms = 400 scans, post 17.5 ms = 3500 scans; ch0's
    // sine has a 1024-scan period and first crosses at scan 164, so the
    // first window finds less history than asked (and must say so), the
    // next ones all of it.
    let o = run_bounded(&[
        "record",
        "--rate",
        "200k",
        "--duration",
        "10s",
        "--trigger",
        "ch0 > 20000",
        "--hysteresis",
        "1000",
        "--pre",
        "2ms",
        "--post",
        "17.5ms",
        "--rearm",
        "--max-events",
        "5",
        "--out",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("holding up to") && text(&o).contains("triggered: 5 windows"),
        "start and end say what the trigger holds and wrote: {}",
        text(&o)
    );
    let m = Manifest::read(&dir).unwrap();
    let want = expected_triggers(0, 20000, 1000, 3500, 5);
    let got = windows(&m);
    assert_eq!(got.len(), 5, "{got:?}");
    let mut prev_end = 0i64;
    for ((w, first, last, rows), t) in got.iter().zip(&want) {
        assert_eq!(w.trigger_seq, *t as i64, "window {} trigger", w.index);
        let start = (w.trigger_seq - 400).max(prev_end);
        assert_eq!(
            (w.start_seq, *first, *last, w.end_seq),
            (start, start, w.trigger_seq + 3499, w.trigger_seq + 3500),
            "window {}",
            w.index
        );
        assert_eq!(
            *rows as i64,
            last - first + 1,
            "window {} lost nothing",
            w.index
        );
        assert_eq!(w.pre_held as i64, w.trigger_seq - start);
        let event = m
            .events
            .iter()
            .find(|e| e.kind == "trigger" && e.at_seq == w.trigger_seq)
            .unwrap_or_else(|| panic!("trigger event of window {}: {:?}", w.index, m.events));
        assert_eq!(
            event.detail.contains("held only"),
            w.pre_held < 400,
            "a short history is said, and only then: {}",
            event.detail
        );
        prev_end = w.end_seq;
    }
    assert!(
        got.iter().any(|(w, ..)| w.pre_held == 400) && got.iter().any(|(w, ..)| w.pre_held < 400),
        "both full and short histories were exercised: {got:?}"
    );
    assert!(m.counts.scans_outside_windows > 0 && m.counts.lost() == 0);
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert!(
        r.checks
            .iter()
            .any(|c| c.starts_with("trigger windows: 5 in order")),
        "{:?}",
        r.checks
    );
}

#[test]
fn every_scan_asked_for_is_recorded_lost_or_counted_outside() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    let o = run_bounded(&[
        "record",
        "--rate",
        "100k",
        "--samples",
        "150000",
        "--trigger",
        "ch1 < -20000",
        "--pre",
        "1ms",
        "--post",
        "100ms",
        "--rearm",
        "--segment",
        "30ms",
        "--out",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = Manifest::read(&dir).unwrap();
    let c = &m.counts;
    // Each window is its own segments, each made durable on its own:
    // about 14 windows of 4 segments here.
    assert!(windows(&m).len() > 10, "{:?}", windows(&m).len());
    assert_eq!(
        c.scans_recorded + c.lost() + c.scans_outside_windows,
        150_000,
        "{c:?}"
    );
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
}

#[test]
fn a_run_in_which_nothing_fired_is_whole_and_empty() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    // The reference waveform never reaches 30000 counts.
    let o = run_bounded(&[
        "record",
        "--rate",
        "100k",
        "--duration",
        "500ms",
        "--trigger",
        "ch0 > 30000",
        "--post",
        "10ms",
        "--out",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("triggered: 0 windows; 50000 scans"),
        "{}",
        text(&o)
    );
    let o = run(&["verify", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("none opened; 50000 scans outside windows"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_marker_opens_a_window_at_its_sample() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    let mut child = acquire()
        .args([
            "record",
            "--rate",
            "200k",
            "--duration",
            "20s",
            "--trigger",
            "marker",
            "--pre",
            "400ms",
            "--post",
            "100ms",
            "--out",
            s(&dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("control.sock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let o = run(&["mark", s(&dir), "--text", "door", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let at = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["at_seq"]
        .as_i64()
        .unwrap();
    // One window, no --rearm: the run ends on its own once it is written.
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the run did not end after its window"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = Manifest::read(&dir).unwrap();
    let got = windows(&m);
    assert_eq!(got.len(), 1, "{got:?}");
    let (w, first, last, rows) = got[0];
    assert_eq!(
        (w.trigger_seq, first, last, rows),
        (at, at - 80_000, at + 19_999, 100_000),
        "the window is 400 ms before (history over two chunks) and 100 ms from the marker's sample"
    );
    assert!(m
        .events
        .iter()
        .any(|e| e.kind == "marker" && e.at_seq == at));
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
}

#[test]
fn bad_trigger_requests_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    for (args, says) in [
        (
            vec!["--trigger", "ch9 > 1", "--post", "1s"],
            "no channel \"ch9\"",
        ),
        (
            vec!["--trigger", "ch0 > 1.5V", "--post", "1s"],
            "is in count",
        ),
        (
            vec!["--trigger", "ch0 = 3", "--post", "1s"],
            "expected CHANNEL > LEVEL",
        ),
        (vec!["--trigger", "ch0 > 1"], "needs --post"),
        (
            vec!["--trigger", "ch0 > 1", "--post", "1s", "--max-events", "2"],
            "needs --rearm",
        ),
        (
            vec![
                // One encoder: the ceiling less no encoder's chunk.
                "--encoders",
                "1",
                "--rate",
                "10M",
                "--trigger",
                "ch0 > 1",
                "--pre",
                "100s",
                "--post",
                "1s",
            ],
            "the ceiling is 192 MiB",
        ),
    ] {
        let mut all = vec!["record", "--duration", "1s", "--out", s(&out)];
        all.extend(args.iter().copied());
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(says),
            "{args:?} should say {says:?}: {}",
            text(&o)
        );
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
}

#[test]
fn a_killed_triggered_run_recovers_to_whole_windows() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    let mut child = acquire()
        .args([
            "record",
            "--rate",
            "100k",
            "--trigger",
            "ch0 > 20000",
            "--hysteresis",
            "1000",
            "--pre",
            "10ms",
            "--post",
            "300ms",
            "--segment",
            "100ms",
            "--rearm",
            "--out",
            s(&dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let o = run(&["recover", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let m = Manifest::read(&dir).unwrap();
    assert!(windows(&m).len() >= 2, "{:?}", windows(&m));
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert!(
        r.checks.iter().any(|c| c.starts_with("trigger windows:")),
        "{:?}",
        r.checks
    );
    assert!(Path::new(&dir).join("manifest.json").exists());
}
