"""The local Spark JVM's JIT setting: client compiler only vs the default tiers, side by side.

Two processes started at the same moment (so they share the machine's load), each a local[2]
session with the flags under test, each loading CollegeMsg in Spark and running the distributed
path's DataFrame iterations twice (cold, then warm): 5 PageRank steps and 5 label-propagation
steps. ``c1``: ``-XX:TieredStopAtLevel=1 -XX:+UseSerialGC`` (carenet's local flags before stop
19); ``tiered``: ``-XX:+UseSerialGC`` (after). Prints a table and writes
``benchmarks/results/spark-jit.json``. Quote the load average.

    nice -n 5 .venv/bin/python benchmarks/spark_jit.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json

FLAGS = {"c1": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", "tiered": "-XX:+UseSerialGC"}
CHILD = r'''
import json, sys, time, warnings
warnings.simplefilter("ignore")
from carenet.spark import session as S
S.LOCAL_JVM_FLAGS = sys.argv[1]
from carenet.spark.load import load_logs
from carenet.spark import distributed as D
t0 = time.perf_counter()
spark = S.get_session("local[2]")
out = {"start": time.perf_counter() - t0}
t = time.perf_counter()
load = load_logs(spark, [sys.argv[2]])
ties = load.ties.select("src", "dst", "weight").cache()
n = int(load.nodes.count()); ties.count()
out["load"] = time.perf_counter() - t
for rep in ("cold", "warm"):
    t = time.perf_counter(); D.pagerank(spark, ties, n, damping=0.5, tol=0.0, max_iter=5)
    out[f"pagerank_5_{rep}"] = time.perf_counter() - t
    t = time.perf_counter(); D.label_propagation(spark, ties, n, max_iter=5, check_every=5)
    out[f"lpa_5_{rep}"] = time.perf_counter() - t
out["total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out), flush=True)
spark.stop()
'''


def main() -> None:
    log = Path(__file__).resolve().parents[2] / "shared/datasets/snap-collegemsg/CollegeMsg.txt"
    if not log.exists():
        log = Path("/work/shared/datasets/snap-collegemsg/CollegeMsg.txt")
    before = os.getloadavg()[0]
    procs = {name: subprocess.Popen([sys.executable, "-c", CHILD, flags, str(log)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)
             for name, flags in FLAGS.items()}
    rows = []
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=3600)
        line = next(x for x in out.splitlines() if x.startswith("RESULT "))
        rows.append({"jit": name, "flags": FLAGS[name]} | json.loads(line[7:]))
    after = os.getloadavg()[0]
    print(f"CollegeMsg, local[2], both settings at once; load average {before:.1f} -> "
          f"{after:.1f}")
    print_table(rows, ["jit", "start", "load", "pagerank_5_cold", "lpa_5_cold",
                       "pagerank_5_warm", "lpa_5_warm", "total"])
    path = write_json("spark-jit", {"machine": machine(), "load_average": [before, after],
                                    "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
