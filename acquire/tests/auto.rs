//! `--compression auto` against a throttled disk (`--fault slow-disk`):
//! the same stream that loses samples with a fixed cheap codec is recorded
//! without loss, the codec climbing as the backlog demands, every change
//! in the manifest; and every loss of the fixed run is accounted for.

use std::path::Path;
use std::process::Command;

use hsdaq_acquire::manifest::Manifest;
use hsdaq_acquire::verify::verify;

const SCANS: u64 = 10_000_000; // 5 s at 2 M scans/s

fn record(dir: &Path, codec: &str) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_acquire"))
        .args(["record", "--rate", "2M", "--samples", &SCANS.to_string()])
        // BYTE_STREAM_SPLIT: 32 bits per stored value uncompressed, ~11
        // with zstd, so the codec decides whether a 12 MiB/s disk keeps up
        // with 16 MB/s of samples; a small ring makes a backlog bite soon.
        .args([
            "--encoding",
            "bss",
            "--segment",
            "100ms",
            "--buffer-bytes",
            "16MiB",
        ])
        .args(["--allow-loss", "--json"])
        .args([
            "--fault",
            "slow-disk:12MiB@0s",
            "--compression",
            codec,
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn auto_keeps_up_with_a_slow_disk_where_a_fixed_codec_loses() {
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    let fixed = d.path().join("none");
    let s = record(&fixed, "none");
    let lost = s["scans_lost"].as_u64().unwrap();
    assert!(lost > 0, "the throttle must bite a fixed `none`: {s}");
    let m = Manifest::read(&fixed).unwrap();
    assert_eq!(
        m.counts.scans_recorded + m.counts.scans_lost + m.counts.scans_lost_at_end,
        SCANS,
        "every scan asked for is recorded or counted lost"
    );
    assert!(m.device_counters.dropped_scans >= lost);
    assert!(
        verify(&fixed, false).unwrap().ok(),
        "the lossy run still verifies"
    );

    let auto = d.path().join("auto");
    let s = record(&auto, "auto");
    assert_eq!(s["scans_lost"].as_u64(), Some(0), "{s}");
    let m = Manifest::read(&auto).unwrap();
    assert_eq!(m.compression, "auto");
    assert_eq!(m.counts.scans_recorded, SCANS);
    assert_eq!(m.device_counters.dropped_scans, 0);
    let codecs: Vec<&str> = m
        .compression_changes
        .iter()
        .map(|c| c.codec.as_str())
        .collect();
    assert_eq!(
        codecs.first(),
        Some(&"none"),
        "auto starts cheap: {codecs:?}"
    );
    assert!(
        codecs.iter().any(|c| c.starts_with("zstd")),
        "a disk that cannot take `none` makes auto compress: {codecs:?}"
    );
    assert!(
        m.compression_changes
            .windows(2)
            .all(|w| w[0].at_seq < w[1].at_seq && w[0].codec != w[1].codec),
        "changes are ordered and each is a change: {:?}",
        m.compression_changes
    );
    assert!(verify(&auto, false).unwrap().ok());
}
