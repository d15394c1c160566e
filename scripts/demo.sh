#!/usr/bin/env bash
# Quick start: record ~5 s from the simulator, verify it, render its report.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/demo-$(date +%Y%m%d-%H%M%S)}
scripts/setup.sh >/dev/null
# The dev profile optimises dependencies (see Cargo.toml) and shares its
# build with `scripts/test.sh`; use --release builds for long recordings.
echo "demo: building acquire and analysis (the first build takes ~15 minutes on 2 cores)" >&2
cargo build -q -p hsdaq-acquire -p hsdaq-analysis
bin=target/debug
$bin/acquire record --device sim --rate 1M --channels 4 --format i16 --duration 5s --out "$run"
$bin/acquire verify "$run"
$bin/analysis report "$run" --out "$run/report"
echo "demo: open $run/report/index.html"
