#!/usr/bin/env python3
"""Recordings must open, as they are, in pyarrow, DuckDB and polars.

Records a short run with the given acquire binary, then reads it back with
each reader and checks row counts, column types, values and the embedded
manifest. Prints 'N passed, N failed'.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

acquire = sys.argv[1]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


with tempfile.TemporaryDirectory() as d:
    run = Path(d) / "run"
    subprocess.run([acquire, "record", "--rate", "200k", "--samples", "300000", "--segment", "100000B",
                    "--out", str(run), "--json"], check=True, stdout=subprocess.DEVNULL)
    manifest = json.loads((run / "manifest.json").read_text())
    files = sorted(run.glob("segment-*.parquet"))
    check("several segments", len(files) >= 2, len(files))

    t = pq.read_table(files[0])
    check("pyarrow schema", t.schema.names == ["seq", "t_ns", "ch0", "ch1", "ch2", "ch3"], t.schema.names)
    check("pyarrow int16 channels", str(t.schema.field("ch0").type) == "int16", t.schema.field("ch0").type)
    md = pq.read_metadata(files[0]).metadata
    check("pyarrow sees the manifest", json.loads(md[b"hsdaq.manifest"])["stream"]["rate_hz"] == 200000)
    total = sum(pq.read_metadata(f).num_rows for f in files)
    check("pyarrow row count", total == 300000, total)

    con = duckdb.connect()
    n, lo, hi = con.execute(f"select count(*), min(seq), max(seq) from read_parquet('{run}/segment-*.parquet')").fetchone()
    check("duckdb rows and seq range", (n, lo, hi) == (300000, 0, 299999), (n, lo, hi))
    gaps = con.execute(f"select count(*) from (select seq - lag(seq) over (order by seq) as d "
                       f"from read_parquet('{run}/segment-*.parquet')) where d <> 1").fetchone()[0]
    check("duckdb sees a continuous sequence", gaps == 0, gaps)

    df = pl.scan_parquet(str(run / "segment-*.parquet")).select(pl.len(), pl.col("ch1").min(), pl.col("t_ns").diff().min()).collect()
    check("polars lazy scan", df.item(0, 0) == 300000, df)
    check("polars t_ns strictly increasing", df.item(0, 2) > 0, df)
    blocks = pl.read_parquet(str(run / "blocks" / "segment-*.parquet"))
    check("block table covers every scan", blocks["scans"].sum() == 300000, blocks["scans"].sum())
    check("manifest counts", manifest["counts"]["scans_recorded"] == 300000)

    # A segment rewritten by pyarrow with its default codec (Snappy, as Spark
    # writes too), metadata kept: acquire verify still reads and checks it.
    snappy = Path(d) / "snappy.parquet"
    pq.write_table(pq.read_table(files[0]), snappy, compression="snappy")
    codecs = {pq.ParquetFile(snappy).metadata.row_group(0).column(i).compression for i in range(6)}
    check("pyarrow rewrote the segment with Snappy", codecs == {"SNAPPY"}, codecs)
    v = subprocess.run([acquire, "verify", str(snappy)], capture_output=True, text=True)
    check("acquire verify reads a Snappy segment written by pyarrow", v.returncode == 0, v.stderr)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
