"""Why each run owns its tables: shared tables keyed by run id vs per-run tables (SQLite).

For N customers per run, measures: bulk load with the sort indexes (shared table: indexes
maintained row by row; per-run table: built once after the load), dropping a run (DELETE of
its rows vs DROP TABLE) and a point read. Prints a table, writes
``benchmarks/results/store_layout.json``.

    .venv/bin/python benchmarks/store_layout.py --customers 200000
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SORT_KEYS = ("priority", "influence", "exposure", "pagerank")


def rows(n: int, seed: int) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    doc = '{"scores": {' + ",".join(f'"m{i}": 0.123456789' for i in range(25)) + "}}"
    return [(f"C{i:08d}", i, doc, *(rng.random() for _ in SORT_KEYS)) for i in range(n)]


def shared(db: Path, n: int) -> dict[str, float]:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(f"{k} REAL" for k in SORT_KEYS)
    con.execute(f"CREATE TABLE c (run TEXT, customer_id TEXT, pos INT, record TEXT, {cols}, "
                "PRIMARY KEY (run, customer_id))")
    for k in SORT_KEYS:
        con.execute(f"CREATE INDEX c_{k} ON c (run, {k}, customer_id)")
    out = {}
    for run in ("a", "b"):
        data = [(run, *r) for r in rows(n, ord(run))]
        t = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO c VALUES ({', '.join('?' * 8)})", data)
        con.execute("COMMIT")
        out["load_s"] = time.perf_counter() - t
    out["read_us"] = point_reads(con, "SELECT record FROM c WHERE run = 'b' AND customer_id = ?",
                                 n)
    t = time.perf_counter()
    con.execute("DELETE FROM c WHERE run = 'a'")
    out["drop_run_s"] = time.perf_counter() - t
    con.close()
    return out


def per_run(db: Path, n: int) -> dict[str, float]:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(f"{k} REAL" for k in SORT_KEYS)
    out = {}
    for run in ("a", "b"):
        data = rows(n, ord(run))
        t = time.perf_counter()
        con.execute(f"CREATE TABLE c_{run} (customer_id TEXT PRIMARY KEY, pos INT, record TEXT, "
                    f"{cols})")
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO c_{run} VALUES ({', '.join('?' * 7)})", data)
        con.execute("COMMIT")
        for k in SORT_KEYS:
            con.execute(f"CREATE INDEX c_{run}_{k} ON c_{run} ({k}, customer_id)")
        out["load_s"] = time.perf_counter() - t
    out["read_us"] = point_reads(con, "SELECT record FROM c_b WHERE customer_id = ?", n)
    t = time.perf_counter()
    con.execute("DROP TABLE c_a")
    out["drop_run_s"] = time.perf_counter() - t
    con.close()
    return out


def point_reads(con: sqlite3.Connection, sql: str, n: int) -> float:
    rng = random.Random(5)
    ids = [f"C{rng.randrange(n):08d}" for _ in range(20_000)]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for cid in ids:
            con.execute(sql, (cid,)).fetchone()
        times.append((time.perf_counter() - t) / len(ids) * 1e6)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=200_000)
    args = p.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        result["shared table keyed by run"] = shared(Path(tmp) / "shared.db", args.customers)
        result["a table per run"] = per_run(Path(tmp) / "per_run.db", args.customers)
    print(f"{'layout':>28} {'load s':>8} {'drop run s':>11} {'point read us':>14}")
    for name, r in result.items():
        print(f"{name:>28} {r['load_s']:8.2f} {r['drop_run_s']:11.3f} {r['read_us']:14.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store_layout.json").write_text(
        json.dumps({"customers": args.customers, "results": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
