"""Static plots of a run (matplotlib, SVG or PNG): what the report shows next to the views.

* :func:`influence_distribution`: how influence is spread over customers (log scale: a few
  customers carry most of it);
* :func:`exposure_distribution`: how many customers are how exposed;
* :func:`community_sizes`: customers per community, largest first;
* :func:`influence_vs_pagerank`: where the two rankings agree and where they do not, by role;
* :func:`care_comparison`: value protected by the care plan against priority, degree,
  PageRank and random picks (the care step's ``care_comparison`` table);
* :func:`lift_curve`: the backtest's lift and capture curves per score (``lift_curve.csv``
  written by ``carenet backtest``: ``score, fraction, lift, captured``);
* :func:`value_capture_curves`: what a care team buys, per cutoff: lift and the share of
  churned value captured by the top K% for priority, risk alone, value alone, degree and
  PageRank (the ``value_captured`` column of ``lift_curve.csv``); :func:`read_backtest_summary`
  reads the 5% numbers of ``backtest.json`` the report tabulates next to it.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state), in colour-blind-safe colours (Okabe-Ito); :func:`to_svg` / :func:`to_png` /
:func:`data_uri` turn them into bytes for a file or for inlining in a page. Nothing here
writes a file.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from carenet.errors import InvalidInputError

OKABE_ITO_CYCLE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
                   "#F0E442", "#000000")
ROLE_COLOURS = {"community hub": "#D55E00", "connector hub": "#CC79A7", "bridge": "#0072B2",
                "member": "#56B4E9", "peripheral": "#999999"}
LIFT_COLUMNS = ("score", "fraction", "lift", "captured")
_SIZE = (6.4, 3.8)


def _figure(size: tuple[float, float] = _SIZE) -> Figure:
    # fixed margins: constrained layout measures every tick label (seconds on log axes)
    fig = Figure(figsize=size)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.15, wspace=0.32)
    return fig


def _style(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as floats (NaN where not a number); a missing one is named."""
    if column not in frame:
        raise InvalidInputError(f"the customers table has no column {column!r}")
    return np.asarray(pd.to_numeric(frame[column], errors="coerce"), dtype=float)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    v = _column(frame, column)
    return v[np.isfinite(v)]


def influence_distribution(customers: pd.DataFrame) -> Figure:
    """Histogram of influence (expected other customers reached) on log-spaced bins."""
    v = _numeric(customers, "influence")
    fig = _figure()
    ax = fig.add_subplot()
    pos = v[v > 0]
    if pos.size:
        lo, hi = max(pos.min(), 1e-3), max(pos.max(), pos.min() * 1.01, 1e-3 * 1.01)
        bins = np.geomspace(lo, hi, 40).tolist()
        ax.hist(pos, bins=bins, color=OKABE_ITO_CYCLE[0], edgecolor="white", linewidth=0.4)
        ax.set_xscale("log")
        top = np.sort(v)[::-1]
        k = max(1, int(np.ceil(0.01 * v.size)))
        share = top[:k].sum() / top.sum() if top.sum() > 0 else 0.0
        ax.axvline(top[k - 1], color=OKABE_ITO_CYCLE[3], linestyle="--", linewidth=1)
        ax.text(top[k - 1], ax.get_ylim()[1] * 0.95, f"top 1%: {share:.0%} of all influence ",
                color=OKABE_ITO_CYCLE[3], va="top", ha="right", fontsize=9)
    _style(ax, f"Influence of {v.size:,} customers", "influence (other customers reached, "
           "log scale)", "customers")
    return fig


def exposure_distribution(customers: pd.DataFrame) -> Figure:
    """Histogram of exposure (probability of being reached by the recent churn and
    complaint cascade); customers who are themselves seeds are shown apart.
    """
    vals = _column(customers, "exposure")
    seed = (customers["exposure_seed"].astype(bool).to_numpy() if "exposure_seed" in customers
            else np.zeros(len(customers), bool))
    ok = np.isfinite(vals)
    fig = _figure()
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 41).tolist()
    ax.hist([vals[ok & ~seed], vals[ok & seed]], bins=bins, stacked=True,
            color=[OKABE_ITO_CYCLE[0], OKABE_ITO_CYCLE[1]], edgecolor="white", linewidth=0.4,
            label=["other customers", "with a recent churn / complaint"])
    ax.legend(frameon=False, fontsize=9)
    rest = ok & ~seed
    mean = float(vals[rest].mean()) if rest.any() else float("nan")
    _style(ax, f"Exposure (mean {mean:.3f} over customers without such an event)",
           "exposure (probability of being reached)", "customers")
    return fig


def community_sizes(sizes: pd.Series | np.ndarray, *, top: int = 60) -> Figure:
    """Bar chart of community sizes, largest first (the ``top`` largest; the rest summed)."""
    s = np.sort(np.asarray(sizes, dtype=float))[::-1]
    fig = _figure()
    ax = fig.add_subplot()
    shown = s[:top]
    ax.bar(np.arange(shown.size), shown, color=OKABE_ITO_CYCLE[2], width=0.85)
    title = f"{s.size:,} communities"
    if s.size > top:
        title += f" (the {top} largest; the other {s.size - top:,} hold {int(s[top:].sum()):,})"
    _style(ax, title, "community (largest first)", "customers")
    ax.set_xticks([])
    return fig


def influence_vs_pagerank(customers: pd.DataFrame) -> Figure:
    """Scatter of influence against PageRank (log-log), coloured by role: customers far
    from the diagonal are central without reach, or reach far without being central.
    """
    xv, yv = _column(customers, "pagerank"), _column(customers, "influence")
    role = (customers["role"].astype(str) if "role" in customers
            else pd.Series(["customer"] * len(customers)))
    fig = _figure((6.4, 4.4))
    ax = fig.add_subplot()
    ok = np.isfinite(xv) & np.isfinite(yv) & (xv > 0) & (yv > 0)
    # draw the common roles first, so that the rare ones stay visible on top
    order = role[ok].value_counts().index.tolist()
    for r in order:
        m = ok & (role == r).to_numpy()
        ax.scatter(xv[m], yv[m], s=9 if r in ("member", "peripheral") else 22,
                   color=ROLE_COLOURS.get(r, "#555555"), alpha=0.75, linewidths=0,
                   rasterized=bool(ok.sum() > 500),
                   label=f"{r} ({int(m.sum()):,})",
                   marker={"community hub": "D", "connector hub": "*", "bridge": "^"}.get(r,
                                                                                       "o"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    if ok.sum() > 2:
        rho = pd.Series(xv[ok]).rank().corr(pd.Series(yv[ok]).rank())
        ax.text(0.01, 0.98, f"Spearman rank correlation {rho:.2f}", transform=ax.transAxes,
                va="top", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="lower right", markerscale=1.5)
    _style(ax, "Influence versus PageRank", "PageRank (log)", "influence (log)")
    return fig


def read_lift_curve(path: Any) -> pd.DataFrame:
    """A backtest's ``lift_curve.csv`` (columns ``score, fraction, lift, captured``);
    a missing file or column raises :class:`~carenet.errors.InvalidInputError` naming it.
    """
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        p = p / "lift_curve.csv"
    if not p.exists():
        raise InvalidInputError(f"{p}: no such file (a backtest writes lift_curve.csv)")
    frame = pd.read_csv(p)
    missing = [c for c in LIFT_COLUMNS if c not in frame]
    if missing:
        raise InvalidInputError(f"{p}: missing column(s) {', '.join(missing)}; expected "
                                f"{', '.join(LIFT_COLUMNS)}")
    for c in ("fraction", "lift", "captured"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
        bad = frame[c].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InvalidInputError(f"{p}: line {row}, column {c}: not a number")
    return frame


def _one_backtest(curve: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One target and one cutoff of a backtest's curves (``carenet backtest`` writes one
    block per target and cutoff): churn if present, else the first target; the last cutoff.
    """
    what = []
    if "target" in curve and curve["target"].nunique() > 1:
        targets = curve["target"].astype(str)
        pick = "churn" if (targets == "churn").any() else targets.iloc[0]
        curve = curve[targets == pick]
        what.append(str(pick))
    if "cutoff" in curve and curve["cutoff"].nunique() > 1:
        last = sorted(curve["cutoff"].astype(str).unique())[-1]
        curve = curve[curve["cutoff"].astype(str) == last]
        what.append(f"cutoff {last}")
    return curve, (f" ({', '.join(what)})" if what else "")


def lift_curve(curve: pd.DataFrame) -> Figure:
    """The backtest's lift curve per score (left) and the share of churners captured when
    contacting the top fraction (right), against the random baseline.
    """
    missing = [c for c in LIFT_COLUMNS if c not in curve]
    if missing:
        raise InvalidInputError(f"lift curve: missing column(s) {', '.join(missing)}")
    curve, what = _one_backtest(curve)
    fig = _figure((8.6, 3.8))
    left, right = fig.subplots(1, 2)
    for k, (score, part) in enumerate(curve.groupby("score", sort=False)):
        part = part.sort_values("fraction")
        # yellow is too pale for a line on white; 7 colours x 3 styles tell 21 scores apart
        colours = [c for c in OKABE_ITO_CYCLE if c != "#F0E442"]
        colour = colours[k % len(colours)]
        style = ["-", "--", ":"][k % 3]
        left.plot(part["fraction"], part["lift"], color=colour, linestyle=style,
                  label=str(score))
        right.plot(part["fraction"], part["captured"], color=colour, linestyle=style,
                   label=str(score))
    left.axhline(1.0, color="#777777", linewidth=0.8)
    right.plot([0, 1], [0, 1], color="#777777", linewidth=0.8, label="chance (diagonal)")
    _style(left, "Lift" + what, "fraction of customers contacted", "lift over random")
    _style(right, "Captured", "fraction of customers contacted", "share of churners captured")
    right.legend(frameon=False, fontsize=8)
    return fig


VALUE_SERIES = ("priority", "risk", "value", "degree", "pagerank")
"""The scores of the value-capture plot (the backtest's ``VALUE_SCORES``)."""
MAX_CUTOFF_PANELS = 4


def value_capture_curves(curve: pd.DataFrame) -> Figure:
    """Lift by K% (top row) and share of churned value captured by the top K% (bottom row)
    of :data:`VALUE_SERIES`, one column per cutoff (the latest :data:`MAX_CUTOFF_PANELS`),
    target ``churn``, up to K = 50%; a dotted vertical line marks 5%.
    """
    missing = [c for c in (*LIFT_COLUMNS, "value_captured") if c not in curve]
    if missing:
        raise InvalidInputError(f"value capture: missing column(s) {', '.join(missing)}")
    data = curve
    if "target" in data and (data["target"].astype(str) == "churn").any():
        data = data[data["target"].astype(str) == "churn"]
    data = data[data["score"].astype(str).isin(VALUE_SERIES)]
    cutoffs = (sorted(data["cutoff"].astype(str).unique())[-MAX_CUTOFF_PANELS:]
               if "cutoff" in data else [None])
    fig = Figure(figsize=(3.4 * max(1, len(cutoffs)) + 0.8, 6.4))
    fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.09, wspace=0.3, hspace=0.4)
    axes = fig.subplots(2, max(1, len(cutoffs)), squeeze=False)
    for j, cut in enumerate(cutoffs):
        part = data if cut is None else data[data["cutoff"].astype(str) == cut]
        part = part[part["fraction"] <= 0.5 + 1e-12]
        top, bottom = axes[0][j], axes[1][j]
        for k, score in enumerate(VALUE_SERIES):
            rows = part[part["score"].astype(str) == score].sort_values("fraction")
            if rows.empty:
                continue
            style = {"color": OKABE_ITO_CYCLE[k], "linestyle": ["-", "--", "-.", ":", ":"][k],
                     "linewidth": 2.0 if score == "priority" else 1.3, "label": score}
            top.plot(rows["fraction"] * 100, rows["lift"], **style)
            bottom.plot(rows["fraction"] * 100, rows["value_captured"] * 100, **style)
        top.axhline(1.0, color="#777777", linewidth=0.8)
        bottom.plot([0, 50], [0, 50], color="#777777", linewidth=0.8)
        for ax in (top, bottom):
            ax.axvline(5, color="#999999", linewidth=0.7, linestyle=":")
        when = f"cutoff {str(cut)[:10]}" if cut is not None else "backtest"
        _style(top, f"Lift, {when}", "top K% contacted", "lift over random")
        _style(bottom, f"Value captured, {when}", "top K% contacted",
               "% of churned value")
    axes[0][-1].legend(frameon=False, fontsize=8)
    return fig


def read_backtest_summary(path: Any) -> list[dict[str, Any]]:
    """The 5% numbers of a backtest directory's ``backtest.json`` (none without one): per
    cutoff and value score, ``lift_5`` (churn target) and ``value_captured`` with its
    bootstrap interval, as the backtest wrote them.
    """
    import json
    from pathlib import Path

    p = Path(path)
    p = p / "backtest.json" if p.is_dir() else p.parent / "backtest.json"
    if not p.exists():
        return []
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise InvalidInputError(f"{p}: not JSON ({exc})") from None
    rows = []
    for cut in doc.get("cutoffs", []):
        lift = {m["score"]: m.get("lift_5") for m in cut.get("metrics", [])
                if m.get("target", "churn") == "churn"}
        capture = {c["score"]: c for c in
                   (cut.get("comparison", {}).get("value_capture_5") or {}).get("scores", [])}
        for score in VALUE_SERIES:
            if score in capture or score in lift:
                c = capture.get(score, {})
                rows.append({"cutoff": cut.get("cutoff"), "score": score,
                             "lift_5": lift.get(score), "value_captured": c.get("value_captured"),
                             "value_low": c.get("value_low"), "value_high": c.get("value_high")})
    return rows


def care_comparison(table: pd.DataFrame) -> Figure:
    """Value protected by the care plan against the other ways of choosing whom to contact
    (the care step's ``care_comparison``: ``strategy, k, protected, low, high``), one group
    of bars per budget k, with their intervals.
    """
    missing = [c for c in ("strategy", "k", "protected") if c not in table]
    if missing:
        raise InvalidInputError(f"care comparison: missing column(s) {', '.join(missing)}")
    strategies = list(dict.fromkeys(table["strategy"].astype(str)))
    ks = sorted({int(k) for k in table["k"]})
    fig = _figure((7.2, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(strategies))
    for j, strategy in enumerate(strategies):
        part = table[table["strategy"].astype(str) == strategy]
        k_of = [int(k) for k in part["k"]]

        def col(name: str, part: pd.DataFrame = part, k_of: list[int] = k_of
                ) -> dict[int, float]:
            return dict(zip(k_of, part[name].to_numpy(float).tolist(), strict=True))

        prot = col("protected")
        ys = [prot.get(k, np.nan) for k in ks]
        x = np.arange(len(ks)) + (j - (len(strategies) - 1) / 2) * width
        err = None
        if {"low", "high"} <= set(part.columns):
            low, high = col("low"), col("high")
            err = np.array([[ys[i] - low[k] if k in low else 0.0 for i, k in enumerate(ks)],
                            [high[k] - ys[i] if k in high else 0.0 for i, k in enumerate(ks)]])
        ax.bar(x, ys, width=width * 0.95, yerr=err, capsize=2, label=strategy,
               color=OKABE_ITO_CYCLE[j % len(OKABE_ITO_CYCLE)],
               hatch=["", "//", "..", "xx", "\\\\", "oo"][j % 6], edgecolor="white",
               linewidth=0.4)
    ax.set_xticks(np.arange(len(ks)), [f"k = {k:,}" for k in ks])
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    _style(ax, "Value protected by contacting k customers", "customers contacted",
           "expected value protected")
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as SVG text (no date, fixed id salt: the same figure gives the same text)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "carenet"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def data_uri(fig: Figure, *, fmt: str = "svg") -> str:
    """The figure as a ``data:`` URI to inline in an ``<img>`` (no file, no fetch)."""
    if fmt == "svg":
        payload, mime = to_svg(fig).encode(), "image/svg+xml"
    elif fmt == "png":
        payload, mime = to_png(fig), "image/png"
    else:
        raise InvalidInputError(f"fmt must be svg or png, not {fmt!r}")
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def run_plots(customers: pd.DataFrame, communities: pd.DataFrame | None = None,
              lift: pd.DataFrame | None = None, care: pd.DataFrame | None = None,
              ) -> dict[str, tuple[str, Figure]]:
    """The report's plots of a run: ``{name: (caption, figure)}``; a plot whose columns the
    run lacks (e.g. no influence step) is left out.
    """
    out: dict[str, tuple[str, Figure]] = {}
    if "influence" in customers:
        out["influence"] = ("How influence is spread over customers",
                            influence_distribution(customers))
    if "exposure" in customers:
        out["exposure"] = ("How exposed customers are", exposure_distribution(customers))
    if communities is not None and "size" in communities:
        out["communities"] = ("Community sizes", community_sizes(communities["size"]))
    elif "community" in customers:
        out["communities"] = ("Community sizes",
                              community_sizes(customers["community"].value_counts()))
    if "influence" in customers and "pagerank" in customers:
        out["influence-pagerank"] = ("Influence versus PageRank",
                                     influence_vs_pagerank(customers))
    if care is not None and len(care):
        out["care"] = ("Care plan against priority, degree, PageRank and random picks",
                       care_comparison(care))
    if lift is not None:
        out["lift"] = ("Backtest: lift and captured churners per score", lift_curve(lift))
        if "value_captured" in lift and lift["value_captured"].notna().any():
            out["backtest-value"] = ("Backtest: lift and share of churned value captured by "
                                     "the top K% (priority, risk, value, degree, PageRank)",
                                     value_capture_curves(lift))
    return out


__all__ = [
    "LIFT_COLUMNS", "care_comparison", "community_sizes", "data_uri", "exposure_distribution",
    "influence_distribution", "influence_vs_pagerank", "lift_curve", "read_backtest_summary",
    "read_lift_curve", "run_plots", "to_png", "to_svg", "value_capture_curves",
]
