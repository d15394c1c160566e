#!/usr/bin/env python3
"""The fleet summary on Spark equals `analysis report`'s, run for run.

Records a hive tree of three runs (two boards, one run with injected
losses, one with an i32 profile-less stream), summarises it with
`analysis report --json` and with `spark-submit analysis/spark/summary.py`
in local mode, and compares every field the Spark job writes.

    tests/spark_summary.py target/debug/acquire target/debug/analysis
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"spark_summary: {' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def close(a, b, what, failures):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        ok = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    else:
        ok = a == b
    if not ok:
        failures.append(f"{what}: analysis {a!r}, spark {b!r}")


def main():
    acquire, analysis = sys.argv[1], sys.argv[2]
    tmp = Path(tempfile.mkdtemp(prefix="hsdaq-spark-"))
    tree = tmp / "fleet"
    runs = [
        ("board=lab-a/date=2026-11-27/run-1", ["--rate", "200k", "--samples", "300000"]),
        ("board=lab-a/date=2026-11-28/run-2",
         ["--rate", "200k", "--samples", "300000", "--fault", "overrun:3@500ms", "--allow-loss"]),
        ("board=lab-b/date=2026-11-28/run-1",
         ["--rate", "50k", "--channels", "3", "--format", "i32", "--samples", "120000"]),
    ]
    for rel, flags in runs:
        run([acquire, "record", "--out", str(tree / rel), "--segment", "1s", *flags])
    out = tmp / "report"
    ours = json.loads(run([analysis, "report", str(tree), "--out", str(out), "--json"]))
    theirs_path = tmp / "spark.json"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    run(["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         str(ROOT / "analysis/spark/summary.py"), str(tree), str(theirs_path)], env=env)
    theirs = json.loads(theirs_path.read_text())
    by_path = {str(Path(r["path"].removeprefix("file:")).resolve()): r for r in theirs["runs"]}
    failures = []
    if len(theirs["runs"]) != len(ours["runs"]):
        failures.append(f"{len(ours['runs'])} runs in analysis, {len(theirs['runs'])} in spark")
    for a in ours["runs"]:
        key = str(Path(a["path"]).resolve())
        b = by_path.get(key)
        if b is None:
            failures.append(f"spark has no run {key}")
            continue
        for f in ("board", "status", "start", "rate_hz", "format", "scans", "seq_range", "seconds",
                  "scans_lost", "gaps", "loss_ratio", "mean_mb_per_s"):
            if f == "seq_range":
                close(list(a[f]), list(b[f]), f"{key} {f}", failures)
            else:
                close(a[f], b[f], f"{key} {f}", failures)
        for ca, cb in zip(a["channels"], b["channels"]):
            for f in ("name", "unit", "min", "max", "mean", "std"):
                # std: analysis pools exact integer sums per bin, Spark's
                # stddev_pop sums in f64; they agree to rounding.
                if f == "std":
                    ok = math.isclose(ca[f], cb[f], rel_tol=1e-6)
                    if not ok:
                        failures.append(f"{key} {ca['name']} std: analysis {ca[f]}, spark {cb[f]}")
                else:
                    close(ca[f], cb[f], f"{key} {ca['name']} {f}", failures)
    lossy = [r for r in ours["runs"] if r["scans_lost"] > 0]
    if len(lossy) != 1:
        failures.append(f"expected one run with losses, analysis found {len(lossy)}")
    for f in failures:
        print(f"spark_summary: FAILED: {f}", file=sys.stderr)
    print(f"spark_summary: {len(ours['runs'])} runs, every field equal in analysis and Spark"
          if not failures else f"spark_summary: {len(failures)} differences")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
