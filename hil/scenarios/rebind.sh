# Scenario: 50 unbind/bind cycles of the driver, alternating
#  - under a live recorder (it must end with "device went away"), and
#  - under a process that holds a stale mapping of the ring (fd closed,
#    mapping kept): after unbind the mapping is revoked, so touching it
#    raises SIGBUS instead of reading freed (or reused) memory.
# On arm64 the ring lives in a no-map reserved-memory pool (memory-region),
# which the driver must release at unbind and take again at bind. Afterwards
# a fresh recording verifies and the kernel log is clean.
BOARDS="qemu-x86_64 qemu-arm64"
KERNEL=debug
DESCRIPTION="50 unbind/bind cycles under a recorder and a stale mapping; SIGBUS, not stale memory"
TIMEOUT=900

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=200000
    drv=/sys/bus/platform/drivers/hsdaq
    dev=$(ls "$drv" | grep -v -e '^bind$' -e '^unbind$' -e '^uevent$' -e '^module$' | head -1)
    echo "$dev" >/host/device.txt
    i=0 wentaway=0 sigbus=0 readable=0
    while [ $i -lt 50 ]; do
        if [ $((i % 2)) -eq 0 ]; then
            acquire record --device /dev/hsdaq0 --out /tmp/r --duration 60s --segment 100ms \
                >/dev/null 2>/tmp/rec.err &
            pid=$!
            n=0
            while [ ! -e /tmp/r/segment-000000.parquet ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
            echo "$dev" >"$drv/unbind"
            wait $pid || true
            grep -q 'went away' /tmp/rec.err && wentaway=$((wentaway + 1))
            rm -rf /tmp/r
        else
            rm -f /tmp/ready /tmp/go
            hsdaq-hil-guest stale --device /dev/hsdaq0 --ready /tmp/ready --go /tmp/go >/tmp/stale.out 2>&1 &
            pid=$!
            n=0
            while [ ! -e /tmp/ready ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
            echo "$dev" >"$drv/unbind"
            touch /tmp/go
            rc=0
            wait $pid || rc=$?
            [ $rc -eq 135 ] && sigbus=$((sigbus + 1)) # 128 + SIGBUS
            grep -q stale_mapping_readable /tmp/stale.out && readable=$((readable + 1))
        fi
        echo "$dev" >"$drv/bind"
        n=0
        while [ ! -c /dev/hsdaq0 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
        i=$((i + 1))
    done
    echo "{\"cycles\": $i, \"recorder_went_away\": $wentaway, \"stale_sigbus\": $sigbus, \"stale_readable\": $readable}" >/host/rebind.json
    acquire record --device /dev/hsdaq0 --out /tmp/final --duration 3s --allow-loss --json >/host/final.json
    cp -r /tmp/final /host/final
    rmmod hsdaq
}

check() {
    local j=$SHARE/rebind.json
    expect "50 unbind/bind cycles ran" jq -e '.cycles == 50' "$j"
    expect "every recorder ended with 'device went away' (25 of 25)" jq -e '.recorder_went_away == 25' "$j"
    expect "every stale mapping raised SIGBUS after unbind (25 of 25)" jq -e '.stale_sigbus == 25' "$j"
    expect "no stale mapping was readable after unbind" jq -e '.stale_readable == 0' "$j"
    expect "a fresh recording after the last rebind verifies on the host" verify "$SHARE/final"
    # 3 s at the device's rate (the module parameter on x86_64, the DT node's on arm64).
    expect_accounted "$SHARE/final" "$((3 * $(manifest "$SHARE/final" .stream.rate_hz)))"
}
