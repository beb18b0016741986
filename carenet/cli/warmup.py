"""``carenet warmup``: compile carenet's numba kernels into their on-disk cache.

The kernels are compiled with ``cache=True``: the first process that calls one compiles it
(seconds each, about 40 s in all on 2 cores) and writes the machine code next to the module
(``__pycache__``); later processes load it in milliseconds. Without a warm-up the first
analysis after an install pays all of that, so ``make demo`` showed a first run more than
twice as long as the second. ``make`` runs this command right after installing.

It compiles by doing: a small generated community (the shipped sample's shape, 300
customers) goes through the default analysis and its HTML report, in a temporary directory,
and is published to a throwaway SQLite file there (the publisher's kernels); then the few kernels the default analysis only takes on larger graphs
(sampled betweenness and harmonic closeness) run on the same graph. Kernels are compiled
per argument type, not per size, so a small graph compiles the same code a 1M-customer
analysis runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from carenet.cli.ui import console, friendly_errors


def compile_kernels() -> dict[str, float]:
    """Run the default analysis, its report and the sampled centralities on a small generated
    community; returns seconds per phase.
    """
    from carenet.graphs import centrality as cen
    from carenet.pipeline import analyze
    from carenet.synthetic import GeneratorConfig, generate
    from carenet.viz.report import write_report

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data = generate(GeneratorConfig(customers=300, interactions=6000, seed=1))
    with tempfile.TemporaryDirectory(prefix="carenet-warmup-") as tmp:
        d = Path(tmp)
        paths = data.write(d / "data")
        run = analyze([paths["interactions"]], customers=paths["customers"],
                      events=paths["events"])
        seconds["analysis"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        run.save(d / "run")
        write_report(d / "run")
        seconds["report"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        for weighted in (True, False):
            cen.shortest_path_measures(run.graph, measures=["betweenness", "harmonic"],
                                       weighted=weighted, exact_max=0, samples=8, seed=1)
        seconds["sampled_centrality"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        # the publisher's kernels: packed ties (publishing to a throwaway SQLite file) and
        # PostgreSQL's binary COPY rows (one tiny table: compiled per type, not per size)
        import pyarrow as pa

        from carenet.store import RunStore, encode

        store = RunStore(f"sqlite:///{d / 'warmup.db'}")
        store.publish(run)
        store.close()
        encode.copy_binary(pa.table({"x": [1.0], "t": ["a"]}), ["float8", "text"])
        seconds["publish"] = time.perf_counter() - t3
    seconds["total"] = time.perf_counter() - t0
    return seconds


@friendly_errors
def warmup(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
) -> None:
    """Compile carenet's numba kernels once (``make`` runs this after installing), so the
    first analysis does not pay the compilation: runs the default analysis and report on a
    small generated community in a temporary directory (published only to a throwaway
    SQLite file there).
    """
    seconds = compile_kernels()
    if not quiet:
        console.print(f"carenet kernels compiled and cached in {seconds['total']:.1f} s "
                      f"(analysis {seconds['analysis']:.1f} s, report {seconds['report']:.1f} s)",
                      highlight=False)
