# arm64 (issue 20, finding 4): the only sensor node in the tree fails probe
# (a bad property). The driver must not create a virtual sensor in its
# place: the decision is whether a firmware node exists, not whether one
# bound, so /dev/hsdaq0 never is a synthetic device the user would take for
# the board's. (The x86 `acpi` scenario covers asynchronous probing.)
BOARDS="qemu-arm64"
DESCRIPTION="the only DT node fails probe: no virtual fallback device appears in its place"
TIMEOUT=240

dtb() {
    local src=$DIR/hsdaq-broken.dtso
    cat >"$src" <<'DTS'
/dts-v1/;
/plugin/;
&{/} {
	sensor-broken { compatible = "hsdaq,virtual-sensor"; hsdaq,rate-hz = <0>; hsdaq,channels = <4>; };
};
DTS
    virt_dtb "$DIR" "$src"
}

guest() {
    insmod /lib/modules/hsdaq.ko
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    ls /dev >/host/dev.txt
    rmmod hsdaq
}

check() {
    expect "the broken node's probe failed, naming the property" grep -qF "sensor-broken: property 'hsdaq,rate-hz' = 0" "$SHARE/dmesg.log"
    expect "module init saw the node and made no virtual device" grep -qF "hsdaq: 1 firmware node(s) (0 bound); no virtual devices" "$SHARE/dmesg.log"
    expect "no virtual platform device hsdaq.0" sh -c "! grep -qx 'hsdaq.0' '$SHARE/bound.txt'"
    expect "no /dev/hsdaq0" sh -c "! grep -qx 'hsdaq0' '$SHARE/dev.txt'"
}
