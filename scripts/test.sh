#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/property/model/end-to-end tests,
# the reader-interoperability check, and the QEMU hardware-in-the-loop
# scenarios (real kernel, real module). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
stage() { echo "== [$((SECONDS - start))s] $*"; }

stage "setup: user-space and kernel toolchains"
scripts/setup.sh
hil/setup-toolchain.sh
stage "cargo fmt --check (workspace and module/)"
cargo fmt --all -- --check
rustfmt --edition 2021 --check module/hsdaq.rs
stage "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
stage "cargo test"
cargo test --workspace
stage "dts: binding schema, example, overlays and .dtsi validate"
dts/check.sh
stage "hil: kernel (cached by input hash), module, QEMU x86_64 scenarios"
hil/run.sh --board qemu-x86_64
stage "hil: arm64 kernel (cached), cross-built module and acquire, QEMU virt device-tree scenarios"
hil/run.sh --board qemu-arm64
stage "readers: pyarrow, DuckDB, polars open a recording as it is"
python3 tests/interop.py target/debug/acquire
stage "all tests passed"
