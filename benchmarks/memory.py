"""Memory benchmark: peak resident memory (VmHWM) of the default analysis, step by step and
inside the risk, influence and care steps, sub-step by sub-step.

tracemalloc does not see what numba kernels allocate, so this reads what Linux counts:
``VmHWM`` (the peak resident set) from ``/proc/self/status``, reset at every phase boundary by
writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), so each phase gets its own peak.
Phases nest: a phase's peak includes its children's; ``self`` is its peak outside them.
Phases are the pipeline's steps and the library functions they call (wrapped by name in the
modules that call them: a profiling harness, the library is unchanged), plus the sizes and
dtypes of the big arrays they return.

    .venv/bin/python benchmarks/memory.py --data /work/prof/data1m            # this checkout
    .venv/bin/python benchmarks/memory.py --data /work/prof/data1m --before /tmp/main-code

Every contender runs in a fresh process; one at a time (a 1M run peaks near 6 GiB).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json

CHILD = r"""
import os, functools, importlib
if os.environ.get("CARENET_BENCH_CODE"):  # another checkout's carenet (before/after)
    sys.path.insert(0, os.environ["CARENET_BENCH_CODE"])
import numpy as np
import carenet
from pathlib import Path

def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")

def _reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

stack = []          # [name, running peak, peak outside its children, RSS in, start]
rows = []
sizes = []
overall = [_status("VmHWM")]
t_start = time.perf_counter()

def _enter(name):
    hwm = _status("VmHWM")
    overall[0] = max(overall[0], hwm)
    if stack:
        stack[-1][1] = max(stack[-1][1], hwm)
        stack[-1][2] = max(stack[-1][2], hwm)
    _reset()
    rss = _status("VmRSS")
    stack.append([name, rss, rss, rss, time.perf_counter()])

def _exit():
    hwm = _status("VmHWM")
    overall[0] = max(overall[0], hwm)
    name, peak, own, rss0, t0 = stack.pop()
    peak = max(peak, hwm)
    own = max(own, hwm)
    rows.append({"phase": "/".join([s[0] for s in stack] + [name]), "depth": len(stack),
                 "peak_mib": round(peak, 1), "self_peak_mib": round(own, 1),
                 "rss_in_mib": round(rss0, 1), "rss_out_mib": round(_status("VmRSS"), 1),
                 "seconds": round(time.perf_counter() - t0, 2),
                 "t_end": round(time.perf_counter() - t_start, 1)})
    if stack:
        stack[-1][1] = max(stack[-1][1], peak)
    _reset()

def _describe(name, out):
    def arr(label, a):
        if isinstance(a, np.ndarray) and a.nbytes >= 8_000_000:
            sizes.append({"phase": name, "array": label, "dtype": str(a.dtype),
                          "shape": list(a.shape), "mib": round(a.nbytes / 2**20, 1)})
    for attr in ("members", "offsets", "counts", "node", "source", "via", "count", "kept"):
        v = getattr(out, attr, None)
        if v is not None and hasattr(v, "members"):
            arr(attr + ".members", v.members); arr(attr + ".offsets", v.offsets)
        else:
            arr(attr, v)
    if isinstance(out, tuple):
        for i, v in enumerate(out):
            arr(f"[{i}]", v)

def wrap(module, attr, label=None):
    path = module.split(":")
    mod = importlib.import_module(path[0])
    for part in path[1:]:  # "module:Class" wraps a method of that class
        mod = getattr(mod, part)
    fn = getattr(mod, attr, None)
    if fn is None:
        return
    name = label or attr
    @functools.wraps(fn)
    def inner(*a, **k):
        _enter(name)
        try:
            out = fn(*a, **k)
        finally:
            _exit()
        _describe(name, out)
        return out
    setattr(mod, attr, inner)

for mod, names in {
    "carenet.steps.influence": ["influence_scores", "select_seeds", "compare_seed_sets",
                                "exposure_scores", "seeds_from_events"],
    "carenet.community.influence": ["_ris_estimate", "sample_rr_sets", "greedy_max_cover",
                                    "forward_exposure", "_source_table", "_diffusion_graph",
                                    "monte_carlo", "wilson_interval"],
    "carenet.graphs.diffusion": ["_membership"],
    "carenet.steps.risk": ["fit_risk", "risk_scores", "train_risk", "risk_model"],
    "carenet.steps.care": ["care_plan", "blocking_model", "explain", "priority"],
    "carenet.community.risk": ["_fit_stack", "risk_features", "silence"],
    "carenet.community.care": ["greedy_blocking", "protected_curves"],
    "carenet.graphs.blocking": ["realise", "_greedy"],
    "carenet.store.publish:Publisher": ["publish", "_load_customers", "_load_ties",
                                        "_load_rows"],
    "carenet.store.records": ["tie_rows", "table_records", "percentiles", "join_blocks",
                              "community_documents"],
}.items():
    for a in names:
        wrap(mod, a)

from carenet.config import AnalysisConfig
import carenet.pipeline as pl
from carenet.pipeline import load_inputs
p = Path(__PATH__)
cfg = AnalysisConfig()
_enter("load")
net = load_inputs([p / "interactions.parquet"], customers=p / "customers.parquet",
                  events=p / "events.parquet", config=cfg)
_exit()
def step_wrap(name, fn):
    def inner(ctx):
        _enter(name)
        try:
            fn(ctx)
        finally:
            _exit()
    return inner
pl.STEPS = tuple((n, step_wrap(n, f)) for n, f in pl.STEPS)
_enter("analyze")
run = pl.analyze([], network=net, config=cfg, steps=__STEPS__)
_exit()
if __PUBLISH__:  # publish the run as `carenet analyze` does, each store timed and peaked
    from carenet.store import RunStore
    for url in __PUBLISH__:
        store = RunStore(url)
        _enter("publish " + url.split(":")[0])
        store.publish(run)
        _exit()
        store.close()
infl = run.results.get("influence", {})
import pandas as pd
def _hash(frame):
    return {str(c): int(pd.util.hash_pandas_object(frame[c], index=False).sum() % 2**62)
            for c in frame.columns}
hashes = {"customers": _hash(run.customers)}
hashes |= {name: _hash(t) for name, t in run.tables.items()}
out = {"code": carenet.__file__, "hashes": hashes, "rows": rows, "sizes": sizes, "timings": run.timings,
       "peak_mib": overall[0], "customers": int(run.graph.n_customers),
       "ties": int(run.graph.n_ties),
       "influence": (infl.get("influence") or {}).get("estimate"),
       "value_influence": (infl.get("influence") or {}).get("value_estimate"),
       "seed_set": {k: v for k, v in (infl.get("seed_set") or {}).items() if k != "seeds"},
       "exposure": {k: v for k, v in (infl.get("exposure") or {}).items()
                    if k != "most_exposed"}}
print(json.dumps(out))
"""


def measure(path: Path, label: str, code: str | None,
            steps: list[str] | None = None, publish: list[str] | None = None
            ) -> dict[str, Any]:
    """One default analysis of the log at ``path`` in a fresh process, with phase peaks."""
    load0 = os.getloadavg()
    env = {"CARENET_BENCH_CODE": code} if code else None
    child = (CHILD.replace("__PATH__", repr(str(path))).replace("__STEPS__", repr(steps))
             .replace("__PUBLISH__", repr(publish or [])))
    res = run_child(child, timeout=4 * 3600, env=env)
    res |= {"label": label, "load_before": load0, "load_after": os.getloadavg()}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="a generated log directory (interactions, customers, events Parquet)")
    ap.add_argument("--before", help="directory holding another checkout's carenet package, "
                    "measured first in the same run")
    ap.add_argument("--name", default=None, help="results file name (default: memory-<data>)")
    ap.add_argument("--steps", nargs="+", default=None,
                    help="only these analysis steps (default: all), e.g. centrality "
                    "communities risk")
    ap.add_argument("--publish", nargs="+", default=None, metavar="URL",
                    help="then publish the run to these stores (sqlite:///..., "
                    "postgresql+psycopg://...), in the same process")
    ap.add_argument("--depth", type=int, default=3, help="deepest phase level printed")
    args = ap.parse_args()
    runs = {}
    for label, code in ([("before", args.before)] if args.before else []) + [("after", None)]:
        res = measure(args.data, label, code, args.steps, args.publish)
        runs[label] = res
        if "error" in res:
            print(label, "error:", res["error"])
            continue
        print(f"\n{label}: {res['code']}  peak {res['peak_mib']:,.0f} MiB  "
              f"load {res['load_before'][0]:.2f} -> {res['load_after'][0]:.2f}")
        print_table([r for r in res["rows"] if r["depth"] <= args.depth],
                    ["phase", "peak_mib", "self_peak_mib", "rss_in_mib", "rss_out_mib",
                     "seconds"])
        if res["sizes"]:
            print()
            print_table(res["sizes"], ["phase", "array", "dtype", "shape", "mib"])
    if len(runs) == 2 and all("hashes" in r for r in runs.values()):
        before, after = runs["before"]["hashes"], runs["after"]["hashes"]
        diff = sorted(f"{t}.{c}" for t in before.keys() | after.keys()
                      for c in before.get(t, {}).keys() | after.get(t, {}).keys()
                      if before.get(t, {}).get(c) != after.get(t, {}).get(c))
        runs["after"]["columns_differing_from_before"] = diff
        print("\nresult columns differing from before:", diff or "none (bit for bit)")
    out = write_json(args.name or f"memory-{args.data.name}",
                     {"machine": machine(), "data": str(args.data), "runs": runs})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
