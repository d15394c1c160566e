#!/usr/bin/env bash
# Installs what the user-space build and tests need, idempotently.
# Debian bookworm, root. Safe to run again: every step checks first.
set -euo pipefail

log() { echo "setup: $*" >&2; }

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Plot labels need one TrueType font (analysis loads it at run time).
apt_install fonts-dejavu-core
# The network-source test (tests/netns.sh) makes namespaces with ip and
# reads manifests with jq; the network benchmark compares with tcpdump.
apt_install iproute2 jq tcpdump
# The HIL guest tools link comedilib (the peers comparison's Comedi reader,
# hil/guest/src/comedi.rs); the workspace build and clippy need it.
apt_install libcomedi-dev

# rustfmt and clippy come with the rustup toolchain; check rather than assume.
cargo fmt --version >/dev/null 2>&1 || { log "cargo fmt missing: install the rustfmt component"; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { log "cargo clippy missing: install the clippy component"; exit 1; }

# The interoperability test opens recordings with pyarrow, DuckDB, Python
# polars and Spark (local mode, parquet-java), the way analysts will, and
# checks what fastparquet can and cannot read (README reader matrix).
if ! python3 -c 'import pyarrow, duckdb, polars' 2>/dev/null; then
    log "pip install pyarrow duckdb polars"
    python3 -m pip install -q --disable-pip-version-check pyarrow duckdb polars
fi
if ! python3 -c 'import pyspark, fastparquet' 2>/dev/null; then
    log "pip install pyspark==4.3.0 fastparquet==2026.9.0"
    python3 -m pip install -q --disable-pip-version-check pyspark==4.3.0 fastparquet==2026.9.0
fi
# Spark needs a Java runtime (17 here).
command -v java >/dev/null || apt_install openjdk-17-jre-headless
# The report page is checked in a real browser (tests/browser.py).
apt_install chromium
log "user-space prerequisites present"
