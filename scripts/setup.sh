#!/usr/bin/env bash
# Installs what the user-space build and tests need, idempotently.
# Debian bookworm, root. Safe to run again: every step checks first.
# The quick start needs far less: scripts/demo.sh checks for its own two
# things (a Rust toolchain, one font) and installs nothing else.
set -euo pipefail

log() { echo "setup: $*" >&2; }

source "$(dirname "$0")/apt.sh"

# Plot labels need one TrueType font (analysis loads it at run time).
apt_need fonts-dejavu-core
# The network-source test (tests/netns.sh) makes namespaces with ip and
# reads manifests with jq; the network benchmark compares with tcpdump.
apt_need iproute2 jq tcpdump
# The HIL guest tools link comedilib (the peers comparison's Comedi reader,
# hil/guest/src/comedi.rs); the workspace build and clippy need it.
apt_need libcomedi-dev

# rustfmt and clippy come with the rustup toolchain; check rather than assume.
cargo fmt --version >/dev/null 2>&1 || { log "cargo fmt missing: install the rustfmt component"; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { log "cargo clippy missing: install the clippy component"; exit 1; }

# The interoperability test opens recordings with pyarrow, DuckDB, Python
# polars and Spark (local mode, parquet-java), the way analysts will, and
# checks what fastparquet can and cannot read (docs/RECORDINGS.md reader matrix). Their
# packages go into the project's virtual environment (scripts/venv.sh), never
# into the system interpreter, which Debian marks externally managed.
apt_need python3-venv
source "$(dirname "$0")/venv.sh"
log "python packages in $HSDAQ_VENV"
# Spark needs a Java runtime (17 here).
command -v java >/dev/null || apt_need openjdk-17-jre-headless
# The report page is checked in a real browser (tests/browser.py).
apt_need chromium
log "user-space prerequisites present"
