"""Views and report: render time, page size and what the demo pays for its report.

On the demo run (3,000 customers, made with ``carenet demo`` when missing) and on a larger
generated run (``--customers``, default 20,000; cached in ``benchmarks/data/viz-*``):

* each view (community map, the largest community's view, the top customer's 2-hop view, a
  cascade from the top 5 IMM seeds, 1,000 runs): median render time over ``--repeats``,
  page size, nodes and ties drawn;
* the peer: pyvis's own path for the same community view (``Network.add_node`` /
  ``add_edge`` for the same nodes and ties, ``generate_html``), timed in the same process, with
  the number of external references its page makes (CDN scripts and styles);
* ``write_report`` on the demo run (all views, plots, index), against the run's analysis
  time: the share of ``carenet demo`` spent on the report.

    .venv/bin/python benchmarks/viz.py                   # demo + 20k customers, 5 repeats
    .venv/bin/python benchmarks/viz.py --customers 100000 --repeats 3

Prints a table and writes ``benchmarks/results/viz.json``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
EXTERNAL = re.compile(r"https?://|<link\b|<script\b[^>]*\bsrc\s*=", re.I)


def _median_time(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _demo_run() -> Path:
    d = DATA / "viz-demo"
    if not (d / "run.json").exists():
        subprocess.run([str(Path(sys.executable).parent / "carenet"), "demo", "--out", str(d),
                        "--no-publish", "-q"], check=True, cwd=ROOT)
    return d


def _big_run(customers: int) -> Path:
    d = DATA / f"viz-{customers}"
    if (d / "run.json").exists():
        return d
    from carenet.config import AnalysisConfig
    from carenet.pipeline import analyze
    from carenet.synthetic import GeneratorConfig, generate

    data = generate(GeneratorConfig(customers=customers, interactions=customers * 20,
                                    timestamps="epoch", seed=11))
    paths = data.write(DATA / f"viz-{customers}-input", fmt="parquet")
    cfg = AnalysisConfig().with_overrides({"influence.epsilon": 0.2,
                                           "influence.seed_set_size": 10,
                                           "influence.compare_runs": 200})
    run = analyze(paths["interactions"], customers=paths["customers"],
                  events=paths["events"], config=cfg)
    run.save(d)
    return d


def _pyvis_peer(html_ours: str) -> tuple[float, int, int]:
    """pyvis's own path for the nodes and ties of one of our pages: (seconds, page bytes,
    external references in its page)."""
    import json

    from pyvis.network import Network

    m = re.search(r'id="carenet-data">(.*?)</script>', html_ours, re.S)
    assert m is not None
    page = json.loads(m.group(1))
    t0 = time.perf_counter()
    net = Network(directed=False, cdn_resources="in_line")
    for n in page["nodes"]:
        net.add_node(n["id"], label=n.get("label") or str(n["id"]), value=n.get("value"),
                     color=n.get("color"), shape=n.get("shape", "dot"), title=n.get("title"))
    for e in page["edges"]:
        net.add_edge(e["from"], e["to"], value=e["value"], title=e.get("title"))
    html = net.generate_html()
    return time.perf_counter() - t0, len(html.encode()), len(EXTERNAL.findall(html))


def bench_views(run_dir: Path, label: str, repeats: int) -> list[dict[str, Any]]:
    from carenet.viz.data import FileLinks, ViewData
    from carenet.viz.views import cascade_view, community_map, community_view, customer_view

    t0 = time.perf_counter()
    data = ViewData.load(run_dir)
    load = time.perf_counter() - t0
    links = FileLinks()
    seeds_t = data.ranking()[:5]
    seeds = [str(data.ids[i]) for i in seeds_t]
    top = str(data.ids[data.ranking()[0]])
    largest = int(data.customers["community"].value_counts().index[0])
    cases = {
        "community map": lambda: community_map(data, links=links),
        "community view (largest)": lambda: community_view(data, largest, links=links),
        "customer view (2 hops)": lambda: customer_view(data, top, hops=2, links=links),
        "cascade view (5 seeds, 1000 runs)": lambda: cascade_view(data, seeds, runs=1000,
                                                                  links=links),
    }
    # first call: jit cache load, matplotlib import, vis-network read (once per process)
    community_map(data)
    cascade_view(data, seeds[:1], runs=10)
    rows = [{"run": label, "what": "load run", "seconds": load,
             "customers": len(data.customers), "ties": data.graph.n_ties}]
    for name, fn in cases.items():
        sec, html = _median_time(fn, repeats)
        m = re.search(r'id="carenet-data">(.*?)</script>', html, re.S)
        import json

        page = json.loads(m.group(1)) if m else {"nodes": [], "edges": []}
        row = {"run": label, "what": name, "seconds": sec,
               "page_kb": len(html.encode()) / 1024, "nodes": len(page["nodes"]),
               "ties_drawn": len(page["edges"]), "external_refs": len(EXTERNAL.findall(html))}
        rows.append(row)
        if name.startswith("community view"):
            peer_times = []
            for _ in range(max(1, repeats // 2)):
                s, size, ext = _pyvis_peer(html)
                peer_times.append(s)
            ps = statistics.median(peer_times)
            rows.append({"run": label, "what": "  pyvis add_node/add_edge/generate_html",
                         "seconds": ps, "page_kb": size / 1024, "nodes": len(page["nodes"]),
                         "ties_drawn": len(page["edges"]), "external_refs": ext,
                         "ratio_to_carenet": ps / sec})
    return rows


def bench_report(run_dir: Path, repeats: int) -> dict[str, Any]:
    import json

    from carenet.viz.report import write_report

    out = Path(tempfile.mkdtemp(prefix="viz-bench-report-"))
    try:
        sec, _ = _median_time(lambda: write_report(run_dir, out / "r"), repeats)
        files = list((out / "r").rglob("*"))
        size = sum(f.stat().st_size for f in files if f.is_file())
        meta = json.loads((run_dir / "run.json").read_text())
        analysis = float(meta["timings"]["total"])
        return {"run": "demo", "what": "write_report (all views, plots, index)",
                "seconds": sec, "page_kb": size / 1024,
                "nodes": len([f for f in files if f.suffix == ".html"]),
                "analysis_seconds": analysis, "report_share_of_demo": sec / (sec + analysis)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-big", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    rows = bench_views(_demo_run(), "demo (3k)", args.repeats)
    if not args.skip_big:
        rows += bench_views(_big_run(args.customers), f"{args.customers // 1000}k",
                            args.repeats)
    report = bench_report(_demo_run(), max(1, args.repeats // 2))
    rows.append(report)
    print_table(rows, ["run", "what", "seconds", "page_kb", "nodes", "ties_drawn",
                       "external_refs", "ratio_to_carenet"])
    print(f"\nreport: {report['seconds']:.1f} s for {report['nodes']} pages "
          f"({report['page_kb'] / 1024:.1f} MB) against {report['analysis_seconds']:.1f} s of "
          f"analysis: {100 * report['report_share_of_demo']:.0f}% of the demo's compute")
    path = write_json("viz", {"machine": machine(), "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
