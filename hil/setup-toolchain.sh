#!/usr/bin/env bash
# Installs what the kernel/QEMU hardware-in-the-loop runs need, idempotently.
# Debian bookworm, root. Versions are pinned: the kernel's internal Rust API
# changes with every release, so an unpinned upgrade would break module/
# silently. These pins are also part of the kernel cache key (hil/kernel.sh).
set -euo pipefail
source "$(dirname "$0")/versions.sh"

log() { echo "hil-setup: $*" >&2; }

# Backports carry linux-source-7.3 (trixie) and QEMU 10 (bookworm). They have
# apt priority 100, so nothing else is pulled from them unless asked for.
BACKPORTS=/etc/apt/sources.list.d/hsdaq-backports.sources
if [[ ! -f $BACKPORTS ]]; then
    log "adding $BACKPORTS (trixie-backports, bookworm-backports)"
    cat >"$BACKPORTS" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
fi

source "$(dirname "$0")/../scripts/apt.sh"

apt_need "linux-source-7.3=$LINUX_SOURCE_VERSION" \
    "rustc-web=$RUSTC_WEB_VERSION" "rust-web-src=$RUSTC_WEB_VERSION"
apt_need flex bison bc libelf-dev libssl-dev cpio kmod busybox-static jq \
    libclang-19-dev clang-19 acpica-tools device-tree-compiler xz-utils \
    e2fsprogs procps
# The peers comparison (hil/scenarios/peers.sh) runs libiio's own reader in
# the guest (copied into the initramfs with its libraries).
apt_need libiio-utils
# The debug kernel (KASAN with Rust) is built by clang, linked by lld.
apt_need lld-19 llvm-19
# QEMU must come from bookworm-backports: the machine's qemu-utils 10 conflicts with 7.2.
apt_need -t bookworm-backports qemu-system-x86

# arm64 guests: cross compilers for the kernel (gcc) and for acquire (Debian's
# std for rustc-web, multi-arch), QEMU's arm system emulator (backports, as
# above) and the arm64 busybox-static package (downloaded, not installed).
apt_arch arm64
apt_need gcc-aarch64-linux-gnu libc6-dev-arm64-cross "libstd-rust-web-dev:arm64=$RUSTC_WEB_VERSION"
apt_need -t bookworm-backports qemu-system-arm

# Binding schema tools (dt-doc-validate, dt-validate, dt-extract-example),
# in the project's virtual environment like every test's Python package.
source "$(dirname "$0")/../scripts/venv.sh"
have=$(python3 -c 'import importlib.metadata as m; print(m.version("dtschema"))' 2>/dev/null || true)
if [[ $have != "$DTSCHEMA_VERSION" ]]; then
    log "pip install dtschema==$DTSCHEMA_VERSION into $HSDAQ_VENV"
    python3 -m pip install -q --disable-pip-version-check "dtschema==$DTSCHEMA_VERSION"
fi

# Debian's bindgen (0.60) is older than 7.3 needs (>= 0.71.1).
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
if [[ "$("$HOME/.cargo/bin/bindgen" --version 2>/dev/null)" != "bindgen $BINDGEN_VERSION" ]]; then
    log "cargo install bindgen-cli $BINDGEN_VERSION"
    cargo install -q bindgen-cli --version "$BINDGEN_VERSION" --locked
fi

# The static musl-free acquire for the guest links glibc statically.
dpkg-query -W libc6-dev >/dev/null
log "kernel toolchain present: $(/usr/bin/rustc --version), $("$HOME/.cargo/bin/bindgen" --version), $(qemu-system-x86_64 --version | head -1)"
