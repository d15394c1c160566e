# Scenario (issue 20, finding 2): a read() whose destination never faults in
# (a userfaultfd region nobody serves, as a hung FUSE mapping would be). The
# read must block only itself: a second open of the device (under the
# global misc_mtx) answers EBUSY at once, another misc device
# (/dev/userfaultfd) opens, and an unbind completes within its 1 s grace.
# Closing the userfaultfd then lets the parked read end with ENODEV.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="read() parked on an unserved userfaultfd page: reopen EBUSY, other misc open and unbind complete"
TIMEOUT=300

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=200000
    hsdaq-hil-guest blocked-read --device /dev/hsdaq0 --name hsdaq.0 >/host/blocked-read.json
    acquire record --device /dev/hsdaq0 --out /tmp/run --duration 2s --json >/host/record.json
    cp -r /tmp/run /host/run
    rmmod hsdaq
}

check() {
    local j=$SHARE/blocked-read.json
    expect "the reader was parked on the unserved page" jq -e '.reader_parked_on_fault' "$j"
    expect "a second open of /dev/hsdaq0 answered EBUSY within 5 s" jq -e '.second_open.result == "EBUSY"' "$j"
    expect "another misc device (/dev/userfaultfd) opened within 5 s" jq -e '.other_misc_open.result == "ok"' "$j"
    expect "unbind completed within 5 s" jq -e '.unbind.result == "ok" and .unbind.ms < 5000' "$j"
    expect "the parked read ended with ENODEV once its page could fault in" jq -e '.read_after_uffd_closed == "ENODEV"' "$j"
    expect "the device came back on bind" jq -e '.rebound' "$j"
    expect_recording "$SHARE/run" 200000 4
}
