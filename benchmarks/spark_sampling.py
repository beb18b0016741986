"""Influence and exposure as Spark tasks (the distributed path) vs one process, same seeds.

On a generated log (default ``/work/prof/data100k``: 100k customers, 1M interactions, with its
events table), with the analysis defaults (``[influence]``; ``--epsilon`` to change the RIS
error target), this computes all-customer influence (RIS; value-weighted too when the
customers table has values) and exposure (forward worlds from the recent negative events):

- locally, with ``influence_scores`` / ``exposure_scores`` as the influence step calls them;
- with the same calls routed through :class:`carenet.spark.sampling.SparkSampler`
  (``local[2]``; RR-set and world ranges cut into ``--tasks`` blocks per Spark job).

Checks that every column and the attribution table are identical (the blocks of the
counter-based streams add up to the one-process counts), and reports both times, the Spark
jobs and tasks and the broadcast size. One process, the Spark session started once (its
start-up reported apart). Prints a table and writes
``benchmarks/results/spark-sampling-<name>.json``. Quote the load average.

    nice -n 5 .venv/bin/python benchmarks/spark_sampling.py [--data DIR | --generate N]
        [--epsilon 0.2] [--tasks 4]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/work/prof/data100k")
    ap.add_argument("--generate", type=int, default=0, metavar="CUSTOMERS",
                    help="generate a log of this many customers (10x interactions, seed 1) "
                         "into benchmarks/data/gen-<CUSTOMERS> and use it")
    ap.add_argument("--epsilon", type=float, default=None)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="4g")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import os

    from carenet.community.influence import (
        customer_values,
        exposure_scores,
        influence_scores,
        seeds_from_events,
    )
    from carenet.config import AnalysisConfig
    from carenet.graphs.build import load_network
    from carenet.graphs.diffusion import DiffusionGraph
    from carenet.graphs.rng import derive_seed
    from carenet.spark.sampling import SparkSampler
    from carenet.spark.session import get_session
    from carenet.steps.influence import EXPOSURE_PHASE

    data = Path(args.data)
    if args.generate:
        from carenet.synthetic import GeneratorConfig, generate

        data = Path(__file__).resolve().parent / "data" / f"gen-{args.generate}"
        if not (data / "events.parquet").exists():
            data.mkdir(parents=True, exist_ok=True)
            gen = generate(GeneratorConfig(customers=args.generate,
                                           interactions=10 * args.generate, seed=1,
                                           timestamps="epoch"))
            gen.interactions.to_parquet(data / "interactions.parquet", index=False)
            gen.customers.to_parquet(data / "customers.parquet", index=False)
            gen.events.to_parquet(data / "events.parquet", index=False)
    load = os.getloadavg()
    t = time.perf_counter()
    net = load_network(data / "interactions.parquet", customers=data / "customers.parquet",
                       events=data / "events.parquet")
    t_load = time.perf_counter() - t
    graph = net.graph
    cfg = AnalysisConfig()
    if args.epsilon is not None:
        cfg = cfg.with_overrides({"influence.epsilon": args.epsilon})
    inf = cfg.influence
    edge: dict[str, Any] = inf.ties.kwargs()
    values = customer_values(net.customers["value"], graph.n_customers,
                             missing=inf.missing_value) if "value" in net.customers else None
    seeds = seeds_from_events(net.events, reference_time=graph.reference_time,
                              lookback=inf.lookback_seconds, kinds=inf.negative_events)
    ris_kw: dict[str, Any] = dict(
        model=inf.model, epsilon=inf.epsilon, delta=inf.delta, top=inf.top,
        confidence=inf.confidence, values=values, missing_value=inf.missing_value,
        seed=derive_seed(cfg.seed, 101), max_rr_sets=inf.max_rr_sets,
        max_rr_members=inf.max_rr_members, **edge)
    exp_kw: dict[str, Any] = dict(
        model=inf.exposure_model or inf.model, runs=inf.exposure_runs,
        error=inf.exposure_error, budget=inf.exposure_budget or None,
        confidence=inf.confidence, sources=inf.exposure_sources,
        seed=derive_seed(cfg.seed, EXPOSURE_PHASE), seeds_are_positions=True,
        recovery=inf.sir_recovery, **edge)
    dg = DiffusionGraph.from_graph(graph, **edge)

    t = time.perf_counter()
    local_inf = influence_scores(graph, **ris_kw)
    t_local_inf = time.perf_counter() - t
    t = time.perf_counter()
    local_exp = exposure_scores(graph, seeds, **exp_kw)
    t_local_exp = time.perf_counter() - t

    t = time.perf_counter()
    spark = get_session(args.master, {"spark.driver.memory": args.driver_memory})
    t_session = time.perf_counter() - t
    sampler = SparkSampler(spark, dg, tasks=args.tasks)
    t = time.perf_counter()
    spark_inf = influence_scores(graph, rr_counter=sampler.rr_counts, **ris_kw)
    t_spark_inf = time.perf_counter() - t
    inf_jobs, inf_tasks = sampler.jobs, sampler.task_runs
    t = time.perf_counter()
    spark_exp = exposure_scores(graph, seeds, worlds=sampler.worlds, **exp_kw)
    t_spark_exp = time.perf_counter() - t
    sampler.release()
    spark.stop()

    same_inf = all(np.array_equal(spark_inf.columns()[k], v)
                   for k, v in local_inf.columns().items())
    same_exp = all(np.array_equal(spark_exp.columns()[k], v)
                   for k, v in local_exp.columns().items())
    same_sources = spark_exp.sources.equals(local_exp.sources)
    est = local_inf.estimate
    rows = [
        {"step": "influence (RIS)", "local_s": t_local_inf, "spark_s": t_spark_inf,
         "ratio": t_spark_inf / t_local_inf, "jobs": inf_jobs, "tasks": inf_tasks,
         "samples": int(est.rr_sets + est.search_rr_sets)
         + (int(local_inf.value_estimate.rr_sets + local_inf.value_estimate.search_rr_sets)
            if local_inf.value_estimate is not None else 0),
         "identical": same_inf},
        {"step": "exposure (worlds)", "local_s": t_local_exp, "spark_s": t_spark_exp,
         "ratio": t_spark_exp / t_local_exp, "jobs": sampler.jobs - inf_jobs,
         "tasks": sampler.task_runs - inf_tasks, "samples": int(local_exp.runs),
         "identical": same_exp and same_sources},
    ]
    print(f"{graph.n_customers:,} customers, {graph.n_entries:,} ties, {seeds.size:,} "
          f"exposure seeds; broadcast {dg.nbytes / 1e6:.1f} MB; Spark session "
          f"{t_session:.1f} s; load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print_table(rows, ["step", "local_s", "spark_s", "ratio", "jobs", "tasks", "samples",
                       "identical"])
    name = data.name
    out = write_json(f"spark-sampling-{name}", {
        "machine": machine(), "data": str(data), "master": args.master,
        "tasks_per_job": args.tasks, "load_average": [load[0], os.getloadavg()[0]],
        "customers": int(graph.n_customers), "ties": int(graph.n_entries),
        "exposure_seeds": int(seeds.size), "broadcast_bytes": int(dg.nbytes),
        "load_seconds": t_load, "session_seconds": t_session,
        "epsilon": inf.epsilon, "epsilon_reached": float(est.epsilon_achieved),
        "exposure_error": float(local_exp.estimate["error"]),
        "exposure_stop": str(local_exp.estimate["stop_reason"]),
        "attribution_rows": len(local_exp.sources),
        "rows": [{k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in r.items()}
                 for r in rows],
        "sources_identical": bool(same_sources),
        "max_abs_influence_diff": float(np.abs(spark_inf.influence - local_inf.influence).max()),
        "max_abs_exposure_diff": float(np.abs(spark_exp.exposure - local_exp.exposure).max()),
        "versions": {"pandas": pd.__version__},
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
