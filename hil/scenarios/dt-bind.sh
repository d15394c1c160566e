# arm64, the device-tree path: QEMU's own virt tree plus our overlay
# (dts/overlays/hsdaq-qemu-virt.dtso: a sensor node and a 32 MiB no-map
# shared-dma-pool). The driver binds the node by its compatible, takes its
# settings from the node's properties, allocates a 16 MiB ring from the
# reserved region (four times what the page allocator could give), and a
# recording in the guest verifies on the host with the node's values in
# its manifest.
BOARDS="qemu-arm64"
DESCRIPTION="DT node binds (250 kHz x 8 ch, 16 MiB ring in reserved memory); recording verifies"
TIMEOUT=300

guest() {
    insmod /lib/modules/hsdaq.ko
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    cat /proc/device-tree/sensor/compatible >/host/compatible.txt
    acquire info --device /dev/hsdaq0 --json >/host/info.json
    acquire record --profile /host/boards/qemu-arm64/acquire.toml --out /tmp/run --duration 4s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    expect_firmware_bound sensor
    expect_info "$SHARE/info.json" "probe took the node's settings and the reserved region" \
        '.layout.rate_hz == 250000 and .layout.channels == 8 and .layout.block_bytes == 65536 and .layout.data_size == 16777216 and .device.properties."settings-from" == "firmware-node" and .device.properties."buffer-from" == "reserved-memory"' 
    expect "the kernel reserved the region at boot" grep -qi 'reserved mem.*hsdaq-buffer' "$SHARE/dmesg.log"
    expect_recording "$SHARE/run" 250000 8 # the node's hsdaq,rate-hz and hsdaq,channels
    expect_eq "manifest ring = node hsdaq,buffer-bytes" "$(manifest "$SHARE/run" .stream.buffer_bytes)" 16777216
    expect_eq "manifest name = node label" "$(manifest "$SHARE/run" .device.name)" qemu-virt-adc
    expect_eq "manifest compatible" "$(manifest "$SHARE/run" .device.compatible)" hsdaq,virtual-sensor
    expect_eq "the board profile's channels and scale are in the manifest" \
        "$(manifest "$SHARE/run" '[.channels[] | "\(.name):\(.unit):\(.scale)"] | .[0]')" "mic0:Pa:0.00305"
    expect "the booted tree passes dt-validate against the binding" "$ROOT/dts/check.sh" "$DIR/virt.dtb"
}
