# Scenario: one open file, six threads, the producer at the ABI's highest
# rate (100 M scans/s, far above what the CPU can write: every tick is
# bounded and drops the rest). Two read() loops verify every sample of every
# block they get against the reference waveform (a block overwritten while
# it was copied fails this), WAIT/STATS check that no counter moves
# backwards, mmap/munmap run in a loop, and a thread scribbles the mapped
# tail. >= 100,000 operations; afterwards a fresh recording verifies.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION=">= 100k racing read/WAIT/STATS/mmap/tail-scribble ops at the highest rate; blocks intact"
TIMEOUT=600

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=100000000 channels=4 block_bytes=4096 buffer_bytes=262144
    hsdaq-hil-guest race --device /dev/hsdaq0 --seconds 240 --ops 100000 >/host/race.json
    rmmod hsdaq
    insmod /lib/modules/hsdaq.ko rate_hz=200000
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 3s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    local j=$SHARE/race.json
    expect "no failure: intact blocks, monotonic counters, allowed errnos only" jq -e '.ok and (.failures | length) == 0' "$j"
    expect "at least 100,000 operations" jq -e '.ops >= 100000' "$j"
    expect "read() returned blocks and every one was checked" jq -e '.read_blocks_verified >= 1000' "$j"
    expect "the producer dropped (it cannot write 100 M scans/s): drops counted" jq -e '.dropped_blocks > 0' "$j"
    expect_recording "$SHARE/run" 200000 4
}
