"""Per-run summaries of a fleet's recordings, on Spark.

When the recordings of many boards outgrow one machine, this job computes
the same per-run summary as `analysis report` (its `summary.json` `runs`
entries: scans, losses, gaps, throughput, per-channel min/max/mean/std in
physical units), reading a hive tree of run folders as the recorder wrote
them (board=…/date=…/RUN/segment-*.parquet, blocks/…, manifest.json).

    spark-submit analysis/spark/summary.py TREE OUT.json          # local
    spark-submit --master yarn --deploy-mode cluster \\
        analysis/spark/summary.py hdfs:///fleet /tmp/summary.json  # cluster

TREE is walked on the driver (a run is a folder with a manifest.json); each
run's segments are one distributed read. The output is
{"generator": ..., "runs": [...]} with the field names of `analysis report
--json`, so the two can be compared or merged.
"""
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def runs_under(spark, tree):
    """Run folders (with manifest.json) under TREE, through Hadoop's
    FileSystem so hdfs://, s3a:// and local paths all work."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(tree)
    fs = root.getFileSystem(conf)
    found = []
    it = fs.listFiles(root, True)
    while it.hasNext():
        p = it.next().getPath()
        if p.getName() == "manifest.json":
            found.append(p.getParent().toString())
    return sorted(found)


def read_text(spark, path):
    return "\n".join(r.value for r in spark.read.text(path, wholetext=True).collect())


def summarize(spark, run):
    m = json.loads(read_text(spark, f"{run}/manifest.json"))
    s = m["stream"]
    width = 4 if s["format"] == "i32" else 2
    scan_bytes = s["channels"] * width
    names = [c["name"] for c in m["channels"]]
    samples = spark.read.parquet(f"{run}/segment-*.parquet")
    aggs = [F.count(F.lit(1)).alias("rows"), F.min("seq").alias("seq_min"),
            F.max("seq").alias("seq_max"), F.min("t_ns").alias("t_min"), F.max("t_ns").alias("t_max")]
    for n in names:
        x = F.col(n).cast("double")
        aggs += [F.min(x).alias(f"{n}_min"), F.max(x).alias(f"{n}_max"),
                 F.avg(x).alias(f"{n}_mean"), F.stddev_pop(x).alias(f"{n}_std")]
    t = samples.agg(*aggs).collect()[0]
    blocks = spark.read.parquet(f"{run}/blocks/segment-*.parquet")
    b = blocks.agg(F.coalesce(F.sum("lost_before"), F.lit(0)).alias("lost"),
                   F.sum(F.when(F.col("lost_before") > 0, 1).otherwise(0)).alias("gaps")).collect()[0]
    rows = t["rows"]
    # Scans dropped after the last recorded one have no gap row.
    lost = int(b["lost"]) + m["counts"].get("scans_lost_at_end", 0)
    seconds = max((t["t_max"] - t["t_min"]) / 1e9, 1.0 / s["rate_hz"])
    channels = []
    for c in m["channels"]:
        n, a, o = c["name"], c["scale"], c["offset"]
        lo, hi = t[f"{n}_min"] * a + o, t[f"{n}_max"] * a + o
        channels.append({"name": n, "unit": c["unit"], "min": min(lo, hi), "max": max(lo, hi),
                         "mean": t[f"{n}_mean"] * a + o, "std": t[f"{n}_std"] * abs(a)})
    return {
        "path": run,
        "board": m.get("board"),
        "status": m["status"],
        "start": m["start_wall_clock"],
        "rate_hz": s["rate_hz"],
        "format": s["format"],
        "scans": rows,
        "seq_range": [t["seq_min"], t["seq_max"]],
        "seconds": seconds,
        "scans_lost": lost,
        "gaps": int(b["gaps"] or 0),
        "loss_ratio": lost / max(rows + lost, 1),
        "mean_mb_per_s": rows * scan_bytes / seconds / 1e6,
        "channels": channels,
    }


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: spark-submit analysis/spark/summary.py TREE OUT.json")
    tree, out = sys.argv[1], sys.argv[2]
    spark = SparkSession.builder.appName("hsdaq fleet summary").getOrCreate()
    runs = runs_under(spark, tree)
    if not runs:
        sys.exit(f"summary.py: no run folders (manifest.json) under {tree}")
    result = {"generator": "hsdaq analysis/spark/summary.py", "runs": []}
    for i, r in enumerate(runs):
        print(f"summary.py: [{i + 1}/{len(runs)}] {r}", file=sys.stderr)
        result["runs"].append(summarize(spark, r))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    spark.stop()


if __name__ == "__main__":
    main()
