# Scenario c: forced overruns. Losses recorded by acquire must equal the
# driver's drop counters exactly, gap by gap:
#  1. the driver drops every 20th block (module parameter fault_drop_period);
#  2. acquire injects a 7-block drop through HSDAQ_IOC_FAULT and then stalls
#     its own consumer until the 64 KiB ring overflows for real.
BOARDS="qemu-x86_64"
DESCRIPTION="forced and real overruns: recorded loss == driver drop counters, gap by gap"
TIMEOUT=240

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=100000 block_bytes=4096 fault_drop_period=20
    acquire record --device /dev/hsdaq0 --out /tmp/periodic --duration 3s --allow-loss --json >/host/periodic.json
    cp -r /tmp/periodic /host/periodic
    rmmod hsdaq
    insmod /lib/modules/hsdaq.ko rate_hz=100000 block_bytes=4096 buffer_bytes=65536
    acquire record --device /dev/hsdaq0 --out /tmp/burst --duration 4s --allow-loss --json \
        --fault overrun:7@1s --fault stall-consumer:400ms@2500ms >/host/burst.json
    cp -r /tmp/burst /host/burst
    rmmod hsdaq
}

# every_gap_periodic RUN: each gap is exactly block 20k-1 (one block of
# scans lost right before scan 20k * block_scans, where recording resumes).
every_gap_periodic() {
    jq -e '.stream.block_scans as $bs | (.gaps | length) > 0 and
        all(.gaps[]; .lost == $bs and (.at_seq % (20 * $bs)) == 0)' "$1/manifest.json"
}
# losses_match RUN: sum of gaps == recorded loss == driver's dropped scans.
losses_match() {
    jq -e '([.gaps[].lost] | add) == .counts.scans_lost and
        .counts.scans_lost == .device_counters.dropped_scans and .counts.scans_lost > 0' "$1/manifest.json"
}

check() {
    local p=$SHARE/periodic b=$SHARE/burst
    expect "periodic: acquire verify passes (every gap accounted for)" verify "$p"
    expect "periodic: every gap is exactly block 20k-1 (504 scans)" every_gap_periodic "$p"
    expect "periodic: recorded loss == driver dropped_scans" losses_match "$p"
    expect_eq "periodic: gaps == driver dropped_blocks" "$(manifest "$p" '.counts.gaps')" "$(manifest "$p" '.device_counters.dropped_blocks')"
    expect "burst: acquire verify passes" verify "$b"
    expect "burst: recorded loss == driver dropped_scans" losses_match "$b"
    expect "burst: the injected 7-block drop is one gap of 3528 scans" \
        jq -e '.stream.block_scans as $bs | any(.gaps[]; .lost == 7 * $bs)' "$b/manifest.json"
    expect "burst: the consumer stall overflowed the ring (overruns >= 2)" \
        jq -e '.device_counters.overruns >= 2' "$b/manifest.json"
}
