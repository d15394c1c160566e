#!/usr/bin/env bash
# Builds module/ against a kernel build folder; prints the path of hsdaq.ko.
# On arm64 it also builds hil/fifo-dma (the DMA scenarios' test-only DMA
# controller) beside it: every .ko in that folder goes into the initramfs.
#
#   hil/module.sh KERNEL_BUILD_DIR OUT_DIR
#
# The sources are copied (module/ and the abi/ files it includes) into
# OUT_DIR, so the repository stays free of kbuild's objects.
# HSDAQ_MODULE_SRC=DIR builds another copy of module/ (e.g. an older one, to
# show a scenario failing before a fix).
set -euo pipefail
HIL=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HIL")
KBUILD=$(realpath "${1:?usage: hil/module.sh KERNEL_BUILD_DIR OUT_DIR}")
OUT=$(realpath -m "${2:?usage: hil/module.sh KERNEL_BUILD_DIR OUT_DIR}")
ARCH=$(grep -q "^CONFIG_ARM64=y" "$KBUILD/.config" && echo arm64 || echo x86_64)
CROSS=$([[ $ARCH == arm64 ]] && echo aarch64-linux-gnu- || true)

rm -rf "$OUT/src" "$OUT/ko" && mkdir -p "$OUT/src/abi" "$OUT/ko"
cp -r "${HSDAQ_MODULE_SRC:-$ROOT/module}" "$OUT/src/module"
cp -r "$ROOT/abi/src" "$OUT/src/abi/src"
[[ $ARCH == arm64 ]] && cp -r "$HIL/fifo-dma" "$OUT/src/fifo-dma"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
# The make variables the kernel was built with (e.g. LLVM=-19), if any.
EXTRA=()
[[ -f $KBUILD/hsdaq-make-vars ]] && mapfile -t EXTRA < <(grep -v "^$" "$KBUILD/hsdaq-make-vars")
echo "module: building hsdaq.ko for $ARCH against $KBUILD ${EXTRA[*]}" >&2
if ! make -C "$KBUILD" M="$OUT/src/module" ARCH="$ARCH" CROSS_COMPILE="$CROSS" \
    RUSTC=/usr/bin/rustc BINDGEN="$HOME/.cargo/bin/bindgen" "${EXTRA[@]}" modules >"$OUT/module-build.log" 2>&1; then
    grep -E '^(error|warning)|-->' -A6 "$OUT/module-build.log" | head -80 >&2 ||
        tail -20 "$OUT/module-build.log" >&2
    echo "module: build failed; log $OUT/module-build.log" >&2
    exit 1
fi
# rustc warnings, and objtool's (e.g. a panic path it cannot follow).
if grep -qE '^warning|: warning:' "$OUT/module-build.log"; then
    grep -E '^warning|: warning:' -A6 "$OUT/module-build.log" >&2
    echo "module: warnings are errors here" >&2
    exit 1
fi
cp "$OUT/src/module/hsdaq.ko" "$OUT/ko/"
if [[ $ARCH == arm64 ]]; then
    echo "module: building fifo-dma.ko (test-only DMA controller)" >&2
    if ! make -C "$KBUILD" M="$OUT/src/fifo-dma" ARCH="$ARCH" CROSS_COMPILE="$CROSS" \
        W=1 modules >"$OUT/fifo-dma-build.log" 2>&1 || grep -q ': warning:' "$OUT/fifo-dma-build.log"; then
        grep -E 'error|warning' -A4 "$OUT/fifo-dma-build.log" | head -60 >&2
        echo "module: fifo-dma build failed or warned; log $OUT/fifo-dma-build.log" >&2
        exit 1
    fi
    cp "$OUT/src/fifo-dma/fifo-dma.ko" "$OUT/ko/"
fi
echo "$OUT/ko/hsdaq.ko"
