"""Invariants of the centralities on random graphs (hypothesis): PageRank is a probability
distribution, and no measure depends on how customers are numbered or ties are ordered."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carenet.graphs import centrality as cen
from carenet.graphs.model import CustomerGraph

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def graphs(draw: st.DrawFn, *, min_n: int = 2, max_n: int = 25) -> tuple[CustomerGraph, list]:
    """A random weighted graph (directed or not) and the raw edge list that built it."""
    n = draw(st.integers(min_n, max_n))
    directed = draw(st.booleans())
    m = draw(st.integers(0, 3 * n))
    edges = draw(st.lists(
        st.tuples(st.integers(0, n - 1), st.integers(0, n - 1),
                  st.sampled_from([0.5, 1.0, 2.0, 3.0, 0.25])),
        min_size=m, max_size=m,
    ))
    edges = [(u, v, w) for u, v, w in edges if u != v]
    ids = [f"c{i:03d}" for i in range(n)]
    g = CustomerGraph.from_edges(ids, [e[0] for e in edges], [e[1] for e in edges],
                                 [e[2] for e in edges], directed=directed)
    return g, edges


@SETTINGS
@given(graphs(), st.floats(0.0, 0.95), st.booleans())
def test_pagerank_is_a_distribution(case: tuple, damping: float, weighted: bool) -> None:
    g, _ = case
    pr = cen.pagerank(g, damping=damping, weighted=weighted, tol=1e-10).values
    assert (pr >= 0).all()
    assert abs(pr.sum() - 1.0) < 1e-9


@SETTINGS
@given(graphs(), st.data())
def test_personalised_pagerank_is_a_distribution(case: tuple, data: st.DataObject) -> None:
    g, _ = case
    chosen = data.draw(st.sets(st.sampled_from(list(g.ids)), min_size=1))
    pr = cen.pagerank(g, personalization=chosen, tol=1e-10).values
    assert (pr >= 0).all() and abs(pr.sum() - 1.0) < 1e-9
    # a customer outside the set only gets what walks bring to it
    assert pr[g.index_of(sorted(chosen))].sum() > 0


def _all_measures(g: CustomerGraph) -> dict[str, np.ndarray]:
    out = {
        "pagerank": cen.pagerank(g, tol=1e-12).values,
        "degree": cen.degree(g).values.astype(float),
        "strength": cen.strength(g).values,
        "core": cen.core(g).values.astype(float),
    }
    paths = cen.shortest_path_measures(g)
    out |= {k: v.values for k, v in paths.items()}
    return out


@SETTINGS
@given(graphs(), st.randoms(use_true_random=False))
def test_relabelling_customers_changes_nothing(case: tuple, rnd) -> None:  # type: ignore[no-untyped-def]
    g, _ = case
    order = np.array(rnd.sample(range(g.n_customers), g.n_customers))
    h = g.relabel(order)
    before, after = _all_measures(g), _all_measures(h)
    for name in before:
        # new position i holds old customer order[i]
        assert np.allclose(after[name], before[name][order], atol=1e-9), name


@SETTINGS
@given(graphs(), st.randoms(use_true_random=False))
def test_edge_order_changes_nothing(case: tuple, rnd) -> None:  # type: ignore[no-untyped-def]
    g, edges = case
    shuffled = list(edges)
    rnd.shuffle(shuffled)
    h = CustomerGraph.from_edges(list(g.ids), [e[0] for e in shuffled],
                                 [e[1] for e in shuffled], [e[2] for e in shuffled],
                                 directed=g.directed)
    before, after = _all_measures(g), _all_measures(h)
    for name in before:
        assert np.allclose(after[name], before[name], atol=1e-12), name


@SETTINGS
@given(graphs(min_n=3))
def test_eigenvector_relabelling_on_connected_graphs(case: tuple) -> None:
    g, _ = case
    view = cen.undirected_view(g)
    import scipy.sparse.csgraph as csg

    ncomp, _ = csg.connected_components(view.csr, directed=False)
    if ncomp != 1:
        return  # the leading eigenvector of a disconnected graph need not be unique
    order = np.arange(g.n_customers)[::-1].copy()
    a = cen.eigenvector(g).values
    b = cen.eigenvector(g.relabel(order)).values
    assert np.allclose(b, a[order], atol=1e-8)
    assert a.max() == 1.0 or np.isclose(a.max(), 1.0)


@SETTINGS
@given(graphs(min_n=6), st.integers(0, 2**31 - 1))
def test_sampled_paths_are_unbiased_in_total(case: tuple, seed: int) -> None:
    """Sampling every source gives the exact values; fewer sources stay within the bound."""
    g, _ = case
    exact = cen.shortest_path_measures(g)
    est = cen.shortest_path_measures(g, exact_max=0, samples=g.n_customers // 2, seed=seed,
                                   confidence=0.999)
    for m in ("betweenness", "harmonic"):
        assert (np.abs(est[m].values - exact[m].values) <= est[m].error_bound + 1e-12).all()
