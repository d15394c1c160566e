# arm64, the DMA source's probe paths: a channel whose controller has not
# probed yet defers the probe cleanly (no /dev/hsdaqN, no virtual fallback in
# its place) and binds once the controller appears; bad `dmas` references
# are named probe errors; a reboot while the engine streams stops it first
# (the reboot notifier that stands in for .shutdown, which also serves kexec).
BOARDS="qemu-arm64"
DESCRIPTION="DMA source probe: deferred until the controller binds, bad dmas named, engine quiesced at reboot"
TIMEOUT=240
RAM=/dev/shm/hsdaq-hil-dma-probe

dtb() {
    # The good node, plus two broken ones: a channel the controller does not
    # have, and no "rx" among dma-names.
    cat "$ROOT/dts/overlays/hsdaq-qemu-virt-dma.dtso" - >"$DIR/dma-probe.dtso" <<'DTS'

&{/} {
	adc-bad-channel {
		compatible = "hsdaq,dma-adc";
		hsdaq,rate-hz = <1000>;
		hsdaq,channels = <1>;
		dmas = <&adc_dma 5>;
		dma-names = "rx";
	};

	adc-no-rx {
		compatible = "hsdaq,dma-adc";
		hsdaq,rate-hz = <1000>;
		hsdaq,channels = <1>;
		dmas = <&adc_dma 0>;
		dma-names = "tx";
	};
};
DTS
    virt_dtb "$DIR" "$DIR/dma-probe.dtso"
}
qemu_extra() { shared_ram_args $RAM; }
boots() { with_emulator $RAM 250000 8 s16 4092 16 boot_guest; }

guest() {
    insmod /lib/modules/hsdaq.ko
    sleep 1
    cat /sys/kernel/debug/devices_deferred >/host/deferred-before.txt
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound-before.txt
    ls /dev/ >/host/dev-before.txt
    insmod /lib/modules/fifo-dma.ko
    sleep 2
    cat /sys/kernel/debug/devices_deferred >/host/deferred-after.txt
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 2s --json >/host/record.json
    cp -r /tmp/run /host/run
    # Reboot (init's `reboot -f`) while the engine streams.
    acquire record --device /dev/hsdaq0 --out /tmp/long --duration 60s >/dev/null 2>&1 &
    sleep 2
}

check() {
    expect "before the controller: the good node's probe is deferred" grep -q 'adc$\|adc\s' "$SHARE/deferred-before.txt"
    expect "before the controller: nothing bound, no virtual fallback" sh -c "! grep -qE 'adc|hsdaq' '$SHARE/bound-before.txt'"
    expect "before the controller: no /dev/hsdaqN" sh -c "! grep -q hsdaq '$SHARE/dev-before.txt'"
    expect "after the controller: the node bound (deferred probe retried)" grep -qx adc "$SHARE/bound.txt"
    expect "after the controller: nothing of ours is still deferred" sh -c "! grep -q adc '$SHARE/deferred-after.txt'"
    expect "a channel the controller lacks is a named probe error" \
        grep -q "adc-bad-channel: property 'dmas' / 'dma-names' = \"rx\": cannot get the DMA channel (error -19)" "$SHARE/dmesg.log"
    expect "dma-names without rx is a named probe error" \
        grep -q "adc-no-rx: property 'dmas' / 'dma-names' = \"rx\": cannot get the DMA channel (error -19)" "$SHARE/dmesg.log"
    expect "the deferred node then records and verifies" verify "$SHARE/run"
    expect "reboot while streaming: the engine was stopped first" grep -q 'hsdaq: DMA stopped for reboot/kexec' "$DIR/serial.log"
    expect "no oops or warning up to the reset" kernel_clean "$DIR/serial.log"
}
