//! Damaged runs: every kind of damage to a run folder is caught by
//! `verify`, naming the file or the sample (malformed invocations are
//! walked, with their exit statuses, in `cli_contract.rs`).

use std::path::{Path, PathBuf};

mod common;
use common::{run_bounded as acquire, s};

/// A run of 8 segments (100 ms, rounded to whole blocks), recorded by the
/// real binary.
fn recording(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    let r = acquire(&[
        "record",
        "--rate",
        "200k",
        "--samples",
        "200000",
        "--segment",
        "100ms",
        "--out",
        s(&run),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    run
}

fn segment(run: &Path, i: usize) -> PathBuf {
    run.join(format!("segment-{i:06}.parquet"))
}

/// The last closed segment of a run.
fn last(run: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 6,
        "expected at least 6 segments, got {}",
        v.len()
    );
    v.pop().unwrap()
}

#[test]
fn every_kind_of_damage_is_caught_by_verify() {
    let d = tempfile::tempdir().unwrap();
    let pristine = recording(d.path());
    let ok = acquire(&["verify", s(&pristine)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    type Damage = fn(&Path);
    let cases: &[(&str, Damage, &str)] = &[
        (
            "truncated",
            |r| {
                let p = segment(r, 2);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            "segment-000002.parquet",
        ),
        (
            "zeroed",
            |r| {
                let p = segment(r, 1);
                let n = std::fs::metadata(&p).unwrap().len() as usize;
                std::fs::write(&p, vec![0u8; n]).unwrap();
            },
            "segment-000001.parquet",
        ),
        (
            "flipped",
            |r| {
                let p = segment(r, 3);
                let mut b = std::fs::read(&p).unwrap();
                let at = b.len() / 3;
                b[at] ^= 0x40;
                std::fs::write(&p, &b).unwrap();
            },
            "segment-000003.parquet",
        ),
        (
            "deleted middle",
            |r| std::fs::remove_file(segment(r, 2)).unwrap(),
            "hole",
        ),
        (
            "duplicated",
            |r| {
                std::fs::copy(segment(r, 2), r.join("segment-000002b.parquet")).unwrap();
            },
            "overlap",
        ),
        (
            "garbage manifest",
            |r| std::fs::write(r.join("manifest.json"), "{garbage").unwrap(),
            "manifest.json",
        ),
        (
            "garbage manifest, last segment deleted",
            |r| {
                std::fs::write(r.join("manifest.json"), "{garbage").unwrap();
                std::fs::remove_file(last(r)).unwrap();
            },
            "manifest.json",
        ),
        (
            "missing manifest",
            |r| std::fs::remove_file(r.join("manifest.json")).unwrap(),
            "manifest.json",
        ),
        (
            "last segment deleted",
            |r| std::fs::remove_file(last(r)).unwrap(),
            "is listed in manifest.json",
        ),
    ];
    for (i, (what, damage, needle)) in cases.iter().enumerate() {
        let run = d.path().join(format!("case{i}"));
        copy_dir(&pristine, &run);
        damage(&run);
        let r = acquire(&["verify", s(&run)]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{what}: verify passed: {err}");
        assert!(
            err.contains(needle),
            "{what}: stderr lacks {needle:?}: {err}"
        );
    }
    // A lost manifest with intact segments: the segments alone still verify
    // when the user asks for that explicitly.
    let run = d.path().join("trust");
    copy_dir(&pristine, &run);
    std::fs::remove_file(run.join("manifest.json")).unwrap();
    let r = acquire(&["verify", "--trust-segments", s(&run)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
