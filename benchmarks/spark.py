"""Local engine vs the Spark engine in local[2] mode, per step, on a generated log.

Steps timed on both engines over the same log (``carenet generate``, epoch timestamps, six
channels, weights; 10 interactions per customer):

- load: read + validate + decay + aggregate to ties (local: GraphBuilder -> CustomerGraph;
  Spark: ``carenet.spark.load.load_logs`` until the tie table is materialised);
- collect: the driver path's collect + sort + CustomerGraph (Spark only);
- degree, PageRank (tol 1e-6), label propagation (``--lpa-iters`` synchronous steps),
  connected components: local kernels / numpy / scipy vs DataFrame iterations.

One process per engine (a Spark session is started once and its start-up reported apart).
Prints a table and writes ``benchmarks/results/spark-<size>.json``. Quote the load average.

    .venv/bin/python benchmarks/spark.py --sizes 1M
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
SIZES = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}


def make_log(rows: int) -> Path:
    from carenet.synthetic import GeneratorConfig, generate

    DATA.mkdir(exist_ok=True)
    path = DATA / f"spark-{rows}.csv"
    if not path.exists():
        data = generate(GeneratorConfig(customers=max(rows // 10, 100), interactions=rows,
                                        timestamps="epoch", seed=11))
        data.interactions.to_csv(path, index=False)
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
    _, out["degree"] = timed(lambda: (g.in_degree(), g.out_degree(), g.in_strength(),
                                      g.out_strength()))
    pr, out["pagerank"] = timed(lambda: cen.pagerank(g).values)
    src = np.repeat(np.arange(g.n_customers), np.diff(g.indptr))
    (labels, _), out["label_propagation"] = timed(
        lambda: label_propagation_reference(src, g.indices, g.weights, g.n_customers,
                                            max_iter=lpa_iters, check_every=lpa_iters))

    def comps() -> np.ndarray:
        adj = csr_matrix((np.ones(len(src)), (src, g.indices)), shape=(g.n_customers,) * 2)
        return connected_components(adj, directed=True, connection="weak")[1]

    _, out["components"] = timed(comps)
    info = {"customers": g.n_customers, "ties": g.n_ties, "pagerank": pr, "labels": labels}
    return out, info


def bench_spark(path: Path, lpa_iters: int, master: str) -> tuple[dict[str, float], dict[str, Any]]:
    from carenet.config import AnalysisConfig
    from carenet.spark import distributed as dist
    from carenet.spark.engine import collect_network
    from carenet.spark.load import load_logs
    from carenet.spark.session import get_session

    cfg = AnalysisConfig()
    out: dict[str, float] = {}
    spark, out["session_start"] = timed(lambda: get_session(master))
    g = cfg.graph

    def load() -> Any:
        ld = load_logs(spark, [path], options=cfg.input.log_options(),
                       half_life=g.half_life_seconds, reference_time=g.reference_seconds)
        ld.ties.count()
        return ld

    ld, out["load"] = timed(load)
    _, out["collect"] = timed(lambda: collect_network(ld, cfg))
    n = ld.n_customers
    ties = ld.ties.select("src", "dst", "weight")
    _, out["degree"] = timed(lambda: dist.degrees(ties, n))
    (pr, iters), out["pagerank"] = timed(lambda: dist.pagerank(spark, ties, n))
    (labels, _), out["label_propagation"] = timed(
        lambda: dist.label_propagation(spark, ties, n, max_iter=lpa_iters,
                                       check_every=lpa_iters))
    _, out["components"] = timed(lambda: dist.components(spark, ties, n))
    spark.stop()
    return out, {"pagerank": pr, "pagerank_iterations": iters, "labels": labels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1M")
    ap.add_argument("--lpa-iters", type=int, default=5)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    for size in args.sizes.split(","):
        path = make_log(SIZES[size])
        load_before = os.getloadavg()
        local, linfo = bench_local(path, args.lpa_iters)
        spark, sinfo = bench_spark(path, args.lpa_iters, args.master)
        rows = []
        for step in ("session_start", "load", "collect", "degree", "pagerank",
                     "label_propagation", "components"):
            lt, st = local.get(step), spark.get(step)
            rows.append({"step": step, "local s": lt, "spark s": st,
                         "spark / local": (st / lt) if lt and st else None})
        l1 = float(np.abs(linfo["pagerank"] - sinfo["pagerank"]).sum())
        same = float(np.mean(linfo["labels"] == sinfo["labels"]))
        print(f"\n{size} interactions: {linfo['customers']:,} customers, {linfo['ties']:,} ties; "
              f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
        print_table(rows, ["step", "local s", "spark s", "spark / local"])
        print(f"PageRank L1 local vs spark {l1:.2e} ({sinfo['pagerank_iterations']} Spark "
              f"iterations); label propagation identical labels {same:.2%}")
        path_json = write_json(f"spark-{size.lower()}", {
            "machine": machine(), "size": size, "customers": linfo["customers"],
            "ties": linfo["ties"], "master": args.master, "lpa_iters": args.lpa_iters,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "steps": rows, "pagerank_l1": l1, "pagerank_iterations":
            sinfo["pagerank_iterations"], "labels_identical": same,
        })
        print(f"wrote {path_json}")


if __name__ == "__main__":
    main()
