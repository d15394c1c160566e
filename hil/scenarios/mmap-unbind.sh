# Scenario (issue 20, finding 1): an mmap racing an unbind. The kernel fills
# a VMA's page tables in f_op->mmap but links the VMA into the file's mapping
# only afterwards, so a zap at unbind can miss it and leave a live mapping of
# the freed ring. `fault_mmap_delay_ms` (tests only) holds every mmap for
# 1.5 s in exactly that window, so each round's unbind lands inside it: three
# processes sharing one open file map the ring in a loop (two threads each),
# the device is unbound under them, and every mapping that succeeded must
# then raise SIGBUS. Debug kernel (KASAN, KFENCE, lockdep): no report.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="mmap racing unbind (mmaps held between page-table fill and VMA link): every mapping SIGBUS, none readable"
TIMEOUT=600

ROUNDS=8

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=200000 fault_mmap_delay_ms=1500
    hsdaq-hil-guest mmap-unbind --device /dev/hsdaq0 --name hsdaq.0 --rounds 8 --procs 3 --threads 2 \
        --unbind-after-ms 500 >/host/mmap-unbind.json
    rmmod hsdaq
    insmod /lib/modules/hsdaq.ko rate_hz=200000
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 2s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    local j=$SHARE/mmap-unbind.json
    expect "every round ran" jq -e ".rounds == $ROUNDS and (.other | length) == 0" "$j"
    expect "the race was reached: mmaps that began before an unbind returned success after it (>= 1 per round)" \
        jq -e ".mmaps_straddling_unbind >= $ROUNDS" "$j"
    expect "no mapping was readable after unbind (stale PTEs to the freed ring)" jq -e '.children_stale_readable == 0' "$j"
    expect "every mapper that held a mapping died of SIGBUS on touching it" \
        jq -e ".children_sigbus >= $ROUNDS and .children_sigbus + .children_without_mapping == $ROUNDS * 3" "$j"
    expect_recording "$SHARE/run" 200000 4
}
