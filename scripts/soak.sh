#!/usr/bin/env bash
# Soak: a long recording at half this machine's highest loss-free rate, to
# the disk, then verify and report. Passes when nothing was lost, the
# recorder's resident memory stayed flat after warm-up (it must not grow
# with the recording's length) and its open file descriptors did not grow.
#
#   scripts/soak.sh [SECONDS] [RATE]     default 600 s (`just soak`) at 17M
#                                        scans/s x 4 ch x i16; CI runs 60 s
#
# 17M is half of the 35M scans/s `acquire bench --sustain` recorded for
# 60 s without loss on the 2-core machines this project is measured on
# (README "Benchmarks"); pass another RATE on other hardware. The run's
# segments are deleted once verified and reported (SOAK_KEEP=1 keeps them);
# manifest.json, health.csv and the report stay in target/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_WANTED=${1:-600}
RATE=${2:-17M}
OUT=target/soak
# Flat means: the resident set at the end is within this of its value
# after warm-up (chunk pool, page buffers and encoders all allocated).
RSS_SLACK_MIB=${SOAK_RSS_SLACK_MIB:-16}

rate_hz=$(echo "$RATE" | sed -e 's/[kK]$/000/' -e 's/M$/000000/')
# Disk needed: 8 bytes a scan, compressed to about 0.6 (README "Encodings"),
# plus a margin.
need=$((rate_hz * 8 * SECONDS_WANTED * 6 / 10 + (1 << 30)))
mkdir -p "$OUT"
free=$(($(df --output=avail -B1 "$OUT" | tail -1)))
if ((free < need)); then
    echo "soak: needs about $((need >> 30)) GiB free in $OUT for $SECONDS_WANTED s at $RATE; $((free >> 30)) GiB free" >&2
    exit 2
fi

cargo build -q --release -p hsdaq-acquire -p hsdaq-analysis
rm -rf "$OUT/run" "$OUT/report"
echo "soak: recording $SECONDS_WANTED s at $RATE scans/s x 4 ch x i16 to $OUT/run (progress every 5 s)" >&2
target/release/acquire record --rate "$RATE" --duration "${SECONDS_WANTED}s" --out "$OUT/run" \
    --allow-loss --json >"$OUT/record.json" 2> >(grep -v ' durable: ' >&2)
echo "soak: verifying every sample" >&2
target/release/acquire verify "$OUT/run" >&2
echo "soak: report" >&2
target/release/analysis report "$OUT/run" --out "$OUT/report" --json >"$OUT/summary.json"
[[ ${SOAK_KEEP:-0} == 1 ]] || rm -f "$OUT"/run/segment-*.parquet "$OUT"/run/blocks/segment-*.parquet

jq -r --argjson slack "$RSS_SLACK_MIB" '.runs[0] as $r | $r.health as $h |
    "soak: \($r.scans) scans in \($r.seconds | floor) s, lost \($r.scans_lost); resident \($h.rss_mib_settled | floor) MiB after warm-up, \($h.rss_mib_last | floor) MiB at the end (max \($h.rss_mib_max | floor), allowed +\($slack)); open files \($h.fds_range); segment close median \($h.close_ms_p50_max[0]) ms, max \($h.close_ms_p50_max[1]) ms"' \
    "$OUT/summary.json"
fail=0
jq -e '.runs[0].scans_lost == 0' "$OUT/summary.json" >/dev/null || { echo "soak: FAILED: samples were lost" >&2; fail=1; }
jq -e --argjson slack "$RSS_SLACK_MIB" '.runs[0].health | .rss_mib_last - .rss_mib_settled <= $slack' \
    "$OUT/summary.json" >/dev/null || { echo "soak: FAILED: resident memory grew by more than $RSS_SLACK_MIB MiB" >&2; fail=1; }
# Two descriptors come and go with each segment (samples and block table
# of the next one open before the last is closed); more would be a leak.
jq -e '.runs[0].health.fds_range | .[1] - .[0] <= 2' "$OUT/summary.json" >/dev/null ||
    { echo "soak: FAILED: open files varied by more than one segment's two" >&2; fail=1; }
((fail == 0)) && echo "soak: passed; report $OUT/report/index.html" >&2
exit $fail
