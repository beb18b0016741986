"""How fast the served views open in headless Chromium, at the largest size the caps allow.

A synthetic community (``carenet generate``) large enough that every view is drawn at its cap
(the community view's and cascade view's ``max_nodes``, the customer view around the customer
with the most ties, the community map's largest number of communities) is analysed, published
to a SQLite store and served by ``uvicorn``; Debian's Chromium (Playwright) logs in and loads
each page several times. For each load it records, in ms since navigation start: the ``load``
event, the first drawing of the vis.js network (``afterDrawing``) and the end of the layout's
stabilisation (the view's ``data-stabilized``). The first load of a page includes building the
run's view data and rendering the page on the server (cold); the others are served from the
server's page cache (warm). Prints a table, writes ``benchmarks/results/views.json``.

``--screenshots`` instead analyses the shipped sample and writes the README's screenshots
(``docs/dashboard.png``, ``docs/community-view.png``, ``docs/cascade-view.png``,
``docs/community-map.png``).

    .venv/bin/python benchmarks/views.py                 # ~5 min on 2 cores
    .venv/bin/python benchmarks/views.py --screenshots
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_table, write_json  # noqa: E402
from browserkit import TIMING_SCRIPT, Watch, drawn, launch, login  # noqa: E402
from servicekit import Server  # noqa: E402

import carenet  # noqa: E402
from carenet.store import RunStore  # noqa: E402

STABILIZED_SCRIPT = """
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(() => {
    if (document.body.dataset.stabilized === "true" && window.__carenet
        && window.__carenet.settledAt == null) {
      window.__carenet.settledAt = performance.now();
    }
  }).observe(document.body, {attributes: true, attributeFilter: ["data-stabilized"]});
});
"""


def analyse(data_dir: Path) -> Any:
    cfg = carenet.AnalysisConfig.from_mapping({"measures": {"measures": ["pagerank", "core"]}})
    return carenet.analyze(data_dir / "interactions.csv", customers=data_dir / "customers.csv",
                           events=data_dir / "events.csv", config=cfg)


def generate(out: Path, customers: int, interactions: int, community_size: float,
             mean_degree: float) -> Path:
    from typer.testing import CliRunner

    from carenet.cli import app

    res = CliRunner().invoke(app, ["generate", "--out", str(out), "--customers", str(customers),
                                   "--interactions", str(interactions), "--community-size",
                                   str(community_size), "--mean-degree", str(mean_degree)])
    if res.exit_code != 0:
        raise SystemExit(f"generate failed: {res.output}")
    return out


def cached_run(args: argparse.Namespace) -> Any:
    """The analysed synthetic run, kept in benchmarks/data/ (git-ignored) between runs."""
    from carenet.pipeline import AnalysisRun

    name = (f"views-{args.customers}-{args.interactions}-{args.community_size:g}-"
            f"{args.mean_degree:g}")
    where = Path(__file__).resolve().parent / "data" / name
    if (where / "run" / "run.json").exists():
        return AnalysisRun.load(where / "run")
    t = time.perf_counter()
    data = generate(where / "input", args.customers, args.interactions, args.community_size,
                    args.mean_degree)
    run = analyse(data)
    run.save(where / "run")
    print(f"analysed {run.graph.n_customers:,} customers, {run.graph.n_ties:,} ties in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    return run


def targets(run: Any) -> dict[str, str]:
    """The page of each view at its largest: the biggest community, the customer with the
    most ties, the most influential seeds."""
    c = run.customers
    biggest = c["community"].value_counts().index[0]
    deg = c["degree_in"] + c["degree_out"]
    hub = str(c.loc[deg.idxmax(), "customer_id"])
    seeds = c.sort_values("influence", ascending=False)["customer_id"].astype(str).head(3)
    return {
        "dashboard": "/dashboard",
        "community map": "/pages/community-map",
        "community view": f"/pages/communities/{biggest}",
        "customer view": f"/pages/customers/{quote(hub, safe='')}?hops=2",
        "cascade view": f"/pages/cascade?seeds={','.join(seeds)}&runs=2000",
    }


def one_load(page: Any, url: str, watch: Watch, *, graph: bool) -> dict[str, Any]:
    watch.clear()
    t0 = time.perf_counter()
    response = page.goto(url, wait_until="load", timeout=600_000)
    if response is None or response.status != 200:
        raise SystemExit(f"{url}: HTTP {response.status if response else '?'}")
    out: dict[str, Any] = {}
    if graph:
        page.wait_for_function("() => window.__carenet && window.__carenet.drawnAt !== null "
                               "&& window.__carenet.settledAt != null", timeout=600_000)
    out["wall_ms"] = (time.perf_counter() - t0) * 1000
    timing = page.evaluate(
        """() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const c = window.__carenet || {};
          const v = window.carenetView;
          return {response_ms: nav.responseEnd, load_ms: nav.loadEventEnd,
                  bytes: nav.transferSize || nav.encodedBodySize,
                  drawn_ms: c.drawnAt, stabilized_ms: c.settledAt,
                  nodes: v ? v.nodes.length : null, edges: v ? v.edges.length : null};
        }""")
    out.update(timing)
    if graph:
        colours, share = drawn(page.locator("#graph").screenshot())
        out["drawn_ok"] = colours > 20 and share > 0.01
    problems = watch.problems()
    if problems:
        raise SystemExit(f"{url}: {problems}")
    return out


def serve(run: Any, tmp: Path) -> tuple[Server, str]:
    url = f"sqlite:///{tmp / 'store.db'}"
    store = RunStore(url)
    store.publish(run)
    _, key = store.create_key("reader", "views benchmark")
    store.close()
    return Server(url, tmp).start(), key


def benchmark(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = cached_run(args)
        server, key = serve(run, tmp)
        rows = []
        try:
            with sync_playwright() as p:
                browser = launch(p)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_init_script(TIMING_SCRIPT)
                context.add_init_script(STABILIZED_SCRIPT)
                page = context.new_page()
                watch = Watch().attach(page)
                login(page, server.url, key)
                for name, path in targets(run).items():
                    graph = name != "dashboard"
                    loads = [one_load(page, server.url + path, watch, graph=graph)
                             for _ in range(args.repeat + 1)]
                    cold, warm = loads[0], loads[1:]
                    row: dict[str, Any] = {"page": name, "path": path,
                                           "nodes": cold.get("nodes"),
                                           "edges": cold.get("edges"),
                                           "kB": round((cold.get("bytes") or 0) / 1024)}
                    for key_ in ("response_ms", "load_ms", "drawn_ms", "stabilized_ms",
                                 "wall_ms"):
                        vals = [w[key_] for w in warm if w.get(key_) is not None]
                        row[key_] = statistics.median(vals) if vals else None
                        row[f"cold_{key_}"] = cold.get(key_)
                    row["drawn_ok"] = all(w.get("drawn_ok", True) for w in loads)
                    row["runs"] = len(warm)
                    rows.append(row)
                    print(f"  {name}: warm median wall {row['wall_ms']:.0f} ms, cold "
                          f"{cold['wall_ms']:.0f} ms", flush=True)
                browser.close()
        finally:
            server.stop()
    print()
    print_table(rows, ["page", "nodes", "edges", "kB", "cold_wall_ms", "response_ms", "load_ms",
                       "drawn_ms", "stabilized_ms", "wall_ms"])
    payload = {
        "benchmark": "views",
        "machine": machine(),
        "what": "ms since navigation start in headless Chromium (median of warm loads; "
                "cold_* = first load, server builds the run's view data and renders)",
        "graph": {"customers": int(run.graph.n_customers), "ties": int(run.graph.n_ties),
                  "generate": {"customers": args.customers, "interactions": args.interactions,
                               "community_size": args.community_size,
                               "mean_degree": args.mean_degree}},
        "rows": rows,
    }
    print(f"\nwrote {write_json('views', payload)}")


def screenshots(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    run = analyse(ROOT / "data" / "sample")
    c = run.customers
    community = c["community"].value_counts().index[1]
    seeds = c.sort_values("influence", ascending=False)["customer_id"].astype(str).head(2)
    shots = {
        "dashboard.png": ("/dashboard", False),
        "community-map.png": ("/pages/community-map", True),
        "community-view.png": (f"/pages/communities/{community}", True),
        "cascade-view.png": (f"/pages/cascade?seeds={','.join(seeds)}&runs=2000", True),
    }
    with tempfile.TemporaryDirectory() as d:
        server, key = serve(run, Path(d))
        try:
            with sync_playwright() as p:
                browser = launch(p)
                context = browser.new_context(viewport={"width": 1280, "height": 860})
                page = context.new_page()
                watch = Watch().attach(page)
                login(page, server.url, key)
                for name, (path, graph) in shots.items():
                    page.goto(server.url + path)
                    if graph:
                        page.wait_for_selector("body[data-stabilized=true]", state="attached",
                                               timeout=60_000)
                        page.wait_for_timeout(300)
                        if name == "cascade-view.png":  # a step in the middle of the cascade
                            page.eval_on_selector(
                                "#step", "el => { el.value = String(Math.ceil(el.max / 2)); "
                                "el.dispatchEvent(new Event('input', {bubbles: true})); }")
                        node = page.evaluate("() => window.carenetView.nodes.getIds()[0]")
                        page.evaluate("(id) => window.carenetView.show && "
                                      "window.carenetView.show(id)", node)
                    page.screenshot(path=str(docs / name), full_page=False)
                    print(f"wrote {docs / name}")
                if watch.problems():
                    raise SystemExit(f"problems while taking screenshots: {watch.problems()}")
                browser.close()
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # ~156 communities of ~320 customers with ~24 ties each: the map's 150 communities, the
    # community view's 300 customers and the views' 3,000 ties are all reached
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--interactions", type=int, default=1_200_000)
    ap.add_argument("--community-size", type=float, default=320.0)
    ap.add_argument("--mean-degree", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=5, help="warm loads per page")
    ap.add_argument("--screenshots", action="store_true",
                    help="write the README's screenshots instead of measuring")
    args = ap.parse_args()
    if args.screenshots:
        screenshots(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
