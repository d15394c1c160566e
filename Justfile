# hsdaq everyday recipes. `just --list` shows them.
# (`just` itself: `cargo install just`; every recipe is a plain command too.)

# Record ~5 s from the simulator, verify it, render its report.
demo run="runs/demo":
    scripts/demo.sh {{run}}

# Every test (installs what it needs): fmt, clippy, unit/property/model/e2e, reader interop.
test:
    scripts/test.sh

# Record from a device (sim or /dev/hsdaqN) with extra flags.
record out *flags:
    cargo run --release -q -p hsdaq-acquire -- record --out {{out}} {{flags}}

# Recompute every sample of a run from the reference waveform.
verify run:
    cargo run --release -q -p hsdaq-acquire -- verify {{run}}

# Plots, summary.json and index.html for runs, folders or trees of runs.
report out +paths:
    cargo run --release -q -p hsdaq-analysis -- report {{paths}} --out {{out}}

# This machine's limits, the encodings, the pipeline per codec and its efficiency (median of 3).
bench *flags:
    cargo run --release -q -p hsdaq-acquire -- bench {{flags}}

# The headline: 60 s recordings to DIR at rising rates; the highest loss-free one is the answer.
bench-sustain dir="." rates="45M,50M,55M":
    cargo run --release -q -p hsdaq-acquire -- bench --dir {{dir}} --runs 1 --sustain {{rates}} --sustain-seconds 60

# Soak: SECONDS (default 10 min) at half the loss-free rate to the disk; 0 lost, flat memory and descriptors.
soak seconds="600" rate="17M":
    scripts/soak.sh {{seconds}} {{rate}}

# Power cuts in the QEMU guest (ext4 on virtio-blk): N cuts cycling through every segment checkpoint and random moments.
powercut cuts="40":
    POWERCUT_CUTS={{cuts}} hil/run.sh --board qemu-x86_64 powercut

# The peers comparison, full rate ladder (CI runs a reduced one): hsdaq
# (mmap and read()) vs IIO + libiio and Comedi in one QEMU guest; prints
# the table in docs/BENCHMARKS.md.
peers:
    PEERS_FULL=1 hil/run.sh --board qemu-x86_64 peers
    hil/peers-table.sh --markdown target/hil/qemu-x86_64/peers/figures.json

# The DMA source beside the virtual sensor in the arm64 guest (loss-free
# rate, CPU per million scans, in-place read speed, coherent or not);
# figures in target/hil/qemu-arm64/dma-bench/figures.json (table in docs/BENCHMARKS.md).
dma-bench:
    hil/run.sh --board qemu-arm64 dma-bench

# The UDP source vs tcpdump -w over a veth pair between two namespaces
# (root), 60 s per rate; figures in target/net-bench/figures.json.
net-bench:
    cargo build --release -p hsdaq-acquire
    scripts/net-bench.sh target/release/acquire

# What the live view costs the recorder: capacity with and without a page.
bench-live:
    cargo build --release -q -p hsdaq-acquire
    scripts/bench-live.py target/release/acquire

# analysis report vs bare polars scans (the Rust crate and Python polars from the venv) on the same files (records 10 s at 12.5 M scans/s x 4 ch first: 1 GB of samples).
bench-analysis run="target/bench-analysis/run":
    test -f {{run}}/manifest.json || cargo run --release -q -p hsdaq-acquire -- record --rate 12500k --duration 10s --out {{run}}
    bash -c 'source scripts/venv.sh && cargo run --release -q -p hsdaq-analysis -- bench --python "$HSDAQ_VENV/bin/python3" {{run}}'

# List board profiles.
boards:
    cargo run --release -q -p hsdaq-acquire -- boards boards

# Static acquire for x86_64, aarch64, armv7 and a .deb each, in target/dist/ (root: installs cross tools).
dist *flags:
    scripts/dist.sh {{flags}}

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Hardware-in-the-loop: build kernel (cached), module, initramfs; boot QEMU per scenario.
hil *scenarios:
    hil/run.sh --board qemu-x86_64 {{scenarios}}

# The same on QEMU arm64 virt, through a real device-tree node.
hil-arm64 *scenarios:
    hil/run.sh --board qemu-arm64 {{scenarios}}

# Validate the DT binding, its example, the overlays and the .dtsi.
dts-check:
    bash -c 'source scripts/venv.sh && dts/check.sh'

# The test kernel's build folder (built once, cached by input hash).
kernel board="qemu-x86_64":
    hil/kernel.sh {{board}}
