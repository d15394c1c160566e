#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/property/model/end-to-end tests,
# and the reader-interoperability check. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== readers: pyarrow, DuckDB, polars open a recording as it is"
cargo build --release -p hsdaq-acquire
python3 tests/interop.py target/release/acquire
