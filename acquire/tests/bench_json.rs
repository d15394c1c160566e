//! `acquire bench --json` prints one object with the limits, the encoding
//! comparison, the stages and the efficiency per codec
//! (docs/BENCHMARKS.md). A short run checks the shape and that every figure was
//! measured; the figures themselves are read by people, not asserted.

use std::process::Command;

#[test]
fn bench_json_has_limits_stages_and_efficiency() {
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_acquire"))
        .args(["bench", "--json", "--seconds", "0.3", "--runs", "1"])
        .args([
            "--disk-bytes",
            "8MiB",
            "--paced-rate",
            "1M",
            "--paced-seconds",
            "0.5",
        ])
        .args(["--tmpfs", "none", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    let positive = |x: &serde_json::Value| x.as_f64().is_some_and(|f| f > 0.0);
    let l = &v["limits"];
    assert!(
        positive(&l["memcpy"]) && positive(&l["disk_write"]) && positive(&l["disk_write_buffered"]),
        "{l}"
    );
    let codecs: Vec<&str> = l["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["codec"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["none", "lz4_raw", "zstd(1)"]);
    for c in l["codecs"].as_array().unwrap() {
        assert!(
            positive(&c["single_core"]) && positive(&c["all_cores"]) && positive(&c["size_ratio"]),
            "{c}"
        );
    }
    // Both channel encodings × 4 codecs × 2 signals, and the parquet
    // crate's own writer on the same two signals (DELTA, no codec).
    let enc = v["encodings"].as_array().unwrap();
    assert_eq!(enc.len(), 18);
    let stock: Vec<_> = enc
        .iter()
        .filter(|e| e["encoding"] == hsdaq_acquire::bench::STOCK_WRITER)
        .collect();
    assert_eq!(stock.len(), 2);
    for s in stock {
        // The same encoding of the same values: the same size within the
        // file's framing, so the speed comparison is like for like.
        let ours = enc
            .iter()
            .find(|e| {
                e["encoding"] == "delta_binary_packed"
                    && e["codec"] == "none"
                    && e["signal"] == s["signal"]
            })
            .unwrap();
        let (a, b) = (
            ours["bits_per_value"].as_f64().unwrap(),
            s["bits_per_value"].as_f64().unwrap(),
        );
        assert!((a - b).abs() / a < 0.01, "{a} vs {b} bits/value");
    }
    assert!(enc
        .iter()
        .all(|e| positive(&e["bits_per_value"]) && positive(&e["mb_per_s"])));
    let stages = v["stages"].as_array().unwrap();
    let of_kind = |k: &str, codec: Option<&str>| {
        stages
            .iter()
            .find(|s| s["kind"] == k && codec.is_none_or(|c| s["codec"] == c))
            .unwrap_or_else(|| panic!("no stage {k} {codec:?}"))
    };
    for codec in codecs {
        let s = of_kind("replay-disk", Some(codec));
        assert!(positive(&s["mb_per_s"]) && positive(&s["rss_mib"]), "{s}");
        assert!(positive(&s["cpu_ns_per_sample"]), "{s}");
    }
    for k in ["drain", "drain-tap", "drain-scope"] {
        let s = of_kind(k, None);
        assert!(
            positive(&s["mb_per_s"]) && positive(&s["cpu_ns_per_sample"]),
            "{s}"
        );
    }
    // Paced: its loss is a figure (a loaded machine may lose even at 1 M
    // scans/s); what is checked is that it is counted, and the latency.
    let paced = of_kind("paced", None);
    assert!(paced["lost"].as_u64().is_some(), "{paced}");
    assert!(positive(&paced["latency_p99_us"]), "{paced}");
    let eff = v["efficiency"].as_array().unwrap();
    assert_eq!(eff.len(), 3);
    assert!(eff.iter().all(|e| positive(&e["disk"])));
    let targets = v["targets"].as_array().unwrap();
    assert!(targets
        .iter()
        .any(|t| t["name"].as_str().unwrap().contains("latency p99")));
    assert!(targets
        .iter()
        .any(|t| t["name"].as_str().unwrap().starts_with("live view:")));
    assert!(targets
        .iter()
        .all(|t| ["met", "missed", "limit"].contains(&t["status"].as_str().unwrap())));
}
