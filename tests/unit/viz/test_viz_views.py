"""The interactive views: structure against the run's tables and networkx, caps, colours,
cascade steps against exact oracles, and pages that write nothing and fetch nothing.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from vizkit import external_references, nodes_by_id, small_run, view_data

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.diffusion import DiffusionGraph, monte_carlo, monte_carlo_steps
from carenet.graphs.model import CustomerGraph
from carenet.pipeline import AnalysisRun
from carenet.viz import views
from carenet.viz.data import FileLinks, ViewData, safe_name
from carenet.viz.render import _pyvis_lib_file, vis_assets
from carenet.viz.views import (
    OKABE_ITO,
    ROLE_STYLE,
    cascade_view,
    community_map,
    community_view,
    customer_view,
    step_colours,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> AnalysisRun:
    r, _ = small_run(tmp_path_factory.mktemp("viz-run"))
    return r


@pytest.fixture(scope="module")
def data(run: AnalysisRun) -> ViewData:
    return ViewData.from_run(run)


def _hex(cmap: str, x: float) -> str:
    return "#{:02X}{:02X}{:02X}".format(*(round(255 * c) for c in matplotlib.colormaps[cmap](x)[:3]))


def _undirected_weights(data: ViewData) -> nx.Graph:
    """networkx oracle: undirected tie weights w(u, v) + w(v, u)."""
    g = nx.Graph()
    ids = data.ids
    src = data.graph.sources()
    for u, v, w in zip(src.tolist(), data.graph.indices.tolist(), data.graph.weights.tolist(),
                       strict=True):
        if u == v:
            continue
        a, b = ids[u], ids[v]
        prev = g.get_edge_data(a, b, {"weight": 0.0})["weight"]
        g.add_edge(a, b, weight=prev + w)
    return g


# ---------------------------------------------------------------------------- community map
def test_community_map_sizes_colours_and_ties(data: ViewData) -> None:
    html = community_map(data)
    nodes = nodes_by_id(html)
    table = data.communities
    assert table is not None
    assert set(nodes) == set(table["community"].tolist())
    for c, size in zip(table["community"], table["size"], strict=True):
        assert nodes[c]["value"] == size
    # colour: cividis of the members' mean exposure, stretched over the communities' range
    mean = data.customers.groupby("community")["exposure"].mean()
    lo, hi = mean.min(), mean.max()
    for c, m in mean.items():
        assert nodes[c]["color"] == _hex("cividis", (m - lo) / (hi - lo))
    # edges: the total tie weight between two communities (networkx oracle)
    g = _undirected_weights(data)
    comm = dict(zip(data.ids, data.customers["community"], strict=True))
    expected: dict[tuple[int, int], float] = defaultdict(float)
    for a, b, d in g.edges(data=True):
        ca, cb = comm[a], comm[b]
        if ca != cb:
            expected[(min(ca, cb), max(ca, cb))] += d["weight"]
    got = {(min(e["from"], e["to"]), max(e["from"], e["to"])): e["value"]
           for e in view_data(html)["edges"]}
    assert set(got) == set(expected)
    for k, w in expected.items():
        assert got[k] == pytest.approx(w, rel=1e-9)


def test_community_map_aggregates_the_tail_and_links(data: ViewData) -> None:
    links = FileLinks(communities={0, 1})
    html = community_map(data, max_communities=3, links=links, score="pagerank")
    nodes = nodes_by_id(html)
    table = data.communities
    assert table is not None
    top = table.sort_values(["size", "community"], ascending=[False, True]).head(3)
    assert set(nodes) == set(top["community"]) | {"other"}
    assert nodes["other"]["value"] == table["size"].sum() - top["size"].sum()
    assert sum(n["value"] for n in nodes.values()) == len(data.customers)
    assert nodes[0]["url"] == "community-0.html"
    assert nodes[top["community"].iloc[2]]["url"] in ("", "community-1.html")
    assert "Colour: mean pagerank" in html
    assert "smaller ones" in html


# ---------------------------------------------------------------------------- community view
def test_community_view_top_by_influence_coloured_by_role(data: ViewData) -> None:
    labels = data.customers["community"].to_numpy()
    c = 0
    members = data.customers[labels == c]
    cap = 10
    assert len(members) > cap
    html = community_view(data, c, max_nodes=cap)
    nodes = nodes_by_id(html)
    customers = {k: n for k, n in nodes.items() if k in set(data.ids)}
    top = members.sort_values(["influence", "customer_id"], ascending=[False, True]).head(cap)
    assert set(customers) == set(top["customer_id"])
    role = dict(zip(data.ids, data.customers["role"], strict=True))
    for cid, n in customers.items():
        assert n["color"] == ROLE_STYLE[role[cid]][0]
        assert n["shape"] == ROLE_STYLE[role[cid]][1]
        assert n["value"] == pytest.approx(float(top.set_index("customer_id").loc[cid,
                                                                                   "influence"]))
        assert ("role", role[cid]) in [tuple(x) for x in n["info"]]
    # the rest is one node, and the page says how many are shown
    assert nodes["others"]["info"][0] == ["customers", f"{len(members) - cap:,}"]
    assert f"showing the {cap} most influential" in html
    # ties between drawn members carry the undirected tie weight
    g = _undirected_weights(data)
    for e in view_data(html)["edges"]:
        if e["from"] in customers and e["to"] in customers:
            assert e["value"] == pytest.approx(g[e["from"]][e["to"]]["weight"])
    # neighbouring communities are boxes linking out
    assert any(str(k).startswith("community:") for k in nodes)


def test_community_view_small_community_has_everyone_and_no_aggregate(data: ViewData) -> None:
    counts = data.customers["community"].value_counts()
    c = int(counts.index[-1])
    html = community_view(data, c)
    nodes = nodes_by_id(html)
    members = set(data.customers.loc[data.customers["community"] == c, "customer_id"])
    assert members <= set(nodes)
    assert "others" not in nodes
    with pytest.raises(RunNotFoundError):
        community_view(data, 10_000)


# ---------------------------------------------------------------------------- customer view
def _exposed_customer(data: ViewData) -> str:
    es = data.exposure_sources
    assert es is not None and len(es)
    # a customer whose sources are not all its neighbours, to see them added
    return str(es.sort_values(["customer_id", "rank"])["customer_id"].iloc[0])


def test_customer_view_includes_exposure_sources(data: ViewData) -> None:
    cid = _exposed_customer(data)
    html = customer_view(data, cid)
    nodes = nodes_by_id(html)
    es = data.exposure_sources
    assert es is not None
    mine = es[es["customer_id"] == cid]
    for s, via in zip(mine["source_id"], mine["via_id"], strict=True):
        assert s in nodes and nodes[s]["shape"] == "triangle"
        assert via in nodes
    assert nodes[cid]["shape"] == "star"
    g = _undirected_weights(data)
    assert set(g.neighbors(cid)) <= set(nodes)  # 1 hop, under the cap: every neighbour
    # the labelled ties are the customer's strongest
    labelled = {frozenset((e["from"], e["to"])) for e in view_data(html)["edges"]
                if e.get("label")}
    strongest = sorted(g[cid].items(), key=lambda kv: -kv[1]["weight"])[:5]
    assert labelled == {frozenset((cid, v)) for v, _ in strongest}


def test_customer_view_two_hops_respects_the_cap(data: ViewData) -> None:
    g = _undirected_weights(data)
    cid = max(g.degree, key=lambda kv: kv[1])[0]
    two_hops = nx.single_source_shortest_path_length(g, cid, cutoff=2)
    cap = 15
    assert len(two_hops) > cap
    html = customer_view(data, cid, hops=2, max_nodes=cap)
    nodes = nodes_by_id(html)
    customers = [k for k in nodes if k in g]
    assert len(customers) <= cap + 10  # the cap plus at most the exposure sources kept
    es = data.exposure_sources
    assert es is not None
    extra = set(es.loc[es["customer_id"] == cid, "source_id"]) | set(
        es.loc[es["customer_id"] == cid, "via_id"])
    within = [k for k in customers if k not in extra]
    assert len(within) <= cap
    # the first hop is filled with the most strongly tied neighbours first (exposure
    # sources are kept besides the cap, so a neighbour that is one says nothing of the order)
    first = [v for v, _ in sorted(g[cid].items(), key=lambda kv: (-kv[1]["weight"], kv[0]))
             if v not in extra]
    kept = [v for v in first if v in nodes]
    assert kept == first[: len(kept)]
    assert f"showing the {len(nodes) - 1}" in html or "showing the" in html
    with pytest.raises(InvalidInputError):
        customer_view(data, cid, hops=3)
    with pytest.raises(RunNotFoundError):
        customer_view(data, "no-such-customer")


# ---------------------------------------------------------------------------- cascade view
def _toy(edges: list[tuple[int, int]], n: int) -> ViewData:
    s, t = zip(*edges, strict=True)
    g = CustomerGraph.from_edges([f"c{i}" for i in range(n)], s, t, [1.0] * len(s))
    customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)]})
    return ViewData(run_id="toy", customers=customers, graph=g)


def test_cascade_steps_on_a_path_and_a_star_are_exact() -> None:
    # weighted cascade: every customer has one in-tie, so every tie fires (p = 1)
    path = _toy([(0, 1), (1, 2), (2, 3), (3, 4)], 5)
    html = cascade_view(path, ["c0"], runs=50)
    nodes = nodes_by_id(html)
    assert [nodes[f"c{i}"]["step"] for i in range(5)] == [0, 1, 2, 3, 4]
    assert all(nodes[f"c{i}"]["probability"] == 1.0 for i in range(5))
    assert view_data(html)["cascade"]["maxStep"] == 4
    assert view_data(html)["cascade"]["curve"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    star = _toy([(0, i) for i in range(1, 7)], 7)
    nodes = nodes_by_id(cascade_view(star, ["c0"], runs=20))
    assert nodes["c0"]["step"] == 0 and nodes["c0"]["shape"] == "diamond"
    assert {nodes[f"c{i}"]["step"] for i in range(1, 7)} == {1}
    colours = step_colours(1)
    assert nodes["c1"]["color"] == colours[1] and nodes["c0"]["color"] == OKABE_ITO["black"]


def test_cascade_steps_match_the_simulation_and_are_monotone(data: ViewData) -> None:
    seeds = data.customers.sort_values("influence", ascending=False)["customer_id"].head(2)
    cap = 40
    html = cascade_view(data, list(seeds), runs=400, seed=5, max_nodes=cap)
    page = view_data(html)
    nodes = {n["id"]: n for n in page["nodes"] if n["id"] != "others"}
    assert len(nodes) == cap
    # oracle: the step-tracking simulation with the same seed gives the same medians
    dg = DiffusionGraph.from_graph(data.graph)
    pos = [data.position(c) for c in nodes]
    ref = monte_carlo_steps(dg, [data.position(s) for s in seeds], nodes=pos, runs=400, seed=5)
    med = dict(zip(ref.nodes.tolist(), ref.median_step.tolist(), strict=True))
    prob = dict(zip(ref.nodes.tolist(), ref.probability.tolist(), strict=True))
    for cid, n in nodes.items():
        assert n["step"] == min(med[data.position(cid)], views.MAX_STEP_SHOWN)
        assert n["probability"] == pytest.approx(prob[data.position(cid)])
    # drawn: the most likely reached (nobody left out is more likely than someone drawn)
    mc = monte_carlo(dg, [data.position(s) for s in seeds], runs=400, seed=5)
    p = mc.activation_probability
    drawn = [data.position(c) for c in nodes if c not in set(seeds)]
    left = np.setdiff1d(np.flatnonzero(p > 0), pos)
    assert left.size and p[left].max() <= p[drawn].min()
    assert "others" in nodes_by_id(html)
    # nobody is reached before its hop distance from the seeds (networkx oracle)
    g = nx.DiGraph(list(zip(data.graph.sources().tolist(), data.graph.indices.tolist(),
                            strict=True)))
    dist = nx.multi_source_dijkstra_path_length(g, {data.position(s) for s in seeds})
    for cid, n in nodes.items():
        assert n["step"] >= min(dist[data.position(cid)], views.MAX_STEP_SHOWN)
    # the curve is non-decreasing and starts with the seeds
    curve = page["cascade"]["curve"]
    assert curve[0] == pytest.approx(2.0)
    assert all(b >= a for a, b in itertools.pairwise(curve))


def test_cascade_view_hooks_and_bad_seeds(data: ViewData) -> None:
    cid = str(data.ids[0])
    html = cascade_view(data, [cid], runs=50)
    for hook in ('id="graph"', 'id="legend"', 'id="details"', 'id="step"', 'id="play"',
                 "window.carenetView"):
        assert hook in html
    with pytest.raises(RunNotFoundError):
        cascade_view(data, ["nobody"])
    with pytest.raises(InvalidInputError):
        cascade_view(data, [])


# ---------------------------------------------------------------------------- no files, no network
def _all_views(data: ViewData) -> dict[str, str]:
    cid = _exposed_customer(data)
    links = FileLinks()
    return {
        "map": community_map(data, links=links),
        "community": community_view(data, 0, links=links),
        "customer": customer_view(data, cid, hops=2, links=links),
        "cascade": cascade_view(data, [cid], runs=100, links=links),
    }


def test_rendering_writes_no_file_and_references_no_url(
    data: ViewData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _all_views(data)  # warm caches (numba, matplotlib) before watching
    monkeypatch.chdir(tmp_path)
    real_open, real_os_open = builtins.open, os.open
    writes: list[str] = []

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(ch in mode for ch in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    pages = _all_views(data)
    monkeypatch.undo()
    assert writes == []
    assert list(tmp_path.iterdir()) == []
    for name, html in pages.items():
        assert external_references(html) == [], name
        assert html.lstrip().startswith("<!DOCTYPE html>")
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
        assert 'id="title"' in html and 'id="legend"' in html
        for n in view_data(html)["nodes"]:
            url = n.get("url", "")
            assert "://" not in url and not url.startswith("//")
    # the inlined library is pyvis's own build, unchanged apart from URL text
    js, css = vis_assets()
    original = _pyvis_lib_file("vis-network.min.js")
    assert js.replace(r":\/\/", "://") in original
    assert len(original) - len(js.replace(r":\/\/", "://")) < 100  # only the source-map line
    assert js in pages["map"] and css in pages["map"]


def test_view_options_are_seeded_and_stop_physics(data: ViewData) -> None:
    html = community_map(data)
    opts = view_data(html)["options"]
    assert opts["layout"]["randomSeed"] == views.LAYOUT_SEED
    assert opts["physics"]["stabilization"]["enabled"] is True
    assert "setOptions({ physics: false })" in html
    assert "stabilizationIterationsDone" in html
    assert community_map(data) == html  # deterministic


def test_file_links_and_safe_names() -> None:
    links = FileLinks(communities={3}, customers={"a/b"}, cascades=[("x", "y")])
    assert links.community(3) == "community-3.html" and links.community(4) == ""
    assert links.customer("a/b") == f"customer-{safe_name('a/b')}.html"
    assert "/" not in links.customer("a/b")
    assert links.customer("zz") == ""
    assert links.cascade(["y", "x"]) == links.cascade_file(["x", "y"]) != ""
    assert links.cascade(["x"]) == ""
    assert safe_name("a/b") != safe_name("a_b")


def test_view_data_checks_alignment(run: AnalysisRun) -> None:
    shuffled = run.customers.sample(frac=1.0, random_state=1).reset_index(drop=True)
    moved = AnalysisRun(**{**run.__dict__, "customers": shuffled})
    d = ViewData.from_run(moved)
    assert np.array_equal(d.ids, run.graph.ids.astype(str))
    with pytest.raises(InvalidInputError):
        ViewData(run_id="x", customers=run.customers.head(3), graph=run.graph)


def test_hostile_ids_stay_text() -> None:
    ids = ["<img src=x onerror=alert(1)>", "</script><script>alert(1)</script>", 'a"b', "c"]
    g = CustomerGraph.from_edges(ids, [0, 1, 2], [1, 2, 3], [1.0, 2.0, 3.0])
    data = ViewData(run_id="x", graph=g, customers=pd.DataFrame({
        "customer_id": ids, "community": [0] * 4, "role": ["member"] * 4,
        "influence": [1.0, 2.0, 3.0, 4.0]}))
    pages = [community_map(data, score="influence"), community_view(data, 0),
             customer_view(data, ids[1], hops=2), cascade_view(data, [ids[0]], runs=10)]
    for html in pages:
        assert "<img" not in html and "<script>alert" not in html
        assert html.count("</script>") == 3  # vis-network, the data block, the view script
    # the ids come back intact through the JSON block
    for html in pages[1:]:
        assert set(ids) <= set(nodes_by_id(html))


def test_views_of_one_graph_with_two_tables_do_not_mix(data: ViewData) -> None:
    community_view(data, 0)  # fills the first table's lookups
    other = data.customers.copy()
    other["reason"] = "a reason only the second table has"
    second = ViewData(run_id="second", customers=other, graph=data.graph)
    assert "a reason only the second table has" in community_view(second, 0)
    assert "a reason only the second table has" not in community_view(data, 0)
