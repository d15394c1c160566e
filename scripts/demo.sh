#!/usr/bin/env bash
# Quick start: record ~5 s from the simulator, verify it, render its report.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/demo-$(date +%Y%m%d-%H%M%S)}
scripts/setup.sh >/dev/null
echo "demo: building acquire and analysis (release; the first build takes several minutes)" >&2
cargo build --release -q -p hsdaq-acquire -p hsdaq-analysis
target/release/acquire record --device sim --rate 1M --channels 4 --format i16 --duration 5s --out "$run"
target/release/acquire verify "$run"
target/release/analysis report "$run" --out "$run/report"
echo "demo: open $run/report/index.html"
