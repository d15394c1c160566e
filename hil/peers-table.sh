#!/usr/bin/env bash
# Gathers the peers scenario's per-step files into one JSON object:
#   hil/peers-table.sh DIR SECONDS          figures.json on stdout
#   hil/peers-table.sh --markdown FIGURES   the table in docs/BENCHMARKS.md
# A step is loss-free when nothing asked for went missing; for IIO, whose
# only evidence is the scan timestamps (iio_dummy has no sample counter and
# stamps in its threaded handler, so the span jitters by a few periods),
# a shortfall up to 0.1 % of the scans produced is counted as none. A step
# also has to keep pace: a source that delivers everything but late (Comedi's
# comedi_test generates the scans whose time has passed, so on a slow CPU
# it falls behind instead of overflowing) did not sustain the rate; the
# step's wall time may exceed SECONDS by 10 % + 1.5 s (process start-up).
# CPU per million scans is net of the idle guest's busy time over the same
# wall time (the `idle` step: a sleep as long as a step), so slow streams are
# not charged for the guest's timer ticks.
set -euo pipefail

if [[ $1 == --markdown ]]; then
    jq -r '
      def rate: if . == null then "—" elif . >= 1e6 then "\(. / 1e6) M" elif . >= 1e3 then "\(. / 1e3) k" else "\(.)" end;
      def r2: if . == null then "—" else (. * 100 | round / 100 | tostring) end;
      "| stack | highest loss-free rate (scans/s) | loss above it | CPU s per M scans | hsdaq-mmap ÷ stack (rate) |",
      "|---|---|---|---|---|",
      (.summary[] | "| \(.stack) | \(.highest_loss_free_hz | rate) | \(.loss_visibility) | \(.cpu_s_per_mscans | r2) | \(.hsdaq_ratio | r2) |")' "$2"
    exit 0
fi

dir=$1 seconds=$2
rows() {
    local f stack rate ticks err wall
    for f in "$dir"/*.ticks; do
        [[ $(basename "$f") == idle-0.ticks ]] && continue
        stack=$(basename "$f" .ticks)
        rate=${stack##*-}
        stack=${stack%-*}
        ticks=$(cat "$f")
        wall=$(cat "$dir/$stack-$rate.wall")
        err=$(cat "$dir/$stack-$rate.err" "$dir/$stack-$rate.readdev.err" 2>/dev/null | head -c 400 || true)
        {
        case $stack in
        hsdaq-mmap)
            # What acquire reports (manifest) against what was asked for.
            jq -c --argjson r "$rate" --argjson s "$seconds" --argjson t "$ticks" --arg err "$err" '
              ($r * $s) as $asked | .counts as $c |
              {stack: "hsdaq-mmap", rate_hz: $r, asked: $asked, delivered: $c.scans_recorded,
               lost: ($asked - $c.scans_recorded), reported_lost: ($c.scans_lost + ($c.scans_lost_at_end // 0)),
               ticks: $t, stderr: $err}' "$dir/$stack-$rate.manifest.json" ;;
        acquire-iio)
            # acquire's IIO source: its loss is inferred from the timestamps.
            jq -c --argjson r "$rate" --argjson s "$seconds" --argjson t "$ticks" --arg err "$err" '
              ($r * $s) as $asked | .counts as $c |
              {stack: "acquire-iio", rate_hz: $r, asked: $asked, delivered: $c.scans_recorded,
               lost: ($asked - $c.scans_recorded), reported_lost: ($c.scans_lost + ($c.scans_lost_at_end // 0)),
               tolerance: (($asked / 1000) | floor), ticks: $t, stderr: $err}' "$dir/$stack-$rate.manifest.json" ;;
        hsdaq-read)
            jq -c --argjson t "$ticks" --arg err "$err" '. + {ticks: $t, stderr: $err}' "$dir/$stack-$rate.json" ;;
        iio)
            jq -c --argjson r "$rate" --argjson s "$seconds" --argjson t "$ticks" --arg err "$err" '
              . + {rate_hz: $r, asked: ($r * $s), ticks: $t, stderr: $err,
                   reported_lost: 0, tolerance: ((.produced / 1000) | floor)}' "$dir/$stack-$rate.json" ;;
        comedi)
            jq -c --argjson r "$rate" --argjson t "$ticks" --arg err "$err" '
              . + {rate_hz: $r, ticks: $t, stderr: $err,
                   reported_lost: (if .visible then .lost else 0 end)}' "$dir/$stack-$rate.json" ;;
        esac
        } | jq -c --argjson w "$wall" '. + {wall_s: ($w / 100)}'
    done
}
idle_ticks=$(cat "$dir/idle-0.ticks") idle_wall=$(cat "$dir/idle-0.wall")
rows | jq -s --argjson s "$seconds" --argjson it "$idle_ticks" --argjson iw "$idle_wall" '
  ($it / ($iw / 100)) as $idle_per_s |
  map(. + {
    kept_pace: (.wall_s <= $s * 1.1 + 1.5)} | . + {
    loss_free: (.lost <= (.tolerance // 0) and .kept_pace),
    # A loss is visible when the stack told the user: a counter or gap
    # marker (hsdaq), an error (Comedi EPIPE), any message (IIO: none).
    visible: (if .lost <= (.tolerance // 0) then null
              else (.reported_lost > 0 or ((.stderr // "") | test("[Ee]rror|lost|overflow|overrun"))) end),
    cpu_s_per_mscans_raw: (if .delivered > 0 then .ticks / 100 / .delivered * 1e6 else null end),
    cpu_s_per_mscans: (if .delivered > 0
      then ([.ticks - $idle_per_s * .wall_s, 0] | max) / 100 / .delivered * 1e6 else null end)
  }) | sort_by(.stack, .rate_hz) as $steps |
  def knee($s): [$steps[] | select(.stack == $s)] as $ss
    | reduce $ss[] as $x ({ok: true, best: null};
        if .ok and $x.loss_free then .best = $x else .ok = false end) | .best;
  def vis($s): [$steps[] | select(.stack == $s and .visible != null) | .visible] |
    if length == 0 then "none seen" elif all then "visible" elif any then "partly silent" else "silent" end;
  (knee("hsdaq-mmap").rate_hz) as $h |
  {idle_busy_ticks_per_s: $idle_per_s, steps: $steps,
   summary: [("hsdaq-mmap", "hsdaq-read", "iio", "acquire-iio", "comedi") as $s | knee($s) as $k |
     {stack: $s, highest_loss_free_hz: $k.rate_hz, cpu_s_per_mscans: $k.cpu_s_per_mscans,
      loss_visibility: vis($s),
      hsdaq_ratio: (if $k.rate_hz and $h then $h / $k.rate_hz else null end),
      steps: [$steps[] | select(.stack == $s) | {rate_hz, lost, kept_pace, loss_free}]}]}'
