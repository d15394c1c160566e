#!/usr/bin/env bash
# Quick start: record ~5 s from the simulator, verify it, render its report.
# Needs a Rust toolchain (rustup's), a C compiler and linker (Rust links
# with `cc`; zstd's C sources build with it) and one TrueType font for the
# plot labels. Run as root on Debian, it apt-installs the last two if they
# are missing (gcc, fonts-dejavu-core) and nothing else; otherwise it names
# them. It never touches the system Python.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/demo-$(date +%Y%m%d-%H%M%S)}
command -v cargo >/dev/null || {
    echo "demo: cargo not found: install Rust with rustup (https://rustup.rs)" >&2
    exit 1
}
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
[[ -n ${HSDAQ_FONT:-} || -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "demo: apt-get install ${missing[*]} (the linker; the report's plot labels)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "demo: missing: ${missing[*]}: sudo apt install ${missing[*]}" >&2
        echo "      (the font may instead be named by HSDAQ_FONT=/path/to/font.ttf)" >&2
        exit 1
    fi
fi
# The dev profile optimises dependencies (see Cargo.toml) and shares its
# build with `scripts/test.sh`; use --release builds for long recordings.
echo "demo: building acquire and analysis (the first build takes ~15 minutes on 2 cores)" >&2
cargo build -q -p hsdaq-acquire -p hsdaq-analysis
bin=${CARGO_TARGET_DIR:-target}/debug
$bin/acquire record --device sim --rate 1M --channels 4 --format i16 --duration 5s --out "$run"
$bin/acquire verify "$run"
$bin/analysis report "$run" --out "$run/report"
echo "demo: open $run/report/index.html"
