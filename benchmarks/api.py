"""API latency and throughput with 1M customers in the store, on SQLite and PostgreSQL.

Builds a synthetic run (1M customers with the columns a full analysis produces, ~5M ties),
publishes it to a store, starts ``uvicorn --factory carenet.api.app:create_app`` and loads it
from this machine's loopback:

* ``GET /v1/customers/{id}`` (random ids) at a fixed rate (default 1,000 req/s, open loop:
  latency counted from the scheduled send time, so queueing is not hidden), and at full speed
  (closed loop, 32 connections) for capacity;
* a ranked list page ``GET /v1/customers?sort=priority&limit=50`` (first pages and filtered
  pages) at concurrency 1 and 4.

The load generator is a small asyncio HTTP/1.1 client in this file (keep-alive, one request
in flight per connection); when Debian's ``wrk`` is installed, capacity is also measured with
it (``--wrk``), since a Python generator competes with the server for the 2 cores.

    .venv/bin/python benchmarks/api.py                         # SQLite, 1M customers
    .venv/bin/python benchmarks/api.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python benchmarks/api.py --customers 100000 --seconds 5   # quicker

Prints a table and writes ``benchmarks/results/api-<backend>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ---------------------------------------------------------------------------- data
def synthetic_run(n: int, ties_per_customer: int, seed: int = 1) -> Any:
    """An AnalysisRun shaped like a full analysis (every measure column of the roadmap)."""
    from carenet.graphs.model import CustomerGraph
    from carenet.pipeline import AnalysisRun, library_versions

    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:08d}" for i in range(n)], dtype=object)
    m = n * ties_per_customer
    src = rng.integers(0, n, m)
    dst = (src + rng.zipf(1.6, m) % 5000) % n
    keep = src != dst
    g = CustomerGraph.from_edges(ids, src[keep], dst[keep], rng.exponential(1.0, keep.sum()))
    g = CustomerGraph(g.ids, g.indptr, g.indices, g.weights, g.counts,
                      rng.integers(1, 64, len(g.indices)).astype(np.uint16),
                      ("call", "sms", "chat", "email", "social", "referral"), True)
    community = rng.integers(0, 3000, n)
    influence = rng.gamma(1.5, 4.0, n)
    exposure = rng.beta(1.0, 8.0, n)
    value = rng.lognormal(5.0, 1.0, n)
    c = pd.DataFrame({
        "customer_id": ids,
        "degree_in": g.in_degree(), "degree_out": g.out_degree(),
        "strength_in": g.in_strength(), "strength_out": g.out_strength(),
        "value": value, "churn_score": rng.random(n),
        "segment": rng.choice(np.array(["consumer", "small_business", "enterprise"]), n),
        "pagerank": rng.pareto(2.0, n) / n, "eigenvector": rng.random(n),
        "betweenness": rng.pareto(3.0, n) / n, "harmonic": rng.random(n),
        "core": rng.integers(1, 30, n), "community": community,
        "role": rng.choice(np.array(["hub", "bridge", "peripheral"]), n, p=[.05, .1, .85]),
        "within_z": rng.normal(0, 1, n), "participation": rng.random(n),
        "influence": influence, "influence_low": influence * 0.9,
        "influence_high": influence * 1.1, "exposure": exposure,
        "exposure_low": exposure * 0.9, "exposure_high": np.minimum(1, exposure * 1.1),
        "priority": exposure * (value + influence * 50),
        "reason": [f"exposed through {k} ties; carries {k * 3} customers"
                   for k in rng.integers(1, 9, n)],
    })
    now = pd.Timestamp.now(tz="UTC").isoformat()
    return AnalysisRun(
        run_id=f"bench-{uuid.uuid4().hex[:6]}", created=now, finished=now,
        parameters={"seed": seed}, inputs={"logs": ["synthetic"]}, timings={},
        counts={"customers": n, "ties": g.n_ties}, versions=library_versions(),
        summary=g.summary().to_dict(), loading={}, customers=c, tables={}, graph=g,
        events=pd.DataFrame(), rejects=pd.DataFrame())


# ---------------------------------------------------------------------------- load
class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> int:
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                          f"X-API-Key: {self.key}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await self.reader.readexactly(length)
        return status


def summarize(lat: list[float], seconds: float, errors: int) -> dict[str, Any]:
    a = np.array(lat) * 1000.0
    return {"requests": len(lat), "errors": errors, "seconds": round(seconds, 2),
            "throughput": round(len(lat) / seconds, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 3) if len(a) else None,
            "p90_ms": round(float(np.percentile(a, 90)), 3) if len(a) else None,
            "p99_ms": round(float(np.percentile(a, 99)), 3) if len(a) else None,
            "max_ms": round(float(a.max()), 3) if len(a) else None}


async def open_loop(port: int, key: str, paths: list[str], rate: float, seconds: float,
                    conns: int = 16) -> dict[str, Any]:
    """Requests sent at a fixed rate; latency from the scheduled time (no coordinated
    omission)."""
    pool = [Conn("127.0.0.1", port, key) for _ in range(conns)]
    for c in pool:
        await c.open()
    free: asyncio.Queue[Conn] = asyncio.Queue()
    for c in pool:
        free.put_nowait(c)
    lat: list[float] = []
    errors = 0
    total = int(rate * seconds)
    tasks = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int, at: float) -> None:
        nonlocal errors
        c = await free.get()
        try:
            status = await c.get(paths[i % len(paths)])
            if status == 200:
                lat.append(loop.time() - at)
            else:
                errors += 1
        finally:
            free.put_nowait(c)

    for i in range(total):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, at)))
    await asyncio.gather(*tasks)
    out = summarize(lat, loop.time() - t0, errors)
    out["offered_rate"] = rate
    return out


async def closed_loop(port: int, key: str, paths: list[str], conns: int, seconds: float
                      ) -> dict[str, Any]:
    """``conns`` connections, each sending its next request as soon as the last answered."""
    lat: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        c = Conn("127.0.0.1", port, key)
        await c.open()
        i = k
        while loop.time() < end:
            t = loop.time()
            status = await c.get(paths[i % len(paths)])
            i += conns
            if status == 200:
                lat.append(loop.time() - t)
            else:
                errors += 1

    t0 = loop.time()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    out = summarize(lat, loop.time() - t0, errors)
    out["connections"] = conns
    return out


def wrk(port: int, key: str, path: str, conns: int, seconds: float) -> dict[str, Any] | None:
    """Capacity with Debian's wrk (one thread: the other core is the server's)."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    out = subprocess.run([exe, "-t1", f"-c{conns}", f"-d{int(seconds)}s", "--latency",
                          "-H", f"X-API-Key: {key}", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        v, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"throughput": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "connections": conns, "errors": int(non2xx.group(1)) if non2xx else 0,
            "tool": "wrk 1 thread, same path repeated"}


# ---------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, workers: int, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    env = dict(os.environ, CARENET_DB=url, CARENET_RATE_LIMIT="0", CARENET_WORKER="false",
               CARENET_LATEST_TTL="1", CARENET_DATA_DIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "carenet.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"], env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


REFERENCE_APP = """
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
DOC = open(__file__.replace("refapp.py", "doc.json")).read()


@app.get("/v1/customers/{customer_id}")
async def customer(customer_id: str) -> Response:
    return Response(DOC, media_type="application/json")
"""


def start_reference(tmp: Path, doc: str) -> tuple[subprocess.Popen[bytes], int]:
    """The issue's yardstick: one uvicorn worker returning a precomputed record."""
    import httpx

    (tmp / "refapp.py").write_text(REFERENCE_APP)
    (tmp / "doc.json").write_text(doc)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "refapp:app", "--app-dir",
                             str(tmp), "--port", str(port), "--log-level", "warning",
                             "--no-access-log"])
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/customers/x", timeout=1)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("reference server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------------------- main
def fresh_pg_schema(base: str) -> tuple[str, Any]:
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", drop


def bench_backend(name: str, url: str, run: Any, args: argparse.Namespace, tmp: Path
                  ) -> dict[str, Any]:
    from carenet.store import RunStore

    store = RunStore(url)
    t = time.perf_counter()
    store.publish(run)
    publish_s = time.perf_counter() - t
    key = store.create_key("reader", "benchmark")[1]
    store.close()
    rng = random.Random(3)
    ids = run.customers["customer_id"].to_numpy()
    one = [f"/v1/customers/{ids[rng.randrange(len(ids))]}" for _ in range(20_000)]
    pages = ["/v1/customers?sort=priority&limit=50",
             "/v1/customers?sort=influence&limit=50",
             "/v1/customers?sort=pagerank&limit=50&role=hub",
             "/v1/customers?sort=exposure&limit=50&min_priority=100"]
    result: dict[str, Any] = {"backend": name, "customers": len(ids),
                              "ties": int(run.graph.n_ties), "publish_seconds": round(publish_s, 1)}
    if args.reference:
        import httpx

        proc, port = start_server(url, 1, tmp)
        doc = httpx.get(f"http://127.0.0.1:{port}{one[0]}", headers={"X-API-Key": key}).text
        stop_server(proc)
        proc, port = start_reference(tmp, doc)
        try:
            asyncio.run(closed_loop(port, key, one[:2000], 4, 2.0))
            ref: dict[str, Any] = {
                "customer_c1": asyncio.run(closed_loop(port, key, one, 1, args.seconds)),
                "customer_rate": asyncio.run(open_loop(port, key, one, args.rate,
                                                       args.seconds)),
                "customer_capacity_py": asyncio.run(closed_loop(port, key, one, 32,
                                                                args.seconds))}
            w = wrk(port, key, one[0], 32, args.seconds)
            if w is not None:
                ref["customer_capacity_wrk"] = w
            result["reference_precomputed"] = ref
        finally:
            stop_server(proc)
    for workers in args.workers:
        proc, port = start_server(url, workers, tmp)
        try:
            asyncio.run(closed_loop(port, key, one[:2000], 4, 2.0))  # warm up
            r: dict[str, Any] = {}
            r["customer_c1"] = asyncio.run(closed_loop(port, key, one, 1, args.seconds))
            r["customer_rate"] = asyncio.run(open_loop(port, key, one, args.rate, args.seconds))
            r["customer_capacity_py"] = asyncio.run(closed_loop(port, key, one, 32,
                                                                args.seconds))
            w = wrk(port, key, one[0], 32, args.seconds)
            if w is not None:
                r["customer_capacity_wrk"] = w
            r["page_c1"] = asyncio.run(closed_loop(port, key, pages, 1, args.seconds))
            r["page_c4"] = asyncio.run(closed_loop(port, key, pages, 4, args.seconds))
            result[f"workers_{workers}"] = r
        finally:
            stop_server(proc)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    rows = []
    for res in results:
        for wk, r in res.items():
            if not wk.startswith(("workers_", "reference")):
                continue
            label = "ref" if wk.startswith("reference") else wk.split("_")[1]
            for case, m in r.items():
                rows.append((res["backend"], label, case,
                             m.get("offered_rate") or m.get("connections", ""),
                             m.get("p50_ms"), m.get("p99_ms"), m.get("throughput"),
                             m.get("errors")))
    head = ("store", "workers", "case", "rate/conns", "p50 ms", "p99 ms", "req/s", "errors")
    print("  ".join(f"{h:>12}" for h in head))
    for row in rows:
        print("  ".join(f"{v!s:>12}" for v in row))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--ties-per-customer", type=int, default=5)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--postgres", default=os.environ.get("CARENET_TEST_POSTGRES_URL"),
                   help="PostgreSQL URL (default $CARENET_TEST_POSTGRES_URL); omit to skip")
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure a bare FastAPI app returning a precomputed record")
    args = p.parse_args()
    t = time.perf_counter()
    run = synthetic_run(args.customers, args.ties_per_customer)
    print(f"synthetic run: {args.customers:,} customers, {run.graph.n_ties:,} ties "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_generator":
            "asyncio HTTP/1.1 client in benchmarks/api.py" + (" + wrk" if shutil.which("wrk")
                                                                  else ""),
            "args": vars(args) | {"postgres": bool(args.postgres)}}
    results = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        backends: list[tuple[str, str, Any]] = []
        if not args.skip_sqlite:
            backends.append(("sqlite", f"sqlite:///{tmp / 'bench.db'}", None))
        if args.postgres:
            url, drop = fresh_pg_schema(args.postgres)
            backends.append(("postgresql", url, drop))
        for name, url, drop in backends:
            try:
                res = bench_backend(name, url, run, args, tmp)
            finally:
                if drop is not None:
                    drop()
            res["meta"] = meta
            results.append(res)
            (RESULTS / f"api-{name}.json").write_text(json.dumps(res, indent=2) + "\n")
            print(f"{name}: published in {res['publish_seconds']} s", flush=True)
    print_table(results)


if __name__ == "__main__":
    main()
