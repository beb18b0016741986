"""CustomerGraph: construction, views, transforms, persistence, against networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.model import CustomerGraph


@pytest.fixture
def small() -> CustomerGraph:
    # a -> b (2), b -> a (1), b -> c (1), a -> b again (1.5): duplicates are summed
    return CustomerGraph.from_edges(
        ["a", "b", "c", "d"], [0, 1, 1, 0], [1, 0, 2, 1], [2.0, 1.0, 1.0, 1.5]
    )


def test_from_edges_sums_duplicates_and_sorts(small: CustomerGraph) -> None:
    assert small.n_customers == 4
    assert small.n_ties == 3
    assert small.indptr.tolist() == [0, 1, 3, 3, 3]
    assert small.indices.tolist() == [1, 0, 2]
    assert small.weights.tolist() == [3.5, 1.0, 1.0]
    assert small.counts.tolist() == [2, 1, 1]


def test_degrees_and_strengths(small: CustomerGraph) -> None:
    assert small.out_degree().tolist() == [1, 2, 0, 0]
    assert small.in_degree().tolist() == [1, 1, 1, 0]
    assert small.out_strength().tolist() == [3.5, 2.0, 0.0, 0.0]
    assert small.in_strength().tolist() == [1.0, 3.5, 1.0, 0.0]


def test_symmetrize_merges_both_directions(small: CustomerGraph) -> None:
    u = small.symmetrize()
    assert not u.directed
    assert u.n_ties == 2  # {a,b} and {b,c}
    w = dict(zip(zip(u.sources().tolist(), u.indices.tolist(), strict=True), u.weights.tolist(), strict=True))
    assert w[(0, 1)] == w[(1, 0)] == 4.5
    assert w[(1, 2)] == w[(2, 1)] == 1.0


def test_transpose_reverses_ties(small: CustomerGraph) -> None:
    t = small.transpose()
    assert t.out_strength().tolist() == small.in_strength().tolist()
    assert t.transpose() is not None


def test_summary_matches_networkx(small: CustomerGraph) -> None:
    s = small.summary()
    g = small.to_networkx()
    assert s.customers == g.number_of_nodes()
    assert s.ties == g.number_of_edges()
    assert s.density == pytest.approx(nx.density(g))
    assert s.components == nx.number_weakly_connected_components(g)
    assert s.reciprocity == pytest.approx(nx.overall_reciprocity(g))
    assert s.isolated == 1


def test_summary_on_real_graph_matches_networkx(datasets) -> None:
    from carenet.graphs.build import build_graph

    g = build_graph(datasets / "snap-email-eu-core" / "email-Eu-core.txt")
    ref = g.to_networkx()
    s = g.summary()
    assert s.ties == ref.number_of_edges()
    assert s.reciprocity == pytest.approx(nx.overall_reciprocity(ref), rel=1e-12)
    assert s.density == pytest.approx(nx.density(ref))
    comps = list(nx.weakly_connected_components(ref))
    assert s.components == len(comps)
    assert s.largest_component == max(len(c) for c in comps)


def test_igraph_view_matches_arrays(small: CustomerGraph) -> None:
    ig = small.to_igraph()
    assert ig.vcount() == 4 and ig.ecount() == 3
    assert sorted(ig.es["weight"]) == sorted(small.weights.tolist())
    u = small.symmetrize().to_igraph()
    assert not u.is_directed() and u.ecount() == 2


def test_relabel_keeps_the_graph(small: CustomerGraph) -> None:
    order = np.array([3, 1, 0, 2])
    r = small.relabel(order)
    assert r.ids.tolist() == ["d", "b", "a", "c"]
    orig = {(small.ids[s], small.ids[t]): w for s, t, w in zip(small.sources(), small.indices, small.weights, strict=True)}
    new = {(r.ids[s], r.ids[t]): w for s, t, w in zip(r.sources(), r.indices, r.weights, strict=True)}
    assert orig == new


def test_save_load_roundtrip(tmp_path, small: CustomerGraph) -> None:
    small.save(tmp_path / "g")
    back = CustomerGraph.load(tmp_path / "g")
    for name in ("indptr", "indices", "weights", "counts", "channels"):
        assert np.array_equal(getattr(back, name), getattr(small, name))
    assert back.ids.tolist() == small.ids.tolist()
    with pytest.raises(RunNotFoundError):
        CustomerGraph.load(tmp_path / "nothing")


def test_index_of(small: CustomerGraph) -> None:
    assert small.index_of(["c", "a"]).tolist() == [2, 0]
    assert small.index_of(["zz"], strict=False).tolist() == [-1]
    with pytest.raises(RunNotFoundError):
        small.index_of(["zz"])


def test_invalid_construction() -> None:
    with pytest.raises(InvalidInputError):
        CustomerGraph.from_edges(["a"], [0], [1])
    with pytest.raises(InvalidInputError):
        CustomerGraph.from_edges(["a", "b"], [0, 1], [1])


def test_degree_and_strength_are_computed_once_and_shared() -> None:
    from carenet.graphs.centrality import degree, strength
    from carenet.graphs.diffusion import edge_probabilities

    g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1, 2], [1, 2, 1], [2.0, 1.0, 3.0])
    assert g.cached("in_strength") is None
    first = g.in_strength()
    assert first.tolist() == [0.0, 5.0, 1.0]
    assert g.in_strength() is first and g.cached("in_strength") is first
    # the diffusion probabilities use the same array, not a second bincount
    assert edge_probabilities(g).tolist() == [0.4, 1.0, 0.6]
    assert g.cached("in_strength") is first
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0
    assert g.out_degree() is g.out_degree() and g.in_degree().tolist() == [0, 2, 1]
    # centrality hands out its own copies
    s = strength(g, direction="in").values
    s[0] = 9.0
    assert g.in_strength()[0] == 0.0 and degree(g, direction="out").values.tolist() == [1, 1, 1]
