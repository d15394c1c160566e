# arm64, invalid device trees (table-driven): one boot whose tree holds a
# broken sensor node per row of the table below, plus one valid node. Each
# broken node's probe must fail with a dev_err naming the property; the valid
# node must still bind and record; the kernel must stay healthy.
BOARDS="qemu-arm64"
DESCRIPTION="broken DT nodes: probe fails naming the property, kernel healthy, valid node records"
TIMEOUT=300

# node-name | properties (replacing the defaults below) | expected dev_err text
TABLE="
missing-rate|hsdaq,channels = <4>;|required property 'hsdaq,rate-hz' is missing
missing-channels|hsdaq,rate-hz = <1000>;|required property 'hsdaq,channels' is missing
rate-zero|hsdaq,rate-hz = <0>; hsdaq,channels = <4>;|property 'hsdaq,rate-hz' = 0
rate-too-high|hsdaq,rate-hz = <100000001>; hsdaq,channels = <4>;|property 'hsdaq,rate-hz' = 100000001
rate-not-u32|hsdaq,rate-hz = \"fast\"; hsdaq,channels = <4>;|property 'hsdaq,rate-hz' must be a single u32
channels-65|hsdaq,rate-hz = <1000>; hsdaq,channels = <65>;|property 'hsdaq,channels' = 65
format-unknown|hsdaq,rate-hz = <1000>; hsdaq,channels = <4>; hsdaq,format = \"f32\";|property 'hsdaq,format' = \"f32\"
buffer-not-pow2|hsdaq,rate-hz = <1000>; hsdaq,channels = <4>; hsdaq,buffer-bytes = <100000>;|property 'hsdaq,buffer-bytes' = 100000
block-too-big|hsdaq,rate-hz = <1000>; hsdaq,channels = <4>; hsdaq,buffer-bytes = <65536>; hsdaq,block-bytes = <65536>;|property 'hsdaq,block-bytes' = 65536
waveform-unknown|hsdaq,rate-hz = <1000>; hsdaq,channels = <4>; hsdaq,waveform = \"square\";|property 'hsdaq,waveform' = \"square\"
memory-region-bad|hsdaq,rate-hz = <1000>; hsdaq,channels = <4>; memory-region = <&hsdaq_valid>;|property 'memory-region': not a usable reserved-memory region
"

dtb() {
    local src=$DIR/hsdaq-invalid.dtso
    {
        echo '/dts-v1/;'
        echo '/plugin/;'
        echo '&{/} {'
        echo '	hsdaq_valid: sensor-valid { compatible = "hsdaq,virtual-sensor"; hsdaq,rate-hz = <10000>; hsdaq,channels = <2>; };'
        local name props msg
        while IFS='|' read -r name props msg; do
            [[ -n $name ]] || continue
            echo "	sensor-$name { compatible = \"hsdaq,virtual-sensor\"; $props };"
        done <<<"$TABLE"
        echo '};'
    } >"$src"
    virt_dtb "$DIR" "$src"
}

guest() {
    insmod /lib/modules/hsdaq.ko
    ls /sys/bus/platform/drivers/hsdaq/ >/host/bound.txt
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 2s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    local name props msg
    while IFS='|' read -r name props msg; do
        [[ -n $name ]] || continue
        expect "sensor-$name: probe failed with: $msg" grep -qF "sensor-$name: $msg" "$SHARE/dmesg.log"
        expect "sensor-$name: not bound" sh -c "! grep -qx 'sensor-$name' '$SHARE/bound.txt'"
    done <<<"$TABLE"
    expect "the valid node bound" grep -qx 'sensor-valid' "$SHARE/bound.txt"
    expect "the valid node's recording verifies" verify "$SHARE/run"
    expect_eq "the valid node's rate" "$(manifest "$SHARE/run" .stream.rate_hz)" 10000
}
