"""Interactive graph views of a run, each one self-contained HTML string (pyvis + vis-network).

Four views, for care strategists who would rather look than read:

* :func:`community_map`: one node per community, sized by members, coloured by the mean of a
  score (exposure by default), joined by the tie weight between communities;
* :func:`community_view`: a community's customers, sized by influence, coloured (and shaped)
  by role, with the ties between them and the communities it is most tied to;
* :func:`customer_view`: a customer's ego network (1 or 2 hops), coloured by exposure, with
  the customers its exposure comes from highlighted and its strongest ties labelled;
* :func:`cascade_view`: a what-if cascade from chosen seeds, customers coloured by the step at
  which they are reached (median over the simulated runs), with a step slider and a play
  button.

Each function returns the page as a string and writes nothing (the report and the API decide
where pages go). Pages need no network: vis-network is inlined from the pyvis package and a
Content-Security-Policy forbids fetches (see :mod:`carenet.viz.render`).

Caps (so that a page stays responsive in a browser): the community map draws the
:data:`MAP_MAX_COMMUNITIES` largest communities and aggregates the rest into one "other" node;
the community view draws the :data:`COMMUNITY_MAX_NODES` most influential members and
aggregates the rest into one node; the customer view draws at most
:data:`CUSTOMER_MAX_NODES` customers, keeping the most strongly tied; the cascade view draws
the seeds and the customers most likely reached, up to :data:`CASCADE_MAX_NODES`, and
aggregates the rest. Every view draws at most :data:`MAX_EDGES` ties (the strongest). Layouts
are seeded (``layout.randomSeed``) and physics stops once the layout has stabilised.

Colours are readable with colour-vision deficiency: Okabe-Ito for roles (with a distinct
shape per role as well), cividis for scores and viridis for cascade steps.

Hooks for browser tests and embedding pages: ``<div id="graph">``, ``id="legend"``,
``id="details"`` (filled when a node is hovered or clicked), ``id="step"`` and ``id="play"``
(cascade view), and ``window.carenetView`` = ``{network, nodes, edges, kind, stabilized,
step, show(id), open(id)}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.diffusion import DiffusionGraph, monte_carlo_steps
from carenet.graphs.ties import TieModel
from carenet.viz.data import NoLinks, ViewData, ViewLinks
from carenet.viz.render import render_page

MAP_MAX_COMMUNITIES = 150
"""Communities drawn on the community map; smaller ones are aggregated into "other"."""
COMMUNITY_MAX_NODES = 300
"""Customers drawn in a community view (the most influential); the rest become one node."""
CUSTOMER_MAX_NODES = 200
"""Customers drawn in a customer view (the most strongly tied within the hops)."""
CASCADE_MAX_NODES = 300
"""Customers drawn in a cascade view (seeds and the most likely reached)."""
MAX_EDGES = 3000
"""Ties drawn in any view (the strongest)."""
MAX_STEP_SHOWN = 12
"""Cascade steps told apart by colour; later ones share the last colour ("12+")."""
LAYOUT_SEED = 7

# Okabe & Ito (2008), "Color universal design"; shapes make roles distinct without colour too
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
    "reddish purple": "#CC79A7", "black": "#000000", "grey": "#999999",
}
ROLE_STYLE: dict[str, tuple[str, str]] = {
    "community hub": (OKABE_ITO["vermillion"], "diamond"),
    "connector hub": (OKABE_ITO["reddish purple"], "star"),
    "bridge": (OKABE_ITO["blue"], "triangle"),
    "member": (OKABE_ITO["sky blue"], "dot"),
    "peripheral": ("#BBBBBB", "dot"),
}
_UNKNOWN_ROLE = (OKABE_ITO["grey"], "dot")
_AGGREGATE = "#D9D9D9"
_FADED = "#EDEDED"
_SOURCE = OKABE_ITO["vermillion"]


# ---------------------------------------------------------------------------- small helpers
def fmt(x: Any, digits: int = 3) -> str:
    """A number as a person reads it (ints with separators, floats to a few digits)."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "-"
    if v != 0 and abs(v) < 10 ** -(digits - 1):
        return f"{v:.{digits - 1}e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{max(0, digits - 1)}f}"


@cache
def _palette(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _hex(rgba: Sequence[float]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*(round(255 * float(c)) for c in rgba[:3]))


def score_colours(values: np.ndarray, *, cmap: str = "cividis") -> tuple[list[str], float, float]:
    """Hex colours of ``values`` on a colour-blind-safe scale, with the (low, high) used;
    NaN gets grey.
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    span = hi - lo if hi > lo else 1.0
    cm = _palette(cmap)
    out = [_hex(cm((x - lo) / span)) if np.isfinite(x) else OKABE_ITO["grey"] for x in v]
    return out, lo, hi


def _gradient(cmap: str, stops: int = 9) -> str:
    cm = _palette(cmap)
    return ", ".join(_hex(cm(i / (stops - 1))) for i in range(stops))


def step_colours(max_step: int) -> list[str]:
    """One viridis colour per cascade step 1..max_step (index 0 is the seeds' black)."""
    cm = _palette("viridis")
    k = max(1, max_step)
    # stop at 0.9: viridis' last yellow is hard to see on white
    return [OKABE_ITO["black"]] + [_hex(cm(0.9 * (s - 1) / max(1, k - 1))) for s in
                                   range(1, k + 1)]


def _options(n_nodes: int, *, directed: bool, seed: int = LAYOUT_SEED) -> dict[str, Any]:
    """vis-network options: seeded layout, forceAtlas2 physics that stabilises and stops."""
    return {
        "autoResize": True,
        "layout": {"randomSeed": int(seed), "improvedLayout": n_nodes <= 100},
        "physics": {
            "enabled": True,
            "solver": "forceAtlas2Based",
            "forceAtlas2Based": {"gravitationalConstant": -60, "centralGravity": 0.01,
                                 "springLength": 110, "springConstant": 0.08,
                                 "avoidOverlap": 0.3},
            "stabilization": {"enabled": True, "iterations": 400 if n_nodes <= 150 else 250,
                              "updateInterval": 50, "fit": True},
            "minVelocity": 0.75,
        },
        "interaction": {"hover": True, "tooltipDelay": 120, "hideEdgesOnDrag": n_nodes > 150,
                        "navigationButtons": False, "keyboard": False},
        "nodes": {
            "shape": "dot", "borderWidth": 1,
            "scaling": {"min": 8, "max": 40, "label": {"enabled": False}},
            "font": {"size": 14, "face": "system-ui, sans-serif", "color": "#1b1b1b",
                     "strokeWidth": 3, "strokeColor": "#ffffff"},
        },
        "edges": {
            "smooth": False,
            "color": {"color": "#9E9E9E", "highlight": "#333333", "hover": "#333333",
                      "opacity": 0.75},
            "scaling": {"min": 1, "max": 8, "label": {"enabled": False}},
            "arrows": {"to": {"enabled": bool(directed), "scaleFactor": 0.45}},
            "font": {"size": 12, "align": "top", "strokeWidth": 3, "strokeColor": "#ffffff"},
        },
    }


def _network(directed: bool) -> Any:
    """A pyvis network as the container of a view's nodes (pyvis is only a builder here;
    the page is rendered by :func:`carenet.viz.render.render_page`).
    """
    from pyvis.network import Network

    return Network(directed=directed, notebook=False, cdn_resources="in_line")


def _add_node(net: Any, node_id: str | int, label: str, **attrs: Any) -> None:
    """Add a node through pyvis (which turns an empty label into the id: restore it)."""
    net.add_node(node_id, label=label or " ", **attrs)
    net.node_map[node_id]["label"] = label


def _tooltip(heading: str, info: list[tuple[str, str]], reason: str = "") -> str:
    lines = [heading] + [f"{k}: {v}" for k, v in info]
    if reason:
        lines.append(reason)
    return "\n".join(lines)


def _sym(data: ViewData) -> sp.csr_array:
    """Undirected tie weights (w(u, v) + w(v, u)), cached on the graph."""
    def build() -> sp.csr_array:
        a = data.graph.csr
        return sp.csr_array(a if not data.graph.directed else (a + a.T))

    # derived from the graph alone: shared by every view of it
    return data.graph.derived("viz.sym", build)


def _ties_among(data: ViewData, nodes: np.ndarray, *, directed: bool = False,
                max_edges: int = MAX_EDGES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, weights) of the ties between the given positions, strongest first,
    at most ``max_edges``; undirected ties once (u < v) unless ``directed``.
    """
    m = data.graph.csr if directed else _sym(data)
    sub = sp.coo_array(m[nodes][:, nodes])
    r, c, w = nodes[sub.row], nodes[sub.col], sub.data.astype(float)
    keep = (r != c) & (w > 0)
    if not directed:
        keep &= r < c
    r, c, w = r[keep], c[keep], w[keep]
    order = np.lexsort((c, r, -w))[:max_edges]
    return r[order], c[order], w[order]


_INFO_COLUMNS = ("role", "community", "priority", "priority_rank", "influence",
                 "influence_low", "influence_high", "exposure", "risk", "pagerank", "value",
                 "degree_in", "degree_out", "reason")


def _info_table(data: ViewData) -> dict[str, list[Any]]:
    """The columns hover lines use, as Python lists (cached: row access through pandas is
    the slow part of drawing hundreds of nodes).
    """
    return data.derived("info", lambda: {c: data.customers[c].tolist() for c in _INFO_COLUMNS
                                         if c in data.customers})


def _customer_info(data: ViewData, i: int) -> tuple[list[tuple[str, str]], str]:
    """Hover/detail lines of a customer: scores, role, community, and its priority reason."""
    row = {c: v[int(i)] for c, v in _info_table(data).items()}
    info: list[tuple[str, str]] = []
    if "role" in row:
        info.append(("role", str(row["role"])))
    if "community" in row:
        info.append(("community", fmt(row["community"])))
    if "priority" in row:
        info.append(("priority", fmt(row["priority"])))
        if "priority_rank" in row:
            info.append(("priority rank", fmt(row["priority_rank"])))
    if "influence" in row:
        text = fmt(row["influence"])
        if "influence_low" in row and "influence_high" in row:
            text += f" ({fmt(row['influence_low'])}-{fmt(row['influence_high'])})"
        info.append(("influence", text))
    if "exposure" in row:
        info.append(("exposure", fmt(row["exposure"])))
    if "risk" in row:
        info.append(("risk", fmt(row["risk"])))
    for name in ("pagerank", "value", "degree_in", "degree_out"):
        if name in row:
            info.append((name.replace("_", " "), fmt(row[name])))
    reason = row.get("reason")
    return info, reason if isinstance(reason, str) else ""


def _role_style(role: Any) -> tuple[str, str]:
    return ROLE_STYLE.get(str(role), _UNKNOWN_ROLE)


def _role_legend(roles: Sequence[str]) -> dict[str, Any]:
    present = [r for r in ROLE_STYLE if r in set(roles)]
    extra = sorted(set(roles) - set(ROLE_STYLE))
    items = [{"label": r, "color": ROLE_STYLE[r][0], "shape": _shape_css(ROLE_STYLE[r][1])}
             for r in present]
    items += [{"label": r, "color": _UNKNOWN_ROLE[0], "shape": "dot"} for r in extra]
    return {"title": "Colour and shape: role", "items": items}


def _shape_css(shape: str) -> str:
    return {"dot": "dot", "diamond": "diamond", "star": "diamond", "triangle": "triangle",
            "box": "box", "square": "box"}.get(shape, "dot")


def _edge(u: Any, v: Any, w: float, *, title: str, **extra: Any) -> dict[str, Any]:
    return {"from": u, "to": v, "value": float(w), "title": title, **extra}


def _links(links: ViewLinks | None) -> ViewLinks:
    return NoLinks() if links is None else links


def _int_arg(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInputError(f"{name} must be an integer >= {low}, not {value!r}")
    return int(value)


# ---------------------------------------------------------------------------- community map
def community_map(
    data: ViewData,
    *,
    score: str = "exposure",
    links: ViewLinks | None = None,
    max_communities: int = MAP_MAX_COMMUNITIES,
    seed: int = LAYOUT_SEED,
) -> str:
    """The community map: one node per community (size = members, colour = mean ``score``
    of its members), edges weighted by the ties between communities; clicking a community
    opens its view (``links.community``). The ``max_communities`` largest are drawn; the
    others are one "other" node.
    """
    max_communities = _int_arg("max_communities", max_communities)
    links = _links(links)
    labels = data.community_labels()
    if (labels < 0).all():
        raise InvalidInputError("this run has no communities (the community step did not run)")
    if not data.has(score):
        numeric = [c for c in data.customers.columns
                   if pd.api.types.is_numeric_dtype(data.customers[c])
                   and not pd.api.types.is_bool_dtype(data.customers[c])]
        raise InvalidInputError(f"score: no column {score!r}; numeric columns: "
                                f"{', '.join(numeric)}")
    ids = np.unique(labels[labels >= 0])
    counts = np.bincount(labels[labels >= 0], minlength=int(ids.max()) + 1)
    table = data.communities
    size = {int(c): int(counts[c]) for c in ids}
    if table is not None and {"community", "size"} <= set(table.columns):
        size.update({int(c): int(s) for c, s in zip(table["community"], table["size"],
                                                    strict=True)})
    order = sorted(size, key=lambda c: (-size[c], c))
    shown = order[:max_communities]
    tail = order[max_communities:]
    values = data.column(score)
    ok = labels >= 0
    sums = np.bincount(labels[ok], weights=np.nan_to_num(values[ok]), minlength=counts.size)
    known = np.bincount(labels[ok], weights=np.isfinite(values[ok]).astype(float),
                        minlength=counts.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean: np.ndarray = np.where(known > 0, sums / np.where(known > 0, known, 1.0), np.nan)
    slot = np.full(counts.size, -1, np.int64)
    slot[shown] = np.arange(len(shown))
    other = len(shown)
    if tail:
        slot[tail] = other
    node_means = [float(mean[c]) for c in shown]
    if tail:
        t = np.asarray(tail)
        node_means.append(float(sums[t].sum() / known[t].sum()) if known[t].sum() else np.nan)
    colours, lo, hi = score_colours(np.asarray(node_means))
    rows = (table.set_index("community") if table is not None and "community" in table
            else None)

    net = _network(directed=False)
    for k, c in enumerate(shown):
        info = [("customers", fmt(size[c])), (f"mean {score}", fmt(mean[c]))]
        if rows is not None and c in rows.index:
            r = rows.loc[c]
            for col, name in (("density", "density"), ("conductance", "conductance"),
                              ("value_mean", "mean value"),
                              ("negative_share", "recent churn/complaint share"),
                              ("hubs", "hubs"), ("bridges", "bridges"),
                              ("top_customers", "top customers")):
                v = r[col] if col in r.index else None
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    info.append((name, str(v).replace(";", ", ") if isinstance(v, str)
                                 else fmt(v)))
        url = links.community(int(c))
        heading = f"Community {c}"
        _add_node(net, int(c), f"{c}", value=size[c], color=colours[k], title=_tooltip(
            heading, info), heading=heading, info=info, url=url,
            linkText=f"Open community {c}")
    if tail:
        members = sum(size[c] for c in tail)
        info = [("communities", fmt(len(tail))), ("customers", fmt(members)),
                (f"mean {score}", fmt(node_means[-1]))]
        heading = f"{len(tail)} smaller communities"
        _add_node(net, "other", f"other ({len(tail)})", value=members, color=colours[-1],
                  shape="box", title=_tooltip(heading, info), heading=heading, info=info,
                  url="")

    # ties between communities (each undirected tie once)
    g = data.graph
    src, dst = g.sources(), g.indices
    a, b = slot[labels[src]], slot[labels[dst]]
    w = np.asarray(g.weights, dtype=float)
    keep = (a >= 0) & (b >= 0) & (a != b) & (labels[src] >= 0) & (labels[dst] >= 0)
    a, b, w = a[keep], b[keep], w[keep]
    lo_, hi_ = np.minimum(a, b), np.maximum(a, b)
    key = lo_ * (other + 1) + hi_
    uniq, inv = np.unique(key, return_inverse=True)
    tot: np.ndarray = np.bincount(inv, weights=w).astype(float)
    if not g.directed:
        tot = tot / 2.0
    order_e = np.lexsort((uniq, -tot))[:MAX_EDGES]
    node_id: list[int | str] = [int(c) for c in shown] + (["other"] if tail else [])
    net.edges = [
        _edge(node_id[int(uniq[e] // (other + 1))], node_id[int(uniq[e] % (other + 1))],
              float(tot[e]), title=f"tie weight {fmt(float(tot[e]))}")
        for e in order_e
    ]
    n_comm = len(order)
    note = (f"{n_comm:,} communities, {int(counts.sum()):,} customers."
            + (f" The {len(shown)} largest are drawn; {len(tail)} smaller ones "
               f"({sum(size[c] for c in tail):,} customers) are the 'other' node."
               if tail else ""))
    legend: list[dict[str, Any]] = [
        {"title": f"Colour: mean {score} of the members", "gradient": _gradient("cividis"),
         "low": fmt(lo), "high": fmt(hi)},
        {"title": "Size: customers in the community",
         "items": [{"label": "tie weight between communities (line width)",
                    "color": "#9E9E9E", "shape": "line"}]
         + ([{"label": "other: the smaller communities together", "color": _AGGREGATE,
              "shape": "box"}] if tail else []),
         "note": "Click a community to open its view." if any(
             links.community(int(c)) for c in shown) else ""},
    ]
    return render_page(
        kind="community-map", title="Community map", subtitle=f"run {data.run_id}",
        note=note, nodes=net.nodes, edges=net.edges,
        options=_options(len(net.nodes), directed=False, seed=seed), legend=legend,
        details_hint="Point at a community to see its figures; click it to open its view.",
    )


# ---------------------------------------------------------------------------- community view
def community_view(
    data: ViewData,
    community: int,
    *,
    max_nodes: int = COMMUNITY_MAX_NODES,
    links: ViewLinks | None = None,
    neighbours: int = 8,
    seed: int = LAYOUT_SEED,
) -> str:
    """A community's customers: sized by influence, coloured and shaped by role, ties
    weighted by strength. Only the ``max_nodes`` most influential are drawn when it is
    larger (the page says how many); the others are one node. Its ``neighbours`` most tied
    communities are drawn as boxes that link to their views.
    """
    max_nodes = _int_arg("max_nodes", max_nodes)
    links = _links(links)
    labels = data.community_labels()
    members = np.flatnonzero(labels == int(community))
    if members.size == 0:
        raise RunNotFoundError(f"no community {community!r} in run {data.run_id}")
    by = "influence" if data.has("influence") else "pagerank"
    score = np.nan_to_num(data.column(by), nan=0.0)
    ranked = members[np.lexsort((members, -score[members]))]
    shown = np.sort(ranked[:max_nodes])
    rest = ranked[max_nodes:]
    roles = (data.customers["role"].astype(str).to_numpy() if data.has("role")
             else np.full(len(data.customers), "unknown", dtype=object))
    label_top = set(ranked[:25].tolist())
    ids = data.ids

    net = _network(directed=False)
    for i in shown:
        colour, shape = _role_style(roles[i])
        info, reason = _customer_info(data, int(i))
        cid = str(ids[i])
        _add_node(net, cid, cid if i in label_top else "", value=max(float(score[i]), 0.0),
                  color=colour, shape=shape, title=_tooltip(cid, info, reason), heading=cid,
                  info=info, reason=reason, url=links.customer(cid),
                  linkText=f"Open {cid}'s view")
    r, c, w = _ties_among(data, shown)
    edges = [_edge(str(ids[u]), str(ids[v]), wt, title=f"tie weight {fmt(wt)}")
             for u, v, wt in zip(r, c, w, strict=True)]

    sym = _sym(data)
    if rest.size:
        heading = f"{rest.size:,} other members"
        info = [("customers", fmt(int(rest.size))),
                (f"their total {by}", fmt(float(score[rest].sum())))]
        _add_node(net, "others", f"{rest.size:,} others", value=0.0, color=_AGGREGATE,
                  shape="box", title=_tooltip(heading, info), heading=heading, info=info,
                  url="")
        block = sym[shown][:, rest]
        tot = np.asarray(block.sum(axis=1)).ravel()
        for i, t in zip(shown, tot, strict=True):
            if t > 0:
                edges.append(_edge(str(ids[i]), "others", float(t),
                                   title=f"ties to the other members {fmt(float(t))}",
                                   dashes=True))
    # the most tied other communities, as links out
    out_ties = sp.coo_array(sym[shown])
    lab = labels[out_ties.col]
    outside = (lab != int(community)) & (lab >= 0)
    near: list[int] = []
    if outside.any():
        o_lab = lab[outside]
        o_w = out_ties.data[outside].astype(float)
        o_row = shown[out_ties.row[outside]]
        uniq_c, inv_c = np.unique(o_lab, return_inverse=True)
        tot_c: np.ndarray = np.bincount(inv_c, weights=o_w).astype(float)
        pick = np.lexsort((uniq_c, -tot_c))[:neighbours]
        near = [int(uniq_c[j]) for j in pick]
        for j in pick:
            cc = int(uniq_c[j])
            heading = f"Community {cc}"
            info = [("tie weight with this community", fmt(float(tot_c[j]))),
                    ("customers", fmt(int((labels == cc).sum())))]
            _add_node(net, f"community:{cc}", f"community {cc}", value=0.0,
                      color="#FFFFFF", shape="box", title=_tooltip(heading, info),
                      heading=heading, info=info, url=links.community(cc),
                      linkText=f"Open community {cc}")
        sel = np.isin(o_lab, near)
        pair = o_row[sel].astype(np.int64) * (int(labels.max()) + 1) + o_lab[sel]
        uniq_p, inv_p = np.unique(pair, return_inverse=True)
        tot_p = np.bincount(inv_p, weights=o_w[sel])
        for key, wt in zip(uniq_p.tolist(), tot_p.tolist(), strict=True):
            row_i, cc = divmod(int(key), int(labels.max()) + 1)
            edges.append(_edge(str(ids[row_i]), f"community:{cc}", float(wt),
                               title=f"ties to community {cc}: {fmt(float(wt))}",
                               dashes=True))
    edges.sort(key=lambda e: -e["value"])
    net.edges = edges[:MAX_EDGES]

    note = (f"{members.size:,} customers"
            + (f"; showing the {shown.size:,} most influential, the other {rest.size:,} "
               "are drawn as one node" if rest.size else "")
            + f". Size: {by}; lines: tie strength.")
    present_roles = sorted({str(roles[i]) for i in shown})
    legend: list[dict[str, Any]] = [
        _role_legend(present_roles),
        {"title": f"Size: {by}", "items": [
            {"label": "tie (width: strength)", "color": "#9E9E9E", "shape": "line"},
            {"label": "ties to other members or communities", "color": "#9E9E9E",
             "shape": "dashed"},
            {"label": "another community (click to open)", "color": "#FFFFFF", "shape": "box"},
        ] + ([{"label": "the members not drawn", "color": _AGGREGATE, "shape": "box"}]
             if rest.size else [])},
    ]
    to_map = getattr(links, "community_map", None)
    nav = [("Community map", str(to_map()))] if callable(to_map) else []
    return render_page(
        kind="community", title=f"Community {int(community)}",
        subtitle=f"run {data.run_id}", note=note, nodes=net.nodes, edges=net.edges,
        options=_options(len(net.nodes), directed=False, seed=seed), legend=legend, nav=nav,
        details_hint="Point at a customer to see its scores, role and priority reason.",
    )


# ---------------------------------------------------------------------------- customer view
def _ego(data: ViewData, ego: int, hops: int, cap: int,
         must: Sequence[int]) -> tuple[np.ndarray, dict[int, int], int]:
    """Up to ``cap`` positions around ``ego``: the ego, the ``must`` nodes, then first-hop
    neighbours by tie weight, then second-hop ones by their strongest tie into the first hop.
    Returns (positions, hop of each, customers within the hops).
    """
    sym = _sym(data)
    hop: dict[int, int] = {ego: 0}
    chosen = [ego]
    for m in must:
        if m not in hop:
            hop[m] = -1  # placed outside the hops (exposure source)
            chosen.append(m)
    row = sym[[ego]]
    nb1 = row.indices[row.indices != ego]
    w1 = row.data[row.indices != ego]
    order = nb1[np.lexsort((nb1, -w1))]
    within = set(order.tolist())
    for v in order:
        if len(chosen) >= cap:
            break
        if int(v) in hop and hop[int(v)] >= 0:
            continue
        hop[int(v)] = 1
        if int(v) not in chosen:
            chosen.append(int(v))
    if hops >= 2 and order.size:
        sub = sp.coo_array(sym[order])
        best: dict[int, float] = {}
        for v, wt in zip(sub.col.tolist(), sub.data.tolist(), strict=True):
            if v == ego or v in within:
                continue
            if wt > best.get(v, 0.0):
                best[v] = wt
        within |= set(best)
        for v in sorted(best, key=lambda x: (-best[x], x)):
            if len(chosen) >= cap:
                break
            if v in hop and hop[v] >= 0:
                continue
            hop[v] = 2
            if v not in chosen:
                chosen.append(v)
    return np.asarray(chosen, dtype=np.int64), hop, len(within)


def customer_view(
    data: ViewData,
    customer_id: str,
    *,
    hops: int = 1,
    max_nodes: int = CUSTOMER_MAX_NODES,
    links: ViewLinks | None = None,
    labelled_ties: int = 5,
    seed: int = LAYOUT_SEED,
) -> str:
    """A customer's ego network (``hops`` = 1 or 2), at most ``max_nodes`` customers keeping
    the most strongly tied; coloured by exposure; the customers its exposure comes from
    (the run's ``exposure_sources``) are drawn as triangles, with the neighbour the exposure
    arrives through; its ``labelled_ties`` strongest ties carry their weight.
    """
    if hops not in (1, 2):
        raise InvalidInputError(f"hops must be 1 or 2, not {hops!r}")
    max_nodes = _int_arg("max_nodes", max_nodes, 2)
    links = _links(links)
    ego = data.position(customer_id)
    ids = data.ids
    cid = str(ids[ego])
    sources = pd.DataFrame()
    if data.exposure_sources is not None and len(data.exposure_sources):
        es = data.exposure_sources
        sources = es[es["customer_id"].astype(str) == cid].head(10)
    src_pos = [data.position(s) for s in sources.get("source_id", pd.Series(dtype=str))]
    via_pos = [data.position(v) for v in sources.get("via_id", pd.Series(dtype=str))
               if isinstance(v, str) and v]
    must = list(dict.fromkeys(src_pos + via_pos))
    nodes, hop, within = _ego(data, ego, hops, max_nodes, must)
    exposure = data.column("exposure")
    colours, lo, hi = score_colours(exposure[nodes])
    share = ({data.position(s): float(x) for s, x in zip(sources["source_id"],
                                                           sources["share"], strict=True)}
             if len(sources) else {})
    roles = (data.customers["role"].astype(str).to_numpy() if data.has("role")
             else np.full(len(data.customers), "", dtype=object))
    net = _network(directed=False)
    for k, i in enumerate(nodes.tolist()):
        info, reason = _customer_info(data, i)
        name = str(ids[i])
        h = hop[i]
        if i == ego:
            shape, border, extra = "star", 3, {}
            info = [("this customer", "yes"), *info]
        elif i in share:
            shape, border = "triangle", 3
            info = [("share of the exposure", fmt(share[i])), *info]
            extra = {"color": {"background": colours[k], "border": _SOURCE,
                               "highlight": {"background": colours[k], "border": _SOURCE}}}
        else:
            shape, border, extra = "dot", 1, {}
        if h > 0:
            info.append(("hops away", str(h)))
        value = 3.0 if i == ego else (2.0 if i in share else 1.0)
        attrs: dict[str, Any] = {"color": colours[k], **extra}
        _add_node(net, name, name if (i == ego or i in share or h == 1) else "",
                  value=value, shape=shape, borderWidth=border,
                  title=_tooltip(name, info, reason), heading=name, info=info,
                  reason=reason, url="" if i == ego else links.customer(name),
                  linkText=f"Open {name}'s view", role=str(roles[i]), hop=h, **attrs)
    r, c, w = _ties_among(data, nodes)
    ego_ties = [(u, v, wt) for u, v, wt in zip(r.tolist(), c.tolist(), w.tolist(),
                                                strict=True) if ego in (u, v)]
    strongest = {(u, v) for u, v, _ in sorted(ego_ties, key=lambda t: -t[2])[:labelled_ties]}
    edges = []
    for u, v, wt in zip(r.tolist(), c.tolist(), w.tolist(), strict=True):
        e = _edge(str(ids[u]), str(ids[v]), wt, title=f"tie weight {fmt(wt)}")
        if (u, v) in strongest:
            e["label"] = fmt(wt)
            e["font"] = {"size": 13}
        edges.append(e)
    # exposure paths: source -> (via) -> this customer, dashed where there is no direct tie
    present = {(e["from"], e["to"]) for e in edges} | {(e["to"], e["from"]) for e in edges}
    for _, row in sources.iterrows():
        s = str(row["source_id"])
        via = str(row["via_id"]) if isinstance(row.get("via_id"), str) and row["via_id"] else cid
        for a, b in ((s, via), (via, cid)):
            if a != b and (a, b) not in present:
                edges.append({"from": a, "to": b, "value": 1.0, "dashes": True,
                              "color": {"color": _SOURCE}, "arrows": "to",
                              "title": f"exposure path from {s}"})
                present |= {(a, b), (b, a)}
    net.edges = edges[:MAX_EDGES]

    drawn = nodes.size
    note = (f"{'1 hop' if hops == 1 else '2 hops'}: {within:,} customers"
            + (f"; showing the {drawn - 1:,} most strongly tied" if within > drawn - 1 else "")
            + (f"; {len(share)} exposure source(s) highlighted" if share else
               "; no exposure sources recorded for this customer")
            + f". The {len(strongest)} strongest ties carry their weight.")
    community = (int(data.customers["community"].iloc[ego]) if data.has("community")
                 else None)
    nav = []
    if community is not None and community >= 0:
        nav.append((f"Community {community}", links.community(community)))
    nav.append(("Cascade from this customer", links.cascade([cid])))
    legend: list[dict[str, Any]] = [
        {"title": "Colour: exposure", "gradient": _gradient("cividis"), "low": fmt(lo),
         "high": fmt(hi)},
        {"title": "Shape", "items": [
            {"label": f"{cid} (this customer)", "color": "#666666", "shape": "diamond"},
            {"label": "exposure source (red border)", "color": _SOURCE, "shape": "triangle"},
            {"label": "neighbour", "color": "#666666", "shape": "dot"},
            {"label": "tie (width: strength; label: weight)", "color": "#9E9E9E",
             "shape": "line"},
            {"label": "exposure path", "color": _SOURCE, "shape": "dashed"},
        ]},
    ]
    return render_page(
        kind="customer", title=f"Customer {cid}", subtitle=f"run {data.run_id}", note=note,
        nodes=net.nodes, edges=net.edges,
        options=_options(len(net.nodes), directed=False, seed=seed), legend=legend, nav=nav,
        details_hint="Point at a customer to see its scores, role and priority reason.",
    )


# ---------------------------------------------------------------------------- cascade view
def cascade_view(
    data: ViewData,
    seeds: Sequence[str],
    *,
    model: str = "ic",
    runs: int = 1000,
    seed: int = 0,
    max_nodes: int = CASCADE_MAX_NODES,
    links: ViewLinks | None = None,
    protected: Sequence[str] | None = None,
    edge_model: str | None = None,
    recovery: float | None = None,
    max_steps: int = 50,
    layout_seed: int = LAYOUT_SEED,
) -> str:
    """A what-if cascade from ``seeds`` (customer ids): ``runs`` simulations (``model`` ic,
    lt or sir; the run's edge model unless ``edge_model``); customers coloured by the median
    step at which the runs that reach them do so, sized by the probability of being reached.
    Draws the seeds and the customers most likely reached, up to ``max_nodes``; the step
    slider (``id="step"``) and play button (``id="play"``) show the cascade step by step.
    """
    max_nodes = _int_arg("max_nodes", max_nodes, 1)
    runs = _int_arg("runs", runs)
    links = _links(links)
    seed_list = list(dict.fromkeys(str(s) for s in seeds))
    if not seed_list:
        raise InvalidInputError("seeds: give at least one customer id")
    s_pos = np.unique([data.position(s) for s in seed_list]).astype(np.int64)
    p_pos = np.unique([data.position(s) for s in (protected or [])]).astype(np.int64)
    # the one what-if implementation (run.what_if): the run's tie model, recovery, confidence
    from carenet.run import what_if

    params = data.parameters if isinstance(data.parameters, dict) else {}
    sim = what_if(data.graph, params, [str(x) for x in data.ids[s_pos]],
                  protected=[str(x) for x in data.ids[p_pos]], model=model, runs=runs,
                  seed=seed, recovery=recovery, edge_model=edge_model, max_steps=max_steps)
    ties = TieModel.from_mapping(params.get("influence")).with_edge_model(edge_model)
    dg = DiffusionGraph.from_graph(data.graph, **ties.kwargs())
    rec = float(sim.recovery) if sim.recovery is not None else 1.0
    prob = sim.activation_probability
    p = prob.copy()
    p[s_pos] = -1.0
    reached = np.flatnonzero(p > 0)
    k = max(0, max_nodes - s_pos.size)
    top = reached[np.lexsort((reached, -p[reached]))][:k]
    shown = np.concatenate([s_pos, np.sort(top)])
    rest = np.setdiff1d(reached, top)
    steps = monte_carlo_steps(dg, s_pos, nodes=shown, model=model, runs=runs, seed=seed,
                              protected=p_pos, recovery=rec, max_steps=max_steps)
    slot = {int(v): j for j, v in enumerate(steps.nodes.tolist())}
    median = steps.median_step
    mean = steps.mean_step
    node_step = {int(v): int(median[slot[int(v)]]) for v in shown}
    max_step = max([s for s in node_step.values() if s >= 0] + [1])
    max_step = min(max_step, MAX_STEP_SHOWN)
    palette = step_colours(max_step)
    ids = data.ids
    roles = (data.customers["role"].astype(str).to_numpy() if data.has("role")
             else np.full(len(data.customers), "", dtype=object))
    seed_set = set(s_pos.tolist())
    net = _network(directed=True)
    for i in shown.tolist():
        name = str(ids[i])
        st = min(node_step[i], max_step)
        j = slot[i]
        info = [("reached in", f"{100 * float(prob[i]):.1f}% of {runs:,} runs"),
                ("median step", ("seed" if i in seed_set else
                                 (f"{node_step[i]}" if node_step[i] >= 0 else "-"))),
                ("mean step", fmt(float(mean[j])) if i not in seed_set else "0")]
        cinfo, reason = _customer_info(data, i)
        info += [x for x in cinfo if x[0] in ("role", "community", "influence", "exposure",
                                               "priority")]
        _add_node(net, name, name if (i in seed_set or prob[i] >= 0.5) else "",
                  value=float(prob[i]), color=palette[st] if st >= 0 else OKABE_ITO["grey"],
                  shape="diamond" if i in seed_set else "dot", step=st,
                  probability=float(prob[i]), role=str(roles[i]),
                  title=_tooltip(name, info, reason), heading=name, info=info,
                  reason=reason, url=links.customer(name), linkText=f"Open {name}'s view")
    r, c, w = _ties_among(data, shown, directed=True)
    pr = _tie_probabilities(dg, r, c)
    net.edges = [_edge(str(ids[u]), str(ids[v]), float(pp),
                       title=f"tie weight {fmt(wt)}, activation probability {fmt(pp)}")
                 for u, v, wt, pp in zip(r.tolist(), c.tolist(), w.tolist(), pr.tolist(),
                                         strict=True)]
    if rest.size:
        expected_rest = float(prob[rest].sum())
        heading = f"{rest.size:,} more customers"
        info = [("customers reached in some run", fmt(int(rest.size))),
                ("expected reached among them", fmt(expected_rest))]
        _add_node(net, "others", f"{rest.size:,} more", value=0.0, color=_AGGREGATE,
                  shape="box", aggregate=True, probability=0.0, title=_tooltip(heading, info),
                  heading=heading, info=info, url="")
    curve = [float(x) for x in sim.curve[: max_step + 1]]
    expected = float(sim.expected_size) - s_pos.size
    model_name = {"ic": "independent cascade", "lt": "linear threshold", "sir": "SIR"}.get(
        model, model)
    note = (f"{model_name}, {runs:,} runs, {ties.edge_model.replace('_', ' ')} tie "
            f"probabilities: {expected:,.1f} customers reached on average besides the "
            f"{s_pos.size} seed(s). Showing the seeds and the {top.size:,} customers most "
            f"likely reached" + (f"; {rest.size:,} less likely ones are one node"
                                 if rest.size else "") + ".")
    if p_pos.size:
        note += f" Protected (never reached): {', '.join(str(ids[i]) for i in p_pos)}."
    items = [{"label": "seed", "color": palette[0], "shape": "diamond"}]
    items += [{"label": f"step {s}" + ("+" if s == max_step and s == MAX_STEP_SHOWN else ""),
               "color": palette[s], "shape": "dot"} for s in range(1, max_step + 1)]
    legend = [
        {"title": "Colour: median step at which a customer is reached", "items": items,
         "note": "Later steps are greyed out as the slider moves back."},
        {"title": "Size: probability of being reached", "items": [
            {"label": "tie (width: activation probability)", "color": "#9E9E9E",
             "shape": "line"}] + ([{"label": "customers not drawn", "color": _AGGREGATE,
                                    "shape": "box"}] if rest.size else [])},
    ]
    nav = [(f"{s}'s view", links.customer(s)) for s in seed_list[:5]]
    return render_page(
        kind="cascade", title=f"Cascade from {', '.join(seed_list[:3])}"
        + (f" and {len(seed_list) - 3} more" if len(seed_list) > 3 else ""),
        subtitle=f"run {data.run_id}", note=note, nodes=net.nodes, edges=net.edges,
        options=_options(len(net.nodes), directed=True, seed=layout_seed), legend=legend,
        nav=nav, cascade={"maxStep": max_step, "curve": curve, "faded": _FADED,
                          "total": float(sim.expected_size), "interval": 800},
        details_hint="Point at a customer to see how likely and how soon it is reached.",
    )


def _tie_probabilities(dg: DiffusionGraph, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Activation probability of the ties (r[k] -> c[k]) of the diffusion graph."""
    out = np.zeros(r.size)
    for k, (u, v) in enumerate(zip(r.tolist(), c.tolist(), strict=True)):
        lo, hi = dg.indptr[u], dg.indptr[u + 1]
        j = lo + int(np.searchsorted(dg.indices[lo:hi], v))
        if j < hi and dg.indices[j] == v:
            out[k] = dg.prob[j]
    return out


__all__ = [
    "CASCADE_MAX_NODES", "COMMUNITY_MAX_NODES", "CUSTOMER_MAX_NODES", "MAP_MAX_COMMUNITIES",
    "MAX_EDGES", "OKABE_ITO", "ROLE_STYLE", "cascade_view", "community_map", "community_view",
    "customer_view", "score_colours", "step_colours",
]
