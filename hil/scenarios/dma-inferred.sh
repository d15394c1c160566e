# arm64, the DMA source without a scan counter: the same host-emulated
# converter and test DMA controller as dma-stream, but the controller hands
# over no metadata (fifo-dma metadata=0) and the node has no
# hsdaq,scan-counter, as with axi-dmac behind a plain ADC. A consumer stall
# overflows the converter's FIFO; the driver can only estimate the gap from
# the completion times. The recording must say so: every gap `inferred`,
# verify comparing values only up to the first inferred gap, and the
# estimate set beside the emulator's true count (share/estimate.json).
#
# What the estimate can be: the first blocks after a stall are the FIFO's
# stale packets, delivered late though nothing was lost before them, so the
# driver places the gap at (or before) its true position and overestimates
# it by up to the peripheral's buffering (16 packets here), never
# underestimates it by more than the one block floor() rounds away; a
# completion delayed by more than a block's duration (a loaded TCG guest)
# reads as a one-block gap. Measured: +17 and +19 blocks.
BOARDS="qemu-arm64"
DESCRIPTION="DMA source, no scan counter: gaps inferred from time, marked so; estimate vs the emulator's truth"
TIMEOUT=300
RATE=250000
PACKET_SCANS=4092
RAM=/dev/shm/hsdaq-hil-dma-inferred

dtb() {
    sed '/hsdaq,scan-counter/d' "$ROOT/dts/overlays/hsdaq-qemu-virt-dma.dtso" >"$DIR/hsdaq-qemu-virt-dma-nocounter.dtso"
    virt_dtb "$DIR" "$DIR/hsdaq-qemu-virt-dma-nocounter.dtso"
}
qemu_extra() { shared_ram_args $RAM; }
boots() { with_emulator $RAM $RATE 8 s16 $PACKET_SCANS 16 boot_guest; }

guest() {
    insmod /lib/modules/fifo-dma.ko metadata=0
    insmod /lib/modules/hsdaq.ko
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 6s --allow-loss \
        --fault stall-consumer:2s@2s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
    rmmod fifo-dma
}

check() {
    expect "the driver says loss is inferred" grep -q 'loss inferred from completion times' "$SHARE/dmesg.log"
    expect "acquire verify passes (structure, seq against the gaps, t_ns)" verify "$SHARE/run"
    expect "some scans were lost" test "$(manifest "$SHARE/run" .counts.scans_lost)" -gt 0
    expect "every gap is marked inferred, and counted in scans_lost_inferred" \
        jq -e '([.gaps[] | select(.kind != "inferred")] | length == 0) and .counts.scans_lost_inferred == .counts.scans_lost' "$SHARE/run/manifest.json"
    expect "verify compared values up to the first inferred gap and said so" \
        sh -c "'$ACQUIRE_HOST' verify --json '$SHARE/run' | jq -e '.values_compared and (.values_compared_until != null)'"
    local truth est
    truth=$(jq '[.runs[] | select(.epoch == 1) | .drops[] | .[1]] | add // 0' "$DIR/emulator.json")
    est=$(manifest "$SHARE/run" .counts.scans_lost)
    jq -n --argjson t "$truth" --argjson e "$est" --argjson b $PACKET_SCANS \
        '{dropped_by_emulator: $t, inferred_by_driver: $e, error_scans: ($e - $t), error_blocks: (($e - $t) / $b)}' \
        >"$SHARE/estimate.json"
    expect "the estimate is within [-1, FIFO depth + 4] blocks of the emulator's count ($(jq -c . "$SHARE/estimate.json"))" \
        jq -e '.error_blocks >= -1 and .error_blocks <= 20' "$SHARE/estimate.json"
}
