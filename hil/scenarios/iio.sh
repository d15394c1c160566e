# Scenario: acquire's IIO source on iio_dummy (configfs) driven by an
# hrtimer trigger, beside libiio's iio_readdev on the same device and
# channels. iio_dummy pushes constant values (drivers/iio/dummy), so the
# recorded values must equal iio_readdev's raw bytes converted by the
# documented rule (acquire/src/source/iio/scan.rs). A reader stalled on
# purpose lets the kernel's kfifo overflow, which IIO does not count: the
# loss must appear as an inferred gap at the sample index the timestamps
# say. Without the timestamp channel the run must say loss detection was
# unavailable. acquire puts back every setting it changed.
BOARDS="qemu-x86_64"
DESCRIPTION="IIO source: iio_dummy recorded by acquire and iio_readdev (equal values), kfifo loss inferred at its index, DMABUF refused -> read(), settings restored"
TIMEOUT=420
IIO_RATE=1000 # also set in guest(), which runs in the guest alone

guest() {
    IIO_RATE=1000
    mount -t configfs none /sys/kernel/config
    mkdir /sys/kernel/config/iio/triggers/hrtimer/t0
    mkdir /sys/kernel/config/iio/devices/dummy/d0
    dev=/sys/bus/iio/devices/iio:device0
    for t in /sys/bus/iio/devices/trigger*; do
        [ "$(cat $t/name)" = t0 ] && trig=$t
    done
    acquire devices --json >/host/devices.json 2>/host/devices.err
    acquire devices >/host/devices.txt 2>&1
    acquire info --device iio:d0 --iio-trigger t0 --json >/host/info.json 2>/host/info.err
    # A clean run: every buffered channel and the timestamp.
    acquire record --device iio:d0 --iio-trigger t0 --rate $IIO_RATE --duration 5s \
        --out /tmp/clean --json --allow-loss >/host/clean.json 2>/host/clean.err
    echo $? >/host/clean.rc
    cp -r /tmp/clean /host/clean
    echo "trigger=[$(cat $dev/trigger/current_trigger)] enable=$(cat $dev/buffer0/enable)" \
        "voltage0_en=$(cat $dev/buffer0/in_voltage0_en) clock=$(cat $dev/current_timestamp_clock)" >/host/after.txt
    # libiio's reader on the same device and channels, raw bytes.
    echo $IIO_RATE >$trig/sampling_frequency
    echo t0 >$dev/trigger/current_trigger
    timeout -s INT 3 iio_readdev -u local: -T 5000 -b 256 d0 \
        voltage0 voltage1-voltage2 voltage3-voltage4 accel_x timestamp >/host/readdev.bin 2>/host/readdev.err
    echo >$dev/trigger/current_trigger
    # The reader stalls 2 s after 1 s; the kernel buffer holds ~0.5 s.
    acquire record --device iio:d0 --iio-trigger t0 --rate $IIO_RATE --duration 6s --block-bytes 1KiB \
        --out /tmp/stall --json --fault stall-producer:2s@1s >/host/stall.json 2>/host/stall.err
    echo $? >/host/stall.rc
    cp -r /tmp/stall /host/stall
    # Without the timestamp channel nothing can see a kfifo loss: said so.
    acquire record --device iio:d0 --iio-trigger t0 --rate $IIO_RATE --duration 2s \
        --channels voltage0,accel_x,-timestamp --out /tmp/nots --json --allow-loss >/host/nots.json 2>/host/nots.err
    echo $? >/host/nots.rc
    cp /tmp/nots/manifest.json /host/nots.manifest.json
    # Flags the device contradicts are usage errors (exit 2), nothing recorded.
    acquire record --device iio:d0 --iio-trigger t0 --channels nosuch --duration 1s \
        --out /tmp/bad1 >/dev/null 2>/host/badchan.err
    echo $? >/host/badchan.rc
    acquire record --device iio:d0 --iio-trigger nosuch --duration 1s --out /tmp/bad2 >/dev/null 2>/host/badtrig.err
    echo $? >/host/badtrig.rc
}

check() {
    local c=$SHARE/clean/manifest.json s=$SHARE/stall/manifest.json n=$SHARE/nots.manifest.json
    expect "acquire devices lists iio:d0 with its trigger and a read() buffer (kfifo refuses DMABUF)" \
        jq -e '.iio[] | select(.device == "iio:d0") | (.channels | length) == 5 and (.buffer | test("EPERM"))' "$SHARE/devices.json"
    expect "acquire info on iio:d0: its ring layout from the device's channels" \
        jq -e '.source == "iio" and .layout.channels == 4 and .layout.format == "i16"' "$SHARE/info.json"
    expect "clean run: completed" jq -e '.status == "complete"' "$c"
    expect "clean run: every scan asked for is recorded or in a gap (5 s x ${IIO_RATE} Hz)" \
        jq -e --argjson n $((5 * IIO_RATE)) '.counts.scans_recorded + .counts.scans_lost + .counts.scans_lost_at_end == $n' "$c"
    expect "clean run: IIO names, units and scale in the manifest" \
        jq -e '[.channels[].name] == ["voltage0","voltage1_voltage2","voltage3_voltage4","accel_x"] and .channels[0].unit == "mV" and .channels[0].scale > 0 and (.channels[1].raw | test("le:s12/16>>0"))' "$c"
    expect "clean run: read() chosen, the DMABUF refusal recorded" \
        jq -e '.device.properties.access | test("^read\\(\\): .*EPERM")' "$c"
    expect "clean run: external signal, measured timestamps, loss inferred from the timestamp channel" \
        jq -e '.stream.signal == "external" and (.stream.timestamps | startswith("measured")) and (.stream.loss_detection | startswith("inferred"))' "$c"
    expect "clean run: the per-scan inference accounts for the timestamps' span (within 1 %)" \
        jq -e '.source_counters | ."timestamp-span-scans" - ."recorded-or-placed-scans" <= ."timestamp-span-scans" / 100' "$c"
    expect "clean run verifies, and says the values were not compared" \
        bash -c "'$ACQUIRE_HOST' verify --json '$SHARE/clean' | jq -e '.first_error == null and .values_compared == false'"
    expect "settings put back: no trigger, buffer off, channel off, clock realtime" \
        grep -qx 'trigger=\[\] enable=0 voltage0_en=0 clock=realtime' "$SHARE/after.txt"
    expect "recorded values equal iio_readdev's raw bytes converted by the documented rule" \
        python3 "$HIL/scenarios/iio_values.py" "$SHARE/clean" "$SHARE/readdev.bin"
    expect "stall: exit 3 (samples lost)" grep -qx 3 "$SHARE/stall.rc"
    expect "an unknown channel: exit 2 naming the channels there are" \
        bash -c "grep -qx 2 '$SHARE/badchan.rc' && grep -q 'no buffered channel \"nosuch\"; it has' '$SHARE/badchan.err'"
    expect "an unknown trigger: exit 2 naming the triggers there are" \
        bash -c "grep -qx 2 '$SHARE/badtrig.rc' && grep -q 'no IIO trigger \"nosuch\"; present: t0' '$SHARE/badtrig.err'"
    expect "stall: an inferred gap of at least 0.5 s (the 2 s stall less the 0.48 s kfifo, with margin) within 1.5 s of the stall, all inferred" \
        jq -e '([.gaps[] | select(.kind == "inferred")] | max_by(.lost)) as $g | $g.lost >= 500 and $g.at_seq >= 1000 and $g.at_seq <= 4000 and .counts.scans_lost_inferred == .counts.scans_lost' "$s"
    expect "stall: inferred gaps as large as the time step across them (95 %), the stall's at the index the trigger clock gives (3 %)" \
        python3 "$HIL/scenarios/iio_values.py" --gaps "$SHARE/stall" "$IIO_RATE"
    expect "stall: the recording verifies (continuity against the inferred gaps)" verify "$SHARE/stall"
    expect "no timestamp channel: loss detection recorded as unavailable" \
        jq -e '(.stream.loss_detection | startswith("unavailable")) and (.stream.timestamps | startswith("nominal")) and (.channels | length) == 2' "$n"
    expect "no timestamp channel: the summary says so" jq -e '.loss_detection | startswith("unavailable")' "$SHARE/nots.json"
}
