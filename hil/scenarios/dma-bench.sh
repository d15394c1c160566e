# arm64, figures (no pass/fail on speed): the DMA path beside the hrtimer
# path on the same kernel, the same layout (8 ch s16, 64 KiB blocks, 4 MiB
# ring) and the same rates. One boot per rate; in each, acquire records 5 s
# from the DMA source (host-emulated converter, test DMA controller) and 5 s
# from a virtual sensor node at the same rate, and the guest's CPU time is
# taken around each (the test controller's kthread, which plays the DMA
# engine's hardware, is counted apart and left out of the driver's cost).
# Then `ringread`: the consumer's in-place read speed over a ring the
# producer filled; one more boot repeats it with the controller not
# dma-coherent (the ring is then non-cacheable for both sides).
# Figures: target/hil/qemu-arm64/dma-bench/figures.json; docs/BENCHMARKS.md "DMA source vs virtual sensor".
# Not in the default set (CI): ~3 min of figures; `just dma-bench` runs it.
BOARDS="figures-only"
DESCRIPTION="figures: DMA path vs hrtimer path (loss-free rate, CPU per M scans, in-place read speed)"
TIMEOUT=900
RAM=/dev/shm/hsdaq-hil-dma-bench
RATES="250000 375000 500000 1000000"

# bench_dtb RATE COHERENT: the DMA overlay at RATE plus a virtual sensor node.
bench_dtb() {
    local src=$DIR/dma-bench-$1-$2.dtso
    sed -e "s/hsdaq,rate-hz = <250000>;/hsdaq,rate-hz = <$1>;/" "$ROOT/dts/overlays/hsdaq-qemu-virt-dma.dtso" >"$src"
    [[ $2 == yes ]] || sed -i '/dma-coherent;/d' "$src"
    cat >>"$src" <<DTS

&{/} {
	sensor {
		compatible = "hsdaq,virtual-sensor";
		label = "virtual";
		hsdaq,rate-hz = <$1>;
		hsdaq,channels = <8>;
		hsdaq,format = "s16";
		hsdaq,block-bytes = <65536>;
		hsdaq,buffer-bytes = <4194304>;
	};
};
DTS
    mkdir -p "$DIR/dtb-$1-$2"
    virt_dtb "$DIR/dtb-$1-$2" "$src"
}
qemu_extra() { shared_ram_args $RAM; }
boots() {
    local rate rc=0
    for rate in $RATES; do
        DTB=$(bench_dtb "$rate" yes)
        echo "$rate yes" >"$SHARE/params"
        with_emulator $RAM "$rate" 8 s16 4092 16 boot_guest || rc=$?
        mv "$SHARE/figures.txt" "$SHARE/figures-$rate.txt" 2>/dev/null || true
        mv "$SHARE/ringread.txt" "$SHARE/ringread-$rate.txt" 2>/dev/null || true
    done
    DTB=$(bench_dtb 250000 no)
    echo "250000 no" >"$SHARE/params"
    with_emulator $RAM 250000 8 s16 4092 16 boot_guest || rc=$?
    mv "$SHARE/ringread.txt" "$SHARE/ringread-noncoherent.txt" 2>/dev/null || true
    return $rc
}

guest() {
    read -r rate coherent </host/params
    insmod /lib/modules/fifo-dma.ko
    insmod /lib/modules/hsdaq.ko
    busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
    engine() {
        for p in /proc/[0-9]*; do
            if [ "$(cat $p/comm 2>/dev/null)" = fifo-dma ]; then awk '{print $14+$15}' $p/stat; return; fi
        done
        echo 0
    }
    for d in /dev/hsdaq0 /dev/hsdaq1; do
        name=$(acquire info --device $d --json | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' | head -1)
        path=dma; [ "$name" = virtual ] && path=hrtimer
        if [ "$coherent" = yes ]; then
            b0=$(busy); e0=$(engine)
            acquire record --device $d --out /tmp/r-$path --duration 5s --compression none --allow-loss --json >/tmp/r.json
            b1=$(busy); e1=$(engine)
            rec=$(sed -n 's/.*"scans_recorded": *\([0-9]*\).*/\1/p' /tmp/r-$path/manifest.json | head -1)
            lost=$(sed -n 's/.*"scans_lost": *\([0-9]*\).*/\1/p' /tmp/r-$path/manifest.json | head -1)
            echo "$path $rate $rec $lost $((b1 - b0)) $((e1 - e0))" >>/host/figures.txt
            rm -rf /tmp/r-$path
        fi
        echo "$path $(hsdaq-hil-guest ringread --device $d)" >>/host/ringread.txt
    done
    rmmod hsdaq
    rmmod fifo-dma
}

check() {
    local f
    : >"$DIR/figures.json"
    # path rate scans lost busy_jiffies engine_jiffies (USER_HZ 100)
    for f in "$SHARE"/figures-*.txt; do
        while read -r path rate scans lost busy engine; do
            jq -nc --arg p "$path" --argjson r "$rate" --argjson s "$scans" --argjson l "$lost" \
                --argjson b "$busy" --argjson e "$engine" \
                '{path: $p, rate_hz: $r, scans: $s, lost: $l, lost_pct: (100 * $l / ([$s + $l, 1] | max)),
                  cpu_s_per_m_scans: ((($b - $e) / 100) / ([$s, 1] | max) * 1e6),
                  engine_cpu_s: ($e / 100)}' >>"$DIR/figures.json"
        done <"$f"
    done
    for f in "$SHARE"/ringread-*.txt; do
        while read -r path json; do
            echo "$json" | jq -c --arg p "$path" --arg f "$(basename "$f" .txt)" \
                '{path: $p, run: $f, inplace_read_mb_per_s: .mb_per_s_median}' >>"$DIR/figures.json"
        done <"$f"
    done
    echo "hil[dma-bench]: $(jq -sc . "$DIR/figures.json")" >&2
    expect "figures for both paths at every rate" \
        test "$(jq -s '[.[] | select(.rate_hz)] | length' "$DIR/figures.json")" -eq 8
    expect "in-place read figures for both paths, coherent and not" \
        test "$(jq -s '[.[] | select(.inplace_read_mb_per_s > 0)] | length' "$DIR/figures.json")" -eq 10
}
