"""Publishing benchmark: a 1M-customer run shaped like a default analysis, published to SQLite
and PostgreSQL by the code before and after issue 15's bulk loading, in the same run.

The run: a real default analysis at 100k customers (``AnalysisConfig()`` on a generated log
with events and a customers table; every per-customer column and extra table a default run
publishes) scaled to the 1M-customer graph of the 1M generated log: the 1M log's own load
(customers table attributes, degrees, activity) plus the analysis columns and tables of the
100k run resampled to 1M customers (rows drawn with replacement, customer ids remapped). So
the column set, dtypes, missing values and table shapes are a default run's, at 1M.

Each publication runs in a fresh process (``before``: a ``git archive`` of ``--before`` on
``PYTHONPATH``; ``after``: this checkout) into a new SQLite file or a new PostgreSQL schema,
and reports its phases (from the publisher's progress callback), its CPU seconds (the client's;
PostgreSQL's server process is not in them), the mean time of a point read
(``RunStore.customer`` over 2,000 customers) and of a ranked page of 100 (the first 10 pages;
best of three passes), and, at 100k, two
digests: ``reads``, of what the read functions return (documents and neighbours of 2,000
customers, ranked and filtered pages, the customers frame of the views, every extra table),
which must be equal before and after, and ``digest``, of the stored bytes (customer rows,
packed ties, extra tables, the run row's catalogue), which changes with the layout.

    .venv/bin/python benchmarks/publish.py                       # 1M, SQLite and PostgreSQL
    .venv/bin/python benchmarks/publish.py --sizes 100k --repeats 2

PostgreSQL comes from ``CARENET_TEST_POSTGRES_URL`` (omitted when unset). Writes
``benchmarks/results/publish.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
INPUTS = {"100k": Path("/work/prof/data100k"), "1M": Path("/work/prof/data1m")}
GENERATE = {"100k": (100_000, 1_000_000), "1M": (1_000_000, 10_000_000)}

BASE = """
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.pipeline import analyze
p = Path({path!r})
run = analyze([p / "interactions.parquet"], customers=p / "customers.parquet",
              events=p / "events.parquet", config=AnalysisConfig())
run.save({out!r})
print(json.dumps({{"seconds": run.timings["total"]}}))
"""

SCALE = """
from pathlib import Path
import numpy as np
import pandas as pd
from carenet.config import AnalysisConfig
from carenet.pipeline import analyze
from carenet.run import AnalysisRun
from dataclasses import replace
base = AnalysisRun.load({base!r})
p = Path({path!r})
big = analyze([p / "interactions.parquet"], customers=p / "customers.parquet",
              events=p / "events.parquet", config=AnalysisConfig(), steps=[])
n, nb = big.graph.n_customers, len(base.customers)
rng = np.random.default_rng(15)
pick = rng.integers(0, nb, n)
cust = big.customers.reset_index(drop=True).copy()
bc = base.customers.reset_index(drop=True)
for c in bc.columns:
    if c not in cust.columns:
        cust[c] = bc[c].iloc[pick].reset_index(drop=True)
cust = cust[[c for c in bc.columns if c in cust.columns]
            + [c for c in cust.columns if c not in bc.columns]]
# base customer id -> the big customers drawn from it (for the tables' id columns)
new_ids = cust["customer_id"].astype(str).to_numpy()
base_ids = bc["customer_id"].astype(str).to_numpy()
factor = max(1, round(n / nb))
tables = {{}}
for name, t in base.tables.items():
    if name == "communities":
        tables[name] = t
        continue
    rows = t.iloc[rng.integers(0, len(t), len(t) * factor)].reset_index(drop=True) if len(t) else t
    for col in ("customer_id", "source", "source_id", "customer", "target"):
        if col in rows.columns:
            rows[col] = new_ids[rng.integers(0, n, len(rows))]
    tables[name] = rows
run = replace(big, customers=cust, tables=tables, results=base.results,
              parameters=base.parameters)
run.save({out!r})
print(json.dumps({{"customers": n, "columns": len(cust.columns),
                  "tables": {{k: len(v) for k, v in tables.items()}}}}))
"""

PUBLISH = """
import hashlib, tempfile
import pandas as pd
from carenet.run import AnalysisRun
from carenet.store import RunStore
from sqlalchemy import text
run = AnalysisRun.load({run!r})
url = {url!r}
store = RunStore(url)
marks = []
t0 = time.perf_counter()
c0 = resource.getrusage(resource.RUSAGE_SELF)
def progress(step, fraction):
    marks.append((step, time.perf_counter() - t0, time.process_time()))
rid = store.publish(run, progress=progress)
seconds = time.perf_counter() - t0
# the publisher's own breakdown (encode / database / commit per table, each index), when
# the code measured has one
parts = {{k: round(v, 3) for k, v in (getattr(store, "publish_timings", None) or {{}}).items()}}
c1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime
io_mb = (c1.ru_oublock - c0.ru_oublock) * 512 / 2**20
marks.append(("done", seconds, time.process_time()))
phases = {{a[0]: round(b[1] - a[1], 3) for a, b in zip(marks, marks[1:])}}
phases_cpu = {{a[0]: round(b[2] - a[2], 3) for a, b in zip(marks, marks[1:])}}
digest = reads = None
view = store.resolve(rid)
ids = run.customers["customer_id"].astype(str).tolist()[::max(1, len(run.customers) // 2000)]
# point reads and ranked pages, timed (the read latency the layout must keep): the best of
# three passes, so that the first pass warms the page cache and the statements
# the first ranked page of the run in this process (nothing cached: a layout-3 run loads the
# sort key's column and orders the ids here), then a filtered one on another key
t1 = time.perf_counter()
store.customers_page(view, limit=100)
first_page_ms = (time.perf_counter() - t1) * 1e3
t1 = time.perf_counter()
if "community" in run.customers.columns and len(view.numeric) > 1:
    store.customers_page(view, sort=view.numeric[1], limit=100,
                         community=str(run.customers["community"].iloc[0]))
first_filtered_ms = (time.perf_counter() - t1) * 1e3
read_us = page_ms = float("inf")
for _ in range(3):
    t1 = time.perf_counter()
    for cid in ids:
        store.customer(view, cid)
    read_us = min(read_us, (time.perf_counter() - t1) / len(ids) * 1e6)
    t1 = time.perf_counter()
    cursor = None
    for _ in range(10):
        page = store.customers_page(view, limit=100, cursor=cursor)
        cursor = page.next_cursor
    page_ms = min(page_ms, (time.perf_counter() - t1) / 10 * 1e3)
if {digest!r}:
    # what the read functions return (what the API serves), for a sample of customers and
    # every table: equal before and after even where the stored bytes differ
    r = hashlib.sha256()
    for cid in ids:
        r.update((store.customer(view, cid) or "-").encode())
        r.update(repr(store.neighbors(view, cid, limit=20)).encode())
    numeric = view.numeric
    for sort, order, extra in ((None, "desc", {{}}), (numeric[-1], "asc", {{}}),
                               (None, "desc", {{"community": str(run.customers["community"].iloc[0])}}
                                if "community" in run.customers.columns else {{}}),
                               (numeric[0], "desc", {{"bounds": {{numeric[1]: (0.0, None)}}}})):
        cursor = None
        for _ in range(3):
            page = store.customers_page(view, sort=sort, order=order, limit=1000, cursor=cursor,
                                        **extra)
            r.update(repr((page.sort, page.items)).encode())
            cursor = page.next_cursor
            if cursor is None:
                break
    frame = store.customers_frame(view)
    r.update(repr(list(frame.columns)).encode())
    r.update(repr([str(t) for t in frame.dtypes]).encode())
    r.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    for name in view.tables:
        rows, total = store.table_rows(view, name, limit=10**9)
        r.update(repr((name, total, rows)).encode())
    reads = r.hexdigest()
    h = hashlib.sha256()
    with store.engine.connect() as conn:
        for table, order in ((view.customers.name, "pos"), (view.ties.name, "pos"),
                             (view.rows.name, "tbl, row_no")):
            res = conn.execute(text(f'SELECT * FROM "{{table}}" ORDER BY {{order}}'))
            h.update(repr(list(res.keys())).encode())
            for row in res:
                h.update(repr(tuple(bytes(v) if isinstance(v, memoryview) else v
                                    for v in row)).encode())
        cols = conn.execute(text("SELECT columns, tables, graph FROM carenet_runs "
                                 "WHERE id = :i"), {{"i": rid}}).one()
        h.update(repr([c if isinstance(c, (list, dict)) else json.loads(c)
                       for c in cols]).encode())
    digest = h.hexdigest()
store.close()
print(json.dumps({{"seconds": seconds, "cpu_s": cpu, "written_mb": io_mb, "phases": phases,
                  "phases_cpu": phases_cpu, "parts": parts, "digest": digest, "reads": reads, "read_us": read_us, "page_ms": page_ms,
                  "first_page_ms": first_page_ms, "first_filtered_ms": first_filtered_ms,
                  "peak_mb": _peak_mb()}}))
"""


WARM = """
from carenet.run import AnalysisRun
from carenet.store import RunStore
store = RunStore({url!r})
t0 = time.perf_counter()
store.publish(AnalysisRun.load({run!r}))
store.close()
try:
    import pyarrow as pa
    from carenet.store import records as rec
    rec.copy_binary(pa.table({{"x": [1.0]}}), ["float8"])
except AttributeError:  # code without the binary COPY encoder
    pass
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""


def ensure_input(size: str) -> Path:
    """The generated log of ``size``: the lead's shared copy, else generated once here."""
    shared = INPUTS[size]
    if (shared / "events.parquet").exists():
        return shared
    local = DATA / f"pipeline-{size}"
    if not (local / "events.parquet").exists():
        customers, interactions = GENERATE[size]
        res = run_child(f"""
from pathlib import Path
from carenet.synthetic import GeneratorConfig, generate
generate(GeneratorConfig(customers={customers}, interactions={interactions},
                         timestamps="epoch", seed=1)).write(Path({str(local)!r}), fmt="parquet")
print(json.dumps({{}}))
""")
        if "error" in res:
            raise SystemExit(f"generating {size}: {res['error']}")
    return local


def ensure_runs() -> dict[str, Path]:
    """The 100k default run and its 1M scaling (cached under ``benchmarks/data``)."""
    base = DATA / "publish-run-100k"
    if not (base / "run.json").exists():
        print("analysing 100k with defaults (once)...", flush=True)
        res = run_child(BASE.format(path=str(ensure_input("100k")), out=str(base)))
        if "error" in res:
            raise SystemExit(f"100k analysis: {res['error']}")
    big = DATA / "publish-run-1M"
    if not (big / "run.json").exists():
        print("scaling the 100k run to the 1M graph (once)...", flush=True)
        res = run_child(SCALE.format(base=str(base), path=str(ensure_input("1M")),
                                     out=str(big)))
        if "error" in res:
            raise SystemExit(f"1M run: {res['error']}")
        print(json.dumps(res), flush=True)
    return {"100k": base, "1M": big}


def before_tree(rev: str) -> Path:
    """The ``carenet`` package at ``rev``, extracted once (for the ``before`` children)."""
    out = DATA / f"publish-before-{rev[:10]}"
    if not (out / "carenet").exists():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "carenet"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def fresh_url(store: str, tmp: Path, tag: str) -> tuple[str, Any]:
    if store == "sqlite":
        return f"sqlite:///{tmp / (tag + '.db')}", lambda: None
    from api import fresh_pg_schema  # the API benchmark's throwaway schema

    return fresh_pg_schema(os.environ["CARENET_TEST_POSTGRES_URL"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1M", help="comma list of 100k, 1M")
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--before", default="765abd5",
                    help="git revision of the code before (empty: after only)")
    ap.add_argument("--after", default="",
                    help="git revision of the code after (empty: this checkout)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default="publish")
    args = ap.parse_args()
    runs = ensure_runs()
    stores = [s for s in args.stores.split(",")
              if s == "sqlite" or os.environ.get("CARENET_TEST_POSTGRES_URL")]
    versions: dict[str, dict[str, str]] = {"after": {}}
    if args.after:  # a fixed revision, so that editing the checkout cannot touch a running child
        versions = {"after": {"PYTHONPATH": str(before_tree(args.after)), "PYTHONSAFEPATH": "1"}}
    if args.before:
        # PYTHONSAFEPATH: the child must not find this checkout's package in its cwd first
        versions = {"before": {"PYTHONPATH": str(before_tree(args.before)),
                               "PYTHONSAFEPATH": "1"}, **versions}
    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=DATA) as tmpdir:
        tmp = Path(tmpdir)
        for version, env in versions.items():
            # untimed: each code's numba kernels compiled into its cache first (a fresh
            # extracted tree has none), as `carenet warmup` does after an install
            res = run_child(WARM.format(run=str(runs["100k"]),
                                        url=f"sqlite:///{tmp / ('warm-' + version + '.db')}"),
                            env=env)
            print(json.dumps({"warm": version, **res}), flush=True)
        for size in args.sizes.split(","):
            for store in stores:
                for rep in range(args.repeats):
                    for version, env in versions.items():
                        url, drop = fresh_url(store, tmp, f"{size}-{version}-{rep}")
                        load = os.getloadavg()[0]
                        res = run_child(PUBLISH.format(run=str(runs[size]), url=url,
                                                       digest=rep == 0 and size == "100k"), env=env)
                        drop()
                        row = {"size": size, "store": store, "code": version, "repeat": rep,
                               "load": round(load, 1), **res}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    load_end = os.getloadavg()
    for r in rows:
        r["phases_text"] = ", ".join(f"{k} {v:.1f}" for k, v in (r.get("phases") or {}).items())
        r["phases_cpu_text"] = " / ".join(f"{v:.1f}" for v in (r.get("phases_cpu") or {}).values())
    print()
    print_table(rows, ["size", "store", "code", "repeat", "seconds", "cpu_s", "written_mb",
                       "peak_mb", "read_us", "page_ms", "first_page_ms", "first_filtered_ms",
                       "load", "phases_text", "phases_cpu_text"])
    def same_of(field: str) -> dict[str, bool]:
        seen: dict[tuple[str, str], set[str]] = {(r["size"], r["store"]): set() for r in rows}
        for r in rows:
            if r.get(field):
                seen[(r["size"], r["store"])].add(r[field])
        return {f"{k[0]} {k[1]}": len(v) == 1 for k, v in seen.items() if v}  # 100k only

    same, same_reads = same_of("digest"), same_of("reads")
    print("same stored bytes before/after:", same)
    print("same read results before/after (documents, pages, neighbours, frame, tables):",
          same_reads)
    print("load average start", load_start, "end", load_end)
    write_json(args.out, {"machine": machine(), "load_start": load_start, "load_end": load_end,
                          "before": args.before, "rows": rows, "same_content": same,
                          "same_reads": same_reads})


if __name__ == "__main__":
    main()
