#!/usr/bin/env bash
# Static `acquire` binaries for the boards' targets, and a Debian package
# for each, in target/dist/:
#   acquire-VERSION-{x86_64,aarch64,armv7}-linux        (static, stripped)
#   hsdaq-acquire_VERSION_{amd64,arm64,armhf}.deb       (binary, profiles,
#       man pages, completions, the hsdaq-record@.service template)
# acquire needs no polars and no shared library: copy one file to a board.
#
#   scripts/dist.sh           build everything (installs the cross tools)
#   scripts/dist.sh --check   and check it: each binary's --version runs
#                             (x86_64 natively, the others under qemu-user),
#                             the amd64 package installs, its unit passes
#                             systemd-analyze verify, `boards` finds the
#                             installed profiles, and it removes cleanly
#
# x86_64 builds with rustup's toolchain; aarch64 and armv7 with Debian's
# rustc-web and its cross std (rustup cannot add targets here). Both target
# folders live outside the repository ($HSDAQ_CACHE/dist-target and
# cross-target), so a clean clone rebuilds only what changed; the arm64 HIL
# build (hil/lib.sh) runs the same aarch64 command, so the binary the arm64
# guest tests is the one shipped here. Root, Debian bookworm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source hil/versions.sh
log() { echo "dist: $*" >&2; }
check=0
[[ ${1:-} == --check ]] && check=1

source scripts/apt.sh
apt_arch arm64 armhf
# Debian's rustc-web (the cross std must match it exactly) and its cross std;
# `file` for the static check.
apt_need "rustc-web=$RUSTC_WEB_VERSION" file jq gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    "libstd-rust-web-dev:arm64=$RUSTC_WEB_VERSION" \
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross "libstd-rust-web-dev:armhf=$RUSTC_WEB_VERSION"
if ((check)); then
    # bookworm-backports' qemu-user matches the QEMU the HIL installs from
    # there (hil/setup-toolchain.sh adds the source); else bookworm's.
    from=()
    sources=$(apt-cache policy 2>/dev/null) # not piped into grep -q: pipefail
    grep -q bookworm-backports <<<"$sources" && from=(-t bookworm-backports)
    apt_need "${from[@]}" qemu-user
fi

VERSION=$(cargo metadata --no-deps --format-version 1 |
    jq -r '.packages[] | select(.name == "hsdaq-acquire") | .version')
OUT=target/dist
rm -rf "$OUT" && mkdir -p "$OUT"
# The x86_64 build's own target folder lives outside the repository (keyed
# by nothing but cargo's own fingerprints), so repeated runs rebuild only
# what changed.
X86_DIR=${HSDAQ_CACHE:-/var/cache/hsdaq}/dist-target
CROSS_DIR=${HSDAQ_CACHE:-/var/cache/hsdaq}/cross-target

# build TRIPLE NAME: builds, and sets BUILT to the binary's path.
build() {
    local triple=$1 name=$2 t0=$SECONDS
    log "cargo build --profile dist --target $triple -p hsdaq-acquire (static)"
    case $triple in
    x86_64-*)
        RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$X86_DIR \
            cargo build -q --profile dist --target "$triple" -p hsdaq-acquire >&2
        BUILT=$X86_DIR/$triple/dist/acquire
        ;;
    *)
        local cc
        cc=$([[ $triple == aarch64-* ]] && echo aarch64-linux-gnu-gcc || echo arm-linux-gnueabihf-gcc)
        local var
        var=CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER
        # aarch64 with the guest tools too: exactly hil/lib.sh's build.
        local pkgs=(-p hsdaq-acquire)
        [[ $triple == aarch64-* ]] && pkgs+=(-p hsdaq-hil-guest)
        env RUSTC=/usr/bin/rustc RUSTFLAGS="-C target-feature=+crt-static" \
            CARGO_TARGET_DIR="$CROSS_DIR" "$var=$cc" \
            cargo build -q --profile dist --target "$triple" "${pkgs[@]}" >&2
        BUILT=$CROSS_DIR/$triple/dist/acquire
        ;;
    esac
    log "$name built in $((SECONDS - t0)) s"
}

# Man pages and completions come from the clap definitions, made once by
# the host build (they are the same for every architecture).
# build sets BUILT (never called inside $(...), where bash would ignore a
# failed cargo build and hand on the previous, stale binary).
build x86_64-unknown-linux-gnu x86_64
X86_BIN=$BUILT
SHARE=$OUT/share
mkdir -p "$SHARE/man" "$SHARE/completions"
"$X86_BIN" manpage --dir "$SHARE/man" >/dev/null
gzip -9n "$SHARE"/man/*.1
"$X86_BIN" completions bash >"$SHARE/completions/acquire"
"$X86_BIN" completions zsh >"$SHARE/completions/_acquire"
"$X86_BIN" completions fish >"$SHARE/completions/acquire.fish"

# package BIN DEBARCH: a .deb with the binary, profiles, docs and the unit.
package() {
    local bin=$1 arch=$2 pkg
    pkg=$(mktemp -d)
    install -Dm755 "$bin" "$pkg/usr/bin/acquire"
    for b in boards/*/acquire.toml; do
        install -Dm644 "$b" "$pkg/usr/share/hsdaq/$b"
    done
    install -Dm644 -t "$pkg/usr/share/man/man1" "$SHARE"/man/*.1.gz
    install -Dm644 "$SHARE/completions/acquire" "$pkg/usr/share/bash-completion/completions/acquire"
    install -Dm644 "$SHARE/completions/_acquire" "$pkg/usr/share/zsh/vendor-completions/_acquire"
    install -Dm644 "$SHARE/completions/acquire.fish" "$pkg/usr/share/fish/vendor_completions.d/acquire.fish"
    install -Dm644 dist/hsdaq-record@.service "$pkg/lib/systemd/system/hsdaq-record@.service"
    install -Dm644 README.md "$pkg/usr/share/doc/hsdaq-acquire/README.md"
    mkdir -p "$pkg/DEBIAN"
    cat >"$pkg/DEBIAN/control" <<CONTROL
Package: hsdaq-acquire
Version: $VERSION
Architecture: $arch
Maintainer: hsdaq developers <hsdaq@localhost>
Section: science
Priority: optional
Installed-Size: $(du -sk "$pkg/usr" "$pkg/lib" | awk '{s += $1} END {print s}')
Homepage: https://github.com/hsdaq/hsdaq
Description: record high-speed sensor streams to Parquet
 acquire drains the hsdaq driver's mmap'd ring (or an IIO device, a VITA 49
 or sequenced-UDP digitizer, or its built-in simulator) into Parquet
 segments, counting every lost sample. Static binary; board profiles in
 /usr/share/hsdaq/boards; hsdaq-record@PROFILE.service records unattended.
CONTROL
    dpkg-deb --root-owner-group -Zxz --build "$pkg" "$OUT/hsdaq-acquire_${VERSION}_$arch.deb" >/dev/null
    rm -rf "$pkg"
}

for t in x86_64-unknown-linux-gnu:x86_64:amd64 aarch64-unknown-linux-gnu:aarch64:arm64 \
    armv7-unknown-linux-gnueabihf:armv7:armhf; do
    IFS=: read -r triple name arch <<<"$t"
    if [[ $name == x86_64 ]]; then
        bin=$X86_BIN
    else
        build "$triple" "$name"
        bin=$BUILT
    fi
    cp "$bin" "$OUT/acquire-$VERSION-$name-linux"
    package "$OUT/acquire-$VERSION-$name-linux" "$arch"
done
ls -l "$OUT"/acquire-* "$OUT"/*.deb >&2
((check)) || exit 0

fail() { echo "dist: FAILED: $*" >&2; exit 1; }
for name in x86_64 aarch64 armv7; do
    bin=$OUT/acquire-$VERSION-$name-linux
    kind=$(file "$bin")
    grep -q "statically linked\|static-pie linked" <<<"$kind" || fail "$bin is not static: $kind"
    case $name in
    x86_64) v=$("$bin" --version) ;;
    aarch64) v=$(qemu-aarch64 "$bin" --version) ;;
    armv7) v=$(qemu-arm "$bin" --version) ;;
    esac
    [[ $v == "acquire $VERSION (ring ABI "* ]] || fail "$name --version printed: $v"
    log "ok: $name: $v"
done
# The simulator records and verifies under qemu-user too (a board's first run).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --allow-loss: a loaded machine may emulate too slowly for 20k scans/s;
# a loss is recorded and verified like any other, and is not this check's subject.
qemu-arm "$OUT/acquire-$VERSION-armv7-linux" record --rate 20k --duration 1s --allow-loss \
    --out "$tmp/armv7" --json >"$tmp/armv7.json" ||
    fail "the armv7 binary could not record: $(cat "$tmp/armv7.json")"
qemu-arm "$OUT/acquire-$VERSION-armv7-linux" verify "$tmp/armv7" >/dev/null || fail "the armv7 binary's recording does not verify"
log "ok: armv7 records 1 s from the simulator and verifies it (qemu-arm)"

installed hsdaq-acquire && fail "hsdaq-acquire is already installed on this machine: the check installs and removes it"
# From here on the package is ours: removed however the check ends.
trap 'rm -rf "$tmp"; dpkg --purge hsdaq-acquire >/dev/null 2>&1 || true' EXIT
dpkg -i "$OUT/hsdaq-acquire_${VERSION}_amd64.deb" >/dev/null
[[ $(/usr/bin/acquire --version) == "acquire $VERSION"* ]] || fail "installed acquire --version"
(cd / && env -u HSDAQ_BOARDS /usr/bin/acquire boards --json) | jq -e 'map(.board) | index("sim")' >/dev/null ||
    fail "the installed acquire does not find the installed profiles"
man -w acquire-record >/dev/null 2>&1 || [[ -f /usr/share/man/man1/acquire-record.1.gz ]] || fail "no man page"
# The template as an instance, checked as systemd would load it.
systemd-analyze verify /lib/systemd/system/hsdaq-record@sim.service >"$tmp/verify.txt" 2>&1 ||
    fail "systemd-analyze verify failed: $(cat "$tmp/verify.txt")"
[[ -z $(grep -v "^$" "$tmp/verify.txt") ]] || fail "systemd-analyze verify reported: $(cat "$tmp/verify.txt")"
log "ok: the amd64 package installs, finds its profiles, and its unit verifies"
dpkg --purge hsdaq-acquire >/dev/null
[[ ! -e /usr/bin/acquire ]] || fail "dpkg --purge left /usr/bin/acquire"
log "ok: removed cleanly"
