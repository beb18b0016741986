"""Sampled betweenness and harmonic closeness: a fixed 128 sources (the code before issue 15)
against sources chosen by the error target with the default budget (``MeasuresConfig()``), at
100k and 1M customers, in the same run.

Graphs: the saved graphs of ``benchmarks/publish.py``'s runs (``carenet generate`` logs at 100k
and 1M customers, default loading). Each row runs in a fresh process that first loads the
cached numba kernels on a tiny graph. ``fixed`` rows use ``error=None`` (exactly ``samples``
sources, as before); ``target`` rows use the configuration defaults. At 1M the fixed count can
be given smaller (``--big-fixed``, default 32) so the row finishes: its seconds per source are
the figure to scale.

    .venv/bin/python benchmarks/centrality_target.py            # 100k and 1M
    .venv/bin/python benchmarks/centrality_target.py --sizes 100k

Writes ``benchmarks/results/centrality_target.json``.
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
GRAPHS = {"100k": DATA / "publish-run-100k" / "graph", "1M": DATA / "publish-run-1M" / "graph"}

CHILD = """
from carenet.config import MeasuresConfig
from carenet.graphs import centrality as cen
from carenet.graphs.model import CustomerGraph
g = CustomerGraph.load({graph!r})
tiny = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], [1.0, 2.0])
cen.shortest_path_measures(tiny, exact_max=0, samples=2, seed=1)  # load the kernel cache
cfg = MeasuresConfig()
kw = dict(exact_max=cfg.exact_max, seed=1, confidence=cfg.confidence)
if {samples} is None:
    kw |= dict(samples=cfg.samples, error=cfg.error, budget=cfg.budget)
else:
    kw |= dict(samples={samples})
t0 = time.perf_counter()
res = cen.shortest_path_measures(g, measures=("betweenness", "harmonic"), **kw)
sec = time.perf_counter() - t0
b, h = res["betweenness"], res["harmonic"]
print(json.dumps({{"seconds": sec, "customers": g.n_customers, "ties": int(g.n_ties),
                  "sources": b.samples, "cap": b.sources_cap,
                  "error_target": b.error_target,
                  "error_betweenness": b.error_reached, "error_harmonic": h.error_reached,
                  "target_met": b.target_met, "hoeffding_betweenness": b.error_bound,
                  "peak_mb": _peak_mb()}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100k,1M")
    ap.add_argument("--big-fixed", type=int, default=32)
    ap.add_argument("--only", choices=("fixed", "target"), default=None)
    ap.add_argument("--out", default="centrality_target")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    start = os.getloadavg()
    for size in args.sizes.split(","):
        fixed = 128 if size == "100k" else args.big_fixed
        for label, samples in ((f"fixed {fixed}", fixed), ("error target (defaults)", None)):
            if args.only and (samples is None) != (args.only == "target"):
                continue
            load = os.getloadavg()[0]
            res = run_child(CHILD.format(graph=str(GRAPHS[size]), samples=samples))
            row = {"size": size, "sources rule": label, "load": round(load, 1), **res}
            if "seconds" in res and res.get("sources"):
                row["s_per_source"] = res["seconds"] / res["sources"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    end = os.getloadavg()
    print()
    print_table(rows, ["size", "sources rule", "sources", "cap", "seconds", "s_per_source",
                       "error_betweenness", "error_harmonic", "target_met", "peak_mb", "load"])
    print("load average start", start, "end", end)
    write_json(args.out, {"machine": machine(), "load_start": start,
                                     "load_end": end, "rows": rows})


if __name__ == "__main__":
    main()
