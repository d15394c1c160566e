//! A slow stream is followed closely: at 1 k scans/s the default block
//! (`record::default_block_bytes`) spans tens of milliseconds, not seconds,
//! so the live view's counters and its signal, and the once-a-second
//! `health.csv` the progress line reads from, move at least once a second.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_1khz_recording_shows_progress_every_second() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_acquire"))
        .args([
            "record",
            "--rate",
            "1k",
            "--channels",
            "4",
            "--duration",
            "5s",
            "--live",
            "--out",
        ])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if let Some(u) = line.split("live view at ").nth(1) {
            url = Some(u.trim().to_string());
            break;
        }
        line.clear();
    }
    let url = url.expect("acquire prints the live view's URL");
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let ws_url = url
        .replacen("http://", "ws://", 1)
        .replacen("/?", "/ws?", 1);
    let (mut ws, _) =
        tungstenite::connect(ws_url.as_str()).expect("the live view accepts the token");
    // (when, scans drained, last envelope time) of every frame for 3.5 s.
    let start = Instant::now();
    let mut seen: Vec<(f64, u64, f64)> = Vec::new();
    while start.elapsed() < Duration::from_millis(3500) {
        let Ok(msg) = ws.read() else { break };
        let Ok(text) = msg.to_text() else { continue };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        if v["type"] != "frame" {
            continue;
        }
        let t_s = v["envelope"]["t_s"].as_f64().unwrap_or(f64::NAN);
        seen.push((
            start.elapsed().as_secs_f64(),
            v["stats"]["scans"].as_u64().unwrap(),
            t_s,
        ));
    }
    drop(ws);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(seen.len() > 30, "frames arrive: {}", seen.len());
    // In every second after the first, the drained count and the signal's
    // newest point advance.
    for w in 1..3 {
        let in_w: Vec<_> = seen
            .iter()
            .filter(|f| f.0 >= w as f64 && f.0 < (w + 1) as f64)
            .collect();
        let before = seen
            .iter()
            .filter(|f| f.0 < w as f64)
            .map(|f| f.1)
            .max()
            .unwrap_or(0);
        let scans = in_w.iter().map(|f| f.1).max().unwrap_or(0);
        assert!(
            scans > before + 500,
            "second {w}: scans {before} -> {scans}"
        );
        let envelopes = in_w.iter().filter(|f| f.2.is_finite()).count();
        assert!(envelopes > 5, "second {w}: {envelopes} frames carry signal");
    }
    // health.csv: a row a second, its scan count rising every row.
    let csv = std::fs::read_to_string(run.join("health.csv")).unwrap();
    let header: Vec<_> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "scans").unwrap();
    let scans: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    assert!(scans.len() >= 4, "{csv}");
    for w in scans.windows(2).skip(1) {
        assert!(
            w[1] > w[0] + 500,
            "health.csv scans rise every second: {scans:?}"
        );
    }
}
