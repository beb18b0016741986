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
  on the graph carenet analyses (loaded with the default config, so the same tie weights):
  igraph PRPACK PageRank, igraph subset betweenness and harmonic closeness from as many
  sources as carenet's run searched (its error target and work budget choose them: 128 at
  100k, ~20 at 1M; recorded as ``sources``), igraph ``community_leiden`` (modularity, 2
  iterations), igraph coreness; and, when the benchmark environment (``make bench-env``,
  ``benchmarks/.venv``) is there, cynetdiff's independent cascade for exposure's forward
  worlds: as many cascades as carenet's exposure ran, from the same seed customers, over
  carenet's tie probabilities, counting how often each customer is reached (carenet's
  exposure also computes the seeds' leave-one-out exposure and who exposed whom; the peer
  does not, so its time is a lower bound for the same answer). RIS, IMM and the care plan have
  no peer, so they are reported on their own, as is publishing.

    .venv/bin/python benchmarks/pipeline.py             # 100k customers / 1M interactions
    .venv/bin/python benchmarks/pipeline.py --big       # + 1M / 10M (long)
    # the risk, influence and care steps only, sub-step seconds, before (main) and after:
    .venv/bin/python benchmarks/pipeline.py --steps --data /work/prof/data100k \\
        --before /tmp/main-checkout
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
if os.environ.get("CARENET_BENCH_CODE"):  # another checkout's carenet (before/after)
    sys.path.insert(0, os.environ["CARENET_BENCH_CODE"])
import carenet
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.store import RunStore
from carenet.store.publish import analyze_and_publish
p = Path({path!r})
t0 = time.perf_counter()
run = analyze_and_publish([p / "interactions.parquet"], customers=p / "customers.parquet",
                          events=p / "events.parquet", config=AnalysisConfig(), store=None)
analysis = time.perf_counter() - t0
out = {{"analysis_s": analysis, "timings": run.timings, "code": carenet.__file__,
       "customers": int(run.graph.n_customers), "ties": int(run.graph.n_ties),
       "exposure": {{k: run.results["influence"]["exposure"].get(k)
                    for k in ("runs", "error", "seeds", "seconds")}},
       "peak_analysis_mb": _peak_mb(),
       "sources": (run.results.get("centrality", {{}}).get("betweenness") or {{}}).get("samples")}}
import numpy as np
is_seed = run.customers["exposure_seed"].fillna(False).to_numpy(bool)
np.save({seeds!r}, np.flatnonzero(is_seed))
out["exposure"]["mean_other"] = float(run.customers["exposure"].to_numpy(float)[~is_seed].mean())
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

STEPS = """
import os
if os.environ.get("CARENET_BENCH_CODE"):  # another checkout's carenet (before/after)
    sys.path.insert(0, os.environ["CARENET_BENCH_CODE"])
import carenet
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.pipeline import analyze, load_inputs
p = Path({path!r})
t0 = time.perf_counter()
net = load_inputs([p / "interactions.parquet"], customers=p / "customers.parquet",
                  events=p / "events.parquet")
load = time.perf_counter() - t0
run = analyze([], network=net, steps={steps!r}, config=AnalysisConfig())
infl = run.results.get("influence", {{}})
care = run.results.get("care", {{}}).get("plan", {{}})
def pick(d, *keys):
    return {{k: d.get(k) for k in keys if d and k in d}}
est_keys = ("rr_sets", "search_rr_sets", "mean_rr_size", "epsilon_achieved", "seconds",
            "error_target", "error", "samples", "stopped")
out = {{"load_s": load, "timings": run.timings, "code": carenet.__file__,
       "influence": pick(infl.get("influence", {{}}).get("estimate") or {{}}, *est_keys),
       "value_influence": pick(infl.get("influence", {{}}).get("value_estimate") or {{}},
                               *est_keys),
       "influence_s": (infl.get("influence") or {{}}).get("seconds"),
       "exposure": pick(infl.get("exposure", {{}}), "runs", "error", "seeds", "seconds"),
       "seed_set": pick(infl.get("seed_set", {{}}), "rr_sets", "search_rr_sets", "seconds",
                        "spread", "error", "samples", "stopped", "shared_rr_sets"),
       "comparison": infl.get("seed_set_comparison_estimate"),
       "comparison_spread": [(r["strategy"], r["spread"], r["std_error"])
                             for r in infl.get("seed_set_comparison", [])],
       "care_timings": care.get("timings"), "care_runs": care.get("runs"),
       "care_evaluation": (care.get("parameters") or {{}}).get("evaluation"),
       "care_plan": (care.get("parameters") or {{}}).get("plan"),
       "care_evaluation_runs": care.get("evaluation_runs"),
       "care_protected": [care.get("protected"), care.get("protected_low"),
                          care.get("protected_high")],
       "care_comparison": [(r["strategy"], r["k"], r["protected"], r["low"], r["high"])
                           for r in care.get("comparison", [])],
       "peak_mb": _peak_mb()}}
print(json.dumps(out))
"""

SUBSTEPS = """
# the influence step's RIS, IMM and comparison, and the care plan, each timed on its own
# (exposure and the risk model left out: the care model's churn comes from the customers
# table's churn_score, as in benchmarks/care.py)
import os
if os.environ.get("CARENET_BENCH_CODE"):  # another checkout's carenet (before/after)
    sys.path.insert(0, os.environ["CARENET_BENCH_CODE"])
import carenet
import numpy as np
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.pipeline import load_inputs
from carenet.community.care import blocking_model, care_plan, churn_scores, last_events
from carenet.community.influence import (compare_seed_sets, customer_values, influence_scores,
                                         seeds_from_events, select_seeds)
from carenet.graphs.diffusion import DiffusionGraph
from carenet.steps.influence import SHARED_RR_MEMBERS, exposure_tie_seed
p = Path({path!r})
cfg = AnalysisConfig()
inf, care = cfg.influence, cfg.care
t0 = time.perf_counter()
net = load_inputs([p / "interactions.parquet"], customers=p / "customers.parquet",
                  events=p / "events.parquet", config=cfg)
g, c, ev = net.graph, net.customers, net.events
n = g.n_customers
out = {{"load_s": time.perf_counter() - t0, "customers": n, "ties": int(g.n_ties),
       "code": carenet.__file__}}
t = time.perf_counter()
dg = DiffusionGraph.from_graph(g, **inf.ties.kwargs())
out["diffusion_graph_s"] = time.perf_counter() - t
vals = customer_values(c["value"], n) if "value" in c else None
t = time.perf_counter()
sc = influence_scores(g, values=vals, keep_rr_members=SHARED_RR_MEMBERS, seed=1,
                      epsilon=inf.epsilon, delta=inf.delta, top=inf.top,
                      max_rr_sets=inf.max_rr_sets, max_rr_members=inf.max_rr_members)
out["influence_s"] = time.perf_counter() - t
out["influence"] = sc.to_dict()["estimate"]
out["value_influence"] = sc.to_dict()["value_estimate"]
shared = sc.shared_rr_sets
del sc
t = time.perf_counter()
sel = select_seeds(g, inf.seed_set_size, values=vals, seed=2, rr_sets=shared,
                   epsilon=inf.epsilon, delta=inf.delta, max_rr_sets=inf.max_rr_sets,
                   max_rr_members=inf.max_rr_members)
out["imm_s"] = time.perf_counter() - t
out["imm"] = {{k: v for k, v in sel.to_dict().items() if k != "seeds"}}
del shared
t = time.perf_counter()
comp = compare_seed_sets(g, sel, values=vals, seed=3, runs=inf.compare_runs,
                         error=inf.compare_error)
out["compare_s"] = time.perf_counter() - t
out["compare"] = comp.attrs["estimate"]
ref = g.reference_time
seeds = np.zeros(n, bool)
seeds[seeds_from_events(ev, reference_time=ref, lookback=inf.lookback_seconds)] = True
lost = last_events(ev, n, kinds=list(care.lost_events), reference_time=ref,
                   lookback=None) != ""
value = vals if vals is not None else np.ones(n)
model = blocking_model(g, values=value, churn=churn_scores(c), seeds=seeds, lost=lost,
                       retention=care.retention, ties=inf.ties)
t = time.perf_counter()
plan = care_plan(g, model, care.budget, priority=np.where(lost, 0.0, value),
                 runs=care.plan_runs, max_entries=care.plan_max_entries,
                 evaluation_runs=care.evaluation_runs, compare_k=care.compare_k,
                 evaluation_error=care.evaluation_error or None,
                 evaluation_min_runs=care.evaluation_min_runs,
                 evaluation_work=care.evaluation_work,
                 tie_seed=exposure_tie_seed(cfg), seed=4)
out["care_plan_s"] = time.perf_counter() - t
out["care"] = {{"timings": plan.timings, "runs": plan.runs,
               "evaluation": plan.parameters["evaluation"],
               "protected": [float(plan.protected[-1]), float(plan.protected_low[-1]),
                             float(plan.protected_high[-1])]}}
out["peak_mb"] = _peak_mb()
print(json.dumps(out))
"""

PEERS = """
import random
import numpy as np
import igraph as ig
from pathlib import Path
from carenet.config import AnalysisConfig
from carenet.pipeline import load_inputs
p = Path({path!r})
t0 = time.perf_counter()
# the graph carenet analyses (the default config's tie weights: 30-day half-life)
net = load_inputs([p / "interactions.parquet"], customers=p / "customers.parquet",
                  events=p / "events.parquet", config=AnalysisConfig())
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
src = rng.choice(g.n_customers, {sources}, replace=False).tolist()
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


CASCADES = """
import array
import numpy as np
from pathlib import Path
from cynetdiff.models import IndependentCascadeModel
from carenet.config import AnalysisConfig
from carenet.graphs.diffusion import DiffusionGraph
from carenet.pipeline import load_inputs
p = Path({path!r})
net = load_inputs([p / "interactions.parquet"], customers=p / "customers.parquet",
                  events=p / "events.parquet", config=AnalysisConfig())
g = net.graph
dg = DiffusionGraph.from_graph(g, **AnalysisConfig().influence.ties.kwargs())
seeds = np.load({seeds!r})
n = g.n_customers
t = time.perf_counter()
model = IndependentCascadeModel(array.array("I", dg.indptr[:-1].astype(np.uint32).tobytes()),
                                array.array("I", dg.indices.astype(np.uint32).tobytes()),
                                activation_probs=array.array("f", dg.prob.astype(np.float32)
                                                             .tobytes()),
                                rng=np.random.default_rng(1))
model.set_seeds(seeds.tolist())
build = time.perf_counter() - t
t = time.perf_counter()
counts = np.zeros(n, np.int64)
for _ in range({runs}):
    model.reset_model()
    model.advance_until_completion()
    counts[np.fromiter(model.get_activated_nodes(), np.int64)] += 1
cascades = time.perf_counter() - t
other = np.ones(n, bool)
other[seeds] = False
print(json.dumps({{"build_s": build, "cascades_s": cascades, "runs": {runs},
                  "seeds": int(seeds.size),
                  "mean_other": float((counts / {runs})[other].mean()),
                  "peak_mb": _peak_mb()}}))
"""
BENCH_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"


def cascades_peer(path: Path, seeds: str, runs: int) -> dict[str, Any]:
    """cynetdiff's cascades for exposure, in the benchmark environment (empty without it)."""
    if not BENCH_PYTHON.exists() or not runs:
        return {}
    return run_child(CASCADES.format(path=str(path), seeds=seeds, runs=runs),
                     timeout=4 * 3600, python=str(BENCH_PYTHON))


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


def measure(size: str, path: Path | None = None, *, peers_too: bool = True,
            code: str | None = None) -> list[dict[str, Any]]:
    path = path or ensure(size)
    load0 = os.getloadavg()[0]
    seeds = str(Path(tempfile.mkdtemp()) / "exposure-seeds.npy")
    env = {"CARENET_BENCH_CODE": code} if code else None
    ours = run_child(CARENET.format(path=str(path), seeds=seeds), timeout=4 * 3600, env=env)
    load1 = os.getloadavg()[0]
    # the peers search as many sources as carenet did (like for like; 128 when unknown)
    sources = int(ours.get("sources") or 128)
    peers = (run_child(PEERS.format(path=str(path), sources=sources), timeout=4 * 3600)
             if peers_too else {})
    if peers:
        peers["sources"] = sources
    exposure = ours.get("exposure") or {}
    cascades = cascades_peer(path, seeds, int(exposure.get("runs") or 0)) if peers_too else {}
    if cascades:
        peers["cascades"] = cascades
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
    rows.append({} if not both else {"size": size, "step": "centrality+communities vs peers",
                 "carenet_s": sum(r["carenet_s"] for r in both),
                 "peer_s": sum(r["peer_s"] for r in both),
                 "ratio": sum(r["carenet_s"] for r in both) / max(1e-9, sum(r["peer_s"]
                                                                       for r in both)),
                 "peak_mb": peers.get("peak_mb")})
    if "cascades_s" in peers.get("cascades", {}):
        rows.append({"size": size, "step": "exposure cascades vs cynetdiff",
                     "carenet_s": exposure.get("seconds"),
                     "peer_s": peers["cascades"]["cascades_s"],
                     "ratio": (exposure.get("seconds") or 0) / peers["cascades"]["cascades_s"],
                     "peak_mb": peers["cascades"].get("peak_mb"),
                     # the same cascades: the mean reach of the customers who are not seeds
                     "note": f"mean exposure of non-seeds {exposure.get('mean_other', 0):.4f} "
                             f"vs {peers['cascades']['mean_other']:.4f}"})
    rows = [r for r in rows if r]
    for r in rows:
        r["load_before"] = load0
        r["load_after"] = load2 if r["step"].startswith("centrality+") else load1
    return rows


STEP_NAMES = ("risk", "influence", "care")


def measure_steps(path: Path, label: str, pythonpath: str | None) -> dict[str, Any]:
    """The risk, influence and care steps alone on the log at ``path``, with their
    sub-step seconds and sample sizes, in a fresh process (``pythonpath``: another checkout's
    code, for a before/after comparison in the same run).
    """
    env = {"CARENET_BENCH_CODE": pythonpath} if pythonpath else None
    load0 = os.getloadavg()[0]
    res = run_child(STEPS.format(path=str(path), steps=list(STEP_NAMES)), timeout=4 * 3600,
                    env=env)
    res["label"] = label
    res["load_before"] = load0
    res["load_after"] = os.getloadavg()[0]
    print(json.dumps(res), flush=True)
    return res


def step_rows(size: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows (seconds per step and sub-step) of one :func:`measure_steps` result."""
    if "error" in res:
        return [{"size": size, "code": res["label"], "part": "error", "seconds": None,
                 "note": str(res["error"])}]
    tm = res["timings"]
    rows = [{"size": size, "code": res["label"], "part": s, "seconds": tm.get(s)}
            for s in STEP_NAMES]
    subs = {
        "influence: RIS influence": (res.get("influence") or {}).get("seconds"),
        "influence: RIS value influence": (res.get("value_influence") or {}).get("seconds"),
        "influence: exposure": (res.get("exposure") or {}).get("seconds"),
        "influence: IMM seeds": (res.get("seed_set") or {}).get("seconds"),
        "influence: seed-set comparison": (res.get("comparison") or {}).get("seconds"),
    }
    for key, val in (res.get("care_timings") or {}).items():
        subs[f"care: {key}"] = val
    for part, sec in subs.items():
        if sec is not None:
            rows.append({"size": size, "code": res["label"], "part": part, "seconds": sec})
    for r in rows:
        r["load_before"] = res["load_before"]
        r["load_after"] = res["load_after"]
        r["peak_mb"] = res.get("peak_mb")
    return rows


def substep_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per sub-step: its seconds in each run (before/after) and their ratio."""
    first = next(iter(runs.values()))
    size = first["size"]
    parts = [k[:-2] for k in first if k.endswith("_s")]
    parts += [f"care: {k}" for k in first["care"]["timings"]]
    rows = []
    for part in parts:
        row: dict[str, Any] = {"size": size, "part": part}
        for label, res in runs.items():
            row[f"{label}_s"] = (res["care"]["timings"].get(part[6:]) if
                                 part.startswith("care: ") else res.get(part + "_s"))
        if len(runs) == 2 and row.get("after_s") and row.get("before_s") is not None:
            row["ratio"] = row["before_s"] / row["after_s"]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers / 10M interactions")
    ap.add_argument("--steps", action="store_true",
                    help="only the risk, influence and care steps, with sub-step seconds")
    ap.add_argument("--data", type=Path, help="a generated log directory (interactions, "
                    "customers and events Parquet) instead of benchmarks/data")
    ap.add_argument("--before", help="directory holding another checkout's carenet package "
                    "(e.g. `git archive main carenet`), measured first in the same run "
                    "(--steps, --substeps, or the default analysis with --data)")
    ap.add_argument("--name", default=None, help="results file name (default: pipeline or "
                    "pipeline-steps)")
    ap.add_argument("--no-peers", action="store_true",
                    help="carenet only (the 1M peers take ~10 minutes; same carenet rows)")
    ap.add_argument("--substeps", action="store_true",
                    help="RIS, IMM, comparison and the care plan timed one by one (no "
                    "exposure, no risk model), e.g. at 1M with --data")
    args = ap.parse_args()
    if args.substeps:
        size = args.data.name if args.data else ("1M" if args.big else "100k")
        path = args.data or ensure(size)
        runs = {}
        for label, code in ([("before", args.before)] if args.before else []) + [
                ("after", None)]:
            load0 = os.getloadavg()[0]
            env = {"CARENET_BENCH_CODE": code} if code else None
            res = run_child(SUBSTEPS.format(path=str(path)), timeout=4 * 3600, env=env)
            res |= {"load_before": load0, "load_after": os.getloadavg()[0], "size": size,
                    "label": label}
            print(json.dumps(res), flush=True)
            runs[label] = res
        if all("error" not in r for r in runs.values()):
            print_table(substep_rows(runs), ["size", "part", *[f"{k}_s" for k in runs],
                                             *(["ratio"] if len(runs) == 2 else [])])
        payload = ({"machine": machine(), **runs["after"]} if len(runs) == 1 else
                   {"machine": machine(), "size": size, "runs": runs,
                    "rows": substep_rows(runs)})
        out = write_json(args.name or f"pipeline-substeps-{size}", payload)
        print(f"\nwrote {out}")
        return
    if args.steps:
        size = args.data.name if args.data else ("1M" if args.big else "100k")
        path = args.data or ensure(size)
        results = []
        rows = []
        if args.before:
            results.append(measure_steps(path, "before", args.before))
            rows += step_rows(size, results[-1])
        results.append(measure_steps(path, "after", None))
        rows += step_rows(size, results[-1])
        print()
        print_table(rows, ["size", "code", "part", "seconds", "peak_mb", "load_before",
                           "load_after"])
        out = write_json(args.name or "pipeline-steps",
                         {"machine": machine(), "rows": rows, "raw": results})
        print(f"\nwrote {out}")
        return
    rows: list[dict[str, Any]] = []
    if args.data and args.before:  # another checkout first, then this one, same run
        for label, code in (("before", args.before), ("after", None)):
            part = measure(args.data.name, args.data, peers_too=not args.no_peers, code=code)
            rows += [r | {"code": label} for r in part]
        print()
        print_table(rows, ["size", "code", "step", "carenet_s", "peak_mb", "load_before",
                           "load_after"])
        path = write_json(args.name or "pipeline", {"machine": machine(), "rows": rows})
        print(f"\nwrote {path}")
        return
    if args.data:  # one given log directory, named by its folder
        rows += measure(args.data.name, args.data, peers_too=not args.no_peers)
    else:
        for size in (["100k", "1M"] if args.big else ["100k"]):
            rows += measure(size, peers_too=not args.no_peers)
    print()
    print_table(rows, ["size", "step", "carenet_s", "peer_s", "ratio", "peak_mb",
                       "load_before", "load_after"])
    for r in rows:
        if r.get("note"):
            print(f"{r['size']} {r['step']}: {r['note']}")
    path = write_json(args.name or "pipeline", {"machine": machine(), "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
