"""Roles (Guimerà-Amaral z-score and participation, plain roles) against a direct
computation, and the community summary table."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from carenet.community.roles import ROLES, RoleThresholds, roles
from carenet.community.summary import negative_customers, summarize
from carenet.errors import InvalidInputError
from carenet.graphs.centrality import undirected_view
from carenet.graphs.model import CustomerGraph


def reference_roles(g: CustomerGraph, labels: np.ndarray, weighted: bool) -> tuple:
    """z and P straight from the definitions, with networkx and Python loops."""
    gx = undirected_view(g).to_networkx()
    n = g.n_customers
    kappa = np.zeros(n)
    part = np.zeros(n)
    for v in range(n):
        per: dict[int, float] = {}
        for u, d in gx[v].items():
            if u == v:
                continue
            per[labels[u]] = per.get(labels[u], 0.0) + (d["weight"] if weighted else 1.0)
        total = sum(per.values())
        kappa[v] = per.get(labels[v], 0.0)
        part[v] = 1 - sum((x / total) ** 2 for x in per.values()) if total else 0.0
    z = np.zeros(n)
    for c in np.unique(labels):
        m = labels == c
        sd = kappa[m].std()
        z[m] = 0.0 if sd < 1e-12 else (kappa[m] - kappa[m].mean()) / sd
    return z, part


def star_of_stars() -> tuple[CustomerGraph, np.ndarray]:
    """Three communities, each a hub with leaves; hub 0 also ties to the other hubs; customer
    29 ties into all three communities."""
    s, t, w = [], [], []
    labels = []
    for c, hub in enumerate((0, 10, 20)):
        labels += [c] * 10
        for leaf in range(hub + 1, hub + 9):
            s.append(hub)
            t.append(leaf)
            w.append(1.0 + leaf % 3)
        s.append(hub + 1)
        t.append(hub + 2)
        w.append(1.0)
    s += [0, 0, 29, 29, 29]
    t += [10, 20, 1, 11, 21]
    w += [2.0, 2.0, 1.0, 1.0, 1.0]
    labels[29] = 2
    g = CustomerGraph.from_edges([f"c{i:02d}" for i in range(30)], s, t, w, directed=False)
    return g, np.array(labels)


@pytest.mark.parametrize("weighted", [True, False])
def test_z_and_participation_match_definitions(weighted: bool) -> None:
    g, labels = star_of_stars()
    r = roles(g, labels, weighted=weighted)
    z, p = reference_roles(g, labels, weighted)
    assert np.allclose(r.within_z, z, atol=1e-12)
    assert np.allclose(r.participation, p, atol=1e-12)


def test_directed_graphs_use_the_undirected_view() -> None:
    g, labels = star_of_stars()
    rng = np.random.default_rng(0)
    s, t = g.sources(), g.indices
    keep = s < t
    flip = rng.random(keep.sum()) < 0.5
    src = np.where(flip, t[keep], s[keep])
    dst = np.where(flip, s[keep], t[keep])
    d = CustomerGraph.from_edges(list(g.ids), src, dst, g.weights[keep])
    a, b = roles(g, labels), roles(d, labels)
    assert np.allclose(a.within_z, b.within_z) and np.allclose(a.participation, b.participation)


def test_plain_roles() -> None:
    g, labels = star_of_stars()
    r = roles(g, labels, thresholds=RoleThresholds(hub_z=2.0))
    role = dict(zip(g.ids.tolist(), r.role.tolist(), strict=True))
    assert role["c10"] == "community hub"  # most ties inside, far above its community
    assert role["c00"] == "connector hub"  # a hub with ties to the other hubs
    assert role["c29"] == "bridge"  # one tie into each community
    assert role["c09"] == "peripheral"  # one tie into its community
    assert role["c02"] == "member"  # two ties inside
    assert set(r.role.tolist()) <= set(ROLES)
    assert sum(r.counts().values()) == g.n_customers
    assert r.ga_class[list(g.ids).index("c29")] in ("R3", "R4")
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d


def test_thresholds_move_the_boundaries() -> None:
    g, labels = star_of_stars()
    default = roles(g, labels)
    strict = roles(g, labels, thresholds=RoleThresholds(hub_z=10.0, bridge_p=0.99))
    assert "community hub" not in strict.role.tolist() and "bridge" not in strict.role
    assert (default.role == "bridge").sum() >= 1
    loose = roles(g, labels, thresholds=RoleThresholds(peripheral_ties=2))
    assert (loose.role == "peripheral").sum() > (default.role == "peripheral").sum()


def test_isolated_customers_and_singletons() -> None:
    g = CustomerGraph.from_edges(list("abcd"), [0], [1], directed=False)
    r = roles(g, np.array([0, 0, 1, 2]))
    assert r.participation.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert r.within_z.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert r.role.tolist() == ["peripheral"] * 4  # one tie inside, or none


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"connector_p": 1.5}, "connector_p"),
    ({"bridge_p": -0.1}, "bridge_p"),
    ({"peripheral_ties": -1}, "peripheral_ties"),
])
def test_bad_thresholds(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        RoleThresholds(**kwargs)


def test_labels_must_fit() -> None:
    g, _ = star_of_stars()
    with pytest.raises(InvalidInputError, match="labels"):
        roles(g, np.zeros(3, int))


# ---------------------------------------------------------------------------- summary
def test_summary_table() -> None:
    g, labels = star_of_stars()
    pr = np.linspace(0.01, 0.3, 30)
    values = np.full(30, np.nan)
    values[:5] = [10, 20, 30, 40, 50]
    negative = np.zeros(30, bool)
    negative[[1, 2, 11]] = True
    r = roles(g, labels)
    t = summarize(g, labels, pagerank=pr, values=values, negative=negative, roles=r.role,
                  top_k=2)
    assert t["community"].tolist() == [0, 1, 2]
    assert t["size"].tolist() == [10, 10, 10]
    row = t.iloc[0]
    assert row["internal_ties"] == 9  # 8 spokes + one leaf pair
    assert row["density"] == pytest.approx(9 / 45)
    assert row["value_total"] == 150 and row["value_mean"] == 30 and row["value_known"] == 5
    assert np.isnan(t.loc[1, "value_total"])
    assert t["negative_customers"].tolist() == [2, 1, 0]
    assert t["negative_share"].tolist() == [0.2, 0.1, 0.0]
    assert row["top_customers"] == "c09;c08"
    # community 0's ties out: hub 0 -> hubs 10 and 20 (2.0 each), 29 -> 1 (1.0, 29 is in 2)
    assert row["external_weight"] == pytest.approx(5.0)
    assert row["strongest_links"] == "2:3;1:2"
    assert row["conductance"] == pytest.approx(5.0 / (2 * row["internal_weight"] + 5.0))
    assert t["hubs"].sum() + t["connector_hubs"].sum() + t["bridges"].sum() >= 1


def test_summary_without_side_tables() -> None:
    g, labels = star_of_stars()
    t = summarize(g, labels)
    assert t["value_total"].isna().all() and t["negative_share"].isna().all()
    assert (t["top_customers"] == "").all()
    assert "hubs" not in t


def test_negative_customers_window() -> None:
    events = pd.DataFrame({
        "node": [0, 1, 2, 3, 4],
        "event": ["churn", "Complaint", "promoter", "churn", "detractor"],
        "timestamp": [100.0, 950.0, 990.0, 2000.0, 500.0],
    })
    recent = negative_customers(events, 6, reference_time=1000.0, window=100.0)
    assert recent.tolist() == [False, True, False, False, False, False]  # 3 is in the future
    anytime = negative_customers(events, 6, reference_time=1000.0, window=None)
    assert anytime.tolist() == [True, True, False, False, True, False]
    # without a reference time, the newest event's time is "now"
    auto = negative_customers(events, 6, reference_time=None, window=1500.0)
    assert auto.tolist() == [False, True, False, True, False, False]  # (500, 2000]
    only = negative_customers(events, 6, reference_time=1000.0, window=None, kinds=("churn",))
    assert only.tolist() == [True, False, False, False, False, False]
    assert negative_customers(None, 6, reference_time=1.0, window=1.0) is None


def test_summary_checks_lengths() -> None:
    g, labels = star_of_stars()
    with pytest.raises(InvalidInputError, match="pagerank"):
        summarize(g, labels, pagerank=np.ones(3))
    with pytest.raises(InvalidInputError, match="top_k"):
        summarize(g, labels, top_k=-1)


def test_summary_is_consistent_with_networkx() -> None:
    g, labels = star_of_stars()
    gx = undirected_view(g).to_networkx()
    t = summarize(g, labels)
    for c in range(3):
        members = np.flatnonzero(labels == c).tolist()
        sub = gx.subgraph(members)
        assert t.loc[c, "internal_ties"] == sub.number_of_edges()
        assert t.loc[c, "density"] == pytest.approx(nx.density(sub))
        assert t.loc[c, "internal_weight"] == pytest.approx(sub.size(weight="weight"))
        cut = nx.cut_size(gx, members, weight="weight")
        assert t.loc[c, "external_weight"] == pytest.approx(cut)
