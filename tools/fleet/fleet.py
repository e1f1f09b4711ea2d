#!/usr/bin/env python3
"""From a fleet dataset (`vignette export`) to answers, on an embedded engine or on Spark.

    python3 tools/fleet/fleet.py DATASET -o OUT [--by version,os] [--top 20]
    spark-submit tools/fleet/fleet.py DATASET -o OUT --engine spark [--by ...]

The same SQL (tools/fleet/sql/) runs on both engines: DuckDB in this process by default (one
machine, no server), or Apache Spark when a fleet outgrows one machine (`spark-submit` on a
cluster, or `local[*]`). OUT gets:

  groups.csv     each group's exposure: profiles, samples, process CPU and wall time
  functions.csv  each group's top functions, self and total, as shares and per exposure
  stacks.csv     each group's top stacks (thread first, outermost frame first)
  groups/N-<group>.collapsed   each group's whole profile as collapsed stacks, which
                 speedscope and flame graph tools open as they are

Only aggregates reach this program (per group and function, per group and stack), never the
samples. Group keys are column names checked against a fixed list: nothing read from the
dataset becomes SQL.
"""

import argparse
import csv
import os
import re
import sys
import unicodedata

SQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sql")
TABLES = ["profiles", "metadata", "samples", "labels", "stacks", "frames", "modules", "symbols"]

# Keys of a profile (columns of `profiles`) a fleet is grouped by.
PROFILE_KEYS = {
    k: f"COALESCE(CAST({k} AS STRING), '-')"
    for k in ["app", "version", "build", "channel", "os", "os_version", "arch", "cpu",
              "cores", "memory_gib", "clock", "backend", "trigger"]
}
# How long a hang was, in buckets (profiles without a hang trigger read '-').
PROFILE_KEYS["hang"] = (
    "CASE WHEN trigger IS NULL OR trigger <> 'hang' THEN '-'"
    " WHEN trigger_late_ns < 100000000 THEN '<0.1s'"
    " WHEN trigger_late_ns < 1000000000 THEN '0.1-1s'"
    " WHEN trigger_late_ns < 10000000000 THEN '1-10s' ELSE '>10s' END"
)
# Keys of a sample row.
SAMPLE_KEYS = {
    "thread": "CASE WHEN s.thread = '' THEN CONCAT('thread-', CAST(s.tid AS STRING)) "
              "ELSE s.thread END"
}


def sql(name, **fill):
    """The query in sql/NAME.sql with its {placeholders} filled."""
    with open(os.path.join(SQL_DIR, name + ".sql"), encoding="utf-8") as f:
        text = f.read()
    return re.sub(r"\{([a-z_.=]+)\}", lambda m: fill[m.group(1)], text)


def fills(keys, top):
    """What the queries' placeholders stand for, for group keys `keys`."""
    profile_keys = [k for k in keys if k in PROFILE_KEYS]
    joined = lambda a, b, ks: " AND ".join(f"{a}.{k} = {b}.{k}" for k in ks) or "1 = 1"
    # With no key, one group: 'all'.
    names = keys or ["all_"]
    return {
        "keys": ", ".join(names) if keys else "all_",
        "ps.keys": ", ".join(f"ps.{k}" for k in names),
        "t.keys": ", ".join(f"t.{k}" for k in names),
        "r.keys": ", ".join(f"r.{k}" for k in names),
        "profile_keys": ", ".join(profile_keys) if profile_keys else "all_",
        "t=s": joined("t", "s", names),
        "r=g": joined("r", "g", names),
        "r=e": joined("r", "e", profile_keys or ["all_"]),
        "top": str(int(top)),
        "profile_key_exprs": "".join(f", {PROFILE_KEYS[k]} AS {k}" for k in profile_keys)
        + ", 'all' AS all_",
        "sample_key_exprs": "".join(
            f", {SAMPLE_KEYS[k]} AS {k}" if k in SAMPLE_KEYS else f", p.{k}" for k in keys
        ) + ", p.all_",
    }


class DuckDB:
    """The embedded engine: DuckDB in this process."""

    def __init__(self, dataset):
        import duckdb

        self.db = duckdb.connect()
        for t in TABLES:
            path = os.path.join(dataset, t + ".parquet").replace("'", "''")
            self.db.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}')")

    def run(self, query):
        return self.db.execute(query).fetchall()

    def columns(self, query):
        cur = self.db.execute(query)
        return [d[0] for d in cur.description], cur.fetchall()


class Spark:
    """Apache Spark: the session spark-submit gives, or a local one."""

    def __init__(self, dataset, master):
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("vignette-fleet")
        if master:
            builder = builder.master(master)
        # Small aggregates: a few shuffle partitions, not the default 200.
        builder = builder.config("spark.sql.shuffle.partitions", "8").config(
            "spark.ui.showConsoleProgress", "false")
        self.spark = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        for t in TABLES:
            self.spark.read.parquet(os.path.join(dataset, t + ".parquet")).createOrReplaceTempView(t)

    def run(self, query):
        return [tuple(r) for r in self.spark.sql(query).collect()]

    def columns(self, query):
        df = self.spark.sql(query)
        return df.columns, [tuple(r) for r in df.collect()]


def escape_controls(s):
    """Control characters as `\\u{..}` escapes, as vignette's writers make them."""
    return "".join(
        "\\u{%x}" % ord(c) if unicodedata.category(c) == "Cc" else c for c in s
    )


def collapsed_thread(name):
    return escape_controls(name).replace(";", "_").replace(" ", "_")


def collapsed_function(name):
    return escape_controls(name).replace(";", ":")


def safe_part(s):
    """A value as a piece of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)[:40] or "_"


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in r])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a folder `vignette export` wrote")
    ap.add_argument("-o", "--output", required=True, help="the folder for the answers")
    ap.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    ap.add_argument("--master", help="Spark's master when not given by spark-submit (local[*])")
    ap.add_argument(
        "--by", default="app,version,os",
        help="group keys, comma-separated: " + ", ".join(sorted([*PROFILE_KEYS, *SAMPLE_KEYS])),
    )
    ap.add_argument("--top", type=int, default=20, help="functions and stacks per group")
    args = ap.parse_args(argv)

    keys = [k for k in args.by.split(",") if k]
    unknown = [k for k in keys if k not in PROFILE_KEYS and k not in SAMPLE_KEYS]
    if unknown or len(set(keys)) != len(keys) or args.top < 1:
        ap.error(f"unknown or repeated group keys: {', '.join(unknown) or args.by}"
                 if unknown or len(set(keys)) != len(keys) else "--top must be at least 1")
    missing = [t for t in TABLES if not os.path.isfile(os.path.join(args.dataset, t + ".parquet"))]
    if missing:
        sys.exit(f"error: {args.dataset} is not a vignette dataset (no {', '.join(missing)})")

    engine = DuckDB(args.dataset) if args.engine == "duckdb" else Spark(args.dataset, args.master)
    f = fills(keys, args.top)
    engine.run(sql("keyed_profiles", **f))
    engine.run(sql("keyed", **f))
    os.makedirs(os.path.join(args.output, "groups"), exist_ok=True)
    profile_keys = [k for k in keys if k in PROFILE_KEYS] or ["all_"]
    names = keys or ["all_"]

    header, rows = engine.columns(sql("groups", **{**f, "keys": ", ".join(profile_keys)}))
    write_csv(os.path.join(args.output, "groups.csv"), header, rows)
    header, rows = engine.columns(sql("functions", **f))
    write_csv(os.path.join(args.output, "functions.csv"), header, rows)

    # Each group's stacks, named here from the distinct stacks' names.
    stack_names = {}
    for stack_id, _depth, _position, function in engine.run(sql("stack_names", **f)):
        stack_names.setdefault(stack_id, []).append(collapsed_function(function))
    groups = {}
    for row in engine.run(sql("group_stacks", **f)):
        group, (thread, stack_id, weight) = tuple(row[: len(names)]), row[len(names):]
        line = ";".join([collapsed_thread(thread), *stack_names.get(stack_id, [])])
        lines = groups.setdefault(group, {})
        lines[line] = lines.get(line, 0) + weight
    top_stacks = []
    for n, (group, lines) in enumerate(sorted(groups.items())):
        path = os.path.join(args.output, "groups",
                            f"{n}-{'-'.join(safe_part(v) for v in group)}.collapsed")
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(f"{line} {w}\n" for line, w in sorted(lines.items()))
        total = sum(lines.values())
        ranked = sorted(lines.items(), key=lambda lw: (-lw[1], lw[0]))[: args.top]
        top_stacks += [(*group, i + 1, w, w / total, line) for i, (line, w) in enumerate(ranked)]
    write_csv(os.path.join(args.output, "stacks.csv"),
              [*names, "rank", "weight", "share", "stack"], top_stacks)
    print(f"{args.engine}: {len(groups)} groups by {', '.join(keys) or 'nothing'} "
          f"-> {args.output}/functions.csv, stacks.csv, groups/")


if __name__ == "__main__":
    main(sys.argv[1:])
