# Scenario b: an SSDT (built with iasl) declares a PRP0001 device whose _DSD
# carries our compatible and properties. The driver binds it through its OF
# table, creates no virtual device, and the recording carries the SSDT's
# rate, channels and format.
BOARDS="qemu-x86_64"
DESCRIPTION="ACPI PRP0001 + _DSD binding (48 kHz x 6 ch s32 from the SSDT)"
TIMEOUT=240

qemu_extra() {
    iasl -tc -p "$DIR/hsdaq-ssdt" "$ROOT/boards/qemu-x86_64/hsdaq-ssdt.asl" >"$DIR/iasl.log" 2>&1 || {
        cat "$DIR/iasl.log" >&2
        return 1
    }
    echo "-acpitable file=$DIR/hsdaq-ssdt.aml"
}

guest() {
    # Asynchronous probe (issue 20, finding 4): module init runs on while the
    # PRP0001 device probes; the fallback must still see the node exists.
    insmod /lib/modules/hsdaq.ko async_probe=1
    n=0
    while [ ! -c /dev/hsdaq0 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
    sleep 0.5
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound-async.txt
    ls /dev >/host/dev-async.txt
    rmmod hsdaq
    insmod /lib/modules/hsdaq.ko
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    acquire info --device /dev/hsdaq0 --json >/host/info.json
    # A request that contradicts the device is refused before recording.
    if acquire record --device /dev/hsdaq0 --channels 4 --out /tmp/bad --duration 1s 2>/host/mismatch.err; then
        echo "a contradicting request was accepted" >&2
        exit 1
    fi
    acquire record --profile /host/boards/qemu-x86_64/acquire.toml --out /tmp/run --duration 3s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    expect "async probe: the driver bound PRP0001:00" grep -qx 'PRP0001:00' "$SHARE/bound-async.txt"
    expect "async probe: no virtual fallback device beside it" sh -c "! grep -qx 'hsdaq.0' '$SHARE/bound-async.txt'"
    expect "async probe: one device node only" sh -c "! grep -qx 'hsdaq1' '$SHARE/dev-async.txt'"
    expect "module init counted the firmware node" grep -qF "hsdaq: 1 firmware node(s)" "$SHARE/dmesg.log"
    expect_firmware_bound PRP0001:00
    expect_info "$SHARE/info.json" "probe took the SSDT's settings (48 kHz x 6 ch i32, firmware node)" \
        '.layout.rate_hz == 48000 and .layout.channels == 6 and .layout.format == "i32" and .device.properties."settings-from" == "firmware-node" and .device.properties.kind == "firmware-device"' 
    expect_recording "$SHARE/run" 48000 6 # the SSDT's hsdaq,rate-hz and hsdaq,channels
    expect_eq "manifest format = SSDT hsdaq,format" "$(manifest "$SHARE/run" '.stream.format')" i32
    expect_eq "manifest block bytes = SSDT hsdaq,block-bytes" "$(manifest "$SHARE/run" '.stream.block_bytes')" 8192
    expect_eq "manifest compatible" "$(manifest "$SHARE/run" '.device.compatible')" hsdaq,virtual-sensor
    expect "--channels 4 against the 6-channel device was refused clearly" grep -qi 'channel' "$SHARE/mismatch.err"
    expect_eq "the board profile's channel names and units are in the manifest" \
        "$(manifest "$SHARE/run" '[.channels[] | "\(.name):\(.unit)"] | join(",")')" \
        "strain_0:ustrain,strain_1:ustrain,strain_2:ustrain,strain_3:ustrain,bridge_v:V,temp:degC"
    expect_eq "manifest board" "$(manifest "$SHARE/run" .board)" qemu-x86_64
}
