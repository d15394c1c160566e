//! `analysis report` on real recordings made by the recorder library.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hsdaq_acquire::faults::PlannedFault;
use hsdaq_acquire::record::{record, RecordPlan};
use hsdaq_acquire::sink::codec::Codec;
use hsdaq_acquire::units::{SegmentPolicy, SegmentPolicyExt};

fn make_run(out: &Path, rate: u64, faults: &[&str]) {
    let plan = RecordPlan {
        device: "sim".into(),
        rate_hz: Some(rate),
        channels: Some(3),
        source: Default::default(),
        format: Some(hsdaq_abi::Format::I16),
        block_bytes: Some(16 << 10),
        buffer_bytes: Some(256 << 10),
        scans: None,
        duration: Some(Duration::from_millis(1500)),
        out: out.to_path_buf(),
        segment: SegmentPolicy::parse("500ms").unwrap(),
        codec: Codec::Zstd,
        encoding: hsdaq_acquire::record::DEFAULT_ENCODING,
        encoders: None,
        allow_loss: true,
        faults: faults
            .iter()
            .map(|f| PlannedFault::parse(f).unwrap())
            .collect(),
        live: None,
        phc: None,
        trigger: None,
        tone: None,
        unpaced: false,
        profile: None,
        json: true,
    };
    let (summary, code) = record(plan, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(code, 0, "{summary:?}");
}

fn report(args: &[&Path], out: &Path) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_analysis"));
    cmd.arg("report").args(args).arg("--out").arg(out);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn report_writes_every_file_with_correct_metrics() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    make_run(&run, 200_000, &["overrun:3@600ms"]);
    let out = d.path().join("report");
    let s = report(&[&run], &out);
    for name in [
        "throughput",
        "losses",
        "latency",
        "signal",
        "spectrum",
        "health",
        "close",
    ] {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{name}.{ext}"));
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|_| panic!("{} missing", p.display()))
                .len();
            assert!(len > 2000, "{} is only {len} bytes", p.display());
        }
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("spectrum.png") && html.contains("throughput.svg"));
    let r = &s["runs"][0];
    let m = hsdaq_acquire::manifest::Manifest::read(&run).unwrap();
    assert_eq!(r["scans"], m.counts.scans_recorded);
    assert_eq!(
        r["scans_lost"], m.counts.scans_lost,
        "losses read from the block table match the manifest"
    );
    assert_eq!(r["gaps"], 1);
    assert!(m.counts.scans_lost > 0);
    // The recorder's health.csv and close times reach the report.
    let h = &r["health"];
    assert!(h["rss_mib_max"].as_f64().unwrap() > 1.0, "{h}");
    assert!(h["fds_range"][0].as_u64().unwrap() >= 3, "{h}");
    let close = h["close_ms_p50_max"][1].as_f64().unwrap();
    let slowest = m
        .segments
        .iter()
        .filter_map(|s| s.close_ms)
        .fold(0.0, f64::max);
    assert_eq!(close, slowest, "{h}");
    // The sine of channel c sits at rate × (64 + 97c) / 65536 Hz.
    for c in 0..3u64 {
        let want = 200_000.0 * (64 + 97 * c) as f64 / 65536.0;
        let got = r["channels"][c as usize]["peak_hz"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 200_000.0 / 65536.0 * 2.0,
            "channel {c}: peak {got} Hz, want {want}"
        );
    }
    let (p50, p99) = (
        r["latency_us"][0].as_f64().unwrap(),
        r["latency_us"][1].as_f64().unwrap(),
    );
    assert!(p50 >= 0.0 && p99 >= p50, "{p50} {p99}");
    let mb = r["mean_mb_per_s"].as_f64().unwrap();
    assert!((mb - 200_000.0 * 6.0 / 1e6).abs() < 0.3, "{mb}");
    // PNGs are real images.
    let png = std::fs::read(out.join("signal.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn report_reads_a_hive_tree_and_a_single_file() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("fleet/board=rpi4/date=2026-11-27/run-a");
    let b = d.path().join("fleet/board=zynqmp/date=2026-11-27/run-b");
    make_run(&a, 50_000, &[]);
    make_run(&b, 80_000, &[]);
    let out = d.path().join("report");
    let s = report(&[&d.path().join("fleet")], &out);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["partitions"]["board"], "rpi4");
    assert_eq!(runs[1]["partitions"]["board"], "zynqmp");
    assert_eq!(runs[1]["rate_hz"], 80_000);
    assert!(out.join("index.html").exists());
    let seg = a.join("segment-000001.parquet");
    let one = report(&[&seg], &d.path().join("one"));
    let rows = hsdaq_acquire::verify::segment_metadata(&seg)
        .unwrap()
        .1
        .rows;
    assert!(rows > 20_000);
    assert_eq!(one["runs"][0]["scans"], rows);
}

/// Structural damage a report must not hide: a deleted middle segment (a
/// hole no recorded gap explains), a duplicated segment (scans counted
/// twice), a lost manifest. Each is named in the text, `summary.json` and
/// the page, and the exit status is 3; intact segments still get a report.
#[test]
fn report_flags_holes_overlaps_and_a_lost_manifest() {
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("run");
    make_run(&pristine, 200_000, &[]);
    type Damage = fn(&Path);
    let cases: &[(&str, Damage, &str)] = &[
        (
            "deleted",
            |r| std::fs::remove_file(r.join("segment-000001.parquet")).unwrap(),
            "hole",
        ),
        (
            "duplicated",
            |r| {
                std::fs::copy(
                    r.join("segment-000001.parquet"),
                    r.join("segment-000001-copy.parquet"),
                )
                .unwrap();
            },
            "overlap",
        ),
        (
            "no manifest",
            |r| std::fs::remove_file(r.join("manifest.json")).unwrap(),
            "manifest.json",
        ),
    ];
    for (what, damage, needle) in cases {
        let run = d.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&run).unwrap();
        for e in std::fs::read_dir(&pristine).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), run.join(e.file_name())).unwrap();
            }
        }
        damage(&run);
        let out = d.path().join(format!("report-{}", what.replace(' ', "-")));
        let o = Command::new(env!("CARGO_BIN_EXE_analysis"))
            .arg("report")
            .arg(&run)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(3), "{what}: {all}");
        assert!(
            all.contains("DAMAGED") && all.contains(needle),
            "{what}: {all}"
        );
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let damage = s["runs"][0]["damage"].as_array().unwrap();
        assert!(
            damage.iter().any(|d| d.as_str().unwrap().contains(needle)),
            "{what}: {damage:?}"
        );
        let page = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(
            page.contains("This run is damaged"),
            "{what}: page does not say so"
        );
    }
}

/// A flipped byte inside compressed sample data: the report does not pass
/// it off as a good run; it fails naming the run (`acquire verify` names
/// the sample).
#[test]
fn report_fails_on_a_flipped_byte_naming_the_run() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    make_run(&run, 200_000, &[]);
    let p = run.join("segment-000001.parquet");
    let mut b = std::fs::read(&p).unwrap();
    let at = b.len() / 3;
    b[at] ^= 0x40;
    std::fs::write(&p, &b).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_analysis"))
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(d.path().join("report"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(
        o.status.code(),
        Some(0),
        "a corrupted run reported as good: {err}"
    );
    assert!(err.contains("run"), "{err}");
}

/// `analysis bench` times the report and the bare polars scan on the same
/// files, each in its own process, and says how they compare.
#[test]
fn bench_compares_report_and_bare_scan() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    make_run(&run, 100_000, &[]);
    // With the project's venv (the test command sources scripts/venv.sh),
    // Python polars is a baseline too.
    let python = std::env::var_os("HSDAQ_VENV").map(|v| PathBuf::from(v).join("bin/python3"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_analysis"));
    c.args(["bench", "--runs", "1", "--json"]).arg(&run);
    if let Some(p) = &python {
        c.arg("--python").arg(p);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = hsdaq_acquire::manifest::Manifest::read(&run).unwrap();
    assert_eq!(
        b["sample_bytes"],
        m.counts.scans_recorded * m.stream.channels as u64 * 2
    );
    for t in ["report", "baseline"] {
        assert!(b[t]["seconds"].as_f64().unwrap() > 0.0, "{b}");
        assert!(b[t]["peak_rss_mib"].as_f64().unwrap() > 1.0, "{b}");
    }
    let ratio = b["time_ratio"].as_f64().unwrap();
    let want =
        b["report"]["seconds"].as_f64().unwrap() / b["baseline"]["seconds"].as_f64().unwrap();
    assert!((ratio - want).abs() < 1e-9, "{b}");
    let py = &b["python_baseline"];
    assert_eq!(py.is_null(), python.is_none(), "{b}");
    let fastest = if py.is_null() {
        b["baseline"]["seconds"].as_f64().unwrap()
    } else {
        assert!(py["seconds"].as_f64().unwrap() > 0.0, "{b}");
        py["seconds"]
            .as_f64()
            .unwrap()
            .min(b["baseline"]["seconds"].as_f64().unwrap())
    };
    let want = b["report"]["seconds"].as_f64().unwrap() / fastest;
    assert!(
        (b["time_ratio_fastest"].as_f64().unwrap() - want).abs() < 1e-9,
        "{b}"
    );
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC now, ns (what NTP slewing moves).
fn realtime_offset_ns() -> i64 {
    let now = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both clocks exist.
        unsafe { libc::clock_gettime(id, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC)
}

#[test]
fn two_runs_started_apart_align_on_one_time_axis() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let before = realtime_offset_ns();
    // Two simulator instances, the second started ~0.7 s after the first.
    std::thread::scope(|s| {
        s.spawn(|| make_run(&a, 100_000, &[]));
        std::thread::sleep(Duration::from_millis(700));
        s.spawn(|| make_run(&b, 200_000, &[]));
    });
    let slew = (realtime_offset_ns() - before).abs() as f64 * 1e-9;
    // The truth: each run's scan 0 on the one CLOCK_MONOTONIC they share.
    let start = |p: &Path| {
        hsdaq_acquire::manifest::Manifest::read(p)
            .unwrap()
            .start_monotonic_ns as f64
            * 1e-9
    };
    let truth = start(&b) - start(&a);
    assert!(truth > 0.5, "{truth}");
    let s = report(&[&a, &b], &d.path().join("report"));
    let label = |p: &Path| {
        let runs = s["runs"].as_array().unwrap();
        let r = runs
            .iter()
            .find(|r| Path::new(r["path"].as_str().unwrap()) == p);
        r.map(|r| r["label"].clone()).expect("run in the summary")
    };
    let al = s["alignment"].as_array().expect("alignment for two runs");
    assert_eq!(al.len(), 2);
    assert_eq!(
        (&al[0]["label"], al[0]["offset_s"].as_f64()),
        (&label(&a), Some(0.0))
    );
    assert_eq!(al[1]["label"], label(&b));
    let got = al[1]["offset_s"].as_f64().unwrap();
    let within = al[1]["read_uncertainty_s"].as_f64().unwrap();
    // Recovered within the stated uncertainty (plus any slew of REALTIME
    // against MONOTONIC while the runs were made, and a microsecond of
    // float rounding).
    assert!(
        (got - truth).abs() <= within + slew + 1e-6,
        "aligned {got} s, truth {truth} s, ± {within} s (slew {slew} s)"
    );
    for r in s["runs"].as_array().unwrap() {
        let tb = &r["timebase"];
        assert!(tb["rows"].as_u64().unwrap() >= 2, "{tb}");
        let mono = tb["rates"][0]["vs_nominal_ppm"].as_f64().unwrap();
        assert!(mono.abs() < 1.0, "the simulator's rate on MONOTONIC: {tb}");
    }
    let page = std::fs::read_to_string(d.path().join("report/index.html")).unwrap();
    assert!(page.contains("On one time axis"), "the fleet page shows it");
}
