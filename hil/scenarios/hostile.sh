# Scenario d: hostile input. A guest program issues >= 10,000 random and
# invalid ioctls, mmaps (bad lengths, offsets, PROT_WRITE/EXEC, MAP_PRIVATE),
# mprotect/mremap of the read-only data, reads with bad buffers, a second
# open, and scribbles over the control page, while the sensor streams.
# Every failure must be a clean errno from the expected set, the device must
# stream correctly afterwards, and the kernel log must stay clean.
BOARDS="qemu-x86_64"
KERNEL=debug
DESCRIPTION="12,000 hostile ioctls/mmaps/reads/control-page writes: clean errnos, no oops"
TIMEOUT=300

guest() {
    insmod /lib/modules/hsdaq.ko rate_hz=50000 buffer_bytes=65536
    hsdaq-hil-guest hostile --device /dev/hsdaq0 --ops 12000 --seed 7 >/host/hostile.json
    rmmod hsdaq
}

check() {
    local j=$SHARE/hostile.json
    expect "every outcome was an allowed errno or a legal success" jq -e '.ok and (.unexpected | length) == 0' "$j"
    expect "at least 10,000 operations" jq -e '.ops >= 10000' "$j"
    expect "every kind of hostile operation ran" jq -e '.by_kind | length >= 14' "$j"
    expect "invalid mmaps were refused (EINVAL seen)" jq -e '.outcomes.EINVAL > 1000' "$j"
    expect "bad pointers were refused (EFAULT seen)" jq -e '.outcomes.EFAULT > 500' "$j"
    expect "the device streamed correctly afterwards" jq -e '.healthy_after == "yes"' "$j"
    expect "a read-only fd maps the data area (VM_MAYSHARE), not a writable control area" \
        jq -e '.readonly_fd | startswith("data maps")' "$j"
    expect "rmmod succeeded afterwards" sh -c "! grep -q 'rmmod' '$SHARE/guest.log' || ! grep -qi 'rmmod:.*\\(error\\|fail\\)' '$SHARE/guest.log'"
}
