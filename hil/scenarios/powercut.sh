# Scenario: power cuts. `acquire record` writes the virtual sensor's stream
# to ext4 on a virtio-blk disk image, and the guest loses power with no
# sync: at each checkpoint of a segment's life (the recorder itself fires
# sysrq `b` after a row-group write, after the footer, after the fsyncs,
# between the two renames, with the new manifest not yet renamed), and at
# random moments (the host kills QEMU). The next boot runs e2fsck on the
# image, `acquire verify` (which must name the recovery command), `acquire
# recover` and `verify` again, then records the next cut's run.
#
# Checked per cut: the filesystem is consistent after journal replay; every
# segment the recorder reported durable before the cut is there and
# verifies; at most one segment beyond those (the one being closed) is in
# the rebuilt manifest; at most one segment is lost (the open one, left as
# *.partial and named); the rebuilt manifest's totals are its segments'.
#
#   POWERCUT_CUTS=40 hil/run.sh powercut    (`just powercut`; CI runs 10)
#   POWERCUT_SEED=N                         replays a run's cut times
BOARDS="qemu-x86_64"
DESCRIPTION="power cuts at every segment checkpoint and at random: e2fsck, recover, verify; at most the open segment lost"
TIMEOUT=180

# The cut plan cycles through these: the recorder's checkpoints, then
# random moments chosen by the host.
# `done`: the recording finishes, then the power goes at once (its final
# manifest must already be durable).
POWERCUT_POINTS=(write seal sync rename manifest done random random random random)

qemu_extra() {
    echo "-drive file=$DIR/disk.img,if=virtio,format=raw"
}

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=1000000 channels=4 block_bytes=65536 buffer_bytes=8388608
    k=$(cat /host/boot)
    p=$((k - 1))
    if [ "$k" -gt 1 ]; then
        d=/host/cut-$p
        e2fsck -fy /dev/vda >$d/fsck.log 2>&1
        echo $? >$d/fsck.rc
    fi
    mkdir -p /mnt
    mount -t ext4 /dev/vda /mnt || exit 1
    if [ "$k" -gt 1 ]; then
        r=/mnt/run-$p
        ls -l $r $r/blocks >$d/after-cut.txt 2>&1
        acquire verify $r >$d/verify-before.log 2>&1
        echo $? >$d/verify-before.rc
        acquire recover $r --json >$d/recover.json 2>$d/recover.err
        echo $? >$d/recover.rc
        acquire verify $r --json >$d/verify.json 2>$d/verify.err
        echo $? >$d/verify.rc
        cp $r/manifest.json $d/manifest.json
        (cd $r && ls; cd blocks && ls | sed 's,^,blocks/,') >$d/files.txt
        # Keeps the image small; the next run starts on the same filesystem.
        rm -rf $r
    fi
    [ -f /host/cut-$k/plan ] || { umount /mnt; return 0; }
    read point at_ms </host/cut-$k/plan
    touch /host/cut-$k/started
    if [ "$point" = done ]; then
        acquire record --device /dev/hsdaq0 --out /mnt/run-$k --duration ${at_ms}ms \
            --segment 500ms --allow-loss 2>/host/cut-$k/record.log
        echo b >/proc/sysrq-trigger
    fi
    fault=
    [ "$point" = random ] || fault="--fault powercut:$point@${at_ms}ms"
    HSDAQ_POWERCUT=1 acquire record --device /dev/hsdaq0 --out /mnt/run-$k --duration 60s \
        --segment 500ms --allow-loss $fault 2>/host/cut-$k/record.log
    echo "the recording ended without a power cut" >/host/cut-$k/no-cut
    return 1
}

# Boots once per cut, then once more to check the last one.
boots() {
    local n=${POWERCUT_CUTS:-10} seed=${POWERCUT_SEED:-$RANDOM} k rc=0
    RANDOM=$seed
    echo "$seed" >"$DIR/seed"
    echo "hil[$NAME]: $n cuts, seed $seed (POWERCUT_SEED=$seed replays them)" >&2
    truncate -s 1G "$DIR/disk.img"
    mkfs.ext4 -q -F "$DIR/disk.img"
    for ((k = 1; k <= n + 1; k++)); do
        echo "$k" >"$SHARE/boot"
        rm -f "$SHARE/guest.rc"
        echo "=== hil: boot $k" >>"$DIR/serial.log"
        if ((k > n)); then
            boot_guest || rc=$?
            break
        fi
        local point=${POWERCUT_POINTS[$(((k - 1) % ${#POWERCUT_POINTS[@]}))]}
        local at_ms=$((1000 + RANDOM % 2000))
        mkdir -p "$SHARE/cut-$k"
        echo "$point $at_ms" >"$SHARE/cut-$k/plan"
        echo "hil[$NAME]: cut $k/$n: $point after ${at_ms} ms" >&2
        if [[ $point != random ]]; then
            boot_guest || true
            continue
        fi
        boot_guest &
        local q=$! i
        for ((i = 0; i < 1200; i++)); do
            [[ -f $SHARE/cut-$k/started ]] && break
            sleep 0.1
        done
        sleep "$(awk "BEGIN { print $at_ms / 1000 }")"
        pkill -KILL -f "path=$SHARE,mount_tag=host" || true
        wait "$q" || true
    done
    return $rc
}

check() {
    expect "no oops, BUG, WARN or panic in any boot's console" kernel_clean "$DIR/serial.log"
    local n=${POWERCUT_CUTS:-10} k survived=0 lost_max=0 rows=()
    for ((k = 1; k <= n; k++)); do
        local d=$SHARE/cut-$k before=$FAILS
        read -r point at_ms <"$d/plan"
        local what="cut $k ($point, ${at_ms} ms)"
        expect "$what: the recording was cut, not finished" test ! -e "$d/no-cut"
        case $point in
        done)
            expect_eq "$what: a run closed just before the cut stays closed" \
                "$(jq -r .status "$d/manifest.json")" complete
            expect_eq "$what: recover leaves it as it is" "$(jq -r .rewritten "$d/recover.json")" false
            ;;
        *)
            [[ $point == random ]] || expect "$what: the recorder cut the power at its checkpoint" \
                grep -q "cutting the power at $point" "$d/record.log"
            expect "$what: verify on the cut run names the recovery command" \
                grep -q "acquire recover" "$d/verify-before.log"
            expect_eq "$what: manifest status" "$(jq -r .status "$d/manifest.json")" recovered
            ;;
        esac
        # e2fsck exits 1 after fixing the superblock's free-block and inode
        # counts, which ext4 does not keep current on disk (normal after a
        # crash); 2 and above would mean damage.
        local fsck_rc
        fsck_rc=$(cat "$d/fsck.rc" 2>/dev/null || echo missing)
        expect "$what: e2fsck: the filesystem is consistent after journal replay (rc $fsck_rc)" \
            test "$fsck_rc" = 0 -o "$fsck_rc" = 1
        expect_eq "$what: acquire recover exit status" "$(cat "$d/recover.rc")" 0
        expect_eq "$what: acquire verify exit status after recovery" "$(cat "$d/verify.rc")" 0
        # Segments the recorder reported durable before the cut, and the
        # rebuilt manifest's: every durable one kept, at most one more.
        local durable recovered extra missing partial
        durable=$(grep -o 'segment-[0-9]*\.parquet durable' "$d/record.log" | cut -d' ' -f1 | sort)
        recovered=$(jq -r '.segments[].file' "$d/manifest.json" | sort)
        missing=$(comm -23 <(echo "$durable" | sed '/^$/d') <(echo "$recovered" | sed '/^$/d') | wc -l)
        extra=$(comm -13 <(echo "$durable" | sed '/^$/d') <(echo "$recovered" | sed '/^$/d') | wc -l)
        expect_eq "$what: segments reported durable but missing after the cut" "$missing" 0
        expect "$what: at most the segment being closed is recovered beyond the durable ones ($extra)" \
            test "$extra" -le 1
        # The segment open at the cut is lost (none when the cut came after
        # a close, before the next segment's first write: `manifest`); its
        # file is left as .partial if its creation reached the disk.
        partial=$(grep -c '^segment-.*\.partial$' "$d/files.txt" || true)
        expect "$what: at most one unfinished segment on the disk ($partial left as .partial)" test "$partial" -le 1
        local lost=1
        [[ $point == manifest || $point == done ]] && lost=0
        expect "$what: recover names every .partial it left" \
            test "$(jq '.partial | map(select(.file | startswith("segment-"))) | length' "$d/recover.json")" = "$partial"
        expect "$what: the rebuilt totals are its segments' totals" \
            jq -e '.counts.scans_recorded == ([.segments[].rows] | add // 0)' "$d/manifest.json"
        ((FAILS == before)) && survived=$((survived + 1))
        ((lost > lost_max)) && lost_max=$lost
        rows+=("$(jq -n --arg point "$point" --argjson at_ms "$at_ms" --arg fsck "$fsck_rc" \
            --argjson durable "$(echo "$durable" | sed '/^$/d' | wc -l)" \
            --argjson lost "$lost" --argjson partial "$partial" --argjson ok "$([[ $FAILS == "$before" ]] && echo true || echo false)" \
            --slurpfile r "$d/recover.json" \
            '{point: $point, at_ms: $at_ms, fsck_rc: ($fsck | tonumber? // $fsck), segments_durable: $durable,
              segments_recovered: $r[0].segments, segments_completed: ($r[0].salvaged | length),
              segments_lost: $lost, segments_left_partial: $partial, scans_recorded: $r[0].scans_recorded, ok: $ok}')")
    done
    printf '%s\n' "${rows[@]}" | jq -s --argjson seed "$(cat "$DIR/seed")" \
        --argjson survived "$survived" --argjson tried "$n" --argjson lost_max "$lost_max" \
        '{cuts_tried: $tried, cuts_survived: $survived, max_segments_lost_per_cut: $lost_max, seed: $seed, cuts: .}' \
        >"$DIR/figures.json"
    expect_eq "power cuts survived" "$survived/$n" "$n/$n"
}
