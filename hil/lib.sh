# Functions shared by hil/run.sh and the scenarios (sourced, bash).

step() {
    local what=$1
    shift
    echo "hil: $what" >&2
    "$@" >&2
}

# build_userspace DIR: acquire and the guest tools for the guest's
# architecture. On x86_64 this is the workspace's dev build (the one the
# tests use; Cargo.toml compiles acquire optimised in it), whose shared
# libraries make_initramfs copies along.
build_userspace() {
    local dir=$1
    rm -rf "$dir" && mkdir -p "$dir"
    if [[ $ARCH == x86_64 ]]; then
        echo "hil: cargo build (acquire, hsdaq-hil-guest; dev profile, optimised)" >&2
        (cd "$ROOT" && cargo build -q -p hsdaq-acquire -p hsdaq-hil-guest) >&2
        cp "$ROOT/target/debug/acquire" "$ROOT/target/debug/hsdaq-hil-guest" "$dir/"
    else
        # rustup cannot add targets here: Debian's rustc-web and its arm64 std
        # build a static binary, in their own target folder (another rustc),
        # kept outside the repository so a clean clone reuses it. The same
        # command as scripts/dist.sh's: the guest runs the shipped binary.
        echo "hil: cargo build --profile dist --target aarch64-unknown-linux-gnu (static, Debian rustc)" >&2
        local tdir=${HSDAQ_CACHE:-/var/cache/hsdaq}/cross-target
        (cd "$ROOT" && RUSTC=/usr/bin/rustc RUSTFLAGS="-C target-feature=+crt-static" \
            CARGO_TARGET_DIR=$tdir CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            cargo build -q --profile dist --target aarch64-unknown-linux-gnu -p hsdaq-acquire -p hsdaq-hil-guest) >&2
        cp "$tdir/aarch64-unknown-linux-gnu/dist/acquire" \
            "$tdir/aarch64-unknown-linux-gnu/dist/hsdaq-hil-guest" "$dir/"
    fi
}

# Host programs copied into the x86_64 initramfs with their libraries.
GUEST_HOST_TOOLS=(/usr/sbin/e2fsck /usr/bin/iio_readdev /usr/bin/iio_info)

# make_initramfs OUT KO BINDIR: busybox, the module, our binaries (and the
# shared libraries they load), and an /init that runs the scenario from the
# 9p share. Prints the archive's path.
make_initramfs() {
    local out=$1 ko=$2 bindir=$3
    local root=$out/initramfs
    rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,tmp,host,lib/modules}
    local busybox=/bin/busybox
    [[ $ARCH == arm64 ]] && busybox=$(arm64_busybox "$out")
    cp "$busybox" "$root/bin/busybox"
    cp "$(dirname "$ko")"/*.ko "$root/lib/modules/"
    cp "$bindir"/* "$root/bin/"
    if [[ $ARCH == x86_64 ]]; then
        # Host tools the scenarios use in the guest: e2fsck after a power cut,
        # libiio's iio_readdev and iio_info for the peers comparison.
        local tool lib
        for tool in "${GUEST_HOST_TOOLS[@]}"; do
            cp -L "$(command -v "$tool")" "$root/bin/"
        done
        for lib in $(ldd "$root"/bin/* 2>/dev/null | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
            cp --parents -L "$lib" "$root/"
        done
    fi
    mknod "$root/dev/console" c 5 1
    cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 host /host
echo "hil: guest up, running /host/guest.sh"
cd /tmp
sh /host/guest.sh >/host/guest.log 2>&1
echo $? >/host/guest.rc
dmesg >/host/dmesg.log
echo "hil: guest done (rc $(cat /host/guest.rc))"
sync
reboot -f
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"
    echo "$out/initramfs.cpio.gz"
}

# arm64_busybox OUT: busybox-static for arm64, downloaded and unpacked (not
# installed). Prints the binary's path.
arm64_busybox() {
    local dir=$1/busybox-arm64
    if [[ ! -x $dir/bin/busybox ]]; then
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$dir" && apt-get download -q busybox-static:arm64 >/dev/null 2>&1 && dpkg-deb -x busybox-static_*.deb .)
    fi
    echo "$dir/bin/busybox"
}

# The machine options the arm64 tree is dumped with and booted with: QEMU
# generates the tree from them, so they must be identical.
VIRT_MACHINE=(-M virt -cpu cortex-a57 -m 1G -smp 2)

# virt_dtb OUT OVERLAY_DTS...: QEMU's own virt tree with our overlays applied.
virt_dtb() {
    local out=$1
    shift
    local base=$out/virt.dtb dtb=$out/virt-hsdaq.dtb
    qemu-system-aarch64 "${VIRT_MACHINE[@]}" -machine dumpdtb="$base" -nographic >/dev/null 2>&1
    local overlays=() src
    for src in "$@"; do
        dtc -q -@ -I dts -O dtb -o "$out/$(basename "$src" .dtso).dtbo" "$src"
        overlays+=("$out/$(basename "$src" .dtso).dtbo")
    done
    fdtoverlay -i "$base" -o "$dtb" "${overlays[@]}"
    echo "$dtb"
}

# qemu_cmd SHARE_DIR: the QEMU command line for the board (TCG).
qemu_cmd() {
    local share=$1
    case $ARCH in
    x86_64)
        echo qemu-system-x86_64 -m 1G -smp 2 -nographic -no-reboot -nic none \
            -kernel "$KBUILD/$KERNEL_IMAGE_PATH" -initrd "$INITRD" \
            -append "'console=ttyS0 panic=-1 loglevel=6'" \
            -virtfs "local,path=$share,mount_tag=host,security_model=none" ;;
    arm64)
        echo qemu-system-aarch64 "${VIRT_MACHINE[@]}" -nographic -no-reboot -nic none \
            -dtb "$DTB" -kernel "$KBUILD/$KERNEL_IMAGE_PATH" -initrd "$INITRD" \
            -append "'console=ttyAMA0 panic=-1 loglevel=6'" \
            -fsdev "local,id=fs0,path=$share,security_model=none" \
            -device "virtio-9p-device,fsdev=fs0,mount_tag=host" ;;
    esac
}

# --- checks (used by scenarios' check functions) ---------------------------
CHECKS=()
FAILS=0
# record PASSED MESSAGE: adds one check result.
record() {
    if [[ $1 == yes ]]; then
        CHECKS+=("ok: $2")
    else
        CHECKS+=("FAILED: $2")
        FAILS=$((FAILS + 1))
        echo "hil[$NAME]: FAILED: $2" >&2
    fi
}
# expect DESCRIPTION COMMAND...: passes if the command succeeds.
expect() {
    local what=$1
    shift
    if "$@" >>"$DIR/check.log" 2>&1; then record yes "$what"; else record no "$what"; fi
}
# expect_eq DESCRIPTION ACTUAL EXPECTED
expect_eq() {
    if [[ "$2" == "$3" ]]; then record yes "$1 ($2)"; else record no "$1: got '$2', expected '$3'"; fi
}
# expect_recording RUN RATE CHANNELS: the run verifies on the host (every
# loss at a recorded gap of its exact size, the manifest's count = the
# gaps'), and its manifest carries the device's rate and channel count. How
# much was lost depends on the host's load (TCG), so it is a figure.
expect_recording() {
    expect "acquire verify passes on the host" verify "$1"
    expect_eq "manifest rate" "$(manifest "$1" .stream.rate_hz)" "$2"
    expect_eq "manifest channels" "$(manifest "$1" .stream.channels)" "$3"
    say_loss "$1"
}
# expect_accounted RUN ASKED: every scan asked for is recorded or counted
# lost (in a gap or at the end), and the loss is said as a figure.
expect_accounted() {
    expect_eq "$(basename "$1"): recorded + lost = asked" \
        "$(manifest "$1" '.counts.scans_recorded + .counts.scans_lost + (.counts.scans_lost_at_end // 0)')" "$2"
    say_loss "$1"
}
# say_loss RUN: the run's loss as a figure (stderr and figures.json), not a
# check: a loss-free rate in the TCG guest moves with the host's load.
say_loss() {
    local lost
    lost=$(manifest "$1" '.counts.scans_lost + (.counts.scans_lost_at_end // 0)' 2>/dev/null) || lost=null
    echo "hil[$NAME]: figure: $(basename "$1") lost ${lost:-null} scans" >&2
    jq -nc --arg run "$(basename "$1")" --argjson lost "${lost:-null}" '{run: $run, lost: $lost}' \
        >>"$DIR/figures.json" || true
}
# expect_firmware_bound DEVICE: the driver bound the firmware device DEVICE
# (listed by the guest in bound.txt) and created no virtual fallback.
expect_firmware_bound() {
    expect "the driver bound the firmware device $1" grep -qx "$1" "$SHARE/bound.txt"
    expect "no virtual fallback device was created" sh -c "! grep -qx 'hsdaq.0' '$SHARE/bound.txt'"
}
# kernel_clean [LOG]: no oops, BUG, WARN or panic in the guest's kernel log
# (default: the last boot's dmesg.log), and no report of the debug kernel's
# detectors (lockdep, sleeping in atomic, soft lockup, hung task, RCU stall,
# KFENCE, SLUB, debugobjects).
KERNEL_REPORTS='Oops|BUG:|WARNING:|Call Trace|Kernel panic|general protection|UBSAN|rust_panic|panicked|INFO: task .* blocked|rcu: INFO|self-detected stall|ODEBUG:|KFENCE:|Redzone|Poison overwritten|possible recursive locking|circular locking|inconsistent lock state'
# A scenario may name one known upstream report that is not hsdaq's
# (KNOWN_KERNEL_REPORT, a regex matched inside a lockdep report): that whole
# report (from its "possible circular locking" line to the end of its
# stack, `</TASK>`) is left out; any other report still fails.
kernel_clean() {
    # A log that is missing or empty shows nothing, which is not "clean".
    [[ -s ${1:-$SHARE/dmesg.log} ]] || { echo "no kernel log at ${1:-$SHARE/dmesg.log}" >&2; return 1; }
    awk -v known="${KNOWN_KERNEL_REPORT:-}" '
        /WARNING: possible circular locking dependency detected/ && known != "" { inblk = 1; blk = ""; hit = 0 }
        inblk { blk = blk $0 "\n"; if ($0 ~ known) hit = 1; if ($0 ~ /<\/TASK>/) { inblk = 0; if (!hit) printf "%s", blk }; next }
        { print }
        END { if (inblk && !hit) printf "%s", blk }' "${1:-$SHARE/dmesg.log}" | { ! grep -E "$KERNEL_REPORTS"; }
}
# expect_info FILE DESCRIPTION JQ_TEST: the device as `acquire info --json`
# (IOC_INFO) describes it passes JQ_TEST. Probe is silent on success
# (upstream style), so this is where a scenario reads what probe decided.
expect_info() {
    expect "$2" jq -e "$3" "$1"
}
# manifest RUN JQ_FILTER: a value from a recorded run's manifest.
manifest() { jq -r "$2" "$1/manifest.json"; }
verify() { "$ACQUIRE_HOST" verify "$1"; }

# boot_guest: boots the scenario's guest once (console appended to
# serial.log); returns QEMU's exit status (124 or 137: timed out).
boot_guest() {
    eval "timeout --foreground -k 5 $TIMEOUT $(qemu_cmd "$SHARE") $(qemu_extra)" </dev/null >>"$DIR/serial.log" 2>&1
}

# run_scenario NAME: boots one guest and runs the scenario's checks.
run_scenario() {
    NAME=$1
    DIR=$OUT/$NAME
    SHARE=$DIR/share
    CHECKS=()
    FAILS=0
    rm -rf "$DIR" && mkdir -p "$SHARE"
    : >"$DIR/check.log"
    # Board profiles, for `acquire record --profile /host/boards/...`.
    cp -rL "$ROOT/boards" "$SHARE/boards"
    local file=$HIL/scenarios/$NAME.sh
    [[ -f $file ]] || { echo "hil: no scenario $NAME" >&2; return 1; }
    unset -f guest check qemu_extra dtb boots
    TIMEOUT=300 KNOWN_KERNEL_REPORT=
    qemu_extra() { :; }
    # How the guest is booted: once, by default; a scenario may boot it
    # several times (the power-cut scenario), the last boot's guest.rc counts.
    boots() { boot_guest; }
    # arm64: the device tree to boot (default: QEMU's virt tree + our overlay).
    dtb() { virt_dtb "$DIR" "$ROOT/dts/overlays/hsdaq-qemu-virt.dtso"; }
    # shellcheck source=/dev/null
    source "$file"
    { echo "set -x"; declare -f guest; echo guest; } >"$SHARE/guest.sh"
    DTB=
    [[ $ARCH == arm64 ]] && DTB=$(dtb)
    local start=$SECONDS rc=0
    echo "hil[$NAME]: booting ($DESCRIPTION; $VARIANT kernel; timeout ${TIMEOUT}s)" >&2
    : >"$DIR/serial.log"
    boots || rc=$?
    local seconds=$((SECONDS - start))
    if ((rc == 124 || rc == 137)); then
        record no "guest did not finish within ${TIMEOUT}s"
    elif [[ ! -f $SHARE/guest.rc ]]; then
        record no "guest never finished its script (qemu rc $rc; see serial.log)"
    else
        expect_eq "guest script exit status" "$(cat "$SHARE/guest.rc")" "${GUEST_RC:-0}"
        expect "kernel log has no oops, BUG, WARN, panic or debug-detector report ($VARIANT kernel)" kernel_clean
        # The module's KUnit suites run at every insmod; a scenario that never
        # loads it (e.g. `iio`; the guest's `set -x` trace says) has none.
        if [[ $VARIANT == debug ]] && grep -q 'insmod /lib/modules/hsdaq.ko' "$SHARE/guest.log"; then
            expect "KUnit: no run of the module's suites failed" \
                sh -c "! grep -qE '# hsdaq_(producer|config): .*fail:[1-9]' '$SHARE/dmesg.log'"
            expect "KUnit: the module's producer tests passed at insmod" \
                grep -qE '# hsdaq_producer: pass:[1-9][0-9]* fail:0' "$SHARE/dmesg.log"
            expect "KUnit: the module's config-validation tests passed at insmod" \
                grep -qE '# hsdaq_config: pass:[1-9][0-9]* fail:0' "$SHARE/dmesg.log"
        fi
        check
    fi
    local detail
    detail=$(printf '%s\n' "${CHECKS[@]}" | grep -c '^ok') 
    detail="$detail/${#CHECKS[@]} checks passed"
    printf '%s\n' "${CHECKS[@]}" | jq -R . | jq -s \
        --arg s "$NAME" --arg b "$BOARD" --arg k "$VARIANT" --arg d "$DESCRIPTION" --arg detail "$detail" \
        --argjson seconds "$seconds" --argjson ok "$([[ $FAILS == 0 ]] && echo true || echo false)" \
        '{scenario: $s, board: $b, kernel: $k, description: $d, ok: $ok, seconds: $seconds, detail: $detail, checks: .}' \
        >"$DIR/result.json"
    if ((FAILS > 0)); then
        echo "hil[$NAME]: FAIL ($detail); serial log $DIR/serial.log, guest log $SHARE/guest.log" >&2
        return 1
    fi
    echo "hil[$NAME]: pass ($detail, ${seconds}s)" >&2
}

# --- the DMA source's host-side converter (hil/emulator) --------------------
# The FIFO region of dts/overlays/hsdaq-qemu-virt-dma.dtso.
FIFO_PHYS=0x7e000000
FIFO_BYTES=0x1000000

# shared_ram_args FILE: QEMU options that back the guest's RAM with FILE
# (share=on), so a host process writes what the guest reads.
shared_ram_args() {
    echo "-object memory-backend-file,id=ram,size=1G,mem-path=$1,share=on -machine memory-backend=ram"
}

# with_emulator FILE RATE CHANNELS FORMAT PACKET_SCANS SLOTS CMD...: runs CMD
# (a boot) with the converter emulator writing the FIFO inside FILE; its
# report lands in $DIR/emulator.json. The RAM file is removed afterwards.
with_emulator() {
    local ram=$1 rate=$2 ch=$3 fmt=$4 scans=$5 slots=$6 rc=0
    shift 6
    rm -f "$ram"
    "$ROOT/target/debug/hsdaq-hil-emulator" --ram "$ram" --fifo-phys $FIFO_PHYS --fifo-bytes $FIFO_BYTES \
        --rate "$rate" --channels "$ch" --format "$fmt" --packet-scans "$scans" --slots "$slots" \
        --report "$DIR/emulator.json" 2>>"$DIR/emulator.log" &
    local pid=$!
    # The FIFO must be initialised before the guest's controller probes.
    local i
    for i in $(seq 50); do [[ -s $ram ]] && break; sleep 0.1; done
    "$@" || rc=$?
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    rm -f "$ram"
    return $rc
}
