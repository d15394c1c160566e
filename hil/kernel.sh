#!/usr/bin/env bash
# Builds (or reuses) the test kernel for a board and prints its build folder.
#
#   hil/kernel.sh qemu-x86_64        -> $HSDAQ_CACHE/kernel/qemu-x86_64-<key>
#   hil/kernel.sh qemu-x86_64 debug  -> $HSDAQ_CACHE/kernel/qemu-x86_64-debug-<key>
#
# A variant (e.g. `debug`) is the board's kernel.config plus
# boards/BOARD/kernel-VARIANT.config merged on top: one fragment per concern,
# one cached build per combination.
#
# The build is cached outside the repository, keyed by a hash of everything
# that shapes it: pinned source and toolchain versions, the board's config
# fragment, the target architecture and the recipe version below. A finished build is
# marked by a `.complete` stamp, so an interrupted one is redone, never reused.
set -euo pipefail

# The build recipe's version, part of the cache key: bump it whenever a change
# here alters what is built (configuration steps, make targets, flags).
RECIPE=1

# Everything runs inside main(), which bash parses completely before running:
# editing this file during a 10-minute build cannot derail the build.
main() {
    HIL=$(cd "$(dirname "$0")" && pwd)
    ROOT=$(dirname "$HIL")
    source "$HIL/versions.sh"
    source "$HIL/arch.sh"

    local BOARD=${1:?usage: hil/kernel.sh BOARD [VARIANT]} VARIANT=${2:-}
    FRAGMENTS=("$ROOT/boards/$BOARD/kernel.config")
    [[ -n $VARIANT ]] && FRAGMENTS+=("$ROOT/boards/$BOARD/kernel-$VARIANT.config")
    for f in "${FRAGMENTS[@]}"; do
        [[ -f $f ]] || { echo "kernel.sh: no $f" >&2; exit 2; }
    done
    board_arch "$BOARD"

    CACHE=${HSDAQ_CACHE:-/var/cache/hsdaq}
    KEY=$(cat "${FRAGMENTS[@]}" <(echo "recipe $RECIPE $LINUX_SOURCE_VERSION $RUSTC_WEB_VERSION $BINDGEN_VERSION") \
        <(echo "$ARCH $CROSS_COMPILE $KERNEL_IMAGE") <(/usr/bin/rustc --version) \
        <("$HOME/.cargo/bin/bindgen" --version) | sha256sum | cut -c1-16)
    local NAME=$BOARD${VARIANT:+-$VARIANT}
    OUT=$CACHE/kernel/$NAME-$KEY
    log() { echo "kernel[$NAME]: $*" >&2; }

    if [[ -f $OUT/.complete ]]; then
        log "cached build $OUT"
        echo "$OUT"
        exit 0
    fi

    SRC=$CACHE/src/linux-source-$LINUX_SOURCE_VERSION
    if [[ ! -f $SRC/.complete ]]; then
        log "extracting /usr/src/linux-source-$LINUX_SERIES.tar.xz"
        rm -rf "$SRC" && mkdir -p "$SRC"
        tar -xJf "/usr/src/linux-source-$LINUX_SERIES.tar.xz" -C "$SRC" --strip-components=1
        touch "$SRC/.complete"
    fi

    rm -rf "$OUT" && mkdir -p "$OUT"
    export LIBCLANG_PATH=/usr/lib/llvm-19/lib
    # A fragment may ask for make variables (e.g. `# hsdaq-make: LLVM=-19`,
    # a clang-built kernel for KASAN with Rust). They are kept beside the
    # build, so module.sh builds modules with the same toolchain.
    local extra=()
    mapfile -t extra < <(sed -n 's/^# hsdaq-make: *//p' "${FRAGMENTS[@]}" | tr ' ' '\n' | sed '/^$/d')
    printf '%s\n' "${extra[@]}" >"$OUT/hsdaq-make-vars"
    KMAKE=(make -C "$SRC" O="$OUT" ARCH="$ARCH" CROSS_COMPILE="$CROSS_COMPILE"
        RUSTC=/usr/bin/rustc BINDGEN="$HOME/.cargo/bin/bindgen" "${extra[@]}" -j"$(nproc)")
    log "configuring (tinyconfig + ${FRAGMENTS[*]#$ROOT/})"
    "${KMAKE[@]}" -s tinyconfig
    ARCH=$ARCH "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" "$OUT/.config" "${FRAGMENTS[@]}" >/dev/null
    "${KMAKE[@]}" -s olddefconfig

    # A symbol the fragment asks for but Kconfig dropped (unmet dependency) would
    # give a kernel that silently lacks a feature: refuse it here instead.
    missing=0
    while IFS= read -r line; do
        grep -qxF "$line" "$OUT/.config" || { log "fragment wants '$line', .config disagrees"; missing=1; }
    done < <(cat "${FRAGMENTS[@]}" | grep -E '^CONFIG_')
    ((missing == 0)) || exit 1

    log "building $KERNEL_IMAGE and modules (10-12 min on 2 cores; log: $OUT/build.log)"
    start=$(date +%s)
    "${KMAKE[@]}" "$KERNEL_IMAGE" modules >"$OUT/build.log" 2>&1 &
    local pid=$! rc=0
    # A progress line a minute: elapsed time, build steps so far, the latest.
    while kill -0 "$pid" 2>/dev/null; do
        sleep 60 & wait $! || true
        kill -0 "$pid" 2>/dev/null || break
        log "building: $(($(date +%s) - start)) s, $(wc -l <"$OUT/build.log") steps, now$(tail -1 "$OUT/build.log" | sed 's/^ *[A-Z]* */ /')"
    done
    wait "$pid" || rc=$?
    if ((rc != 0)); then
        tail -40 "$OUT/build.log" >&2
        log "build failed; full log $OUT/build.log"
        exit 1
    fi
    touch "$OUT/.complete"
    log "built in $(($(date +%s) - start)) s"
    echo "$OUT"
}

main "$@"
