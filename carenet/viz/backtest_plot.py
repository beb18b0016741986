"""Lift-curve plot and a small self-contained HTML page for a backtest.

:func:`plot_lift_curves` draws one panel per cutoff (lift against the share of customers
contacted, every score a line, random = 1) with matplotlib's object API (no pyplot global
state, Agg canvas) and writes ``lift_curve.svg`` and ``lift_curve.png``;
:func:`plot_value_capture` draws the churned value captured by the top 5% of each score
with its bootstrap interval (``value_capture.svg``/``.png``);
:func:`plot_value_curves` draws lift and churned value captured by the top K% of priority,
risk, value, degree and PageRank per cutoff (``value_curves.svg``/``.png``, the figure the
run report shows with ``carenet report --backtest``);
:func:`write_backtest_page` writes ``backtest.html`` with the metrics table and the SVGs inline,
so the page opens offline and needs no other file.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STYLE = {
    "value": ("#bcbd22", "-.", 1.4),
    "network_model": ("#d62728", "-", 2.4),
    "own_activity_model": ("#1f77b4", "-", 2.4),
    "recency_frequency": ("#1f77b4", ":", 1.6),
    "exposure": ("#ff7f0e", "-", 1.8),
    "priority": ("#2ca02c", "-", 1.8),
    "risk": ("#2ca02c", "--", 1.6),
    "influence": ("#9467bd", "--", 1.6),
    "degree": ("#7f7f7f", "--", 1.4),
    "pagerank": ("#8c564b", ":", 1.4),
}


def plot_lift_curves(curve: pd.DataFrame, out_dir: str | Path, *, target: str = "churn",
                     max_fraction: float = 0.5) -> tuple[Path, Path]:
    """Draw the lift curves of ``target`` (one panel per cutoff) up to ``max_fraction`` of
    the customers; returns the SVG and PNG paths.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    data = curve[curve["target"] == target] if "target" in curve else curve
    cutoffs = list(dict.fromkeys(data["cutoff"])) if "cutoff" in data else [None]
    fig = Figure(figsize=(4.6 * len(cutoffs) + 0.6, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(cutoffs), squeeze=False, sharey=True)[0]
    for ax, cut in zip(axes, cutoffs, strict=True):
        part = data if cut is None else data[data["cutoff"] == cut]
        part = part[part["fraction"] <= max_fraction + 1e-12]
        for score, rows in part.groupby("score", sort=False):
            color, dash, width = STYLE.get(str(score), ("#17becf", "-", 1.2))
            ax.plot(rows["fraction"] * 100, rows["lift"], color=color, linestyle=dash,
                    linewidth=width, label=str(score))
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="-", alpha=0.5)
        ax.set_xlabel("customers contacted, top % by score")
        ax.set_title(f"cutoff {str(cut)[:10]}" if cut is not None else "lift curve",
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max_fraction * 100)
    axes[0].set_ylabel(f"lift ({target} rate in top / overall)")
    axes[-1].legend(fontsize=7, loc="upper right")
    svg, png = d / "lift_curve.svg", d / "lift_curve.png"
    fig.savefig(svg, format="svg", metadata={"Date": None})
    fig.savefig(png, format="png", dpi=110)
    return svg, png


def plot_value_capture(capture: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Draw the share of churned value captured by the top 5% of each score (one group of
    bars per cutoff, bootstrap intervals as error bars); writes ``value_capture.svg`` and
    ``.png`` and returns their paths.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    cutoffs = list(dict.fromkeys(capture["cutoff"])) if len(capture) else []
    scores = list(dict.fromkeys(capture["score"])) if len(capture) else []
    fig = Figure(figsize=(max(4.8, 1.2 * len(cutoffs) * max(1, len(scores)) / 2.5), 3.8),
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(1, len(scores))
    for j, score in enumerate(scores):
        rows = capture[capture["score"] == score].set_index("cutoff").reindex(cutoffs)
        x = np.arange(len(cutoffs)) + (j - (len(scores) - 1) / 2) * width
        mid = rows["value_captured"].to_numpy(float) * 100
        err = np.vstack([mid - rows["value_low"].to_numpy(float) * 100,
                         rows["value_high"].to_numpy(float) * 100 - mid]).clip(min=0)
        color = STYLE.get(str(score), ("#17becf", "-", 1.2))[0]
        ax.bar(x, mid, width, yerr=err, color=color, alpha=0.85, label=str(score),
               capsize=2, error_kw={"linewidth": 0.8})
    ax.set_xticks(np.arange(len(cutoffs)), [str(c)[:10] for c in cutoffs], fontsize=8)
    ax.set_ylabel("churned value captured by top 5% (%)")
    ax.grid(axis="y", alpha=0.3)
    if scores:
        ax.legend(fontsize=7, ncols=min(5, len(scores)), loc="upper left")
    svg, png = d / "value_capture.svg", d / "value_capture.png"
    fig.savefig(svg, format="svg", metadata={"Date": None})
    fig.savefig(png, format="png", dpi=110)
    return svg, png


def plot_value_curves(curve: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Draw :func:`carenet.viz.plots.value_capture_curves` of the backtest's lift curve
    table; writes ``value_curves.svg`` and ``.png`` and returns their paths.
    """
    from carenet.viz.plots import to_png, to_svg, value_capture_curves

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    fig = value_capture_curves(curve)
    svg, png = d / "value_curves.svg", d / "value_curves.png"
    svg.write_text(to_svg(fig), encoding="utf-8")
    png.write_bytes(to_png(fig))
    return svg, png


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        x = float(v)
        return f"{x:.3f}" if abs(x) < 100 else f"{x:,.0f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return html.escape(str(v))


def write_backtest_page(summary: dict[str, Any], metrics: pd.DataFrame, out_dir: str | Path,
                        *, svg: Path | None = None, value_svg: Path | None = None,
                        curves_svg: Path | None = None) -> Path:
    """Write ``backtest.html``: the setup, the metrics table per cutoff (AUC with interval,
    lift at 1/5/10%, churners captured by K contacts), the notes, and the plots inline.
    """
    d = Path(out_dir)
    cols = ["score", "auc", "auc_low", "auc_high", "lift_1", "lift_5", "lift_10",
            "budget", "captured_at_k", "captured_share_at_k"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>carenet backtest</title><style>",
        "body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}",
        "table{border-collapse:collapse;margin:.6em 0 1.4em}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}",
        "tr.hl td{background:#fff4e5}",
        ".note{color:#666}svg{max-width:100%;height:auto}</style></head><body>",
        "<h1>Backtest</h1>",
        f"<p>Log <code>{html.escape(str(summary.get('log')))}</code>, "
        f"{_cell(summary.get('rows', {}).get('loaded'))} interactions from "
        f"{html.escape(' to '.join(summary.get('log_span', [])))}. Horizon "
        f"{summary['options']['horizon_days']:g} days; activity window "
        f"{summary['options']['lookback_days']:g} days; classifier "
        f"{html.escape(summary['options']['classifier'])}.</p>",
    ]
    for gap in summary.get("gaps", []):
        parts.append(f"<p class='note'>Gap in the log: no interactions at all from "
                     f"{html.escape(gap['start'])} to {html.escape(gap['end'])} "
                     f"({gap['days']:g} days).</p>")
    for cut in summary.get("cutoffs", []):
        lab = cut["labels"]
        parts.append(f"<h2>Cutoff {html.escape(cut['cutoff'])}</h2>")
        parts.append(
            f"<p>{lab['population']:,} active customers, {lab['churners']:,} churned "
            f"({100 * (lab['churn_rate'] or 0):.1f}%, labels from {lab['labels_from']}); "
            f"{lab.get('exposure_seeds', 0):,} earlier churners as exposure seeds; budget K = "
            f"{lab['budget']:,}.</p>")
        rows = metrics[metrics["cutoff"] == cut["cutoff"]]
        for target, part in rows.groupby("target", sort=False):
            parts.append(f"<table><caption>target: {html.escape(str(target))}</caption><tr>"
                         + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
            for rec in part.to_dict("records"):
                hl = " class='hl'" if rec["score"] in ("network_model",
                                                       "own_activity_model") else ""
                parts.append(f"<tr{hl}>" + "".join(f"<td>{_cell(rec.get(c))}</td>"
                                                   for c in cols) + "</tr>")
            parts.append("</table>")
        for name, comp in cut.get("comparison", {}).items():
            if name == "value_capture_5":
                continue
            parts.append(
                f"<p>{html.escape(name.replace('_', ' '))}: AUC difference "
                f"{_cell(comp['difference'])} ({_cell(comp['low'])} to {_cell(comp['high'])}),"
                f" p = {_cell(comp['p_value'])} (paired DeLong)</p>")
        cap = cut.get("comparison", {}).get("value_capture_5")
        if cap:
            parts.append("<table><caption>churned value captured by the top 5% (value: "
                         f"{html.escape(str(cap['value_from']))}; bootstrap interval; paired "
                         "difference to the best other score)</caption><tr><th>score</th>"
                         "<th>captured</th><th>low</th><th>high</th><th>diff low</th>"
                         "<th>diff high</th></tr>")
            for rec in cap["scores"]:
                parts.append("<tr>" + "".join(
                    f"<td>{_cell(rec.get(c))}</td>" for c in (
                        "score", "value_captured", "value_low", "value_high",
                        "diff_to_best_other_low", "diff_to_best_other_high")) + "</tr>")
            parts.append("</table>")
        for note in cut.get("notes", []):
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
    if svg is not None and svg.exists():
        text = svg.read_text(encoding="utf-8")
        start = text.find("<svg")
        parts.append("<h2>Lift curves</h2>" + text[start:])
    if value_svg is not None and value_svg.exists():
        text = value_svg.read_text(encoding="utf-8")
        parts.append("<h2>Value captured by the top 5%</h2>" + text[text.find("<svg"):])
    if curves_svg is not None and curves_svg.exists():
        text = curves_svg.read_text(encoding="utf-8")
        parts.append("<h2>Lift and churned value captured by the top K%</h2>"
                     + text[text.find("<svg"):])
    parts.append("</body></html>\n")
    path = d / "backtest.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
