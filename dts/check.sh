#!/usr/bin/env bash
# Validates the binding and every device tree in dts/ against it:
#  1. dt-doc-validate on the binding schema (dtschema's meta-schema);
#  2. the binding's example, extracted and compiled, passes dt-validate;
#  3. every overlay compiles with `dtc -@`, applies with fdtoverlay to a base
#     tree (QEMU's dumped virt tree if given, else a minimal one), and the
#     result passes dt-validate;
#  4. the .dtsi compiles into a minimal board tree that passes dt-validate.
# dt-validate exits 0 even when it reports problems, so any output fails.
#
#   dts/check.sh [QEMU_VIRT_DTB]
set -euo pipefail
DTS=$(cd "$(dirname "$0")" && pwd)
BIND=$DTS/bindings
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VIRT_DTB=${1:-}
failed=0

validate() { # NAME DTB
    local out
    out=$(dt-validate -s "$BIND" -l hsdaq "$2" 2>&1) || true
    # Our node must have matched the schema (-m lists unmatched
    # compatibles), or nothing was checked.
    local unmatched
    unmatched=$(dt-validate -s "$BIND" -m "$2" 2>&1 | grep -cE "compatible: .*'(hsdaq,virtual-sensor|hsdaq,dma-adc|hsdaq-test,fifo-dma)'" || true)
    if [[ -n $out ]]; then
        echo "dts: $1: dt-validate reported:" >&2
        echo "$out" >&2
        failed=1
    elif ((unmatched > 0)); then
        echo "dts: $1: no node matched the binding (compatible missing?)" >&2
        failed=1
    else
        echo "dts: $1: valid"
    fi
}

base() { # NAME COMPATIBLE [NODES] -> minimal base tree dtb
    cat >"$WORK/$1-base.dts" <<BASE
/dts-v1/;
/ {
	model = "hsdaq validation base ($1)";
	compatible = "$2";
	#address-cells = <2>;
	#size-cells = <2>;
	memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x40000000>; };
${3:-}
};
BASE
    dtc -q -@ -I dts -O dtb -o "$WORK/$1-base.dtb" "$WORK/$1-base.dts"
    echo "$WORK/$1-base.dtb"
}

for schema in "$BIND"/*.yaml; do
    b=$(basename "$schema" .yaml)
    dt-doc-validate "$schema" && echo "dts: binding $b: dt-doc-validate passes"
    dt-extract-example "$schema" >"$WORK/example-$b.dts"
    dtc -q -@ -I dts -O dtb -o "$WORK/example-$b.dtb" "$WORK/example-$b.dts"
    validate "binding $b example" "$WORK/example-$b.dtb"
done

for src in "$DTS"/overlays/*.dtso; do
    name=$(basename "$src" .dtso)
    dtc -q -@ -I dts -O dtb -o "$WORK/$name.dtbo" "$src"
    case $name in
    *qemu-virt*) b=${VIRT_DTB:-$(base "$name" linux,dummy-virt)} ;;
    # The labels the board overlays reference, as the real trees have them.
    *rpi4) b=$(base "$name" brcm,bcm2711 'dma: dma-controller@7e007000 { compatible = "brcm,bcm2835-dma"; reg = <0x0 0x7e007000 0x0 0xb00>; #dma-cells = <1>; };') ;;
    *zynqmp) b=$(base "$name" xlnx,zynqmp 'zynqmp_clk: clock-controller { #clock-cells = <1>; }; gic: interrupt-controller@f9010000 { compatible = "arm,gic-400"; reg = <0x0 0xf9010000 0x0 0x10000>; interrupt-controller; #interrupt-cells = <3>; };') ;;
    *) b=$(base "$name" hsdaq,test-board) ;;
    esac
    fdtoverlay -i "$b" -o "$WORK/$name.dtb" "$WORK/$name.dtbo"
    validate "overlay $name" "$WORK/$name.dtb"
done

cat >"$WORK/dtsi-board.dts" <<BOARD
/dts-v1/;
/ { model = "hsdaq dtsi check"; compatible = "hsdaq,test-board"; #address-cells = <2>; #size-cells = <2>; };
#include "$DTS/hsdaq-sensor.dtsi"
BOARD
cpp -nostdinc -undef -x assembler-with-cpp -P "$WORK/dtsi-board.dts" >"$WORK/dtsi-board.pp.dts"
dtc -q -@ -I dts -O dtb -o "$WORK/dtsi-board.dtb" "$WORK/dtsi-board.pp.dts"
validate "hsdaq-sensor.dtsi" "$WORK/dtsi-board.dtb"

exit $failed
