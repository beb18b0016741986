"""Pipeline benchmark: the whole default analysis (``carenet analyze`` with default settings on
a generated log with events and a customers table), per step, then publishing the run to
SQLite and PostgreSQL, side by side with the peers assembled by hand in the same run.

Data: ``carenet generate`` defaults (planted communities, churn cascade, values, churn scores)
with 10 interactions per customer and epoch timestamps, cached as Parquet in
``benchmarks/data/pipeline-<size>/``. Every contender runs in a fresh process (peak memory
``VmHWM`` is its own); the numba kernels come from the on-disk cache (``carenet warmup``).

* ``carenet``: :func:`carenet.store.publish.analyze_and_publish` without a store, then
  ``RunStore.publish`` to a new SQLite file and (with ``CARENET_TEST_POSTGRES_URL`` set) to
  PostgreSQL: per-step seconds from the run's timings, publish seconds per store, peak MB.
* ``peers``: what the same steps cost with the fastest library at hand in this environment,
  on carenet's loaded graph: igraph PRPACK PageRank, igraph subset betweenness and harmonic
  closeness from the same number of sources (128), igraph ``community_leiden`` (modularity,
  2 iterations), igraph coreness. Diffusion has no peer here (cynetdiff lives in the benchmark
  environment, ``benchmarks/diffusion.py``), so the ratio covers centrality and communities
  only; the influence, care and publish steps are reported on their own.

    .venv/bin/python benchmarks/pipeline.py             # 100k customers / 1M interactions
    .venv/bin/python benchmarks/pipeline.py --big       # + 1M / 10M (long)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json

DATA = Path(__file__).resolve().parent / "data"
SIZES = {"100k": (100_000, 1_000_000), "1M": (1_000_000, 10_000_000)}

MAKE = """
from pathlib import Path
from carenet.synthetic import GeneratorConfig, generate
t0 = time.perf_counter()
data = generate(GeneratorConfig(customers={customers}, interactions={interactions},
                                timestamps="epoch", seed=1))
data.write(Path({path!r}), fmt="parquet")
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""

CARENET = """
import os, tempfile
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.store import RunStore
from carenet.store.publish import analyze_and_publish
p = Path({path!r})
t0 = time.perf_counter()
run = analyze_and_publish([p / "interactions.parquet"], customers=p / "customers.parquet",
                          events=p / "events.parquet", config=AnalysisConfig(), store=None)
analysis = time.perf_counter() - t0
out = {{"analysis_s": analysis, "timings": run.timings,
       "customers": int(run.graph.n_customers), "ties": int(run.graph.n_ties),
       "exposure": {{k: run.results["influence"]["exposure"].get(k)
                    for k in ("runs", "error", "seeds", "seconds")}},
       "peak_analysis_mb": _peak_mb()}}
urls = {{"sqlite": "sqlite:///" + tempfile.mkdtemp() + "/bench.db"}}
if os.environ.get("CARENET_TEST_POSTGRES_URL"):
    urls["postgresql"] = os.environ["CARENET_TEST_POSTGRES_URL"]
for name, url in urls.items():
    store = RunStore(url)
    t1 = time.perf_counter()
    rid = store.publish(run)
    out["publish_" + name + "_s"] = time.perf_counter() - t1
    store.close()
out["peak_mb"] = _peak_mb()
print(json.dumps(out))
"""

PEERS = """
import random
import numpy as np
import igraph as ig
from pathlib import Path
from carenet.graphs.build import load_network
p = Path({path!r})
t0 = time.perf_counter()
net = load_network(p / "interactions.parquet", customers=p / "customers.parquet",
                   events=p / "events.parquet")
g = net.graph
load = time.perf_counter() - t0
out = {{"load_s": load}}
t = time.perf_counter()
G = g.to_igraph()
U = g.undirected_view().to_igraph()
out["convert_s"] = time.perf_counter() - t
t = time.perf_counter()
G.pagerank(weights="weight", implementation="prpack")
out["pagerank_s"] = time.perf_counter() - t
rng = np.random.default_rng(1)
src = rng.choice(g.n_customers, 128, replace=False).tolist()
t = time.perf_counter()
dist = [1.0 / w for w in U.es["weight"]]
U.betweenness(weights=dist, sources=src, directed=False)
U.harmonic_centrality(vertices=src, weights=dist)
out["betweenness_harmonic_s"] = time.perf_counter() - t
random.seed(1)
t = time.perf_counter()
U.community_leiden(objective_function="modularity", weights="weight", n_iterations=2)
out["leiden_s"] = time.perf_counter() - t
t = time.perf_counter()
U.coreness()
out["core_s"] = time.perf_counter() - t
out["peak_mb"] = _peak_mb()
print(json.dumps(out))
"""


def ensure(size: str) -> Path:
    path = DATA / f"pipeline-{size}"
    if (path / "events.parquet").exists():
        return path
    customers, interactions = SIZES[size]
    print(f"generating {size}: {customers:,} customers, {interactions:,} interactions ...",
          flush=True)
    res = run_child(MAKE.format(customers=customers, interactions=interactions,
                                path=str(path)), timeout=7200)
    if "error" in res:
        raise SystemExit(f"could not generate the {size} data: {res['error']}")
    return path


def measure(size: str) -> list[dict[str, Any]]:
    path = ensure(size)
    load0 = os.getloadavg()[0]
    ours = run_child(CARENET.format(path=str(path)), timeout=4 * 3600)
    load1 = os.getloadavg()[0]
    peers = run_child(PEERS.format(path=str(path)), timeout=4 * 3600)
    load2 = os.getloadavg()[0]
    print(json.dumps({"size": size, "carenet": ours, "peers": peers}), flush=True)
    if "error" in ours:
        return [{"size": size, "step": "error", "carenet_s": None, "note": ours["error"]}]
    tm = ours["timings"]
    peer_of = {"centrality": peers.get("pagerank_s", 0) + peers.get("betweenness_harmonic_s", 0)
               + peers.get("core_s", 0), "communities": peers.get("leiden_s")}
    rows = []
    for step in ("load", "centrality", "communities", "influence", "care", "changes", "risk"):
        if step in tm:
            rows.append({"size": size, "step": step, "carenet_s": tm[step],
                         "peer_s": peer_of.get(step)})
    rows.append({"size": size, "step": "analysis (all)", "carenet_s": ours["analysis_s"],
                 "peak_mb": ours["peak_analysis_mb"]})
    for store in ("sqlite", "postgresql"):
        key = f"publish_{store}_s"
        if key in ours:
            rows.append({"size": size, "step": f"publish {store}", "carenet_s": ours[key]})
    both = [r for r in rows if r.get("peer_s")]
    rows.append({"size": size, "step": "centrality+communities vs peers",
                 "carenet_s": sum(r["carenet_s"] for r in both),
                 "peer_s": sum(r["peer_s"] for r in both),
                 "ratio": sum(r["carenet_s"] for r in both) / max(1e-9, sum(r["peer_s"]
                                                                       for r in both)),
                 "peak_mb": peers.get("peak_mb")})
    for r in rows:
        r["load_before"] = load0
        r["load_after"] = load2 if r["step"].startswith("centrality+") else load1
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers / 10M interactions")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    for size in (["100k", "1M"] if args.big else ["100k"]):
        rows += measure(size)
    print()
    print_table(rows, ["size", "step", "carenet_s", "peer_s", "ratio", "peak_mb",
                       "load_before", "load_after"])
    path = write_json("pipeline", {"machine": machine(), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
