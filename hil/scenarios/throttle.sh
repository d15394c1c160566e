# Scenario: a disk slower than the stream. `acquire record` writes the
# virtual sensor's 8 MB/s (1 M scans/s x 4 ch x s16, no codec) to ext4 on a
# virtio-blk disk held to 2 MB/s by cgroup v2 `io.max`. The writer falls
# behind, the bounded chunk pool fills (the drain waits for a free chunk,
# never for the disk), the ring fills and the producer drops. Checked: every
# scan asked for is recorded or in the run's loss record (gaps, end of run),
# that loss equals the driver's drop counter, the progress line and
# health.csv show the backlog, and the recording verifies.
BOARDS="qemu-x86_64"
DESCRIPTION="8 MB/s stream onto a disk held to 2 MB/s (io.max): every drop counted as a gap, backlog shown"
TIMEOUT=300
# On the debug kernel (as in CI) lockdep may report a circular dependency in
# the block cgroup code, not in hsdaq: blkcg_mutex -> fs_reclaim, taken when
# the guest writes io.max (blkg_conf_prep; seen in one run of three on
# 7.3.4). That report alone is left out of the kernel-log check.
KNOWN_KERNEL_REPORT='blkcg_mutex'

qemu_extra() {
    echo "-drive file=$DIR/disk.img,if=virtio,format=raw"
}

boots() {
    truncate -s 512M "$DIR/disk.img"
    mkfs.ext4 -q -F "$DIR/disk.img"
    boot_guest
}

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=1000000 channels=4 block_bytes=65536 buffer_bytes=8388608
    mkdir -p /mnt
    mount -t ext4 /dev/vda /mnt
    mount -t cgroup2 none /sys/fs/cgroup
    echo +io >/sys/fs/cgroup/cgroup.subtree_control
    mkdir /sys/fs/cgroup/slow
    echo "$(cat /sys/block/vda/dev) wbps=2097152" >/sys/fs/cgroup/slow/io.max
    cat /sys/fs/cgroup/slow/io.max >/host/io.max
    echo $$ >/sys/fs/cgroup/slow/cgroup.procs
    acquire record --device /dev/hsdaq0 --out /mnt/run --duration 20s --segment 2s --compression none \
        --allow-loss 2>/host/record.err >/host/record.txt
    echo $? >/host/record.rc
    echo $$ >/sys/fs/cgroup/cgroup.procs
    acquire info --device /dev/hsdaq0 --json >/host/info.json
    cp -r /mnt/run /host/run
    umount /mnt
}

check() {
    local m=$SHARE/run/manifest.json
    expect "io.max holds the disk to 2 MB/s" grep -q "wbps=2097152" "$SHARE/io.max"
    expect_eq "acquire record exit status (losses allowed)" "$(cat "$SHARE/record.rc")" 0
    expect "acquire verify passes on the host (every gap accounted for)" verify "$SHARE/run"
    expect "the slow disk cost samples (the producer dropped)" jq -e '.device_counters.dropped_scans > 0' "$m"
    expect "every recorded loss is a gap: sum of gaps == scans_lost" \
        jq -e '([.gaps[].lost] | add) == .counts.scans_lost and .counts.gaps == (.gaps | length)' "$m"
    # Every scan asked for was recorded or is in the run's loss record
    # (exact); the driver's drop counter agrees up to the scans it dropped
    # past the end: the recorder stops the producer as soon as it passes the
    # scan limit, even while waiting on the disk, so that is less than the
    # block crossing the end plus one poll (500 us) of production.
    expect "driver-dropped - recorded loss is only the end's block (< 2 blocks)" \
        jq -e '(.device_counters.dropped_scans - .counts.scans_lost - .counts.scans_lost_at_end) as $past |
            $past >= 0 and $past < 2 * .stream.block_scans' "$m"
    expect "recorded + recorded loss (gaps + end of run) == the 20 s asked for" \
        jq -e '.counts.scans_recorded + .counts.scans_lost + .counts.scans_lost_at_end == 20000000' "$m"
    expect "the progress line showed a backlog of chunks waiting for the disk" \
        grep -qE 'backlog [1-9][0-9]*/[0-9]+ chunks' "$SHARE/record.err"
    expect "health.csv recorded the backlog" \
        awk -F, 'NR > 1 && $4 > 0 { found = 1 } END { exit !found }' "$SHARE/run/health.csv"
}
