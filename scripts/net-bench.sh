#!/usr/bin/env bash
# acquire's UDP source vs tcpdump -w (libpcap's TPACKET_V3 ring), side by
# side in one run: the same sender (`acquire send`, VRT, 8 KiB payloads of
# 2 ch x i16, MTU 9000) streams over a veth pair between two namespaces made
# here, and the receiver writes to the same disk folder: acquire to Parquet
# (default codec), tcpdump to pcap (then fdatasync'd: `sync -d`, timed). Per
# rate step, NET_SECONDS (60) of stream: datagrams sent vs recorded, and the
# receiver's CPU seconds (user + system, /usr/bin/time) per GB of samples.
#   scripts/net-bench.sh [ACQUIRE]     (root; just net-bench)
#   NET_RATES="50 100 200" (MB/s of samples)  NET_SECONDS=60  NET_DIR=target/net-bench
set -euo pipefail
cd "$(dirname "$0")/.."
acquire=$(realpath "${1:-target/release/acquire}")
rates=${NET_RATES:-"50 100 200 300"}
secs=${NET_SECONDS:-60}
dir=$(realpath -m "${NET_DIR:-target/net-bench}")
mkdir -p "$dir"
source tests/netns-lib.sh
netns_cleanup_more() { rm -rf "$dir/run" "$dir/cap.pcap"; }
netns_up 9000
scans=2048 # per datagram: 2048 x 2 ch x 2 B = 8 KiB
log() { echo "net-bench: $*" >&2; }
rows=()
# Packets the kernel's per-CPU input backlog dropped (all CPUs), the place
# a veth pair loses datagrams before any socket sees them.
softnet_drops() {
    local s=0 a b rest
    while read -r a b rest; do s=$((s + 0x$b)); done </proc/net/softnet_stat
    echo $s
}
# send RATE_SCANS DATAGRAMS: the one sender both receivers get.
send() {
    # Neighbour resolved first: datagrams queued behind ARP may be dropped.
    ip netns exec "$tx" ping -c 1 -W 1 10.203.0.2 >/dev/null
    timeout $((secs * 2 + 30)) ip netns exec "$tx" "$acquire" send --to 10.203.0.2:4991 --framing vrt \
        --rate "$1" --channels 2 --scans-per-datagram $scans --datagrams "$2" --json >"$dir/send.json" 2>/dev/null
}
for mbps in $rates; do
    rate=$((mbps * 1000000 / 4))
    datagrams=$((rate * secs / scans))
    asked=$((datagrams * scans))
    gb=$(echo "$asked * 4 / 1000000000" | bc -l)
    log "$mbps MB/s ($rate scans/s, $datagrams datagrams, $secs s): acquire record to $dir"
    rm -rf "$dir/run"
    sd0=$(softnet_drops)
    ip netns exec "$rx" /usr/bin/time -f '%e %U %S' -o "$dir/acq.time" "$acquire" record \
        --device udp://10.203.0.2:4991 --framing vrt --samples "$asked" --out "$dir/run" --json --allow-loss \
        >"$dir/acq.json" 2>"$dir/acq.err" &
    rec=$!
    sleep 1
    send "$rate" "$datagrams"
    sleep 2
    kill -INT $rec 2>/dev/null || true
    wait $rec || true
    m=$dir/run/manifest.json
    a_sd=$(($(softnet_drops) - sd0))
    a_rec=$(jq '.counts.scans_recorded' "$m")
    a_cpu=$(awk '{print $2 + $3}' "$dir/acq.time")
    a_row=$(jq -c --argjson asked "$asked" --argjson cpu "$a_cpu" --argjson gb "$gb" --argjson mbps "$mbps" --argjson sd "$a_sd" '
      {tool: "acquire", mb_per_s: $mbps, asked: $asked, recorded: .counts.scans_recorded, backlog_drops: $sd,
       lost: ($asked - .counts.scans_recorded), reported_lost: (.counts.scans_lost + .counts.scans_lost_at_end),
       socket_drops: .source_counters["socket-queue-drops"], cpu_s_per_gb: ($cpu / $gb),
       bytes_on_disk: .counts.bytes_written}' "$m")
    rows+=("$a_row")
    log "  acquire: recorded $a_rec of $asked scans, $a_cpu CPU s"
    rm -rf "$dir/run"
    log "$mbps MB/s: tcpdump -w to $dir"
    sd0=$(softnet_drops)
    ip netns exec "$rx" /usr/bin/time -f '%e %U %S' -o "$dir/tcpd.time" tcpdump -i vb -w "$dir/cap.pcap" \
        -B 262144 -s 9100 -q 'udp port 4991' 2>"$dir/tcpd.err" &
    cap=$!
    sleep 2
    send "$rate" "$datagrams"
    sleep 2
    ip netns exec "$rx" pkill -INT -x tcpdump || true
    wait $cap || true
    t_sd=$(($(softnet_drops) - sd0))
    t0=$(date +%s.%N)
    sync -d "$dir/cap.pcap"
    sync_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
    captured=$(grep -Eo '^[0-9]+ packets captured' "$dir/tcpd.err" | grep -Eo '^[0-9]+' || echo 0)
    kdrop=$(grep -Eo '^[0-9]+ packets dropped by kernel' "$dir/tcpd.err" | grep -Eo '^[0-9]+' || echo 0)
    t_cpu=$(awk '{print $2 + $3}' "$dir/tcpd.time")
    # tcpdump also counts the two context packets the sender starts with.
    got=$((captured > 2 ? (captured - 2) * scans : 0))
    t_row=$(jq -nc --argjson asked "$asked" --argjson got "$got" --argjson kd "$kdrop" --argjson cpu "$t_cpu" \
        --argjson gb "$gb" --argjson mbps "$mbps" --argjson sync "$sync_s" --argjson size "$(stat -c %s "$dir/cap.pcap")" --argjson sd "$t_sd" '
      {tool: "tcpdump", mb_per_s: $mbps, asked: $asked, recorded: ([$got, $asked] | min), backlog_drops: $sd,
       lost: ([$asked - $got, 0] | max), reported_lost: ($kd * 2048), socket_drops: $kd,
       cpu_s_per_gb: ($cpu / $gb), fdatasync_s: $sync, bytes_on_disk: $size}')
    rows+=("$t_row")
    log "  tcpdump: captured $captured datagrams, kernel dropped $kdrop, $t_cpu CPU s, fdatasync ${sync_s}s"
    rm -f "$dir/cap.pcap"
done
printf '%s\n' "${rows[@]}" | jq -s --argjson secs "$secs" '
  def best($t): [.[] | select(.tool == $t and .lost == 0) | .mb_per_s] | max;
  {seconds: $secs, datagram_payload_bytes: 8192, steps: ., summary: {
     acquire_loss_free_mb_per_s: best("acquire"), tcpdump_loss_free_mb_per_s: best("tcpdump")}}' \
    >"$dir/figures.json"
jq -r '"| tool | MB/s of samples | scans recorded | lost | loss the tool reported | input-backlog drops | CPU s per GB |", "|---|---|---|---|---|---|---|",
  (.steps[] | "| \(.tool) | \(.mb_per_s) | \(.recorded) | \(.lost) | \(.reported_lost) | \(.backlog_drops) | \(.cpu_s_per_gb * 100 | round / 100) |")' "$dir/figures.json"
jq -c .summary "$dir/figures.json"
