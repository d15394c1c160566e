# Scenario: hsdaq side by side with the stacks labs use today, in one guest
# on one kernel. For each stack the requested rate steps upward at the same
# scan shape and each step streams for PEERS_SECONDS (10 s; 5 s on the
# debug kernel, as in CI):
#   hsdaq-mmap  the module's virtual sensor, 4 ch x s16, recorded to Parquet
#               by `acquire record` through the mmap ring (tmpfs, no codec);
#   hsdaq-read  the same device read with read() (hsdaq-hil-guest readpath);
#   iio         iio_dummy (4 buffered 16-bit channels + the 64-bit timestamp)
#               on an hrtimer software trigger, read by libiio's own
#               iio_readdev (Debian libiio-utils), counted from its output;
#   acquire-iio the same iio_dummy channels recorded to Parquet by acquire's
#               IIO source (loss inferred from the timestamp channel);
#   comedi      comedi_test's analog input (4 ch x 16-bit), a timed async
#               command read through comedilib with its buffer mmap'd
#               (hsdaq-hil-guest comedi-read: Debian ships no streaming tool).
# Per step: scans asked for (or produced by the source) vs delivered, whether
# a loss was visible to the user, and guest CPU seconds per million scans
# (busy jiffies of /proc/stat, so kernel-side work counts too).
# CI runs a reduced ladder; `just peers` sets PEERS_FULL=1 for the sweep.
BOARDS="qemu-x86_64"
DESCRIPTION="hsdaq (mmap, read) vs IIO+libiio (iio_dummy) vs Comedi (comedi_test): rate ladder, loss, visibility, CPU"

# The debug kernel (CI boots every x86_64 scenario on it), reduced ladder:
# comedi_test's timer at 500 k scans/s and more holds a CPU in softirq for
# > 20 s under KASAN, and the soft-lockup detector reports it (in
# comedi_test, not in hsdaq), so Comedi's ladder stops at 100 k there; and
# steps are 5 s (the checks, the accounting, are the same at any length).
# Debug-kernel figures are not the plain kernel's: docs/BENCHMARKS.md's
# come from `just peers`.
if [[ ${VARIANT:-plain} == debug && ${PEERS_FULL:-0} != 1 ]]; then
    PEERS_COMEDI_RATES=${PEERS_COMEDI_RATES:-"50000 100000"}
    PEERS_SECONDS=${PEERS_SECONDS:-5}
fi
if [[ ${PEERS_FULL:-0} == 1 ]]; then
    PEERS_HSDAQ_RATES=${PEERS_HSDAQ_RATES:-"10000 100000 500000 1000000 2000000 3000000 4000000 6000000 8000000"}
    PEERS_IIO_RATES=${PEERS_IIO_RATES:-"100 200 500 1000 2000 5000 10000 20000"}
    PEERS_COMEDI_RATES=${PEERS_COMEDI_RATES:-"10000 50000 100000 200000 500000 1000000"}
else
    PEERS_HSDAQ_RATES=${PEERS_HSDAQ_RATES:-"100000 1000000 2000000 4000000"}
    PEERS_IIO_RATES=${PEERS_IIO_RATES:-"500 2000 10000"}
    PEERS_COMEDI_RATES=${PEERS_COMEDI_RATES:-"100000 500000 1000000"}
fi
PEERS_SECONDS=${PEERS_SECONDS:-10}
steps=$(($(wc -w <<<"$PEERS_HSDAQ_RATES $PEERS_IIO_RATES") * 2 + $(wc -w <<<"$PEERS_COMEDI_RATES")))
TIMEOUT=$((120 + steps * (PEERS_SECONDS * 2 + 8)))
cat >"$SHARE/peers.env" <<ENV
HSDAQ_RATES="$PEERS_HSDAQ_RATES"
IIO_RATES="$PEERS_IIO_RATES"
COMEDI_RATES="$PEERS_COMEDI_RATES"
S=$PEERS_SECONDS
ENV

guest() {
    . /host/peers.env
    mkdir -p /host/peers
    # Busy jiffies (USER_HZ) of all CPUs: user nice system irq softirq steal.
    busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
    # Uptime in centiseconds (busybox date has no sub-second format).
    now() { awk '{printf "%d\n", $1 * 100}' /proc/uptime; }
    # step STACK RATE COMMAND...: runs one step, its JSON on stdout to
    # /host/peers/STACK-RATE.json, CPU ticks beside it.
    step() {
        local stack=$1 rate=$2
        shift 2
        local c0 c1 t0 t1
        c0=$(busy)
        t0=$(now)
        "$@" >/host/peers/$stack-$rate.json 2>/host/peers/$stack-$rate.err
        echo $? >/host/peers/$stack-$rate.rc
        t1=$(now)
        c1=$(busy)
        echo $((c1 - c0)) >/host/peers/$stack-$rate.ticks
        echo $((t1 - t0)) >/host/peers/$stack-$rate.wall
    }
    ring() {
        local block=4096
        [ "$1" -ge 1000000 ] && block=65536
        insmod /lib/modules/hsdaq.ko rate_hz=$1 channels=4 block_bytes=$block buffer_bytes=33554432
    }
    # The idle guest's own busy time (timer ticks, emulated devices): the
    # baseline every step's CPU figure is corrected by.
    step idle 0 sleep $S
    for rate in $HSDAQ_RATES; do
        ring $rate
        step hsdaq-mmap $rate acquire record --device /dev/hsdaq0 --out /tmp/p --duration ${S}s \
            --compression none --allow-loss --json
        cp /tmp/p/manifest.json /host/peers/hsdaq-mmap-$rate.manifest.json
        rm -rf /tmp/p
        step hsdaq-read $rate hsdaq-hil-guest readpath --device /dev/hsdaq0 --seconds $S
        rmmod hsdaq
    done

    mount -t configfs none /sys/kernel/config
    mkdir /sys/kernel/config/iio/triggers/hrtimer/peertrig
    mkdir /sys/kernel/config/iio/devices/dummy/peerdummy
    for t in /sys/bus/iio/devices/trigger*; do
        [ "$(cat $t/name)" = peertrig ] && trig=$t
    done
    dev=/sys/bus/iio/devices/iio:device0
    iio_info -u local: >/host/peers/iio_info.txt 2>&1
    for rate in $IIO_RATES; do
        # The trigger is set here, not with iio_readdev -t: -t also writes
        # iio_readdev's fixed default (100 Hz) to the trigger's frequency.
        echo $rate >$trig/sampling_frequency
        echo peertrig >$dev/trigger/current_trigger
        # Kernel buffer: 4 blocks of a quarter second each (libiio's default
        # block count), as libiio's docs advise for streaming.
        b=$((rate / 4)); [ $b -lt 256 ] && b=256
        iio() {
            timeout -s INT $S iio_readdev -u local: -T 5000 -b $b peerdummy \
                voltage0 voltage1-voltage2 voltage3-voltage4 accel_x timestamp 2>/host/peers/iio-$rate.readdev.err |
                hsdaq-hil-guest iio-count --scan-bytes 16 --ts-offset 8 --rate $rate
        }
        step iio $rate iio
        # acquire's own IIO source on the same device and channels, to Parquet.
        step acquire-iio $rate acquire record --device iio:peerdummy --iio-trigger peertrig --rate $rate \
            --duration ${S}s --out /tmp/ai --compression none --allow-loss --json
        cp /tmp/ai/manifest.json /host/peers/acquire-iio-$rate.manifest.json
        rm -rf /tmp/ai
    done

    for rate in $COMEDI_RATES; do
        step comedi $rate hsdaq-hil-guest comedi-read --device /dev/comedi0 --rate $rate --channels 4 \
            --seconds $S --buffer-bytes 33554432
    done
    ls /dev/comedi* >/host/peers/comedi-devices.txt
}

check() {
    "$HIL/peers-table.sh" "$SHARE/peers" "$PEERS_SECONDS" >"$DIR/figures.json"
    local f=$DIR/figures.json
    echo "hil[peers]: $(jq -c '.summary' "$f")" >&2
    local rate
    for rate in $PEERS_HSDAQ_RATES; do
        expect "hsdaq-mmap $rate: every scan asked for is recorded or in the loss record" \
            jq -e --argjson r "$rate" '.steps[] | select(.stack == "hsdaq-mmap" and .rate_hz == $r) | .delivered + .lost == .asked and .reported_lost == .lost' "$f"
        expect "hsdaq-read $rate: every loss reported by the block headers" \
            jq -e --argjson r "$rate" '.steps[] | select(.stack == "hsdaq-read" and .rate_hz == $r) | .reported_lost == .lost' "$f"
    done
    for rate in $PEERS_IIO_RATES; do
        expect "iio $rate: iio_readdev ran and delivered scans" \
            jq -e --argjson r "$rate" '.steps[] | select(.stack == "iio" and .rate_hz == $r) | .delivered > 0' "$f"
        expect "acquire-iio $rate: every scan asked for is recorded or in an inferred gap" \
            jq -e --argjson r "$rate" '.steps[] | select(.stack == "acquire-iio" and .rate_hz == $r) | .delivered > 0 and .delivered + .reported_lost == .asked' "$f"
    done
    for rate in $PEERS_COMEDI_RATES; do
        expect "comedi $rate: the comedilib reader ran and delivered scans" \
            jq -e --argjson r "$rate" '.steps[] | select(.stack == "comedi" and .rate_hz == $r) | .delivered > 0' "$f"
    done
}
