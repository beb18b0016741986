"""Local engine vs the Spark engine in local[2] mode, per step, with a parity check.

Logs (``carenet generate`` defaults, epoch timestamps, six channels, weights, seed 1):

- ``1M``: 1M interactions, 100k customers (``/work/prof/data100k/interactions.parquet``);
- ``10M``: 10M interactions, 1M customers (``/work/prof/data1m/interactions.parquet``);
- ``100k``: generated here (10k customers) when asked for.

``--data100k``/``--data1m`` point elsewhere; a missing file is generated with the same settings.

Steps timed on both engines over the same log:

- load: read + validate + decay + aggregate to ties (local: GraphBuilder -> CustomerGraph;
  Spark: ``carenet.spark.load.load_logs`` until the tie table is materialised);
- collect: the driver path's collect + sort + CustomerGraph (Spark only);
- degree, PageRank (tol 1e-6), label propagation (``--lpa-iters`` synchronous steps),
  connected components: local kernels / numpy / scipy vs the distributed path's DataFrame
  iterations. ``--pagerank-iters``/``--cc-iters`` cap the Spark iterations (for 10M on a
  2-core machine); a capped step is marked and its time per iteration is what to read.

Parity (the issue's checks, on the same run): the driver path's ids (positions), ties,
counts, channels (exact) and weights (max relative difference) against the local loader; the
distributed degree/strength against the local graph; PageRank L1 against carenet's PageRank at
tol 1e-10; label propagation labels against the numpy reference with the same rule.

One process, Spark session started once and its start-up reported apart. Prints a table and
writes ``benchmarks/results/spark-<size>.json``. Quote the load average.

    nice -n 10 .venv/bin/python benchmarks/spark.py --sizes 1M
    nice -n 10 .venv/bin/python benchmarks/spark.py --sizes 10M --pagerank-iters 10 \\
        --lpa-iters 3 --cc-iters 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json

DATA = Path(__file__).resolve().parent / "data"


def log_for(size: str, args: argparse.Namespace) -> Path:
    """The log of one size: the lead's generated Parquet files, or one generated here."""
    from carenet.synthetic import GeneratorConfig, generate

    given = {"1M": Path(args.data100k) / "interactions.parquet",
             "10M": Path(args.data1m) / "interactions.parquet"}.get(size)
    if given is not None and given.exists():
        return given
    rows = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}[size]
    DATA.mkdir(exist_ok=True)
    path = DATA / f"spark-{rows}.parquet"
    if not path.exists():
        data = generate(GeneratorConfig(customers=max(rows // 10, 100), interactions=rows,
                                        timestamps="epoch", seed=1))
        data.interactions.to_parquet(path, index=False)
    return path


def timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_local(path: Path, lpa_iters: int) -> tuple[dict[str, float], dict[str, Any]]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    from carenet.config import AnalysisConfig
    from carenet.graphs import centrality as cen
    from carenet.pipeline import load_inputs
    from carenet.spark.distributed import label_propagation_reference

    cfg = AnalysisConfig()
    out: dict[str, float] = {}
    net, out["load"] = timed(lambda: load_inputs(path, config=cfg))
    g = net.graph
    deg, out["degree"] = timed(lambda: {"degree_in": g.in_degree(), "degree_out": g.out_degree(),
                                        "strength_in": g.in_strength(),
                                        "strength_out": g.out_strength()})
    pr, out["pagerank"] = timed(lambda: cen.pagerank(g).values)
    src = np.repeat(np.arange(g.n_customers), np.diff(g.indptr))
    (labels, _), out["label_propagation"] = timed(
        lambda: label_propagation_reference(src, g.indices, g.weights, g.n_customers,
                                            max_iter=lpa_iters, check_every=lpa_iters))

    def comps() -> np.ndarray:
        adj = csr_matrix((np.ones(len(src)), (src, g.indices)), shape=(g.n_customers,) * 2)
        return connected_components(adj, directed=True, connection="weak")[1]

    _, out["components"] = timed(comps)
    exact = cen.pagerank(g, tol=1e-10).values
    info = {"customers": g.n_customers, "ties": g.n_ties, "graph": g, "degrees": deg,
            "pagerank": pr, "pagerank_exact": exact, "labels": labels,
            "rejected": dict(net.report.rejected)}
    return out, info


def bench_spark(path: Path, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    from carenet.config import AnalysisConfig
    from carenet.spark import distributed as dist
    from carenet.spark.engine import collect_network
    from carenet.spark.load import load_logs
    from carenet.spark.session import get_session

    cfg = AnalysisConfig()
    out: dict[str, float] = {}
    spark, out["session_start"] = timed(lambda: get_session(
        args.master, {"spark.driver.memory": args.driver_memory}))
    g = cfg.graph

    def load() -> Any:
        ld = load_logs(spark, [path], options=cfg.input.log_options(),
                       half_life=g.half_life_seconds, reference_time=g.reference_seconds)
        ld.ties.count()
        return ld

    ld, out["load"] = timed(load)
    net, out["collect"] = timed(lambda: collect_network(ld, cfg, spark=spark))
    n = ld.n_customers
    ties = ld.ties.select("src", "dst", "weight")
    deg, out["degree"] = timed(lambda: dist.degrees(ties, n))
    pr_iter = args.pagerank_iters or 500
    (pr, iters), out["pagerank"] = timed(lambda: dist.pagerank(
        spark, ties, n, tol=0.0 if args.pagerank_iters else 1e-6, max_iter=pr_iter))
    (labels, _), out["label_propagation"] = timed(
        lambda: dist.label_propagation(spark, ties, n, max_iter=args.lpa_iters,
                                       check_every=args.lpa_iters))
    cc_iter = args.cc_iters or 1000
    _, out["components"] = timed(lambda: dist.components(spark, ties, n, max_iter=cc_iter,
                                                         check_every=min(5, cc_iter)))
    spark.stop()
    return out, {"graph": net.graph, "degrees": deg, "pagerank": pr, "pagerank_iterations": iters,
                 "labels": labels, "rejected": dict(net.report.rejected)}


def parity(linfo: dict[str, Any], sinfo: dict[str, Any]) -> dict[str, Any]:
    """The issue's checks between the two engines (True = holds)."""
    a, b = linfo["graph"], sinfo["graph"]
    same_graph = (a.ids.tolist() == b.ids.tolist() and np.array_equal(a.indptr, b.indptr)
                  and np.array_equal(a.indices, b.indices))
    rel = (float(np.max(np.abs(a.weights - b.weights) / np.abs(a.weights)))
           if same_graph and a.n_ties else None)
    deg_exact = all(np.array_equal(linfo["degrees"][c], sinfo["degrees"][c])
                    for c in ("degree_in", "degree_out"))
    strength_rel = max(float(np.max(np.abs(linfo["degrees"][c] - sinfo["degrees"][c])
                                    / np.maximum(np.abs(linfo["degrees"][c]), 1e-300)))
                       for c in ("strength_in", "strength_out"))
    l1 = float(np.abs(linfo["pagerank_exact"] - sinfo["pagerank"]).sum())
    return {
        "same_ids_and_ties": bool(same_graph),
        "same_counts_and_channels": bool(same_graph and np.array_equal(a.counts, b.counts)
                                         and np.array_equal(a.channels, b.channels)),
        "weights_max_rel_diff": rel,
        "same_rejects": linfo["rejected"] == sinfo["rejected"],
        "degree_exact": bool(deg_exact),
        "strength_max_rel_diff": strength_rel,
        "pagerank_l1_vs_exact": l1,
        "local_pagerank_l1_vs_exact": float(np.abs(linfo["pagerank_exact"]
                                                   - linfo["pagerank"]).sum()),
        "labels_identical": float(np.mean(linfo["labels"] == sinfo["labels"])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1M")
    ap.add_argument("--lpa-iters", type=int, default=5)
    ap.add_argument("--pagerank-iters", type=int, default=0,
                    help="fixed Spark PageRank iterations (0: until tol 1e-6)")
    ap.add_argument("--cc-iters", type=int, default=0,
                    help="cap on Spark components iterations (0: until settled)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--data100k", default="/work/prof/data100k")
    ap.add_argument("--data1m", default="/work/prof/data1m")
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    for size in args.sizes.split(","):
        path = log_for(size, args)
        load_before = os.getloadavg()
        local, linfo = bench_local(path, args.lpa_iters)
        spark, sinfo = bench_spark(path, args)
        capped = {"pagerank": args.pagerank_iters, "components": args.cc_iters}
        rows = []
        for step in ("session_start", "load", "collect", "degree", "pagerank",
                     "label_propagation", "components"):
            lt, st = local.get(step), spark.get(step)
            note = ""
            if step == "pagerank":
                note = f"{sinfo['pagerank_iterations']} iterations" + (
                    " (capped)" if capped["pagerank"] else " (tol 1e-6)")
            elif step == "label_propagation":
                note = f"{args.lpa_iters} steps"
            elif step == "components" and capped["components"]:
                note = f"capped at {capped['components']} iterations"
            rows.append({"step": step, "local s": lt, "spark s": st,
                         "spark / local": (st / lt) if lt and st else None, "note": note})
        checks = parity(linfo, sinfo)
        print(f"\n{size} interactions ({path}): {linfo['customers']:,} customers, "
              f"{linfo['ties']:,} ties; load average before {load_before[0]:.1f}, "
              f"after {os.getloadavg()[0]:.1f}")
        print_table(rows, ["step", "local s", "spark s", "spark / local", "note"])
        for k, v in checks.items():
            print(f"  {k}: {v}")
        path_json = write_json(f"spark-{size.lower()}", {
            "machine": machine(), "size": size, "log": str(path),
            "customers": linfo["customers"], "ties": linfo["ties"], "master": args.master,
            "driver_memory": args.driver_memory,
            "lpa_iters": args.lpa_iters, "pagerank_iters_cap": args.pagerank_iters,
            "cc_iters_cap": args.cc_iters,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "steps": rows, "pagerank_iterations": sinfo["pagerank_iterations"],
            "parity": checks,
        })
        print(f"wrote {path_json}")


if __name__ == "__main__":
    main()
