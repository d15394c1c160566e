# Scenario e: teardown while a recorder has the ring mapped and is streaming.
#  - rmmod is refused while the file is open (the module is pinned by the
#    open file), without disturbing the recording;
#  - a sysfs unbind removes the device under the recorder: it must end with
#    a clear "device went away" error, and its closed segments must verify;
#  - afterwards rmmod succeeds; nothing oopses.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="rmmod and sysfs unbind under a live recorder: clear error, closed segments verify"
TIMEOUT=240
GUEST_RC=0

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=100000
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 60s --segment 1s >/host/record.out 2>/host/record.err &
    pid=$!
    sleep 4
    if rmmod hsdaq 2>/host/rmmod-busy.err; then echo yes >/host/rmmod-while-mapped; else echo no >/host/rmmod-while-mapped; fi
    sleep 1
    echo hsdaq.0 >/sys/bus/platform/drivers/hsdaq/unbind
    rc=0
    wait $pid || rc=$?
    echo $rc >/host/record.rc
    cp -r /tmp/run /host/run
    rmmod hsdaq
    echo removed >/host/rmmod-after
}

check() {
    expect_eq "rmmod while mapped was refused" "$(cat "$SHARE/rmmod-while-mapped")" no
    expect "the recorder exited with an error status" sh -c "test \"\$(cat '$SHARE/record.rc')\" -ne 0"
    expect "the recorder said the device went away" grep -q 'went away' "$SHARE/record.err"
    expect "closed segments verify on the host" verify "$SHARE/run"
    expect "at least 3 closed segments were kept" sh -c "test \$(ls '$SHARE'/run/segment-*.parquet | wc -l) -ge 3"
    expect "no half-written segment looks whole" sh -c "! ls '$SHARE'/run/*.partial 2>/dev/null | grep -q ."
    expect_eq "rmmod after the recorder exited" "$(cat "$SHARE/rmmod-after")" removed
}
