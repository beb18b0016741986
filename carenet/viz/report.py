"""One HTML report of a run: summary figures, plots, the customers to look at first with
their reasons, the community table, and links to the interactive views written next to it.

``write_report(run_dir)`` writes ``RUN_DIR/report/`` (or ``out_dir``):

* ``index.html``: self-contained (plots inlined as SVG data URIs, no script, no fetch);
* ``community-map.html``; ``community-<id>.html`` for the :data:`MAX_COMMUNITY_VIEWS`
  largest communities; ``customer-<id>.html`` for the :data:`MAX_CUSTOMER_VIEWS` customers
  to look at first (by care priority when the run has it, else by influence); one
  ``cascade-<hash>.html`` from the run's top :data:`CASCADE_SEEDS` IMM seeds (or the most
  influential customers);
* ``plots/<name>.svg``: the plots as files.

Views link to each other only where the target page exists. The directory is written to a
temporary sibling and renamed into place, so a reader never sees half a report.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError
from carenet.viz import plots as plot_mod
from carenet.viz.data import FileLinks, ViewData
from carenet.viz.render import environment, version
from carenet.viz.views import cascade_view, community_map, community_view, customer_view, fmt

MAX_COMMUNITY_VIEWS = 10
MAX_CUSTOMER_VIEWS = 20
CASCADE_SEEDS = 5
TABLE_ROWS = 50
CASCADE_RUNS = 1000

Step = Callable[[str], None]


def _cell(text: Any, *, url: str = "", num: bool = False) -> dict[str, Any]:
    return {"text": text if isinstance(text, str) else fmt(text), "url": url, "num": num}


def _top_customers(data: ViewData, k: int) -> list[int]:
    return [int(i) for i in data.ranking()[:k]]


def _cascade_seeds(data: ViewData, tables: dict[str, pd.DataFrame], k: int) -> list[str]:
    seeds = tables.get("seed_sets")
    if seeds is not None and {"customer_id", "rank"} <= set(seeds.columns) and len(seeds):
        return [str(x) for x in seeds.sort_values("rank")["customer_id"].head(k)]
    if data.has("influence"):
        order = np.lexsort((np.arange(len(data.customers)),
                            -np.nan_to_num(data.column("influence"), nan=-np.inf)))
        return [str(data.ids[i]) for i in order[:k]]
    return [str(data.ids[i]) for i in _top_customers(data, k)]


def _figures(run: Any, data: ViewData) -> tuple[list[tuple[str, str]], list[str]]:
    c, s = run.counts, run.summary
    figures = [("customers", fmt(c["customers"])), ("ties", fmt(c["ties"])),
               ("interactions loaded", fmt(c["rows_loaded"])),
               ("rows rejected", fmt(c["rows_rejected"]))]
    notes: list[str] = []
    comm = run.results.get("communities") or {}
    if comm:
        figures += [("communities", fmt(comm.get("communities"))),
                    ("modularity", fmt(comm.get("modularity")))]
    infl = run.results.get("influence") or {}
    if infl:
        ex = infl.get("exposure", {})
        figures += [("customers with a recent churn / complaint", fmt(ex.get("seeds"))),
                    ("customers exposed", fmt(ex.get("exposed"))),
                    ("mean exposure", fmt(ex.get("mean_exposure")))]
        top = infl.get("influence", {}).get("top", [])
        if top:
            figures.append((f"most influential: {top[0]['customer_id']}",
                            fmt(top[0]["influence"])))
        for row in infl.get("seed_set_comparison", []):
            notes.append(f"{row['k']} seeds chosen by {row['strategy']} reach "
                         f"{fmt(row['spread'])} customers (± {fmt(row['std_error'])}).")
    care = run.results.get("care") or {}
    if isinstance(care, dict) and care.get("budget") is not None:
        figures.append(("care plan budget", fmt(care.get("budget"))))
    if s.get("components") is not None:
        notes.insert(0, f"{fmt(s['components'])} connected components; the largest holds "
                     f"{fmt(s['largest_component'])} customers.")
    return figures, notes


def _priority_table(data: ViewData, rows: list[int], links: FileLinks
                    ) -> tuple[str, str, list[tuple[str, bool]], list[list[dict[str, Any]]]]:
    by_priority = data.has("priority")
    cols: list[tuple[str, str, bool]] = [("customer_id", "customer", False)]
    if by_priority:
        cols += [("priority", "priority", True)]
    cols += [(c, c, True) for c in ("influence", "exposure", "risk", "value")
             if data.has(c)]
    cols += [(c, c, False) for c in ("role", "community") if data.has(c)]
    if data.has("reason"):
        cols.append(("reason", "reason", False))
    head = [(label, num) for _, label, num in cols]
    out = []
    for i in rows:
        r = data.customers.iloc[i]
        line = []
        for col, _, num in cols:
            v = r[col]
            if col == "customer_id":
                line.append(_cell(str(v), url=links.customer(str(v))))
            elif col == "community":
                line.append(_cell(fmt(v), url=links.community(int(v)) if int(v) >= 0 else ""))
            elif col in ("reason", "role"):
                line.append(_cell("" if not isinstance(v, str) else v))
            else:
                line.append(_cell(v, num=num))
        out.append(line)
    if by_priority:
        title = "Customers to contact first"
        note = ("By care priority (expected value protected by contacting the customer), "
                "with the reason.")
    else:
        title = "Most influential customers"
        note = ("This run has no care priority (the care step did not run): customers are "
                "ordered by influence.")
    return title, note, head, out


def _plan_table(data: ViewData, links: FileLinks
                ) -> tuple[str, list[tuple[str, bool]], list[list[dict[str, Any]]]]:
    """The care plan (the care step's ``care_plan`` table), when the run has one."""
    plan = data.care_plan
    if plan is None or not len(plan) or "customer_id" not in plan:
        return "", [], []
    if "rank" in plan:
        plan = plan.sort_values("rank")
    cols = [(c, c != "customer_id" and c not in ("reason", "role", "community"))
            for c in ("rank", "customer_id", "gain", "protected", "priority", "role",
                      "community", "reason") if c in plan]
    rows = []
    for _, r in plan.head(TABLE_ROWS).iterrows():
        line = []
        for c, num in cols:
            v = r[c]
            if c == "customer_id":
                line.append(_cell(str(v), url=links.customer(str(v))))
            elif c == "community":
                line.append(_cell(fmt(v), url=links.community(int(v)) if v >= 0 else ""))
            elif c in ("reason", "role"):
                line.append(_cell(v if isinstance(v, str) else ""))
            else:
                line.append(_cell(v, num=num))
        rows.append(line)
    note = (f"{len(plan):,} customers in plan order: gain is the expected value the contact "
            "adds, protected the running total.")
    return note, [(c.replace("_", " "), num) for c, num in cols], rows


def _community_table(data: ViewData, links: FileLinks
                     ) -> tuple[str, list[tuple[str, bool]], list[list[dict[str, Any]]]]:
    table = data.communities
    labels = data.community_labels()
    if table is None or "community" not in table:
        ids, counts = np.unique(labels[labels >= 0], return_counts=True)
        table = pd.DataFrame({"community": ids, "size": counts})
    table = table.sort_values(["size", "community"], ascending=[False, True])
    exposure = data.column("exposure")
    mean_exp = (pd.Series(exposure).groupby(labels).mean() if data.has("exposure")
                else pd.Series(dtype=float))
    cols = [("community", "community", False), ("size", "customers", True)]
    cols += [(c, label, True) for c, label in (
        ("density", "density"), ("conductance", "conductance"),
        ("value_mean", "mean value"), ("negative_share", "recent churn / complaint share"),
        ("hubs", "hubs"), ("bridges", "bridges")) if c in table]
    head = [(label, num) for _, label, num in cols]
    if data.has("exposure"):
        head.append(("mean exposure", True))
    if "top_customers" in table:
        head.append(("top customers (PageRank)", False))
    rows = []
    for _, r in table.head(TABLE_ROWS).iterrows():
        c = int(r["community"])
        line = [_cell(f"{c}", url=links.community(c))]
        line += [_cell(r[col], num=num) for col, _, num in cols[1:]]
        if data.has("exposure"):
            line.append(_cell(float(mean_exp.get(c, np.nan)), num=True))
        if "top_customers" in table:
            top = [x for x in str(r["top_customers"]).split(";") if x][:3]
            line.append(_cell(", ".join(top)))
        rows.append(line)
    note = (f"{len(table):,} communities, largest first"
            + (f" (the {TABLE_ROWS} largest shown)" if len(table) > TABLE_ROWS else "")
            + "; a linked id opens the community's view.")
    return note, head, rows


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    backtest: str | Path | None = None,
    max_community_views: int = MAX_COMMUNITY_VIEWS,
    max_customer_views: int = MAX_CUSTOMER_VIEWS,
    cascade_seeds: int = CASCADE_SEEDS,
    cascade_runs: int = CASCADE_RUNS,
    progress: Step | None = None,
) -> Path:
    """Write the HTML report of the run in ``run_dir`` and its views; returns the path of
    ``index.html``. ``out_dir`` defaults to ``RUN_DIR/report``; ``backtest`` is a backtest
    output directory (or its ``lift_curve.csv``) whose lift curve is plotted, with (when the
    backtest wrote them) its value-capture curves and a table of its 5% numbers.
    """
    from carenet.pipeline import AnalysisRun, atomic_directory

    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    lift = plot_mod.read_lift_curve(backtest) if backtest is not None else None
    summary = plot_mod.read_backtest_summary(backtest) if backtest is not None else []
    run = AnalysisRun.load(run_dir)
    data = ViewData.from_run(run)
    target = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target}: exists and is not a directory")
    with atomic_directory(target) as tmp:
        (tmp / "plots").mkdir()
        _write(run, data, tmp, lift=lift, backtest_rows=summary, say=say,
               max_community_views=max_community_views,
               max_customer_views=max_customer_views, cascade_seeds=cascade_seeds,
               cascade_runs=cascade_runs, started=t0)
    return target / "index.html"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def _backtest_rows(summary: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The backtest's 5% numbers as the report's table shows them."""
    return [{"cutoff": str(r["cutoff"]), "score": str(r["score"]),
             "lift": "-" if r["lift_5"] is None else f"{float(r['lift_5']):.2f}",
             "value": _pct(r["value_captured"]),
             "interval": ("-" if r["value_low"] is None else
                          f"{_pct(r['value_low'])} - {_pct(r['value_high'])}")}
            for r in summary]


def _write(run: Any, data: ViewData, out: Path, *, lift: pd.DataFrame | None,
           backtest_rows: list[dict[str, Any]], say: Step,
           max_community_views: int, max_customer_views: int, cascade_seeds: int,
           cascade_runs: int, started: float) -> None:
    labels = data.community_labels()
    has_communities = bool((labels >= 0).any())
    sizes = pd.Series(labels[labels >= 0]).value_counts()
    comm_ids = (sorted(sizes.index, key=lambda c: (-sizes[c], c))[:max_community_views]
                if has_communities else [])
    top = _top_customers(data, max_customer_views)
    cust_ids = [str(data.ids[i]) for i in top]
    seeds = _cascade_seeds(data, run.tables, cascade_seeds) if cascade_seeds > 0 else []
    links = FileLinks(communities={int(c) for c in comm_ids}, customers=set(cust_ids),
                      cascades=[tuple(seeds)] if seeds else [])
    views: list[tuple[str, str]] = []

    def page(name: str, html: str, text: str) -> None:
        (out / name).write_text(html, encoding="utf-8")
        views.append((text, name))

    if has_communities:
        say("community map")
        score = next((c for c in ("exposure", "pagerank", "strength_in") if data.has(c)),
                     "degree_in")
        page(FileLinks.map_file, community_map(data, score=score, links=links),
             "Community map")
        for c in comm_ids:
            say(f"community {c}")
            page(FileLinks.community_file(c), community_view(data, int(c), links=links),
                 f"Community {c} ({int(sizes[c]):,} customers)")
    for cid in cust_ids:
        say(f"customer {cid}")
        page(FileLinks.customer_file(cid), customer_view(data, cid, links=links),
             f"Customer {cid}")
    if seeds:
        say("cascade")
        page(FileLinks.cascade_file(seeds),
             cascade_view(data, seeds, runs=cascade_runs, links=links),
             f"What-if cascade from {', '.join(seeds)}")

    say("plots")
    communities = data.communities
    plot_list = []
    for name, (caption, fig) in plot_mod.run_plots(data.customers, communities, lift,
                                                      run.tables.get("care_comparison")
                                                      ).items():
        svg = plot_mod.to_svg(fig)
        (out / "plots" / f"{name}.svg").write_text(svg, encoding="utf-8")
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
        plot_list.append({"name": name, "caption": caption, "uri": uri,
                          "file": f"plots/{name}.svg"})

    say("index")
    figures, notes = _figures(run, data)
    p_title, p_note, p_head, p_rows = _priority_table(data, _top_customers(data, TABLE_ROWS),
                                                      links)
    c_note, c_head, c_rows = (_community_table(data, links) if has_communities
                              else ("This run has no communities.", [], []))
    plan_note, plan_head, plan_rows = _plan_table(data, links)
    inputs = run.inputs.get("logs") or []
    html = environment().get_template("report.html").render(
        title="carenet report", run_id=run.run_id, finished=run.finished,
        inputs=", ".join(Path(str(x)).name for x in inputs if x) or "in-memory logs",
        figures=figures, notes=notes, plots=plot_list, priority_title=p_title,
        priority_note=p_note, priority_head=p_head, priority_rows=p_rows,
        community_note=c_note, community_head=c_head, community_rows=c_rows, views=views,
        plan_note=plan_note, plan_head=plan_head, plan_rows=plan_rows,
        backtest_rows=_backtest_rows(backtest_rows), version=version(),
    )
    (out / "index.html").write_text(html, encoding="utf-8")
    say(f"done in {time.perf_counter() - started:.1f} s")


__all__ = ["CASCADE_SEEDS", "MAX_COMMUNITY_VIEWS", "MAX_CUSTOMER_VIEWS", "write_report"]
