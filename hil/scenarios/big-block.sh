# Scenario (issue 20, finding 3): the largest block the binding allows (half
# the ring: 8 MiB blocks in a 16 MiB ring) at the highest rate (100 M
# scans/s, so the producer is always behind), a consumer releasing every
# block at once so the producer writes flat out. No configuration may hold a
# CPU with interrupts or preemption off for long: a 1 ms sleep on every CPU
# still wakes promptly and a busy thread on every CPU still gets its share,
# compared with the same probe while the device is idle.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="8 MiB blocks at 100 M scans/s: other work keeps running (wake-up lateness, CPU share per CPU)"
TIMEOUT=300

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=100000000 channels=4 block_bytes=8388608 buffer_bytes=16777216
    hsdaq-hil-guest latency --device /dev/hsdaq0 --seconds 10 >/host/latency.json
    rmmod hsdaq
}

check() {
    local j=$SHARE/latency.json
    expect "the producer kept writing 8 MiB blocks (>= 4) and dropped the rest, counted" \
        jq -e '.block_bytes == 8388608 and .produced_blocks >= 4 and .dropped_blocks > 0' "$j"
    expect "streaming: no 1 ms sleep woke more than 50 ms late on any CPU" jq -e '.streaming.late_ms_max < 50' "$j"
    expect "streaming: a busy thread got at least 40 % of every CPU" jq -e '.streaming.busy_cpu_share_min >= 0.4' "$j"
}
