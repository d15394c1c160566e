# Scenario: the producer stalls for 10 s (IOC_FAULT, the longest allowed)
# while acquire records at 500 k scans/s (the debug guest's loss-free rate,
# so the stall is the only loss) into a 2 MiB ring, then resumes. The
# timer callback must not try to write the 10 s backlog with interrupts off
# (bounded work per tick: no soft-lockup or RCU-stall report), and every
# scan the stall cost is counted: recorded loss == the driver's dropped
# scans, and the recording verifies.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="10 s producer stall, resume at 500 k scans/s: no lockup report, every dropped scan counted"
TIMEOUT=300

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=500000 channels=4 block_bytes=65536 buffer_bytes=2097152
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 16s --allow-loss --json \
        --fault stall-producer:10s@2s >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    local m=$SHARE/run/manifest.json
    expect "acquire verify passes (every gap accounted for)" verify "$SHARE/run"
    expect "recorded loss == the driver's dropped scans (exact)" \
        jq -e '([.gaps[].lost] | add) == .counts.scans_lost and .counts.scans_lost == .device_counters.dropped_scans' "$m"
    expect "the stall cost at least 9 s of scans, as one gap" jq -e 'any(.gaps[]; .lost >= 4500000)' "$m"
    expect "recording resumed after the stall" jq -e '.counts.scans_recorded >= 2000000' "$m"
}
