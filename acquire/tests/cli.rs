//! End-to-end tests of the `acquire` binary on the simulator: real
//! recordings, real Parquet files read back by a real reader.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hsdaq_acquire::manifest::{Manifest, RunStatus};
use hsdaq_acquire::verify::{segment_metadata, verify};

mod common;
use common::{acquire, run, s, text};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn record_then_verify_passes_with_zero_loss() {
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--rate",
        "500k",
        "--duration",
        "2s",
        "--segment",
        "500ms",
        "--out",
        s(&run_dir),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["scans_recorded"], 1_000_000);
    assert_eq!(summary["scans_lost"], 0);
    let m = Manifest::read(&run_dir).unwrap();
    assert_eq!(m.status, RunStatus::Complete);
    assert_eq!(m.segments.len(), 4, "2 s in 500 ms segments");
    assert_eq!(m.counts.scans_recorded, 1_000_000);
    let r = verify(&run_dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert_eq!(r.rows, 1_000_000);
    let o = run(&["verify", s(&run_dir)]);
    assert!(o.status.success(), "{}", text(&o));
}

/// More encoder threads than cores, each on its own chunk, finishing out
/// of order: the writer still puts every row group in stream order (verify
/// checks every seq and every sample against the reference waveform), and
/// segments still cut where they should.
#[test]
fn encoders_out_of_order_still_write_the_stream_in_order() {
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--rate",
        "20M",
        "--duration",
        "2s",
        "--segment",
        "500ms",
        "--encoders",
        "5",
        // A stalled drain, then a burst of chunks for every encoder at once.
        "--fault",
        "stall-consumer:300ms@500ms",
        "--allow-loss",
        "--out",
        s(&run_dir),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let recorded = summary["scans_recorded"].as_u64().unwrap();
    let lost = summary["scans_lost"].as_u64().unwrap();
    assert_eq!(recorded + lost, 40_000_000, "{summary}");
    let m = Manifest::read(&run_dir).unwrap();
    assert_eq!(m.segments.len(), 4, "2 s in 500 ms segments");
    let r = verify(&run_dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert_eq!(r.rows, recorded);
}

#[test]
fn forced_overrun_loss_equals_drop_counter_gap_by_gap() {
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--rate",
        "1M",
        "--duration",
        "3s",
        "--buffer-bytes",
        "1MiB",
        "--out",
        s(&run_dir),
        "--fault",
        "overrun:4@700ms",
        "--fault",
        "overrun:2@1500ms",
        "--fault",
        "stall-consumer:400ms@2s",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "losses without --allow-loss exit 3: {}",
        text(&o)
    );
    let m = Manifest::read(&run_dir).unwrap();
    let c = m.device_counters;
    assert!(
        c.dropped_blocks > 6,
        "forced drops plus at least one real overrun: {c:?}"
    );
    assert_eq!(
        m.counts.scans_lost, c.dropped_scans,
        "recorded loss equals the producer's drop counter"
    );
    assert_eq!(m.counts.scans_recorded + m.counts.scans_lost, 3_000_000);
    assert_eq!(m.gaps.iter().map(|g| g.lost).sum::<u64>(), c.dropped_scans);
    assert!(m.gaps.len() >= 3, "{:?}", m.gaps);
    let block = m.stream.block_scans as u64;
    assert_eq!(
        m.gaps[0].lost,
        4 * block,
        "first forced overrun drops 4 whole blocks"
    );
    assert_eq!(m.gaps[1].lost, 2 * block);
    // verify recomputes every sample from its seq: every gap sits at the right index.
    let r = verify(&run_dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert_eq!(r.lost, c.dropped_scans);
    assert_eq!(r.gaps, m.gaps.len() as u64);
    // And with --allow-loss the same run exits 0.
    let o = run(&[
        "record",
        "--rate",
        "1M",
        "--duration",
        "1s",
        "--out",
        s(&d.path().join("r2")),
        "--fault",
        "overrun:1@300ms",
        "--allow-loss",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("LOST"), "{}", text(&o));
}

#[test]
fn sigkill_leaves_every_closed_segment_readable() {
    let d = tmp();
    let run_dir = d.path().join("run");
    let mut child = acquire()
        .args([
            "record",
            "--rate",
            "2M",
            "--duration",
            "60s",
            "--segment",
            "300ms",
            "--out",
            s(&run_dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut closed = 0;
    for e in std::fs::read_dir(&run_dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".parquet") {
            closed += 1;
            segment_metadata(&p)
                .unwrap_or_else(|e| panic!("closed segment {name} unreadable: {e:#}"));
        }
    }
    assert!(closed >= 2, "{closed} closed segments");
    let r = verify(&run_dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert_eq!(
        Manifest::read(&run_dir).unwrap().status,
        RunStatus::Recording
    );
    let o = run(&["verify", s(&run_dir)]);
    assert!(
        text(&o).contains(&format!("acquire recover {}", run_dir.display())),
        "verify says what to do with a run that was not closed: {}",
        text(&o)
    );

    // `acquire recover` rebuilds the manifest from the closed segments.
    let o = run(&["recover", "--json", s(&run_dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["rewritten"], true);
    assert_eq!(rep["previous_status"], "recording");
    let m = Manifest::read(&run_dir).unwrap();
    assert_eq!(m.status, RunStatus::Recovered);
    assert_eq!(m.segments.len(), closed);
    assert_eq!(
        m.counts.scans_recorded, r.rows,
        "the rebuilt totals are the files'"
    );
    assert!(m.error.as_deref().unwrap().contains("acquire recover"));
    let again = verify(&run_dir, false).unwrap();
    assert!(again.ok() && again.hint.is_none(), "{:?}", again);
    // Idempotent: a second recover rewrites nothing.
    let o = run(&["recover", "--json", s(&run_dir)]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["rewritten"], false, "{rep}");

    // With manifest.json lost, the segments' embedded copies rebuild it.
    std::fs::remove_file(run_dir.join("manifest.json")).unwrap();
    assert!(!verify(&run_dir, false).unwrap().ok());
    let o = run(&["recover", s(&run_dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("was missing"), "{}", text(&o));
    let m2 = Manifest::read(&run_dir).unwrap();
    assert_eq!((m2.segments.len(), m2.counts), (closed, m.counts));
    assert!(verify(&run_dir, false).unwrap().ok());
}

/// Closed segment files in a run folder.
fn closed_segments(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0; // not created yet
    };
    entries
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("parquet".as_ref()))
        .count()
}

/// The recorder keeps its list of closed segments in the run's segment log
/// (not in memory) and, past ~200 segments, rewrites manifest.json only
/// once the segments closed since outweigh it: a completed run still lists
/// every segment and leaves no log; a killed one lists a prefix that
/// `recover` completes, removing the log.
#[test]
fn many_segments_are_all_listed_after_the_end_or_a_kill() {
    use hsdaq_acquire::manifest::SEGMENT_LOG;
    let d = tmp();
    let args = |dir: &Path, samples: &'static str| {
        let mut a = vec!["record", "--unpaced", "--segment", "16KiB"];
        a.extend(["--samples", samples, "--out"]);
        a.push(s(dir));
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // Completed: ~1000 segments, all listed, and verify checks them all.
    let whole = d.path().join("whole");
    let o = acquire().args(args(&whole, "8M")).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m = Manifest::read(&whole).unwrap();
    let closed = closed_segments(&whole);
    assert!(closed >= 900, "{closed} segments");
    assert_eq!(m.segments.len(), closed);
    assert!(
        !whole.join(SEGMENT_LOG).exists(),
        "the log is removed at the end"
    );
    assert!(verify(&whole, false).unwrap().ok());

    // Killed once the manifest is rewritten only now and then.
    let cut = d.path().join("cut");
    let mut child = acquire()
        .args(args(&cut, "400M"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while closed_segments(&cut) < 600 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "600 segments not closed within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let size = std::fs::metadata(cut.join("manifest.json")).unwrap().len();
    assert!(size > 64 << 10, "past the always-rewritten size: {size}");
    assert!(cut.join(SEGMENT_LOG).exists());
    let before = Manifest::read(&cut).unwrap().segments.len();
    let closed = closed_segments(&cut);
    assert!(before <= closed, "{before} listed of {closed}");
    let o = run(&["recover", "--json", s(&cut)]);
    assert!(o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A kill between a segment's two renames leaves one to salvage.
    let salvaged = rep["salvaged"].as_array().unwrap().len();
    assert_eq!(rep["segments"], closed + salvaged, "{rep}");
    assert_eq!(rep["segments_added"], closed + salvaged - before, "{rep}");
    assert!(!cut.join(SEGMENT_LOG).exists(), "recover removes the log");
    assert!(verify(&cut, false).unwrap().ok());
}

/// A manifest written from a segment log reads back as the one written
/// whole: a record cut short (a failed append) left out, the records not
/// in the log (the one whose append failed) listed after the log's.
#[test]
fn a_manifest_written_from_the_segment_log_reads_back_whole() {
    use hsdaq_acquire::manifest::{SegmentLog, SEGMENT_LOG};
    use std::io::Write as _;
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--samples",
        "200k",
        "--segment",
        "20ms",
        "--out",
        s(&run_dir),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let whole = Manifest::read(&run_dir).unwrap();
    assert!(whole.segments.len() >= 5, "{}", whole.segments.len());
    let mut bare = whole.clone();
    bare.segments.clear();
    let dir = d.path().join("logged");
    std::fs::create_dir(&dir).unwrap();
    // No log: no segments.
    bare.write_logged(&dir, || {}).unwrap();
    assert!(Manifest::read(&dir).unwrap().segments.is_empty());
    let mut log = SegmentLog::create(&dir).unwrap();
    let (last, logged) = whole.segments.split_last().unwrap();
    for info in logged {
        log.push(info).unwrap();
    }
    bare.segments.push(last.clone());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(SEGMENT_LOG))
        .unwrap();
    f.write_all(br#"{"index":99,"fi"#).unwrap();
    let size = bare.write_logged(&dir, || {}).unwrap();
    assert_eq!(
        size,
        std::fs::metadata(dir.join("manifest.json")).unwrap().len()
    );
    assert_eq!(Manifest::read(&dir).unwrap(), whole);
    SegmentLog::remove(&dir).unwrap();
    SegmentLog::remove(&dir).unwrap(); // already gone: fine
}

#[test]
fn recover_leaves_a_closed_run_alone_and_reports_damage() {
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--rate",
        "100k",
        "--samples",
        "300000",
        "--segment",
        "1s",
        "--out",
        s(&run_dir),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(run_dir.join("manifest.json")).unwrap();
    let o = run(&["recover", s(&run_dir)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(run_dir.join("manifest.json")).unwrap(),
        before
    );
    // A deleted segment of a closed run is damage, not a crash: reported,
    // never written away.
    std::fs::remove_file(run_dir.join("segment-000001.parquet")).unwrap();
    let o = run(&["recover", s(&run_dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("still damaged"), "{}", text(&o));
    assert_eq!(
        std::fs::read(run_dir.join("manifest.json")).unwrap(),
        before
    );
}

/// The disk after a power cut between a segment's two renames (block table
/// renamed, samples not; both fsynced): `recover` completes that commit.
/// If the samples file is torn instead, it is left in place, named.
#[test]
fn recover_completes_a_segment_cut_between_its_renames() {
    let d = tmp();
    let record = |name: &str| {
        let dir = d.path().join(name);
        let o = run(&[
            "record",
            "--rate",
            "100k",
            "--samples",
            "300000",
            "--segment",
            "1s",
            "--out",
            s(&dir),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        // As the cut leaves it: the last segment unrenamed, the manifest
        // still `recording` and listing the segments before it.
        let last = dir.join("segment-000002.parquet");
        std::fs::rename(&last, dir.join("segment-000002.parquet.partial")).unwrap();
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        m["status"] = "recording".into();
        m["segments"].as_array_mut().unwrap().truncate(2);
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
        dir
    };
    let whole = record("whole");
    let o = run(&["recover", s(&whole), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["salvaged"],
        serde_json::json!(["segment-000002.parquet"]),
        "{r}"
    );
    assert_eq!(r["scans_recorded"], 300000, "{r}");
    assert_eq!(r["partial"].as_array().unwrap().len(), 0, "{r}");
    let o = run(&["verify", s(&whole)]);
    assert!(
        o.status.success() && text(&o).contains("300000 rows"),
        "{}",
        text(&o)
    );

    let torn = record("torn");
    let p = torn.join("segment-000002.parquet.partial");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 4096)
        .unwrap();
    let o = run(&["recover", s(&torn), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["salvaged"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(
        r["partial"][0]["file"], "segment-000002.parquet.partial",
        "{r}"
    );
    assert!(text(&o).contains("not salvaged"), "{}", text(&o));
    assert_eq!(r["segments"], 2, "{r}");
    let o = run(&["verify", s(&torn)]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn sigint_finishes_the_open_segment_cleanly() {
    // With no limit a signal is the planned end (complete, exit 0); with a
    // --duration it comes early (interrupted, exit 4). Both runs close and verify.
    for (limit, status, code) in [
        (None, RunStatus::Complete, 0),
        (Some("60s"), RunStatus::Interrupted, 4),
    ] {
        let d = tmp();
        let run_dir = d.path().join("run");
        let mut args = vec!["record", "--rate", "1M", "--out", s(&run_dir), "--json"];
        if let Some(l) = limit {
            args.extend(["--duration", l]);
        }
        let child = acquire()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: sending SIGINT to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{limit:?}: {}", text(&o));
        let m = Manifest::read(&run_dir).unwrap();
        assert_eq!(m.status, status, "{limit:?}");
        assert!(m.counts.scans_recorded > 500_000);
        let partial: Vec<_> = std::fs::read_dir(&run_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_str()
                    .unwrap()
                    .ends_with(".partial")
            })
            .collect();
        assert!(partial.is_empty(), "no partial file after a clean stop");
        assert!(verify(&run_dir, false).unwrap().ok());
    }
}

/// Unmounts a test tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_and_keeps_closed_segments() {
    let d = tmp();
    let fs = d.path().join("small");
    std::fs::create_dir(&fs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs", s(&fs)])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "mounting a 12 MiB tmpfs needs root (CI runs as root)"
    );
    let _guard = Mount(fs.clone());
    let run_dir = fs.join("run");
    let o = run(&[
        "record",
        "--rate",
        "2M",
        "--duration",
        "10s",
        "--segment",
        "100ms",
        "--compression",
        "none",
        "--out",
        s(&run_dir),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("disk full"), "{t}");
    let m = Manifest::read(&run_dir).unwrap();
    assert_eq!(m.status, RunStatus::Failed);
    assert!(
        m.error.as_deref().unwrap().contains("No space left"),
        "{:?}",
        m.error
    );
    assert!(
        m.segments.len() >= 2,
        "segments closed before the disk filled are kept: {}",
        m.segments.len()
    );
    let r = verify(&run_dir, false).unwrap();
    assert!(r.ok(), "{:?}", r.first_error);
    assert_eq!(r.files.len(), m.segments.len());
    assert!(
        r.partial_skipped.is_empty(),
        "the failed segment's partial file is removed"
    );
}

#[test]
fn file_size_limit_is_a_clear_error() {
    use std::os::unix::process::CommandExt;
    let d = tmp();
    let run_dir = d.path().join("run");
    let mut cmd = acquire();
    cmd.args([
        "record",
        "--rate",
        "2M",
        "--duration",
        "5s",
        "--segment",
        "1s",
        "--compression",
        "none",
        "--out",
        s(&run_dir),
    ]);
    // SAFETY: setrlimit is async-signal-safe; it only limits the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 20,
                rlim_max: 4 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("file size limit"), "{}", text(&o));
    assert_eq!(Manifest::read(&run_dir).unwrap().status, RunStatus::Failed);
}

#[test]
fn bad_flags_and_profiles_are_clear_errors() {
    let d = tmp();
    let out = d.path().join("x");
    let cases: &[(&[&str], &str)] = &[
        (&["record", "--rate", "fast", "--out", "x"], "invalid rate"),
        (
            &["record", "--format", "f64", "--out", "x"],
            "invalid format",
        ),
        (
            &[
                "record",
                "--channels",
                "65",
                "--duration",
                "1s",
                "--out",
                s(&out),
            ],
            "channels",
        ),
        (
            &[
                "record",
                "--block-bytes",
                "3000",
                "--duration",
                "1s",
                "--out",
                s(&out),
            ],
            "block-bytes",
        ),
        (&["record", "--segment", "0s", "--out", "x"], "above 0"),
        (
            &["record", "--fault", "melt:1@1s", "--out", "x"],
            "invalid --fault kind",
        ),
        (
            &["record", "--duration", "1s", "--samples", "5", "--out", "x"],
            "cannot be used with",
        ),
        (
            &[
                "record",
                "--device",
                "/dev/hsdaq-none",
                "--duration",
                "1s",
                "--out",
                s(&out),
            ],
            "is the hsdaq module loaded",
        ),
        (&["record", "--rate", "1k"], "--out"),
        (&["verify", "/nonexistent"], "nonexistent"),
    ];
    for (args, needle) in cases {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    assert!(
        !out.join("manifest.json").exists(),
        "nothing recorded on bad input"
    );
    let bad_profiles = [
        ("unknown = 1\n", "unknown field"),
        ("[device]\nformat = \"f32\"\n", "not i16 or i32"),
        (
            "[device]\nchannels = 2\n[[channel]]\nname = \"a\"\n",
            "2 but 1",
        ),
        ("[[channel]]\nname = \"seq\"\n", "other than seq"),
        (
            "[[channel]]\nname = \"a\"\n[[channel]]\nname = \"a\"\n",
            "twice",
        ),
        ("[record]\ncompression = \"brotli\"\n", "unknown variant"),
        ("[[channel]]\nname = \"a\"\nscale = 0.0\n", "non-zero"),
    ];
    for (body, needle) in bad_profiles {
        let p = d.path().join("p.toml");
        std::fs::write(&p, body).unwrap();
        let o = run(&[
            "record",
            "--profile",
            s(&p),
            "--duration",
            "1s",
            "--out",
            s(&out),
        ]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "an invalid profile is a usage error"
        );
        assert!(text(&o).contains(needle), "{body:?}: {}", text(&o));
    }
    // A profile with 2 channels against a 4-channel simulator request.
    let p = d.path().join("p.toml");
    std::fs::write(&p, "[[channel]]\nname = \"a\"\n[[channel]]\nname = \"b\"\n").unwrap();
    let o = run(&[
        "record",
        "--profile",
        s(&p),
        "--channels",
        "4",
        "--duration",
        "1s",
        "--out",
        s(&out),
    ]);
    assert!(
        text(&o).contains("names 2 channels but the device has 4"),
        "{}",
        text(&o)
    );
    // An existing recording is never overwritten.
    let r = d.path().join("r");
    assert!(run(&[
        "record",
        "--samples",
        "1000",
        "--rate",
        "10k",
        "--out",
        s(&r)
    ])
    .status
    .success());
    let o = run(&[
        "record",
        "--samples",
        "1000",
        "--rate",
        "10k",
        "--out",
        s(&r),
    ]);
    assert!(
        text(&o).contains("already holds a recording"),
        "{}",
        text(&o)
    );
}

#[test]
fn parquet_schema_encodings_and_metadata_read_back() {
    use parquet::basic::{Encoding, LogicalType, Type};
    use parquet::file::reader::FileReader;
    let d = tmp();
    let run_dir = d.path().join("run");
    let profile = d.path().join("board.toml");
    std::fs::write(
        &profile,
        "board = \"testboard\"\n[device]\nchannels = 2\nformat = \"i32\"\nrate-hz = 100000\n[record]\ncompression = \"lz4\"\nencoding = \"bss\"\n\
         [[channel]]\nname = \"volts\"\nunit = \"V\"\nscale = 0.001\n[[channel]]\nname = \"amps\"\nunit = \"A\"\nscale = 2.5e-5\noffset = -0.1\n",
    )
    .unwrap();
    let o = run(&[
        "record",
        "--profile",
        s(&profile),
        "--samples",
        "250000",
        "--out",
        s(&run_dir),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let seg = run_dir.join("segment-000000.parquet");
    let r = parquet::file::serialized_reader::SerializedFileReader::try_from(
        std::fs::File::open(&seg).unwrap(),
    )
    .unwrap();
    let schema = r.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["seq", "t_ns", "volts", "amps"]);
    assert_eq!(schema.column(0).physical_type(), Type::INT64);
    assert_eq!(schema.column(2).physical_type(), Type::INT32);
    assert_eq!(
        schema.column(2).logical_type_ref(),
        None,
        "i32 stream has no INT(16) annotation"
    );
    let rg = r.metadata().row_group(0);
    assert!(rg
        .column(0)
        .encodings()
        .any(|e| e == Encoding::DELTA_BINARY_PACKED));
    assert!(rg
        .column(2)
        .encodings()
        .any(|e| e == Encoding::BYTE_STREAM_SPLIT));
    assert_eq!(
        rg.column(2).compression(),
        parquet::basic::Compression::LZ4_RAW
    );
    let (m, info) = segment_metadata(&seg).unwrap();
    assert_eq!(m.board.as_deref(), Some("testboard"));
    assert_eq!(
        m.channel_encoding, "byte_stream_split",
        "the profile's encoding"
    );
    assert_eq!(m.stream.rate_hz, 100_000);
    assert_eq!(m.stream.format, "i32");
    assert_eq!(m.channels[1].unit, "A");
    assert_eq!(m.channels[1].offset, -0.1);
    assert_eq!(m.device.source, "simulator");
    assert!(!m.start_wall_clock.is_empty() && !m.kernel_release.is_empty());
    assert_eq!(info.first_seq, 0);
    assert_eq!(info.rows, r.metadata().file_metadata().num_rows() as u64);
    assert!(verify(&run_dir, false).unwrap().ok());
    // i16 streams are annotated INT(16) so readers load them as int16.
    let r16 = d.path().join("r16");
    assert!(run(&[
        "record",
        "--samples",
        "10000",
        "--rate",
        "10k",
        "--out",
        s(&r16)
    ])
    .status
    .success());
    let r = parquet::file::serialized_reader::SerializedFileReader::try_from(
        std::fs::File::open(r16.join("segment-000000.parquet")).unwrap(),
    )
    .unwrap();
    let lt = r
        .metadata()
        .file_metadata()
        .schema_descr()
        .column(2)
        .logical_type_ref()
        .cloned();
    assert_eq!(
        lt,
        Some(LogicalType::Integer(parquet::basic::IntType {
            bit_width: 16,
            is_signed: true
        }))
    );
    // By default channels are DELTA_BINARY_PACKED (docs/BENCHMARKS.md "Encodings").
    assert!(r
        .metadata()
        .row_group(0)
        .column(2)
        .encodings()
        .any(|e| e == Encoding::DELTA_BINARY_PACKED));
}

#[test]
fn info_shows_abi_layout_and_counters() {
    let o = run(&[
        "info",
        "--json",
        "--channels",
        "3",
        "--block-bytes",
        "16KiB",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["abi"], "2.1");
    assert_eq!(v["layout"]["channels"], 3);
    assert_eq!(v["layout"]["block_scans"], (16384 - 64) / 6);
    assert_eq!(v["counters"]["dropped_blocks"], 0);
    assert_eq!(v["counters"]["discarded_blocks"], 0);
    assert_eq!(v["layout"]["data_offset"], v["layout"]["control_bytes"]);
}

#[test]
fn a_corrupted_file_fails_verify_naming_the_sample() {
    let d = tmp();
    let run_dir = d.path().join("run");
    assert!(run(&[
        "record",
        "--rate",
        "100k",
        "--samples",
        "50000",
        "--compression",
        "none",
        "--out",
        s(&run_dir)
    ])
    .status
    .success());
    // Rewrite one value through a real writer: copy the file with one sample changed.
    let seg: PathBuf = run_dir.join("segment-000000.parquet");
    let bytes = std::fs::read(&seg).unwrap();
    // Uncompressed BYTE_STREAM_SPLIT data: flip one byte well inside the ch0 data page.
    let (m, _) = segment_metadata(&seg).unwrap();
    let r = parquet::file::serialized_reader::SerializedFileReader::try_from(
        std::fs::File::open(&seg).unwrap(),
    )
    .unwrap();
    use parquet::file::reader::FileReader;
    let col = r.metadata().row_group(0).column(2);
    let (start, len) = col.byte_range();
    let mut bad = bytes.clone();
    bad[(start + len / 2) as usize] ^= 0x5a;
    std::fs::write(&seg, &bad).unwrap();
    let o = run(&["verify", s(&run_dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("reference waveform says") || text(&o).contains("FAILED"),
        "{}",
        text(&o)
    );
    assert_eq!(m.stream.channels, 4);
}

#[test]
fn shipped_board_profiles_list_and_record() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards");
    let o = run(&["boards", s(&boards)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("INVALID"), "{}", text(&o));
    for board in ["sim", "qemu-x86_64", "qemu-arm64", "rpi4", "zynqmp"] {
        assert!(text(&o).contains(board), "{board} missing: {}", text(&o));
    }
    let d = tmp();
    let run_dir = d.path().join("run");
    let profile = boards.join("sim/acquire.toml");
    let o = run(&[
        "record",
        "--profile",
        s(&profile),
        "--samples",
        "200000",
        "--out",
        s(&run_dir),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m = Manifest::read(&run_dir).unwrap();
    assert_eq!(m.board.as_deref(), Some("sim"));
    assert_eq!(m.channels[3].name, "temp");
    assert_eq!(m.channels[3].unit, "degC");
    assert_eq!(m.channels[3].offset, 25.0);
    assert_eq!(m.stream.rate_hz, 1_000_000);
    assert!(verify(&run_dir, false).unwrap().ok());
}

#[test]
fn live_view_on_a_busy_port_is_a_clear_error_and_leaves_no_run() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let d = tmp();
    let run_dir = d.path().join("run");
    let o = run(&[
        "record",
        "--duration",
        "1s",
        "--out",
        s(&run_dir),
        "--live",
        &addr,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("--live: cannot listen on {addr}")),
        "{}",
        text(&o)
    );
    assert!(
        !run_dir.exists(),
        "the run folder was created before the port was bound"
    );
    let o = run(&[
        "record",
        "--duration",
        "1s",
        "--out",
        s(&run_dir),
        "--live",
        "nonsense",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid socket address"), "{}", text(&o));
}
