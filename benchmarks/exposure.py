"""Exposure benchmark: forward exposure (two source labels per live-edge world, one set of
worlds for seeds and non-seeds) against the reverse estimator (forward runs for non-seeds plus
reverse samples per seed), at 100k and 1M customers.

Graphs come from ``carenet generate`` with its defaults (mean degree 8, 10 interactions per
customer, epoch timestamps) loaded with a 30-day half-life; the seeds are the step's: customers
with a churn or complaint event in the 90 days before the reference time (about 7% of them).
Both estimators use the step's settings (weighted cascade, IC, at most 2,000 worlds; forward
stops when the largest 95% half-width is at most ``--error``). Every measurement runs in a
fresh process (peak memory ``VmHWM`` is its own); the numba kernels are loaded before timing.
Rows:

* ``forward``: ``exposure_scores(method="forward")`` as the step calls it (attribution from
  the first 512 worlds, the default work budget of 2e9 tie-worlds), with the worlds, looks,
  half-width reached and why it stopped (``stop_reason``), wall and CPU seconds (CPU / 2
  is what two free cores would need at best: the machine is shared); at 1M the seeds are topped up
  with synthetic ones (uniform among the other customers) to ``--seeds-1m`` (70,000);
* ``before-K`` / ``after-K`` (with ``--before DIR``, a ``git archive`` of main): the code
  before and this checkout at a fixed ``--fixed-worlds`` K (64) worlds with attribution on
  all of them, in turn in the same run: ms per world, before against after; at 100k also
  ``before`` with the step's settings, against ``forward``;
* ``forward@0.05``: the same at a looser target (fewer worlds; 100k);
* ``forward-1thread``: the same on one thread (what ``prange`` over worlds buys);
* ``forward-noattr``: without attribution (what recording the sources costs);
* ``reverse``: ``method="reverse"`` with ``--reverse-runs`` worlds (default 2,000 at 100k;
  at 1M only with ``--reverse-1m``: it takes hours), and the largest difference between the
  two estimates in units of their combined half-widths.

    .venv/bin/python benchmarks/exposure.py            # 100k
    .venv/bin/python benchmarks/exposure.py --big      # + 1M customers / 10M interactions
    git archive <main> carenet | tar -x -C /tmp/before
    .venv/bin/python benchmarks/exposure.py --big --before /tmp/before --name exposure-issue15
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

# the lead's generated logs (the same generator defaults, epoch timestamps, seed 1), reused
# when present instead of generating again
PROF = {"100k": Path("/work/prof/data100k"), "1M": Path("/work/prof/data1m")}

MAKE = """
from pathlib import Path
from carenet.synthetic import GeneratorConfig, generate
from carenet.graphs.build import load_network
t0 = time.perf_counter()
src = Path({source!r})
if (src / "events.parquet").exists():
    net = load_network(src / "interactions.parquet", customers=src / "customers.parquet",
                       events=src / "events.parquet", half_life="30d")
else:
    data = generate(GeneratorConfig(customers={customers}, interactions={interactions},
                                    timestamps="epoch", seed=1))
    net = load_network(data.interactions, customers=data.customers, events=data.events,
                       half_life="30d")
    del data
path = Path({path!r})
path.mkdir(parents=True, exist_ok=True)
net.graph.save(path / "graph")
net.events.to_parquet(path / "events.parquet")
print(json.dumps({{"seconds": time.perf_counter() - t0, "customers": net.graph.n_customers,
                  "ties": net.graph.n_ties}}))
"""

RUN = """
import inspect, os
if {code!r}:  # the code before: ahead of this checkout (python -c puts the cwd first)
    sys.path.insert(0, {code!r})
import numba
import numpy as np, pandas as pd
import carenet
from carenet.graphs.model import CustomerGraph
from carenet.graphs.diffusion import DiffusionGraph
from carenet.community.influence import exposure_scores, seeds_from_events
threads = {threads}
if threads:
    numba.set_num_threads(threads)
g = CustomerGraph.load({path!r} + "/graph")
ev = pd.read_parquet({path!r} + "/events.parquet")
seeds = seeds_from_events(ev, reference_time=g.reference_time, lookback=90 * 86400.0)
if {min_seeds} > seeds.size:  # synthetic seeds (uniform among the others) up to min_seeds
    rng = np.random.default_rng(15)
    others = np.setdiff1d(np.arange(g.n_customers), seeds)
    seeds = np.union1d(seeds, rng.choice(others, {min_seeds} - seeds.size, replace=False))
tiny = CustomerGraph.from_edges(["a", "b"], [0], [1], [1.0])
exposure_scores(tiny, ["a"], runs=2, method={method!r})   # load the kernels (cache)
# the analysis shares one diffusion graph between its steps (graph.derived): build it first
DiffusionGraph.from_graph(g)
kw = {{}}
if "budget" in inspect.signature(exposure_scores).parameters and {budget!r} != "default":
    kw["budget"] = {budget!r}
t0 = time.perf_counter()
c0 = time.process_time()
ex = exposure_scores(g, seeds, seeds_are_positions=True, runs={runs}, error={error},
                     method={method!r}, attribution_runs={attribution}, seed=1, **kw)
sec = time.perf_counter() - t0
cpu = time.process_time() - c0
np.save({out!r}, np.stack([ex.exposure, ex.exposure_low, ex.exposure_high]))
d = ex.to_dict()
print(json.dumps({{"seconds": sec, "cpu_seconds": cpu, "customers": g.n_customers, "ties": int(g.n_ties),
                  "seeds": int(seeds.size), "runs": d["runs"], "rounds": d["rounds"],
                  "error": d["error"], "error_target": d.get("error_target"),
                  "stop_reason": d.get("stop_reason", "-"), "mean_exposure": d["mean_exposure"],
                  "source_rows": int(len(ex.sources)), "peak_mb": _peak_mb(),
                  "code": carenet.__file__, "load_after": os.getloadavg()[0]}}))
"""


RATIO = """
import numba, numpy as np, pandas as pd
from carenet.graphs.model import CustomerGraph
from carenet.graphs.diffusion import DiffusionGraph, monte_carlo
from carenet.graphs.exposure import forward_exposure
from carenet.community.influence import seeds_from_events
g = CustomerGraph.load({path!r} + "/graph")
ev = pd.read_parquet({path!r} + "/events.parquet")
seeds = seeds_from_events(ev, reference_time=g.reference_time, lookback=90 * 86400.0)
dg = DiffusionGraph.from_graph(g)
monte_carlo(dg, seeds, runs=2)
forward_exposure(dg, seeds, max_runs=2, min_runs=2, attribution_runs=0)
numba.set_num_threads(1)
rows = []
for k in (100, 1000, int(seeds.size)):
    sd = seeds[:k]
    t = time.perf_counter(); mc = monte_carlo(dg, sd, runs={worlds}, seed=1)
    a = time.perf_counter() - t
    t = time.perf_counter()
    forward_exposure(dg, sd, max_runs={worlds}, min_runs={worlds}, attribution_runs=0, seed=1)
    b = time.perf_counter() - t
    rows.append({{"seeds": k, "cascade_ms": 1000 * a / {worlds},
                 "forward_exposure_ms": 1000 * b / {worlds}, "ratio": b / a,
                 "mean_cascade": mc.mean}})
print(json.dumps({{"rows": rows}}))
"""


def cascade_ratio(size: str, worlds: int = 30) -> list[dict[str, Any]]:
    """ms per world on one thread: a plain Monte Carlo cascade from the seeds against a
    forward-exposure world (cascade + the seeds' backward searches), same process."""
    load = os.getloadavg()[0]
    res = run_child(RATIO.format(path=str(ensure(size)), worlds=worlds), timeout=3600)
    rows = [{"size": size, "load_before": load, "load_after": os.getloadavg()[0], **r}
            for r in res.get("rows", [])]
    print_table(rows, ["size", "seeds", "cascade_ms", "forward_exposure_ms", "ratio",
                       "mean_cascade", "load_before", "load_after"])
    return rows


def ensure(size: str) -> Path:
    path = DATA / f"exposure-{size}"
    if (path / "events.parquet").exists():
        return path
    customers, interactions = SIZES[size]
    print(f"generating {size}: {customers:,} customers, {interactions:,} interactions ...",
          flush=True)
    res = run_child(MAKE.format(customers=customers, interactions=interactions,
                                path=str(path), source=str(PROF[size])), timeout=7200)
    if "error" in res:
        raise SystemExit(f"could not generate the {size} data: {res['error']}")
    return path


def measure(size: str, name: str, *, method: str, runs: int, error: float,
            threads: int = 0, attribution: int = 512, min_seeds: int = 0,
            budget: float | str | None = "default", code: str | None = None) -> dict[str, Any]:
    """One exposure run in a fresh process; ``code``: a source tree (e.g. a ``git archive``
    of main) to import carenet from instead of this checkout (the "before" rows)."""
    path = ensure(size)
    out = str(DATA / f"exposure-{size}" / f"{name}.npy")
    load = os.getloadavg()[0]
    res = run_child(RUN.format(path=str(path), method=method, runs=runs, error=error,
                               threads=threads, attribution=attribution, out=out,
                               min_seeds=min_seeds, budget=budget, code=code or ""),
                    timeout=6 * 3600)
    row = {"size": size, "estimator": name, "load_before": load, **res}
    if "seconds" in res and res.get("runs"):
        row["ms_per_world"] = 1000 * res["seconds"] / res["runs"]
    print(json.dumps(row), flush=True)
    return row


def agreement(size: str, a: str, b: str) -> float | None:
    """Largest |a - b| over customers in units of the two half-widths added."""
    import numpy as np

    pa, pb = (DATA / f"exposure-{size}" / f"{x}.npy" for x in (a, b))
    if not (pa.exists() and pb.exists()):
        return None
    x, y = np.load(pa), np.load(pb)
    tol = (x[2] - x[1]) / 2 + (y[2] - y[1]) / 2
    return float((np.abs(x[0] - y[0]) / np.maximum(tol, 1e-12)).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers")
    ap.add_argument("--only-big", action="store_true", help="only 1M customers")
    ap.add_argument("--error", type=float, default=0.025)
    ap.add_argument("--loose-error", type=float, default=0.05,
                    help="also forward at this looser target (0: skip)")
    ap.add_argument("--reverse-runs", type=int, default=2000)
    ap.add_argument("--reverse-1m", action="store_true", help="run reverse at 1M too (hours)")
    ap.add_argument("--profile", action="store_true",
                    help="also one thread and no attribution (at every size)")
    ap.add_argument("--name", default="exposure", help="JSON file name in results/")
    ap.add_argument("--before", default=None,
                    help="source tree of the code before (git archive of main): adds its rows")
    ap.add_argument("--seeds-1m", type=int, default=70_000,
                    help="at 1M, synthetic seeds are added up to this many (issue 15: 70k)")
    ap.add_argument("--fixed-worlds", type=int, default=64,
                    help="before/after at a fixed world count (attribution on all of them)")
    ap.add_argument("--no-reverse", action="store_true", help="skip the reverse estimator")
    ap.add_argument("--cascade-ratio", action="store_true",
                    help="only: ms per world against a plain cascade, one thread, 100k")
    args = ap.parse_args()
    if args.cascade_ratio:
        write_json("exposure_cascade_ratio", {"machine": machine(),
                                              "rows": cascade_ratio("100k")})
        return
    sizes = ["1M"] if args.only_big else (["100k", "1M"] if args.big else ["100k"])
    rows = []
    for size in sizes:
        extra = {"min_seeds": args.seeds_1m} if size == "1M" else {}
        if args.before:
            k = args.fixed_worlds
            rows.append(measure(size, f"before-{k}", method="forward", runs=k, error=args.error,
                                code=args.before, **extra))
            rows.append(measure(size, f"after-{k}", method="forward", runs=k, error=args.error,
                                **extra))
            if size == "100k":
                rows.append(measure(size, "before", method="forward", runs=2000,
                                    error=args.error, code=args.before))
        rows.append(measure(size, "forward", method="forward", runs=2000, error=args.error,
                            **extra))
        if args.loose_error and size == "100k":
            rows.append(measure(size, f"forward@{args.loose_error}", method="forward",
                                runs=2000, error=args.loose_error))
        if args.profile:
            rows.append(measure(size, "forward-1thread", method="forward", runs=2000,
                                error=args.error, threads=1))
            rows.append(measure(size, "forward-noattr", method="forward", runs=2000,
                                error=args.error, attribution=0))
        if (size == "100k" and not args.no_reverse) or args.reverse_1m:
            rows.append(measure(size, "reverse", method="reverse", runs=args.reverse_runs,
                                error=args.error))
            rows[-1]["max_diff_in_half_widths"] = agreement(size, "forward", "reverse")
    print()
    print_table(rows, ["size", "estimator", "customers", "seeds", "runs", "rounds", "error",
                       "error_target", "stop_reason", "seconds", "cpu_seconds", "ms_per_world",
                       "peak_mb",
                       "load_before", "load_after", "max_diff_in_half_widths"])
    path = write_json(args.name, {"machine": machine(), "error_target": args.error,
                                   "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
