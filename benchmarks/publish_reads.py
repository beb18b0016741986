"""Read latency of the hot call, ``GET /v1/customers/{id}``, before and after a store layout
change: the app's ASGI stack called in-process (request guard, fast path: key check, rate
limiter, run resolution, the customer read, the response), no HTTP server or client, so the
figure is the server's own cost per request (what a layout change can move).

Each version (``before``: a ``git archive`` of ``--before`` on ``PYTHONPATH``; ``after``: this
checkout or ``--after``) publishes the same run into its own SQLite file (and PostgreSQL
schema), then the versions are timed in turns, in fresh processes, ``--rounds`` times.

    .venv/bin/python benchmarks/publish_reads.py --size 100k
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json
from publish import DATA, before_tree, fresh_url

PREPARE = """
from carenet.run import AnalysisRun
from carenet.store import RunStore
run = AnalysisRun.load({run!r})
store = RunStore({url!r})
store.publish(run)
token = store.create_key("reader")[1]
ids = run.customers["customer_id"].astype(str).tolist()[::max(1, len(run.customers) // {n})]
store.close()
print(json.dumps({{"token": token, "ids": ids}}))
"""

TIME = """
import asyncio
from carenet.api.app import create_app
from carenet.api.settings import Settings
app = create_app(Settings(db={url!r}, worker=False, rate_limit=1e9, rate_burst=1e9))
ids, token = {ids!r}, {token!r}
sent = []
async def receive():
    return {{"type": "http.request", "body": b"", "more_body": False}}
async def send(message):
    sent.append(message)
def scope(cid):
    return {{"type": "http", "method": "GET", "path": "/v1/customers/" + cid, "raw_path": b"",
            "query_string": b"", "headers": [(b"x-api-key", token.encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http",
            "http_version": "1.1", "root_path": "", "app": app}}
async def main():
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for cid in ids:
            sent.clear()
            await app(scope(cid), receive, send)
            assert sent[0]["status"] == 200, sent[0]
        best = min(best, (time.perf_counter() - t) / len(ids) * 1e6)
    return best
print(json.dumps({{"request_us": asyncio.run(main())}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="100k", choices=["100k", "1M"])
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--before", default="765abd5")
    ap.add_argument("--after", default="")
    ap.add_argument("--customers", type=int, default=2000, help="customers read per pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="publish-reads")
    args = ap.parse_args()
    run = DATA / f"publish-run-{args.size}"
    if not (run / "run.json").exists():
        raise SystemExit(f"{run} is missing: run benchmarks/publish.py --sizes {args.size} first")
    versions: dict[str, dict[str, str]] = {
        "before": {"PYTHONPATH": str(before_tree(args.before)), "PYTHONSAFEPATH": "1"},
        "after": ({"PYTHONPATH": str(before_tree(args.after)), "PYTHONSAFEPATH": "1"}
                  if args.after else {})}
    stores = [s for s in args.stores.split(",")
              if s == "sqlite" or os.environ.get("CARENET_TEST_POSTGRES_URL")]
    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=DATA) as tmpdir:
        for store in stores:
            prepared: dict[str, tuple[str, dict[str, Any], Any]] = {}
            for version, env in versions.items():
                url, drop = fresh_url(store, Path(tmpdir), f"reads-{version}")
                res = run_child(PREPARE.format(run=str(run), url=url, n=args.customers), env=env)
                if "error" in res:
                    raise SystemExit(f"{version}: {res['error']}")
                prepared[version] = (url, res, drop)
            for rnd in range(args.rounds):
                for version, env in versions.items():
                    url, res, _ = prepared[version]
                    load = os.getloadavg()[0]
                    out = run_child(TIME.format(url=url, ids=res["ids"], token=res["token"]),
                                    env=env)
                    row = {"store": store, "code": version, "round": rnd,
                           "load": round(load, 1), **out}
                    rows.append(row)
                    print(row, flush=True)
            for _, _, drop in prepared.values():
                drop()
    print()
    print_table(rows, ["store", "code", "round", "request_us", "load"])
    for store in stores:
        best = {v: min(r["request_us"] for r in rows if r["store"] == store and r["code"] == v)
                for v in versions}
        print(f"{store}: best request before {best['before']:.1f} us, after "
              f"{best['after']:.1f} us ({best['after'] / best['before']:.2f}x)")
    write_json(args.out, {"machine": machine(), "load_start": load_start,
                          "load_end": os.getloadavg(), "size": args.size, "rows": rows})


if __name__ == "__main__":
    main()
