//! When each sample happened: the clock-correlation table of every run,
//! markers dropped into a running recording, and both kept by a run
//! recovered after kill -9 (real recordings from the simulator).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hsdaq_acquire::manifest::Manifest;
use hsdaq_acquire::verify::verify;
use hsdaq_format::clock::{self, Clock, Timebase};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;

mod common;
use common::{acquire, run, s, text};

/// The first row's (seq, t_ns) of a segment, read back by the parquet
/// crate's row reader.
fn first_stamp(segment: &Path) -> (i64, i64) {
    let r = SerializedFileReader::try_from(std::fs::File::open(segment).unwrap()).unwrap();
    let row = r.get_row_iter(None).unwrap().next().unwrap().unwrap();
    (row.get_long(0).unwrap(), row.get_long(1).unwrap())
}

#[test]
fn every_segment_has_its_clock_table() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    let o = run(&[
        "record",
        "--rate",
        "200k",
        "--duration",
        "3s",
        "--segment",
        "1s",
        "--out",
        s(&dir),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m = Manifest::read(&dir).unwrap();
    assert_eq!(m.segments.len(), 3);
    let rows = clock::read_run(&dir).unwrap();
    // The first block of each of 3 segments, the last scan, and once a
    // second besides (the first block of a segment counts as its second).
    assert!(rows.len() >= 4, "{rows:?}");
    for seg in &m.segments {
        let t = clock::read_file(&clock::file_for(&dir, &seg.file)).unwrap();
        // A segment's first row is its first scan, stamped exactly as the
        // samples file stamps it.
        assert_eq!(
            (t[0].seq, t[0].mono_ns),
            first_stamp(&dir.join(&seg.file)),
            "{}",
            seg.file
        );
        assert!(t
            .iter()
            .all(|r| r.seq >= seg.first_seq && r.seq <= seg.last_seq));
    }
    assert_eq!(
        rows.last().unwrap().seq,
        m.segments[2].last_seq,
        "the last scan has a row"
    );
    for w in rows.windows(2) {
        assert!(w[1].seq > w[0].seq && w[1].mono_ns >= w[0].mono_ns, "{w:?}");
    }
    for r in &rows {
        // Each offset is bracketed by two monotonic reads: bounded, said.
        assert!((0..50_000_000).contains(&r.uncertainty_ns), "{r:?}");
        assert!(r.read_mono_ns >= r.mono_ns, "read after the sample: {r:?}");
        assert!(["synchronized", "unsynchronized", "unknown"].contains(&r.sync.as_str()));
        assert_eq!(r.phc_ns, None, "no PHC was named");
    }
    // The simulator's stamps are its schedule: 200 kHz on MONOTONIC exactly.
    let tb = Timebase::new(rows).unwrap();
    let mono = tb.rate_hz(Clock::Monotonic).unwrap();
    assert!((mono / 200_000.0 - 1.0).abs() < 1e-6, "{mono}");
    // REALTIME runs within NTP's slew limit (500 ppm) of MONOTONIC.
    let real = tb.rate_hz(Clock::Realtime).unwrap();
    assert!((real / mono - 1.0).abs() < 5e-4, "{real} vs {mono}");
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert!(
        r.checks.iter().any(|c| c.starts_with("clock:")),
        "{:?}",
        r.checks
    );
    // A missing table is damage in a run that has tables.
    std::fs::remove_file(clock::file_for(&dir, &m.segments[1].file)).unwrap();
    let r = verify(&dir, false).unwrap();
    let e = r.first_error.unwrap_or_default();
    assert!(e.contains("no clock-correlation table"), "{e}");
}

#[test]
fn an_absent_ptp_clock_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    let o = run(&[
        "record",
        "--duration",
        "1s",
        "--phc",
        "/dev/ptp-absent",
        "--out",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--phc /dev/ptp-absent"), "{}", text(&o));
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn a_marker_lands_where_it_was_dropped_and_survives_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    // No recorder: said, exit 1.
    std::fs::create_dir_all(d.path().join("idle")).unwrap();
    let o = run(&["mark", s(&d.path().join("idle"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no recording is running"), "{}", text(&o));

    let mut child = acquire()
        .args([
            "record",
            "--rate",
            "100k",
            "--segment",
            "200ms",
            "--out",
            s(&dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let sock = dir.join("control.sock");
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let o = run(&["mark", s(&dir), "--text", "valve opened", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let reply: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let at = reply["at_seq"].as_i64().unwrap();
    let mono = reply["mono_ns"].as_i64().unwrap();
    // Segments close after the marker, carrying it in their manifests.
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let o = run(&["recover", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let m = Manifest::read(&dir).unwrap();
    let marker = m
        .events
        .iter()
        .find(|e| e.kind == "marker")
        .unwrap_or_else(|| panic!("marker kept by the recovered run: {:?}", m.events));
    assert_eq!(
        (marker.at_seq, marker.detail.as_str()),
        (at, "valve opened")
    );
    // The marker's sample was taken when the marker was dropped: within
    // one block of the moment, by the run's own time base.
    let tb = Timebase::new(clock::read_run(&dir).unwrap()).expect("clock rows kept");
    let when = tb.time_ns(at, Clock::Monotonic).unwrap();
    let block_ns = m.stream.block_scans as f64 * 1e9 / m.stream.rate_hz as f64;
    assert!(
        (when - mono).abs() as f64 <= block_ns,
        "marker at seq {at} is {} ns from its moment (block {block_ns} ns)",
        when - mono
    );
    let r = verify(&dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
}
