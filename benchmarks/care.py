"""Care-plan benchmark: time and quality of the blocking-aware care plan at 100k and 1M
customers, and the dominator-tree kernel against networkx on the same realisation.

Graphs come from ``carenet generate`` (planted communities, a churn cascade, churn scores,
values; epoch timestamps) loaded with a 30-day half-life: 100k customers / ~1.04M directed
ties and, with ``--big``, 1M customers / ~10.4M ties (cached in ``benchmarks/data/care-*``).
Every measurement runs in a fresh process (peak memory ``VmHWM`` is its own):

* **plan**: ``greedy_blocking`` for K = 1,000 with the step's defaults (200 realisations,
  fewer when their dominator trees reach ``plan_max_entries`` = 20M entries): realisations +
  dominator trees, then the greedy. This is what ``carenet plan --budget 1000`` computes
  beyond loading the run.
* **evaluation**: the plan against top-K by degree, PageRank and at random on fresh
  realisations (common random numbers), K = 10, 50, 200, 1000, with 95% intervals.
* **dominators**: one realisation's reached subgraph (super-source included): carenet's numba
  Cooper-Harvey-Kennedy kernel against ``networkx.immediate_dominators`` (same algorithm, pure
  Python), with a check that both give the same tree.

Priority is not among the strategies here: it needs the influence step, which this benchmark
does not run at 1M (the tests compare the plan with priority on the shipped sample).

    .venv/bin/python benchmarks/care.py            # 100k
    .venv/bin/python benchmarks/care.py --big      # + 1M customers / 10M ties
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, run_child, write_json

DATA = Path(__file__).resolve().parent / "data"
RESULTS_FILE = RESULTS / "care.json"
SIZES = {"100k": (100_000, 14, 3_000_000), "1M": (1_000_000, 14, 30_000_000)}

MAKE = """
from pathlib import Path
from carenet.synthetic import GeneratorConfig, generate
from carenet.graphs.build import load_network
t0 = time.perf_counter()
data = generate(GeneratorConfig(customers={customers}, mean_degree={degree},
                                interactions={interactions}, timestamps="epoch", seed=1))
net = load_network(data.interactions, customers=data.customers, events=data.events,
                   half_life="30d")
del data
path = Path({path!r})
path.mkdir(parents=True, exist_ok=True)
net.graph.save(path / "graph")
net.customers.to_parquet(path / "customers.parquet")
net.events.to_parquet(path / "events.parquet")
print(json.dumps({{"seconds": time.perf_counter() - t0, "customers": net.graph.n_customers,
                  "ties": net.graph.n_ties}}))
"""

SETUP = """
import numpy as np, pandas as pd
from carenet.graphs.model import CustomerGraph
from carenet.community.care import blocking_model, churn_scores, last_events, strategy_orders
from carenet.community.influence import seeds_from_events, customer_values
from carenet.graphs import blocking as bl
t0 = time.perf_counter()
p = {path!r}
from pathlib import Path
if (Path(p) / "graph").exists():
    g = CustomerGraph.load(p + "/graph")
    c = pd.read_parquet(p + "/customers.parquet")
    ev = pd.read_parquet(p + "/events.parquet")
else:  # a `carenet generate` directory (interactions, customers, events), 30-day half-life
    from carenet.graphs.build import load_network
    net = load_network(p + "/interactions.parquet", customers=p + "/customers.parquet",
                       events=p + "/events.parquet", half_life="30d")
    g, c, ev = net.graph, net.customers, net.events
n = g.n_customers
seeds = np.zeros(n, bool)
seeds[seeds_from_events(ev, reference_time=g.reference_time, lookback=90 * 86400.0)] = True
lost = last_events(ev, n, kinds=["churn"], reference_time=g.reference_time,
                   lookback=None) != ""
vals = customer_values(c["value"], n)
model = blocking_model(g, values=vals, churn=churn_scores(c), seeds=seeds, lost=lost,
                       retention=0.3)
load_s = time.perf_counter() - t0
# load the numba kernels from the on-disk cache before timing (like an import)
tiny = bl.BlockingModel(bl.DiffusionGraph.from_arrays(2, [0], [1], [1.0]),
                        np.array([1.0, 0.0]), np.ones(2, bool), np.ones(2), 0.5)
bl.greedy_blocking(tiny, 1, runs=2)
bl.protected_curves(tiny, [[1]], 1, runs=2)
"""

PLAN = SETUP + """
t1 = time.perf_counter()
rs = bl.realise(model, {runs}, seed=1, max_entries={max_entries})
t_real = time.perf_counter() - t1
t2 = time.perf_counter()
plan = bl.greedy_blocking(model, {k}, realisations=rs)
t_greedy = time.perf_counter() - t2
t3 = time.perf_counter()
orders = strategy_orders(g, np.zeros(n), ~lost, {k}, seed=3)
names = ["plan", "degree", "pagerank", "random"]
curves, lost_v = bl.protected_curves(
    model, [plan.nodes, orders["degree"], orders["pagerank"], orders["random"]], {k},
    runs={eval_runs}, seed=2)
t_eval = time.perf_counter() - t3
rows = []
for s, name in enumerate(names):
    for k in (10, 50, 200, {k}):
        x = curves[:, s, k]
        se = float(x.std(ddof=1) / np.sqrt(x.size))
        d = x - curves[:, 0, k]
        dse = float(d.std(ddof=1) / np.sqrt(x.size))
        rows.append({{"strategy": name, "k": k, "protected": float(x.mean()),
                     "low": float(x.mean() - 1.96 * se), "high": float(x.mean() + 1.96 * se),
                     "vs_plan": float(d.mean()), "vs_plan_low": float(d.mean() - 1.96 * dse),
                     "vs_plan_high": float(d.mean() + 1.96 * dse)}})
print(json.dumps({{"load_s": load_s, "realise_s": t_real, "greedy_s": t_greedy,
                  "plan_s": t_real + t_greedy, "evaluate_s": t_eval, "runs": rs.runs,
                  "entries": int(rs.node.size), "mean_reached": float(rs.node.size / rs.runs),
                  "value_at_risk": float(lost_v.mean()), "picked": int(plan.nodes.size),
                  "customers": n, "ties": int(g.n_ties), "lost": int(lost.sum()),
                  "sources": int(seeds.sum()), "comparison": rows, "peak_mb": _peak_mb()}}))
"""

TARGETS = SETUP + """
# the plan from a fixed number of realisations against plans whose realisations stop at an
# error target, all evaluated on the same fresh realisations (paired differences)
from carenet.community.care import _evaluation_error
plans = {{}}
t1 = time.perf_counter()
fixed = bl.greedy_blocking(model, {k}, runs={runs}, seed=1)
plans["fixed {runs}"] = (fixed, time.perf_counter() - t1)
for e in {errors}:
    t1 = time.perf_counter()
    plans[f"error {{e}}"] = (bl.greedy_blocking(model, {k}, runs={runs}, seed=1, error=e,
                                                min_runs=50), time.perf_counter() - t1)
orders = strategy_orders(g, np.zeros(n), ~lost, {k}, seed=3)
names = list(plans)
t3 = time.perf_counter()
curves, lost_v = bl.protected_curves(model, [p.nodes for p, _ in plans.values()]
                                     + [orders["degree"]], {k}, runs={eval_runs}, seed=2)
t_eval = time.perf_counter() - t3
per_run = t_eval / {eval_runs}
# realisations the evaluation's error target would stop at (plan and degree, at K)
need = {{}}
for target in (0.01, 0.02, 0.03, 0.05):
    r = 100
    while r < {eval_runs} and _evaluation_error(curves[:r][:, [0, len(names)]], {k},
                                                1.959964) > target:
        r += 10
    need[str(target)] = r
rows = []
for s, name in enumerate(names):
    p, secs = plans[name]
    x = curves[:, s, {k}]
    d = x - curves[:, 0, {k}]
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    dse = float(d.std(ddof=1) / np.sqrt(x.size))
    rows.append({{"plan": name, "runs": p.runs, "error": p.error, "stopped": p.stopped,
                 "seconds": secs, "protected": float(x.mean()), "half_width": 1.96 * se,
                 "vs_fixed": float(d.mean()), "vs_fixed_half_width": 1.96 * dse}})
x = curves[:, len(names), {k}]
rows.append({{"plan": "top-K by degree", "protected": float(x.mean()),
             "half_width": float(1.96 * x.std(ddof=1) / np.sqrt(x.size))}})
print(json.dumps({{"rows": rows, "evaluate_s": t_eval, "eval_ms_per_run": 1000 * per_run,
                  "evaluation_runs_needed": need, "customers": n, "peak_mb": _peak_mb()}}))
"""

DOMINATORS = SETUP + """
import networkx as nx
from carenet.graphs._blocking_kernels import base, edge_base
from carenet.graphs.blocking import _seeds, _split_reached
bsrc, bedge, bret = _seeds(5)
loc = np.full(n, -1, np.int64)
queue = np.empty(n, np.int64)
# the realisation's coin bases as numba computes them (uint64, not a Python int)
sb, eb = np.uint64(base(bsrc[0], 0)), np.uint64(edge_base(bedge, 0))
rb = np.uint64(base(bret[0], 0))
# every node a kept blocker (picked, protectable, retention 1): the free part is empty and
# the rest is the whole cascade with nothing blocked, the active sources first (entries)
everyone = np.ones(n, np.bool_)
_, m, gnode, entry, _, ptr, col = _split_reached(
    model.dg.indptr, model.dg.indices, model.dg.prob, *model.arrays()[:2], everyone,
    everyone, 1.0, sb, eb, rb, loc, queue)
ns = int(entry[:m].sum())
assert entry[:ns].all()
src = np.concatenate([np.zeros(ns, np.int64), np.repeat(np.arange(m), np.diff(ptr)) + 1])
dst = np.concatenate([np.arange(ns) + 1, col[:ptr[m]] + 1])
bl.dominator_tree(3, [0, 1], [1, 2])
t1 = time.perf_counter()
ours = bl.dominator_tree(m + 1, src, dst)
t_ours = time.perf_counter() - t1
G = nx.DiGraph()
G.add_edges_from(zip(src.tolist(), dst.tolist()))
t2 = time.perf_counter()
theirs = nx.immediate_dominators(G, 0)
t_nx = time.perf_counter() - t2
same = all(int(ours[v]) == theirs.get(v, 0) for v in range(1, m + 1))
print(json.dumps({{"nodes": int(m + 1), "edges": int(src.size), "carenet_s": t_ours,
                  "networkx_s": t_nx, "same_tree": bool(same)}}))
"""


def ensure(size: str) -> Path:
    path = DATA / f"care-{size}"
    if (path / "events.parquet").exists():
        return path
    customers, degree, interactions = SIZES[size]
    print(f"generating {size}: {customers:,} customers, {interactions:,} interactions ...",
          flush=True)
    res = run_child(MAKE.format(customers=customers, degree=degree,
                                interactions=interactions, path=str(path)), timeout=7200)
    if "error" in res:
        raise SystemExit(f"could not generate the {size} data: {res['error']}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers / 10M ties")
    ap.add_argument("--k", type=int, default=1000, help="plan budget (default 1000)")
    ap.add_argument("--runs", type=int, default=200, help="greedy realisations (default 200)")
    ap.add_argument("--max-entries", type=int, default=20_000_000,
                    help="cap on dominator-tree entries (default 20M, the step's default)")
    ap.add_argument("--eval-runs", default="100k=200,1M=40",
                    help="fresh realisations for the comparison per size")
    ap.add_argument("--parts", default="plan,dominators",
                    help="what to measure; a part left out keeps its rows from the last JSON; "
                    "'targets' (alone): plans from error targets against the fixed count")
    ap.add_argument("--data", help="a `carenet generate` directory to use instead of "
                    "benchmarks/data/care-<size> (with --parts targets)")
    ap.add_argument("--errors", default="0.02,0.03,0.05",
                    help="plan error targets compared with --parts targets")
    args = ap.parse_args()
    if args.parts == "targets":
        path = args.data or str(ensure("100k"))
        k = 200 if args.k == 1000 else args.k
        print(f"plan error targets, K={k}, on {path} ...", flush=True)
        import os
        load0 = os.getloadavg()[0]
        res = run_child(TARGETS.format(path=path, runs=args.runs, k=k,
                                       errors=[float(e) for e in args.errors.split(",")],
                                       eval_runs=int(args.eval_runs.split(",")[0]
                                                     .split("=")[-1])), timeout=7200)
        if "error" in res:
            raise SystemExit(str(res["error"]))
        res["load_before"], res["load_after"] = load0, os.getloadavg()[0]
        print(json.dumps(res))
        print_table(res["rows"], ["plan", "runs", "error", "stopped", "seconds", "protected",
                                  "half_width", "vs_fixed", "vs_fixed_half_width"])
        print(res["evaluation_runs_needed"], res["eval_ms_per_run"], res["load_before"],
              res["load_after"])
        out = write_json("care-targets", {"machine": machine(), "k": k, **res})
        print(f"\nwritten {out}")
        return
    parts = set(args.parts.split(","))
    last = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    eval_runs = dict(x.split("=") for x in args.eval_runs.split(","))
    sizes = ["100k", "1M"] if args.big else ["100k"]
    plans: list[dict[str, Any]] = []
    comps: list[dict[str, Any]] = []
    doms: list[dict[str, Any]] = []
    if "plan" not in parts:
        plans = [p for p in last.get("plans", []) if p["size"] in sizes]
        comps = [c for c in last.get("comparison", []) if c["size"] in sizes]
    if "dominators" not in parts:
        doms = [d for d in last.get("dominators", []) if d["size"] in sizes]
    for size in sizes:
        path = str(ensure(size))
        if "dominators" in parts:
            print(f"{size}: dominator trees, carenet vs networkx ...", flush=True)
            dom = run_child(DOMINATORS.format(path=path), timeout=7200)
            if "error" not in dom:
                dom["ratio"] = dom["networkx_s"] / max(dom["carenet_s"], 1e-9)
            doms.append({"size": size, **dom})
        if "plan" not in parts:
            continue
        print(f"{size}: plan K={args.k} ...", flush=True)
        res = run_child(PLAN.format(path=path, runs=args.runs, max_entries=args.max_entries,
                                    k=args.k, eval_runs=int(eval_runs[size])), timeout=7200)
        if "error" in res:
            raise SystemExit(f"{size}: {res['error']}")
        plans.append({"size": size, **{k: v for k, v in res.items() if k != "comparison"}})
        comps += [{"size": size, **row} for row in res["comparison"]]
    print()
    print_table(plans, ["size", "customers", "ties", "sources", "lost", "runs", "mean_reached",
                        "entries", "realise_s", "greedy_s", "plan_s", "evaluate_s", "peak_mb"])
    print()
    print_table(comps, ["size", "strategy", "k", "protected", "low", "high", "vs_plan",
                        "vs_plan_low", "vs_plan_high"])
    print()
    print_table(doms, ["size", "nodes", "edges", "carenet_s", "networkx_s", "ratio",
                       "same_tree"])
    out = write_json("care", {"machine": machine() if "plan" in parts else last.get("machine"),
                              "dominators_machine": machine(), "k": args.k, "plans": plans,
                              "comparison": comps, "dominators": doms})
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
