# Scenario a: no firmware node. The module creates its virtual device from
# module parameters; acquire records for several seconds in the guest; the
# host verifies every sample, with zero loss.
BOARDS="qemu-x86_64"
DESCRIPTION="virtual fallback device, 5 s recording at 200k scans/s, zero loss"
TIMEOUT=240

guest() {
    # A bad parameter: the probe of the virtual device fails, loudly.
    insmod /lib/modules/hsdaq.ko rate_hz=0 channels=4
    test ! -e /dev/hsdaq0
    rmmod hsdaq
    # A ring larger than any contiguous allocation here (buddy 4 MiB, CMA 64 MiB).
    insmod /lib/modules/hsdaq.ko rate_hz=1000 channels=4 buffer_bytes=268435456
    test ! -e /dev/hsdaq0
    rmmod hsdaq
    insmod /lib/modules/hsdaq.ko rate_hz=200000 channels=4 sample_bits=16
    test -c /dev/hsdaq0
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    acquire info --device /dev/hsdaq0 >/host/info.txt
    acquire info --device /dev/hsdaq0 --json >/host/info.json
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 5s --compression lz4 --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    expect "rate_hz=0 was refused by probe, naming the parameter" \
        grep -q "hsdaq hsdaq.0: parameter 'rate_hz' = 0" "$SHARE/dmesg.log"
    expect "a 256 MiB ring was refused by probe, naming the parameter and the allocation" \
        grep -q "hsdaq hsdaq.0: parameter 'buffer_bytes' = 268435456: cannot allocate" "$SHARE/dmesg.log"
    expect "the driver bound its own virtual device hsdaq.0" grep -qx 'hsdaq.0' "$SHARE/bound.txt"
    expect_info "$SHARE/info.json" "probe took the module parameters (200 kHz x 4 ch i16)" \
        '.layout.rate_hz == 200000 and .layout.channels == 4 and .layout.format == "i16" and .device.properties."settings-from" == "module-parameters" and (.device.properties.kind | startswith("virtual-fallback"))'
    expect "probe is silent on success (no dev_info per device)" sh -c "! grep -q 'hsdaq hsdaq.0: /dev/hsdaq0' '$SHARE/dmesg.log'"
    expect_recording "$SHARE/run" 200000 4 # the module parameters
    expect_eq "manifest source" "$(manifest "$SHARE/run" .device.source)" virtual
    expect "recorded at least 5 s of scans" test "$(manifest "$SHARE/run" .counts.scans_recorded)" -ge 1000000
}
