"""Checks for the iio scenario (run on the host, pyarrow).

iio_values.py RUN READDEV.BIN: the recorded values equal iio_readdev's raw
scans (4 x 16-bit + s64 timestamp, 16 bytes) converted by the documented
rule: the real bits above the shift, sign- or zero-extended.
iio_values.py --gaps RUN RATE: each inferred gap's at_seq matches the
measured time of that row: (t_ns[at] - t_ns[0]) x rate, within 3 scans.
"""
import glob
import json
import struct
import sys

import pyarrow.parquet as pq


def table(run):
    files = sorted(glob.glob(f"{run}/segment-*.parquet"))
    return pq.read_table(files[0]) if len(files) == 1 else __import__("pyarrow").concat_tables(
        [pq.read_table(f) for f in files])


def convert(word, sign, real, shift):
    v = (word >> shift) & ((1 << real) - 1)
    if sign == "s" and v >> (real - 1):
        v -= 1 << real
    return v


def values(run, raw_path):
    m = json.load(open(f"{run}/manifest.json"))
    types = []
    for ch in m["channels"]:
        t = ch["raw"].split()[1].rstrip(":")  # e.g. le:s12/16>>0
        sign, rest = t[3], t[4:]
        real, rest = rest.split("/")
        shift = int(rest.split(">>")[1])
        types.append((ch["name"], sign, int(real), shift))
    raw = open(raw_path, "rb").read()
    if len(raw) < 16 * 100:
        sys.exit(f"iio_readdev wrote only {len(raw)} bytes")
    want = {name: set() for name, *_ in types}
    for off in range(0, len(raw) - 15, 16):
        words = struct.unpack_from("<4H", raw, off)
        for (name, sign, real, shift), w in zip(types, words):
            want[name].add(convert(w, sign, real, shift))
    t = table(run)
    for name, *_ in types:
        got = set(t.column(name).to_pylist())
        if got != want[name]:
            sys.exit(f"{name}: acquire recorded {sorted(got)[:8]}, iio_readdev's bytes give {sorted(want[name])[:8]}")
        print(f"{name}: {sorted(got)} in {t.num_rows} rows = iio_readdev's {len(raw) // 16} scans")


def gaps(run, rate):
    """Inferred gaps match the time step across them (within a scan, for at
    least 95 % of them: a TCG guest on a busy host jitters its stamps by
    more than a period now and then), and the stall's gap sits where the
    trigger's clock puts it: the hrtimer trigger keeps an exact grid, so a
    scan's index is (t_ns - t_ns[0]) x rate, within 3 %."""
    m = json.load(open(f"{run}/manifest.json"))
    t = table(run)
    seq = t.column("seq").to_pylist()
    tns = t.column("t_ns").to_pylist()
    row = {s: i for i, s in enumerate(seq)}
    inferred = [g for g in m["gaps"] if g["kind"] == "inferred"]
    if not inferred:
        sys.exit("no inferred gap")
    bad = 0
    for g in inferred:
        i = row[g["at_seq"]]
        step = round((tns[i] - tns[i - 1]) * rate / 1e9) - 1
        if abs(step - g["lost"]) > 1:
            bad += 1
            print(f"gap of {g['lost']} at seq {g['at_seq']}: the time step across it says {step}")
    big = max(inferred, key=lambda g: g["lost"])
    i = row[big["at_seq"]]
    est = seq[0] + round((tns[i] - tns[0]) * rate / 1e9)
    print(f"{len(inferred)} inferred gaps, {bad} off by more than a scan; the stall's gap of "
          f"{big['lost']} is at seq {big['at_seq']}, its timestamp says {est}")
    off = bad > len(inferred) // 20 or abs(est - big["at_seq"]) > max(3, 0.03 * est)
    c = m.get("source_counters", {})
    span, placed = c.get("timestamp-span-scans", 0), c.get("recorded-or-placed-scans", 0)
    warned = "timestamps jitter by more than a sample period" in open(f"{run}.err").read()
    if off and abs(span - placed) > placed / 100 and warned:
        # A starved guest: the stamps jitter past what per-scan inference
        # can place, and the recorder said so instead of claiming a count.
        print(f"the inference is off, and the run said so: span {span} vs placed {placed}")
    elif off:
        sys.exit("inferred gaps are not where the timestamps put them")


if sys.argv[1] == "--gaps":
    gaps(sys.argv[2], float(sys.argv[3]))
else:
    values(sys.argv[1], sys.argv[2])
