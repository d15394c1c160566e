//! The command-line contract of `acquire/src/exit.rs`, walked for every
//! subcommand: each error path exits with its documented status (2 for the
//! user's mistakes, 1 for the machine's), an explicit flag beats the
//! profile, which beats the default, and one number grammar serves flags and
//! profile keys alike. A malformed invocation is a clean error on stderr:
//! never a panic, exit 101 or a hang.

use std::path::Path;
use std::process::{Command, Output};

const COMPLETE: i32 = 0;
const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const SAMPLES_LOST: i32 = 3;

mod common;
use common::{run_bounded as acquire, s};

/// Asserts a run's exit status, showing its stderr if it differs.
fn expect_status(r: &Output, code: i32) {
    assert_eq!(
        r.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn every_subcommand_exits_with_its_documented_status() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let o = s(&out);
    let held = d.path().join("held");
    std::fs::create_dir_all(&held).unwrap();
    std::fs::write(held.join("manifest.json"), "{}").unwrap();
    let empty = d.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let notparquet = d.path().join("x.parquet");
    std::fs::write(&notparquet, "not parquet").unwrap();
    let zero = d.path().join("zero.parquet");
    std::fs::write(&zero, "").unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["record", "--duration", "0s", "--out", o],
            USAGE,
            "--duration",
        ),
        (
            vec!["record", "--samples", "0", "--out", o],
            USAGE,
            "--samples",
        ),
        (
            vec!["record", "--samples=-5", "--out", o],
            USAGE,
            "--samples",
        ),
        (
            vec!["record", "--samples", "9223372036854775808", "--out", o],
            USAGE,
            "--samples",
        ),
        (
            vec![
                "record",
                "--rate",
                "1M",
                "--duration",
                "18446744073710s",
                "--out",
                o,
            ],
            USAGE,
            "--duration",
        ),
        (
            vec![
                "record",
                "--rate",
                "100M",
                "--segment",
                "200000000000s",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "--segment",
        ),
        (
            vec![
                "record",
                "--device",
                "udp://127.0.0.1:9",
                "--samples",
                "10",
                "--out",
                o,
            ],
            USAGE,
            "needs --framing",
        ),
        (vec!["bench", "--seconds", "nan"], USAGE, "--seconds"),
        (vec!["bench", "--seconds", "inf"], USAGE, "--seconds"),
        (
            vec!["bench", "--paced-seconds", "nan"],
            USAGE,
            "--paced-seconds",
        ),
        (
            vec!["bench", "--dir", "/nonexistent/bench-dir"],
            USAGE,
            "/nonexistent/bench-dir",
        ),
        (vec!["verify", s(&notparquet)], FAILURE, "x.parquet"),
        (vec!["verify", s(&zero)], FAILURE, "zero.parquet"),
        // Usage: clap's own checks and ours give the same status.
        (vec!["frobnicate"], USAGE, "unrecognized subcommand"),
        (vec!["record", "--bogus"], USAGE, "--bogus"),
        (vec!["record", "--rate", "1k"], USAGE, "--out"),
        (
            vec!["record", "--samples", "1.5", "--out", o],
            USAGE,
            "whole number",
        ),
        (vec!["record", "--rate", "50MB", "--out", o], USAGE, "rate"),
        (
            vec!["record", "--channels", "65", "--duration", "1s", "--out", o],
            USAGE,
            "channels",
        ),
        (
            vec![
                "record",
                "--block-bytes",
                "64K",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "block",
        ),
        (
            vec![
                "record",
                "--device",
                "/dev/hsdaq-none",
                "--unpaced",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "--unpaced",
        ),
        (
            vec![
                "record",
                "--iio-trigger",
                "t0",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "--iio-trigger",
        ),
        (
            vec!["record", "--framing", "vrt", "--duration", "1s", "--out", o],
            USAGE,
            "network sources",
        ),
        (
            vec![
                "record",
                "--device",
                "udp://nowhere",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "udp://ADDR:PORT",
        ),
        (
            vec![
                "record",
                "--channels",
                "a,b",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "IIO devices",
        ),
        (
            vec![
                "record",
                "--profile",
                s(&empty),
                "--duration",
                "1s",
                "--out",
                o,
            ],
            USAGE,
            "sets nothing",
        ),
        (
            vec!["record", "--duration", "1s", "--out", s(&held)],
            USAGE,
            "already holds a recording",
        ),
        (
            vec!["record", "--fault", "melt:1@1s", "--out", o],
            USAGE,
            "--fault",
        ),
        (vec!["verify"], USAGE, "<PATH>"),
        (vec!["recover"], USAGE, "<DIR>"),
        (vec!["info", "--rate", "0"], USAGE, "rate"),
        (vec!["info", "--channels", "65"], USAGE, "channels"),
        (vec!["bench", "--channels", "0"], USAGE, "--channels"),
        (vec!["bench", "--runs", "0"], USAGE, "--runs"),
        (vec!["devices", "--bogus"], USAGE, "--bogus"),
        (
            vec![
                "send",
                "--to",
                "127.0.0.1:9",
                "--rate",
                "1k",
                "--datagrams",
                "1",
            ],
            USAGE,
            "--framing",
        ),
        (
            vec![
                "send",
                "--to",
                "192.0.2.1:9",
                "--framing",
                "vrt",
                "--rate",
                "1k",
                "--datagrams",
                "1",
            ],
            USAGE,
            "only to loopback",
        ),
        (
            vec![
                "send",
                "--to",
                "127.0.0.1:9",
                "--framing",
                "vrt",
                "--rate",
                "1k",
                "--datagrams",
                "1",
                "--channels",
                "0",
            ],
            USAGE,
            "--channels",
        ),
        (vec!["completions", "tcsh"], USAGE, "tcsh"),
        (vec!["boards", "--bogus"], USAGE, "--bogus"),
        // Runtime failures: the machine, not the command line.
        (
            vec![
                "record",
                "--device",
                "/dev/hsdaq-none",
                "--duration",
                "1s",
                "--out",
                o,
            ],
            FAILURE,
            "hsdaq-none",
        ),
        (
            vec!["info", "--device", "/dev/hsdaq-none"],
            FAILURE,
            "hsdaq-none",
        ),
        (
            vec!["verify", "/nonexistent/run"],
            FAILURE,
            "/nonexistent/run",
        ),
        (
            vec!["recover", "/nonexistent/run"],
            FAILURE,
            "/nonexistent/run",
        ),
        (
            vec!["boards", "/nonexistent/boards"],
            FAILURE,
            "/nonexistent/boards",
        ),
        (
            vec!["manpage", "--dir", "/proc/no/such"],
            FAILURE,
            "/proc/no/such",
        ),
    ];
    for (args, code, needle) in &cases {
        let r = acquire(args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(*code), "{args:?}: stderr {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    assert!(
        !out.exists(),
        "a refused recording left a run folder behind"
    );
}

#[test]
fn listings_help_version_completions_and_man_pages() {
    let v = acquire(&["--version"]);
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("ring ABI 2."), "--version names the ABI: {v}");
    for sub in [
        "record", "verify", "recover", "info", "bench", "devices", "send", "boards",
    ] {
        let h = acquire(&[sub, "--help"]);
        assert_eq!(h.status.code(), Some(COMPLETE), "{sub} --help");
        let h = String::from_utf8_lossy(&h.stdout);
        assert!(
            h.contains("4  interrupted"),
            "{sub} --help shows the exit statuses"
        );
    }
    let h = String::from_utf8_lossy(&acquire(&["record", "--help"]).stdout).into_owned();
    let testing = h
        .find("Testing (not for real recordings)")
        .expect("a testing heading");
    assert!(h.find("--fault").unwrap() > testing && h.find("--unpaced").unwrap() > testing);
    assert!(h.contains("powercut"), "--fault's help lists every fault");
    let c = acquire(&["completions", "bash"]);
    expect_status(&c, COMPLETE);
    assert!(String::from_utf8_lossy(&c.stdout).contains("--allow-loss"));
    let d = tempfile::tempdir().unwrap();
    let m = acquire(&["manpage", "--dir", s(d.path())]);
    expect_status(&m, COMPLETE);
    for page in ["acquire.1", "acquire-record.1", "acquire-send.1"] {
        let t = std::fs::read_to_string(d.path().join(page)).unwrap();
        assert!(t.starts_with(".ie") || t.contains(".TH"), "{page} is roff");
    }
    // `boards` outside a checkout: HSDAQ_BOARDS, then the installed folders.
    let b = Command::new(env!("CARGO_BIN_EXE_acquire"))
        .args(["boards", "--json"])
        .current_dir(d.path())
        .env(
            "HSDAQ_BOARDS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../boards"),
        )
        .output()
        .unwrap();
    expect_status(&b, COMPLETE);
    let rows: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert!(
        rows.as_array().unwrap().iter().any(|r| r["board"] == "sim"),
        "{rows}"
    );
    let b = Command::new(env!("CARGO_BIN_EXE_acquire"))
        .arg("boards")
        .current_dir(d.path())
        .env_remove("HSDAQ_BOARDS")
        .output()
        .unwrap();
    if !Path::new("/usr/share/hsdaq/boards").is_dir() {
        expect_status(&b, FAILURE);
        assert!(String::from_utf8_lossy(&b.stderr).contains("HSDAQ_BOARDS"));
    }
}

#[test]
fn an_explicit_flag_beats_the_profile_which_beats_the_default() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("p.toml");
    // A profile that names a device that is not here, allows loss and
    // writes its numbers in the flags' grammar.
    std::fs::write(
        &profile,
        "[device]\npath = \"/dev/hsdaq-none\"\nrate-hz = \"20k\"\nchannels = 2\nblock-bytes = \"4KiB\"\n[record]\nallow-loss = true\n",
    )
    .unwrap();
    let p = s(&profile);
    // The profile's device is used when no --device is given...
    let r = acquire(&[
        "record",
        "--profile",
        p,
        "--duration",
        "1s",
        "--out",
        s(&d.path().join("a")),
    ]);
    expect_status(&r, FAILURE);
    assert!(String::from_utf8_lossy(&r.stderr).contains("hsdaq-none"));
    // ...and an explicit --device sim wins over it; the rest comes from the profile.
    let run = d.path().join("b");
    let r = acquire(&[
        "record",
        "--profile",
        p,
        "--device",
        "sim",
        "--samples",
        "30k",
        "--out",
        s(&run),
    ]);
    expect_status(&r, COMPLETE);
    let m = manifest(&run);
    assert_eq!(m["stream"]["rate_hz"], 20_000);
    assert_eq!(m["stream"]["channels"], 2);
    assert_eq!(m["counts"]["scans_recorded"], 30_000, "--samples takes 30k");
    // The profile allows loss; --no-allow-loss takes it back (exit 3), and
    // --allow-loss after it wins again (the last of the pair counts).
    let lossy = |name: &str, extra: &[&str]| {
        let mut a = vec![
            "record",
            "--profile",
            p,
            "--device",
            "sim",
            "--duration",
            "1500ms",
            "--fault",
            "overrun:4@500ms",
            "--out",
        ];
        let run = d.path().join(name);
        let run = run.to_str().unwrap().to_string();
        a.push(&run);
        a.extend_from_slice(extra);
        acquire(&a).status.code()
    };
    assert_eq!(lossy("c", &[]), Some(COMPLETE), "the profile's allow-loss");
    assert_eq!(lossy("d", &["--no-allow-loss"]), Some(SAMPLES_LOST));
    assert_eq!(
        lossy("e", &["--no-allow-loss", "--allow-loss"]),
        Some(COMPLETE)
    );
    // Recorded names are the names typed (the Parquet name is accepted too).
    let run = d.path().join("f");
    let r = acquire(&[
        "record",
        "--samples",
        "1k",
        "--compression",
        "lz4",
        "--out",
        s(&run),
    ]);
    expect_status(&r, COMPLETE);
    assert_eq!(manifest(&run)["compression"], "lz4");
    let run = d.path().join("g");
    let r = acquire(&[
        "record",
        "--samples",
        "1k",
        "--compression",
        "lz4_raw",
        "--encoding",
        "byte_stream_split",
        "--out",
        s(&run),
    ]);
    expect_status(&r, COMPLETE);
    assert_eq!(manifest(&run)["channel_encoding"], "byte_stream_split");
}
