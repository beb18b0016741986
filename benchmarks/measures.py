"""Measures benchmark: PageRank, Leiden and sampled betweenness, carenet against its peers.

Graphs come from carenet's generator (planted communities, heavy-tailed activity, epoch
timestamps), loaded with a 30-day half-life: about 100k customers / 1M directed ties, and with
``--big`` 1M customers / 10M ties. They are cached in ``benchmarks/data/measures-<size>/``.

Every measurement runs in a fresh process (peak memory ``VmHWM`` is its own and includes the
loaded graph; the ``load graph`` row gives that base). Contenders, in one run:

- **carenet**: ``carenet.graphs.centrality.pagerank`` (native, scipy power iteration,
  tol 1e-6 as an L1 guarantee), ``carenet.community.detection.leiden`` (native numba Leiden,
  modularity, 2 iterations; the time includes building the undirected id-ordered view),
  ``carenet.graphs.centrality.betweenness`` (native numba, ``samples`` sources, path length
  1 / weight);
- **carenet igraph backend** on an igraph view built beforehand: the wrapper's overhead over
  raw igraph (target <= 1.2x);
- **raw igraph**: PRPACK, ``community_leiden`` (modularity, 2 iterations), subset betweenness
  from the same sources; the graph conversion is timed separately (``convert`` rows);
- **NetworKit** (benchmark environment only): ``PageRank`` (sinks distributed, tol 1e-6),
  ``ParallelLeiden``, ``PLM`` (Louvain), ``EstimateBetweenness`` (same number of sources);
- **networkx**: ``pagerank`` (at its default tolerance, and at carenet's accuracy),
  ``louvain_communities`` (it has no
  Leiden), ``betweenness_centrality_subset`` from the same sources; at 100k only unless
  ``--networkx-big``.

Quality columns: PageRank's L1 distance to igraph's PRPACK solution, the modularity found,
and for betweenness the largest difference from carenet's estimate (same sources: 0 expected).

    python benchmarks/measures.py                  # 100k / 1M ties, 3 repeats
    python benchmarks/measures.py --big --repeats 1
    python benchmarks/measures.py --quality        # NMI / ARI table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_of, print_table, run_child, write_json

DATA = Path(__file__).resolve().parent / "data"
# customers, mean degree, interactions -> about 1M and 10M directed ties
SIZES = {"100k": (100_000, 14, 3_000_000), "1M": (1_000_000, 14, 30_000_000)}
SAMPLES = {"100k": 16, "1M": 8}

MAKE_GRAPH = """
from carenet.synthetic import GeneratorConfig, generate
from carenet.graphs.build import load_network
t0 = time.perf_counter()
data = generate(GeneratorConfig(customers={customers}, mean_degree={degree},
                                interactions={interactions}, timestamps="epoch", seed=1))
truth = data.truth[["customer_id", "community"]]
net = load_network(data.interactions, half_life="30d")
del data
net.graph.save({path!r})
truth.to_parquet({path!r} + "/truth.parquet")
print(json.dumps({{"seconds": time.perf_counter() - t0, "customers": net.graph.n_customers,
                  "ties": net.graph.n_ties}}))
"""

LOAD = """
import numpy as np
from carenet.graphs.model import CustomerGraph
_t_load = time.perf_counter()
g = CustomerGraph.load({path!r})
_t_load = time.perf_counter() - _t_load
n = g.n_customers
"""

TO_IGRAPH = """
def undirected_igraph():
    from carenet.graphs.centrality import undirected_view
    view = undirected_view(g)
    return view, view.to_igraph()
"""

TO_NETWORKIT = """
import networkit as nk
def to_networkit(view, weights):
    G = nk.Graph(view.n_customers, weighted=True, directed=view.directed)
    s = view.sources().astype(np.uint64)
    t = view.indices.astype(np.uint64)
    w = np.asarray(weights, dtype=np.float64)
    if not view.directed:
        keep = s <= t
        s, t, w = s[keep], t[keep], w[keep]
    G.addEdges((w, (s, t)), addMissing=False, checkMultiEdge=False)
    return G
"""

# numba loads its compiled kernels from the on-disk cache at their first call in a process
# (0.1-0.3 s each): the equivalent of importing a library, so every carenet contender calls
# its function once on a tiny graph before timing; the "jit cache load" row shows the cost.
WARM = """
tiny = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], [1.0, 2.0])
"""

CODE: dict[str, str] = {}

CODE["load graph/jit cache load"] = WARM + """
from carenet.graphs.centrality import pagerank, betweenness
from carenet.community.detection import leiden
t0 = time.perf_counter()
pagerank(tiny); leiden(tiny); betweenness(tiny, exact_max=0, samples=1)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}))
"""

CODE["load graph"] = """
print(json.dumps({"seconds": _t_load, "peak_mb": _peak_mb(), "customers": n, "ties": g.n_ties}))
"""

# ------------------------------------------------------------------ PageRank
CODE["pagerank/carenet"] = WARM + """
from carenet.graphs.centrality import pagerank
pagerank(tiny)
t0 = time.perf_counter()
res = pagerank(g, tol=1e-6)
t = time.perf_counter() - t0
np.save({out!r}, res.values)
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(), "iterations": res.iterations}))
"""

CODE["pagerank/convert to igraph"] = """
t0 = time.perf_counter()
G = g.to_igraph()
w = G.es["weight"]
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}))
"""

CODE["pagerank/raw igraph"] = """
G = g.to_igraph()
w = G.es["weight"]
t0 = time.perf_counter()
x = G.personalized_pagerank(directed=True, damping=0.85, weights=w, implementation="prpack")
t = time.perf_counter() - t0
np.save({out!r}, np.asarray(x))
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

CODE["pagerank/carenet igraph backend"] = """
from carenet.graphs.centrality import pagerank
g.to_igraph()
t0 = time.perf_counter()
res = pagerank(g, backend="igraph")
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

CODE["pagerank/networkit"] = TO_NETWORKIT + """
G = to_networkit(g, g.weights)
nk.setNumberOfThreads(2)
t0 = time.perf_counter()
pr = nk.centrality.PageRank(G, damp=0.85, tol=1e-6,
                            distributeSinks=nk.centrality.SinkHandling.DistributeSinks)
pr.run()
x = np.asarray(pr.scores())
t = time.perf_counter() - t0
np.save({out!r}, x / x.sum())
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(), "iterations": pr.numberOfIterations()}))
"""

CODE["pagerank/convert to networkit"] = TO_NETWORKIT + """
t0 = time.perf_counter()
G = to_networkit(g, g.weights)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}))
"""

CODE["pagerank/networkx"] = """
import networkx as nx
t0 = time.perf_counter()
G = g.to_networkx()
tc = time.perf_counter() - t0
t0 = time.perf_counter()
res = nx.pagerank(G, alpha=0.85, weight="weight")
t = time.perf_counter() - t0
np.save({out!r}, np.array([res[i] for i in range(n)]))
print(json.dumps({"seconds": t, "convert_seconds": tc, "peak_mb": _peak_mb()}))
"""

CODE["pagerank/networkx same accuracy"] = """
import networkx as nx
G = g.to_networkx()
# networkx stops when the L1 change < n * tol; this tol gives carenet's guarantee
# (L1 distance to the exact PageRank <= 1e-6)
t0 = time.perf_counter()
res = nx.pagerank(G, alpha=0.85, weight="weight", tol=1e-6 * 0.15 / 0.85 / n)
t = time.perf_counter() - t0
np.save({out!r}, np.array([res[i] for i in range(n)]))
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

# ------------------------------------------------------------------ Leiden
CODE["leiden/carenet"] = WARM + """
from carenet.community.detection import leiden
leiden(tiny)
t0 = time.perf_counter()
p = leiden(g, seed=1)
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(), "modularity": p.modularity,
                  "communities": p.n_communities}))
"""

CODE["leiden/convert to igraph"] = TO_IGRAPH + """
t0 = time.perf_counter()
view, G = undirected_igraph()
w = G.es["weight"]
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}))
"""

CODE["leiden/raw igraph"] = TO_IGRAPH + """
import random, igraph as ig
view, G = undirected_igraph()
w = G.es["weight"]
ig.set_random_number_generator(random.Random(1))
t0 = time.perf_counter()
c = G.community_leiden(objective_function="modularity", weights=w, n_iterations=2)
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(),
                  "modularity": G.modularity(c.membership, weights=w), "communities": len(c)}))
"""

CODE["leiden/carenet igraph backend"] = TO_IGRAPH + """
from carenet.community.detection import leiden
view, G = undirected_igraph()
t0 = time.perf_counter()
p = leiden(g, seed=1, backend="igraph")
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(), "modularity": p.modularity,
                  "communities": p.n_communities}))
"""

CODE["leiden/networkit ParallelLeiden"] = TO_NETWORKIT + """
from carenet.graphs.centrality import undirected_view
view = undirected_view(g)
G = to_networkit(view, view.weights)
nk.setNumberOfThreads(2)
nk.engineering.setSeed(1, True)
t0 = time.perf_counter()
algo = nk.community.ParallelLeiden(G, randomize=True)
algo.run()
part = algo.getPartition()
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(),
                  "modularity": nk.community.Modularity().getQuality(part, G),
                  "communities": part.numberOfSubsets()}))
"""

CODE["leiden/networkit PLM (Louvain)"] = TO_NETWORKIT + """
from carenet.graphs.centrality import undirected_view
view = undirected_view(g)
G = to_networkit(view, view.weights)
nk.setNumberOfThreads(2)
nk.engineering.setSeed(1, True)
t0 = time.perf_counter()
algo = nk.community.PLM(G, refine=True)
algo.run()
part = algo.getPartition()
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(),
                  "modularity": nk.community.Modularity().getQuality(part, G),
                  "communities": part.numberOfSubsets()}))
"""

CODE["leiden/networkx louvain"] = """
import networkx as nx
from carenet.graphs.centrality import undirected_view
from carenet.community.detection import modularity
t0 = time.perf_counter()
G = undirected_view(g).to_networkx()
tc = time.perf_counter() - t0
t0 = time.perf_counter()
comms = nx.community.louvain_communities(G, weight="weight", seed=1)
t = time.perf_counter() - t0
labels = np.empty(n, np.int64)
for c, members in enumerate(comms):
    labels[list(members)] = c
print(json.dumps({"seconds": t, "convert_seconds": tc, "peak_mb": _peak_mb(),
                  "modularity": modularity(g, labels), "communities": len(comms)}))
"""

# ------------------------------------------------------------------ sampled betweenness
SOURCES = """
from carenet.graphs.centrality import _pick_sources
src = _pick_sources(n, 0, {k}, 1).nodes
"""

CODE["betweenness/carenet"] = WARM + """
from carenet.graphs.centrality import betweenness
betweenness(tiny, exact_max=0, samples=1)
t0 = time.perf_counter()
res = betweenness(g, exact_max=0, samples={k}, seed=1)
t = time.perf_counter() - t0
np.save({out!r}, res.values)
print(json.dumps({"seconds": t, "peak_mb": _peak_mb(), "error_bound": res.error_bound}))
"""

CODE["betweenness/raw igraph"] = SOURCES + """
G = g.to_igraph()
lengths = (1.0 / np.asarray(G.es["weight"])).tolist()
t0 = time.perf_counter()
x = np.asarray(G.betweenness(directed=True, weights=lengths, sources=src.tolist()))
t = time.perf_counter() - t0
np.save({out!r}, x * n / {k} / ((n - 1) * (n - 2)))
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

CODE["betweenness/carenet igraph backend"] = """
from carenet.graphs.centrality import betweenness
g.to_igraph()
t0 = time.perf_counter()
res = betweenness(g, exact_max=0, samples={k}, seed=1, backend="igraph")
t = time.perf_counter() - t0
np.save({out!r}, res.values)
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

CODE["betweenness/networkit"] = TO_NETWORKIT + """
G = to_networkit(g, 1.0 / g.weights)
nk.setNumberOfThreads(2)
nk.engineering.setSeed(1, True)
t0 = time.perf_counter()
algo = nk.centrality.EstimateBetweenness(G, {k}, False, True)
algo.run()
x = np.asarray(algo.scores())
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "peak_mb": _peak_mb()}))
"""

CODE["betweenness/networkx"] = SOURCES + """
import networkx as nx
t0 = time.perf_counter()
G = g.to_networkx()
for _, _, d in G.edges(data=True):
    d["distance"] = 1.0 / d["weight"]
tc = time.perf_counter() - t0
t0 = time.perf_counter()
res = nx.betweenness_centrality_subset(G, src.tolist(), list(range(n)), normalized=False,
                                       weight="distance")
t = time.perf_counter() - t0
x = np.array([res[i] for i in range(n)])
np.save({out!r}, x * n / {k} / ((n - 1) * (n - 2)))
print(json.dumps({"seconds": t, "convert_seconds": tc, "peak_mb": _peak_mb()}))
"""


def ensure_graph(size: str) -> Path:
    path = DATA / f"measures-{size}"
    if (path / "graph.json").exists():
        return path
    customers, degree, interactions = SIZES[size]
    print(f"generating {size}: {customers:,} customers, {interactions:,} interactions ...",
          flush=True)
    res = run_child(MAKE_GRAPH.format(customers=customers, degree=degree,
                                      interactions=interactions, path=str(path)),
                    timeout=7200)
    if "error" in res:
        raise SystemExit(f"could not generate the {size} graph: {res['error']}")
    print(f"  {res['customers']:,} customers, {res['ties']:,} ties in {res['seconds']:.0f} s",
          flush=True)
    return path


def measure(name: str, path: Path, size: str, repeats: int, tmp: Path,
            timeout: float) -> dict[str, Any]:
    out = tmp / f"{size}-{name.replace('/', '_').replace(' ', '_')}.npy"
    body = CODE[name]
    code = LOAD.format(path=str(path)) + body.replace("{out!r}", repr(str(out))).replace(
        "{k}", str(SAMPLES[size])).replace("{{", "{").replace("}}", "}")
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        try:
            r = run_child(code, timeout=timeout)
        except subprocess.TimeoutExpired:
            r = {"error": [f"did not finish in {timeout:.0f} s"]}
        runs.append(r)
        if "error" in r:
            break
    ok = [r for r in runs if "error" not in r]
    row: dict[str, Any] = {"size": size, "measure": name.split("/")[0],
                           "contender": name.split("/")[-1], "repeats": len(ok)}
    if not ok:
        row["note"] = " ".join(runs[-1]["error"])[:80]
        return row
    row["seconds"] = median_of(ok, "seconds")
    row["peak_mb"] = median_of(ok, "peak_mb")
    for key in ("modularity", "communities", "iterations", "convert_seconds", "error_bound"):
        if key in ok[-1]:
            row[key] = median_of(ok, key)
    if out.exists():
        row["_values"] = str(out)
    return row


def add_quality(rows: list[dict[str, Any]]) -> None:
    import numpy as np

    by = {(r["size"], r["measure"], r["contender"]): r for r in rows}
    for r in rows:
        values = r.pop("_values", None)
        if values is None:
            continue
        x = np.load(values)
        if r["measure"] == "pagerank":
            ref = by.get((r["size"], "pagerank", "raw igraph"), {}).get("_ref")
            if ref is None and (r["size"], "pagerank", "raw igraph") in by:
                ref_path = Path(values).with_name(f"{r['size']}-pagerank_raw_igraph.npy")
                if ref_path.exists():
                    ref = np.load(ref_path)
            if ref is not None:
                r["quality"] = f"L1 {np.abs(x - ref).sum():.1e}"
        elif r["measure"] == "betweenness":
            ref_path = Path(values).with_name(f"{r['size']}-betweenness_carenet.npy")
            if ref_path.exists():
                r["quality"] = f"max|diff| {np.abs(x - np.load(ref_path)).max():.1e}"
    for r in rows:
        if "modularity" in r:
            r["quality"] = f"Q {r['modularity']:.4f}"


def add_ratios(rows: list[dict[str, Any]]) -> None:
    base = {(r["size"], r["measure"]): r.get("seconds") for r in rows
            if r["contender"] == "carenet"}
    raw = {(r["size"], r["measure"]): r.get("seconds") for r in rows
           if r["contender"] == "raw igraph"}
    for r in rows:
        b = base.get((r["size"], r["measure"]))
        if r.get("seconds") is not None and b:
            r["x carenet"] = r["seconds"] / b
        if r["contender"] == "carenet igraph backend" and r.get("seconds") is not None:
            rb = raw.get((r["size"], r["measure"]))
            if rb:
                r["note"] = f"{r['seconds'] / rb:.2f}x raw igraph"


QUALITY_RUNS = [("leiden", "native"), ("leiden", "igraph"), ("louvain", "native"),
                ("louvain", "igraph"), ("louvain", "networkx"), ("label_propagation", "native"),
                ("label_propagation", "igraph"), ("label_propagation", "networkx"),
                ("infomap", "igraph")]


def quality(seed: int = 42) -> None:
    """NMI / ARI of every algorithm against email-Eu-core's 42 departments (on the 986
    customers the loader keeps: 19 addresses only mail themselves), and against the
    generator's planted communities at several mixing levels."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from carenet.community import detection as det
    from carenet.graphs.build import load_network
    from carenet.synthetic import GeneratorConfig, generate

    root = Path(__file__).resolve().parents[1]
    datasets = next(p for p in (root.parent / "shared" / "datasets",
                                Path("/work/shared/datasets")) if p.exists())
    d = datasets / "snap-email-eu-core"
    g = load_network(d / "email-Eu-core.txt").graph
    dept = pd.read_csv(d / "email-Eu-core-department-labels.txt", sep=" ", header=None,
                       names=["id", "dept"], dtype=str).set_index("id")["dept"]
    truth = dept.reindex(g.ids.astype(str)).to_numpy()
    rows: list[dict[str, Any]] = []
    for algorithm, backend in QUALITY_RUNS:
        p = det.detect(g, algorithm=algorithm, backend=backend, seed=seed)  # type: ignore[arg-type]
        rows.append({"data": "email-Eu-core", "algorithm": algorithm, "backend": backend,
                     "communities": p.n_communities, "modularity": p.modularity,
                     "NMI": normalized_mutual_info_score(truth, p.labels),
                     "ARI": adjusted_rand_score(truth, p.labels), "seconds": p.seconds})
    for mixing in (0.05, 0.1, 0.2, 0.3):
        data = generate(GeneratorConfig(customers=3000, interactions=60_000, mixing=mixing,
                                        seed=3))
        gg = load_network(data.interactions, half_life="30d").graph
        planted = data.truth.set_index("customer_id")["community"].reindex(gg.ids).to_numpy()
        for algorithm, backend in (("leiden", "native"), ("louvain", "native"),
                                   ("infomap", "igraph"), ("louvain", "networkx")):
            for weighted in (True, False):
                p = det.detect(gg, algorithm=algorithm, backend=backend, seed=1,  # type: ignore[arg-type]
                               weighted=weighted)
                rows.append({"data": f"planted mixing {mixing}", "algorithm": algorithm,
                             "backend": backend + ("" if weighted else " unweighted"),
                             "communities": p.n_communities, "modularity": p.modularity,
                             "NMI": normalized_mutual_info_score(planted, p.labels),
                             "ARI": adjusted_rand_score(planted, p.labels),
                             "seconds": p.seconds})
    print_table(rows, ["data", "algorithm", "backend", "communities", "modularity", "NMI",
                       "ARI", "seconds"])
    path = write_json("measures-quality", {"machine": machine(), "seed": seed, "rows": rows,
                                            "planted_truth": int(np.max(planted)) + 1})
    print(f"\nwrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers / 10M ties")
    ap.add_argument("--sizes", default=None, help="comma list of 100k,1M (overrides --big)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats at 100k (median)")
    ap.add_argument("--big-repeats", type=int, default=1, help="repeats at 1M")
    ap.add_argument("--skip-networkx", action="store_true")
    ap.add_argument("--skip-networkit", action="store_true")
    ap.add_argument("--networkx-big", action="store_true",
                    help="run networkx at 1M / 10M too (hours of CPU, ~10 GB)")
    ap.add_argument("--only", default=None, help="comma list of measures to run")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default="measures", help="results/<OUT>.json")
    ap.add_argument("--quality", action="store_true",
                    help="instead: NMI / ARI against email-Eu-core departments and planted "
                         "communities")
    args = ap.parse_args()
    if args.quality:
        quality()
        return
    sizes = args.sizes.split(",") if args.sizes else (["100k", "1M"] if args.big else ["100k"])
    only = set(args.only.split(",")) if args.only else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for size in sizes:
            path = ensure_graph(size)
            for name in CODE:
                measure_name = name.split("/")[0]
                if only and measure_name not in only and measure_name != "load graph":
                    continue
                contender = name.split("/")[-1]
                if "networkx" in contender and (args.skip_networkx or (
                        size != "100k" and not args.networkx_big)):
                    continue
                if "networkit" in contender and args.skip_networkit:
                    continue
                big_slow = "networkx" in contender or "convert" in contender
                reps = args.repeats if size == "100k" else args.big_repeats
                reps = 1 if big_slow or name.startswith("load graph") else reps
                print(f"{size} {name} ...", flush=True)
                row = measure(name, path, size, reps, tmp, args.timeout)
                if name == "load graph":
                    row["measure"], row["contender"] = "load graph", "CustomerGraph.load"
                elif name.startswith("load graph/"):
                    row["measure"] = "load graph"
                rows.append(row)
                print("   ", {k: v for k, v in row.items() if not k.startswith("_")},
                      flush=True)
        add_quality(rows)
    add_ratios(rows)
    print()
    print_table(rows, ["size", "measure", "contender", "seconds", "x carenet", "peak_mb",
                       "quality", "repeats", "note"])
    payload = {"machine": machine(), "sizes": {s: SIZES[s] for s in sizes},
               "samples": SAMPLES, "rows": rows}
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    json.dumps(payload)


if __name__ == "__main__":
    main()
