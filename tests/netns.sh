#!/usr/bin/env bash
# The UDP source over a real L2 link: two network namespaces made here
# (sender, receiver) joined by a veth pair, nothing else reachable. The
# sender (`acquire send`) streams the reference waveform as VRT with faults
# at known datagrams, unicast and to a multicast group the receiver joins;
# every injected loss must be a gap at its exact sample index, the rest
# counted by reason, and the run must verify against the waveform.
#   tests/netns.sh ACQUIRE
# Needs root (ip netns). Every command is bounded by `timeout`; the
# namespaces are removed on exit.
set -euo pipefail
acquire=$(realpath "${1:-target/debug/acquire}")
work=$(mktemp -d)
source "$(dirname "$0")/netns-lib.sh"
netns_cleanup_more() { rm -rf "$work"; }
netns_up

fail() { echo "netns: FAILED: $*" >&2; exit 1; }
check() { # check WHAT JQ-EXPR MANIFEST
    jq -e "$2" "$3" >/dev/null || fail "$1 ($(jq -c '{gaps, source_counters}' "$3"))"
    echo "netns: ok: $1"
}

# run NAME DEST LISTEN: one recording of 1000 datagrams x 256 scans.
run() {
    local name=$1 dest=$2 listen=$3 out=$work/$1
    timeout 60 ip netns exec "$rx" "$acquire" record --device "udp://$listen" --framing vrt \
        --reference-signal --samples 256000 --out "$out" --json >"$work/$name.json" 2>"$work/$name.err" &
    local rec=$!
    # The sender starts once the recorder holds its port (a loaded machine
    # may take a while to start it): the first datagrams must not be lost.
    local port=${listen##*:} i
    for i in $(seq 200); do
        ip netns exec "$rx" ss -Hlun "sport = :$port" | grep -q . && break
        sleep 0.05
    done
    timeout 60 ip netns exec "$tx" "$acquire" send --to "$dest" --framing vrt --rate 500k --channels 2 \
        --datagrams 1000 --first-index 7000000 --fault drop:5@100 --fault dup@200 --fault swap@300 \
        --fault corrupt@400 --fault loss-bit@600 >/dev/null
    local rc=0
    wait $rec || rc=$?
    [[ $rc == 3 ]] || fail "$name: record exited $rc, expected 3 (samples lost): $(cat "$work/$name.err")"
    local m=$out/manifest.json
    check "$name: drops at their exact index and size (5 x 256 at 7026880, 256 at 7102656)" \
        '[.gaps[] | [.at_seq, .lost, .kind]] == [[7026880, 1280, "counted"], [7102656, 256, "counted"]]' "$m"
    check "$name: duplicate, reorder, malformed and trailer loss counted by reason" \
        '.source_counters | .duplicates == 1 and .reordered == 1 and ."malformed-size-field" == 1 and ."trailer-sample-loss" == 1' "$m"
    check "$name: recorded + lost == asked, seq is the stream's index" \
        '.counts.scans_recorded + .counts.scans_lost + .counts.scans_lost_at_end == 256000 and .stream.first_seq == 7000000' "$m"
    check "$name: receive buffer asked and granted in the manifest" \
        '.device.properties["rcvbuf-granted"] > 0 and .device.properties["rcvbuf-asked"] > 0' "$m"
    "$acquire" verify "$out" >/dev/null || fail "$name: verify: $("$acquire" verify "$out" 2>&1 | tail -1)"
    echo "netns: ok: $name: verifies against the reference waveform"
}
run unicast 10.203.0.2:4991 10.203.0.2:4991
run multicast 239.7.7.7:4992 239.7.7.7:4992
echo "netns: all checks passed (veth between two namespaces, unicast and multicast)"
