#!/usr/bin/env bash
# The QEMU hardware-in-the-loop runner.
#
#   hil/run.sh [--board qemu-x86_64] [SCENARIO...]     (default: every scenario)
#
# Installs the toolchain (idempotent), builds or reuses the cached kernel,
# builds module/, acquire and the guest tools, packs an initramfs, then boots
# one QEMU (TCG) guest per scenario with a host folder shared over 9p. Each
# scenario (hil/scenarios/NAME.sh) defines `guest` (run in the guest by
# busybox sh) and `check` (run on the host afterwards). Results:
#   target/hil/BOARD/NAME/result.json     pass/fail, checks, duration
#   target/hil/BOARD/NAME/serial.log      the guest console (kept always)
#   target/hil/BOARD/summary.json         every scenario of this run
# Exit status is non-zero if any scenario failed.
set -euo pipefail
HIL=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HIL")
source "$HIL/arch.sh"
source "$HIL/lib.sh"
# Host-side checks (iio_values.py: pyarrow; dts/check.sh: dt-validate) use
# the project's virtual environment, never the system interpreter.
source "$ROOT/scripts/venv.sh"

BOARD=qemu-x86_64
if [[ ${1:-} == --board ]]; then BOARD=$2; shift 2; fi
board_arch "$BOARD"
SCENARIOS=("$@")
if ((${#SCENARIOS[@]} == 0)); then
    mapfile -t SCENARIOS < <(grep -l "^BOARDS=.*\b$BOARD\b" "$HIL"/scenarios/*.sh | xargs -n1 basename | sed 's/\.sh$//' | sort)
fi
OUT=$ROOT/target/hil/$BOARD
mkdir -p "$OUT"

step "toolchain" "$HIL/setup-toolchain.sh"
build_userspace "$OUT/bin"
export HIL ROOT BOARD OUT
# The host verifies recordings with its own acquire (built above on x86_64).
[[ $ARCH == x86_64 ]] || step "cargo build (host acquire for verify, the DMA scenarios' converter emulator)" cargo build -q -p hsdaq-acquire -p hsdaq-hil-emulator
ACQUIRE_HOST=$ROOT/target/debug/acquire

# Kernel variants: a scenario that says KERNEL=debug boots the board's debug
# kernel (boards/BOARD/kernel-debug.config) where the board has one. Each
# variant gets its cached kernel, its module build and its initramfs.
# HIL_KERNEL=plain (or debug) overrides every scenario's choice.
declare -A KBUILDS INITRDS
scenario_variant() {
    local v
    if [[ -n ${HIL_KERNEL:-} ]]; then echo "$HIL_KERNEL"; return; fi
    v=$(sed -n 's/^KERNEL=//p' "$HIL/scenarios/$1.sh")
    [[ -n $v && -f $ROOT/boards/$BOARD/kernel-$v.config ]] && echo "$v" || echo plain
}
for name in "${SCENARIOS[@]}"; do
    v=$(scenario_variant "$name")
    [[ -n ${KBUILDS[$v]:-} ]] && continue
    KBUILDS[$v]=$("$HIL/kernel.sh" "$BOARD" "${v#plain}")
    ko=$("$HIL/module.sh" "${KBUILDS[$v]}" "$OUT/module-$v")
    mkdir -p "$OUT/kernel-$v"
    INITRDS[$v]=$(make_initramfs "$OUT/kernel-$v" "$ko" "$OUT/bin")
done

failed=0
results=()
for name in "${SCENARIOS[@]}"; do
    VARIANT=$(scenario_variant "$name")
    KBUILD=${KBUILDS[$VARIANT]} INITRD=${INITRDS[$VARIANT]}
    export KBUILD VARIANT
    if run_scenario "$name"; then :; else failed=$((failed + 1)); fi
    results+=("$OUT/$name/result.json")
done
jq -s '{board: $b, scenarios: ., failed: ([.[] | select(.ok | not)] | length)}' \
    --arg b "$BOARD" "${results[@]}" >"$OUT/summary.json"
jq -r '.scenarios[] | "\(if .ok then "PASS" else "FAIL" end)  \(.scenario)  \(.kernel) kernel  \(.seconds)s  \(.detail)"' \
    "$OUT/summary.json"
((failed == 0)) || { echo "hil: $failed scenario(s) failed; logs under $OUT" >&2; exit 1; }
