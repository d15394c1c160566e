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
    expect_firmware_bound PRP0001:00
    expect_info "$SHARE/info.json" "probe took the SSDT's settings (48 kHz x 6 ch i32, firmware node)" \
        '.layout.rate_hz == 48000 and .layout.channels == 6 and .layout.format == "i32" and .device.properties."settings-from" == "firmware-node"' 
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
