# arm64, the DMA source: no sample is computed inside the guest. A host
# process (hil/emulator) plays the converter: it writes abi/'s reference
# waveform, paced by the host clock, into a packet FIFO in a no-map region of
# the guest's RAM (QEMU's shared memory backend), and counts every packet it
# drops because the FIFO is full. In the guest, a test-only dmaengine
# provider (hil/fifo-dma) moves packets into the buffers the hsdaq driver
# queues through the dmaengine client API (dts/overlays/hsdaq-qemu-virt-dma.dtso);
# the driver writes only block headers. acquire records in the guest, with
# a consumer stall (the ring fills, no slot can be queued, the FIFO
# overflows upstream) and a producer stall (the driver queues nothing for a
# while). The host verifies every sample and compares the recording's gaps
# with the emulator's own drop list: same positions, same sizes.
BOARDS="qemu-arm64"
DESCRIPTION="DMA source: host-emulated converter, test DMA controller; every sample verified, gaps = emulator's drops"
TIMEOUT=360
RATE=250000
PACKET_SCANS=4092 # (65536-byte blocks - 64-byte header) / (8 ch x 2 B)

dtb() { virt_dtb "$DIR" "$ROOT/dts/overlays/hsdaq-qemu-virt-dma.dtso"; }
RAM=/dev/shm/hsdaq-hil-dma-stream
qemu_extra() { shared_ram_args $RAM; }
boots() { with_emulator $RAM $RATE 8 s16 $PACKET_SCANS 16 boot_guest; }

guest() {
    insmod /lib/modules/fifo-dma.ko
    insmod /lib/modules/hsdaq.ko
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    acquire info --device /dev/hsdaq0 --json >/host/info.json
    # 1: a clean 4 s run.
    acquire record --device /dev/hsdaq0 --out /tmp/clean --duration 4s --allow-loss --json >/host/clean.json
    cp -r /tmp/clean /host/clean
    # 2: the consumer stalls 2 s (a 4 MiB ring holds ~1 s), the driver
    # withholds transfers for 0.5 s: both overflow the converter's FIFO.
    acquire record --device /dev/hsdaq0 --out /tmp/lossy --duration 6s --allow-loss \
        --fault stall-consumer:2s@1s --fault stall-producer:1500ms@3.5s --json >/host/lossy.json
    echo "record rc $?"
    cp -r /tmp/lossy /host/lossy
    # 3: unbind and module removal while streaming: rmmod is refused while
    # the recorder holds the device, unbind stops the DMA under it.
    acquire record --device /dev/hsdaq0 --out /tmp/cut --duration 30s --allow-loss --json >/host/cut.json 2>/host/cut.err &
    sleep 2
    if rmmod hsdaq 2>/dev/null; then echo yes >/host/rmmod-busy; else echo no >/host/rmmod-busy; fi
    echo adc >/sys/bus/platform/drivers/hsdaq/unbind
    wait
    echo adc >/sys/bus/platform/drivers/hsdaq/bind
    acquire record --device /dev/hsdaq0 --out /tmp/again --duration 2s --json >/host/again.json
    cp -r /tmp/again /host/again
    rmmod hsdaq
    rmmod fifo-dma
    lsmod >/host/lsmod.txt
}

check() {
    expect_firmware_bound adc
    expect_info "$SHARE/info.json" "probe took the DMA source from the node" \
        '.layout.rate_hz == 250000 and .layout.channels == 8 and .layout.block_bytes == 65536 and .device.source == "hardware"'
    expect "the driver took channel rx of the test controller" grep -q 'DMA source: channel .rx. of' "$SHARE/dmesg.log"
    expect "acquire verify passes on the clean run (every sample = the emulator's waveform)" verify "$SHARE/clean"
    expect "clean run: every gap (if the loaded host made any) is counted, none inferred" \
        jq -e '[.gaps[] | select(.kind != "counted")] | length == 0' "$SHARE/clean/manifest.json"
    say_loss "$SHARE/clean"
    expect "acquire verify passes on the lossy run" verify "$SHARE/lossy"
    expect "lossy run: some scans were lost (the stalls overflowed the FIFO)" \
        test "$(manifest "$SHARE/lossy" .counts.scans_lost)" -gt 0
    expect "lossy run: every gap is counted (stream scan counter), none inferred" \
        jq -e '[.gaps[] | select(.kind != "counted")] | length == 0' "$SHARE/lossy/manifest.json"
    expect "lossy run: gaps = the emulator's dropped ranges below the last recorded scan, exactly" \
        gaps_match_emulator "$SHARE/lossy" "$DIR/emulator.json" 2
    expect "lossy run: recorded + lost = produced by the emulator up to the last recorded scan" \
        accounted "$SHARE/lossy"
    expect "lossy run: the producer stall (no transfer queued) was lost upstream too" \
        test "$(jq '.gaps | length' "$SHARE/lossy/manifest.json")" -ge 2
    expect "timestamps are measured (DMA completion), and say so" \
        jq -e '.stream.timestamps | startswith("measured")' "$SHARE/clean/manifest.json"
    expect "verify says it compared values (reference signal from the emulator)" \
        sh -c "'$ACQUIRE_HOST' verify --json '$SHARE/clean' | jq -e '.values_compared'"
    expect_eq "rmmod while the recorder streams was refused" "$(cat "$SHARE/rmmod-busy")" no
    expect "unbind while streaming: the recorder stopped with the device gone" \
        grep -qi 'device went away' "$SHARE/cut.err"
    expect "after rebind, a new stream records and verifies" verify "$SHARE/again"
    expect "both modules unloaded at the end" sh -c "! grep -qE '^(hsdaq|fifo_dma) ' '$SHARE/lsmod.txt'"
}

# gaps_match_emulator RUN REPORT EPOCH: the run's gaps [seq, scans] equal the
# emulator's dropped ranges of that run that start before the run's last scan.
gaps_match_emulator() {
    local last
    last=$(jq '[.segments[].last_seq] | max' "$1/manifest.json")
    diff <(jq -c '[.gaps[] | [.at_seq - .lost, .lost]]' "$1/manifest.json") \
        <(jq -c --argjson e "$3" --argjson last "$last" \
            '[.runs[] | select(.epoch == $e) | .drops[] | select(.[0] < $last)]' "$2")
}
accounted() {
    jq -e '.counts as $c | ($c.scans_recorded + $c.scans_lost) == ([.segments[].last_seq] | max) + 1' "$1/manifest.json"
}
