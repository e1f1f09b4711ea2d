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
  compare.csv    with --compare KEY=BASE,NEW (version=1.2,1.3): per group and function, the
                 change of its mean self and total share from the profiles whose KEY is BASE to
                 those whose KEY is NEW, each profile one observation, with a 95% interval and
                 a q-value (Welch's t-test, Benjamini-Hochberg over the group's tests)

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

    def sides(self, base, new):
        self.db.execute(
            "CREATE OR REPLACE TEMPORARY TABLE sides AS"
            " SELECT * FROM (VALUES ('base', ?), ('new', ?)) AS t(side, value)", [base, new])

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

    def sides(self, base, new):
        self.spark.createDataFrame(
            [("base", base), ("new", new)], "side STRING, value STRING"
        ).createOrReplaceTempView("sides")

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


def cell(v):
    """A value as a CSV cell: floats exactly, text with its control characters escaped."""
    if isinstance(v, float):
        return repr(v)
    return escape_controls(v) if isinstance(v, str) else v


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([cell(v) for v in r])


def compare(engine, keys, key, base, new, out):
    """Writes compare.csv: per group of `keys`, each function's change from `base` to `new`."""
    import stats

    names = keys or ["all_"]
    joined = " AND ".join(f"c.{k} = s.{k}" for k in names)
    engine.sides(base, new)
    rows = engine.run(sql("compare", **{
        "keys": ", ".join(names), "p.keys": ", ".join(f"p.{k}" for k in names),
        "c.keys": ", ".join(f"c.{k}" for k in names), "c=s": joined, "key": key}))
    # Per group: each side's profile count, and per function each side's sums.
    groups = {}
    for row in rows:
        group, (side, profiles, function, *sums) = tuple(row[: len(names)]), row[len(names):]
        g = groups.setdefault(group, {"n": {}, "f": {}})
        g["n"][side] = profiles
        if function is not None:
            g["f"].setdefault(function, {})[side] = sums
    table, warnings = [], []
    for group, g in sorted(groups.items()):
        n0, n1 = g["n"].get("base", 0), g["n"].get("new", 0)
        if n0 < 2 or n1 < 2:
            warnings.append(f"{'/'.join(group)}: {n0} base and {n1} new profiles; two or more "
                            "a side are needed")
            continue
        zero = [0.0, 0.0, 0.0, 0.0]
        tests = []
        for function, sides in sorted(g["f"].items()):
            s0, s1 = sides.get("base", zero), sides.get("new", zero)
            self_t = stats.welch(n0, s0[0], s0[1], n1, s1[0], s1[1])
            total_t = stats.welch(n0, s0[2], s0[3], n1, s1[2], s1[3])
            tests.append((function, self_t, total_t))
        qs = stats.benjamini_hochberg([p for _, a, b in tests for p in (a[3], b[3])])
        for i, (function, a, b) in enumerate(tests):
            row = [*group, function]
            for (m0, m1, (low, high), _), q in ((a, qs[2 * i]), (b, qs[2 * i + 1])):
                row += [m0, m1, m1 - m0, low, high, q]
            table.append((group, min(qs[2 * i], qs[2 * i + 1]), -abs(a[1] - a[0]), row))
    table.sort(key=lambda t: t[:3])
    header = [*names, "function"] + [f"{kind}_{what}" for kind in ("self", "total")
                                     for what in ("base", "new", "change", "low", "high", "q")]
    with open(os.path.join(out, "compare.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for *_, row in table:
            w.writerow([f"{v:.6g}" if isinstance(v, float) else cell(v) for v in row])
    for warning in warnings:
        print(f"warning: {escape_controls(warning)}", file=sys.stderr)
    return len(groups) - len(warnings)


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
    ap.add_argument("--compare", metavar="KEY=BASE,NEW",
                    help="also compare the profiles whose key KEY is BASE with those where it "
                         "is NEW, in each group of the other --by keys")
    args = ap.parse_args(argv)

    keys = [k for k in args.by.split(",") if k]
    unknown = [k for k in keys if k not in PROFILE_KEYS and k not in SAMPLE_KEYS]
    if unknown or len(set(keys)) != len(keys) or args.top < 1:
        ap.error(f"unknown or repeated group keys: {', '.join(unknown) or args.by}"
                 if unknown or len(set(keys)) != len(keys) else "--top must be at least 1")
    comparison = None
    if args.compare:
        key, _, values = args.compare.partition("=")
        sides = values.split(",")
        if key not in PROFILE_KEYS or len(sides) != 2 or "thread" in keys:
            ap.error("--compare takes KEY=BASE,NEW with KEY a profile's key (not thread), and "
                     "then groups only by profiles' keys")
        comparison = (key, *sides)
    missing = [t for t in TABLES if not os.path.isfile(os.path.join(args.dataset, t + ".parquet"))]
    if missing:
        sys.exit(f"error: {args.dataset} is not a vignette dataset (no {', '.join(missing)})")

    engine = DuckDB(args.dataset) if args.engine == "duckdb" else Spark(args.dataset, args.master)
    # The compared key is a column of keyed_profiles too.
    f = fills(keys, args.top)
    if comparison and comparison[0] not in keys:
        f["profile_key_exprs"] += f", {PROFILE_KEYS[comparison[0]]} AS {comparison[0]}"
    engine.run(sql("keyed_profiles", **f))
    engine.run(sql("keyed", **f))
    for view in sql("stack_functions").split(";"):
        if view.strip():
            engine.run(view)
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
    if comparison:
        key = comparison[0]
        compared = compare(engine, [k for k in keys if k != key], *comparison, args.output)
        print(f"{args.engine}: {comparison[0]} {comparison[1]} against {comparison[2]} in "
              f"{compared} groups -> {args.output}/compare.csv")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # an engine's error on a damaged or foreign dataset: said plainly
        message = f"{type(e).__name__}: {e}".replace("\n", " ")
        sys.exit(f"error: {escape_controls(message)[:2000]}")
