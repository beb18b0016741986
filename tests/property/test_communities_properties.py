"""Invariants of community detection on random graphs (hypothesis): a partition covers every
customer exactly once, labels are ordered by size, and the native algorithms give the same
communities whatever the customer numbering or tie order."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carenet.community import detection as det
from carenet.community.roles import roles
from carenet.graphs.model import CustomerGraph

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NATIVE = ("leiden", "louvain", "label_propagation")


@st.composite
def graphs(draw: st.DrawFn) -> tuple[CustomerGraph, list]:
    """Random graphs with some community structure: dense blocks plus random extra ties."""
    blocks = draw(st.integers(1, 4))
    size = draw(st.integers(2, 8))
    n = blocks * size + draw(st.integers(0, 4))
    edges = []
    for b in range(blocks):
        members = list(range(b * size, (b + 1) * size))
        pairs = [(u, v) for i, u in enumerate(members) for v in members[i + 1:]]
        keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
        edges += [(u, v, 1.0) for (u, v), k in zip(pairs, keep, strict=True) if k]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1),
                                    st.sampled_from([0.5, 1.0, 2.0])), max_size=2 * n))
    edges += [e for e in extra if e[0] != e[1]]
    ids = draw(st.permutations([f"k{i:03d}" for i in range(n)]))
    g = CustomerGraph.from_edges(ids, [e[0] for e in edges], [e[1] for e in edges],
                                 [e[2] for e in edges], directed=draw(st.booleans()))
    return g, edges


@SETTINGS
@given(graphs(), st.sampled_from(NATIVE), st.integers(0, 2**31 - 1))
def test_partition_covers_every_customer_once(case: tuple, algorithm: str, seed: int) -> None:
    g, _ = case
    p = det.detect(g, algorithm=algorithm, seed=seed)  # type: ignore[arg-type]
    members = [set(p.members(c).tolist()) for c in np.unique(p.labels)]
    assert sum(len(m) for m in members) == g.n_customers
    assert set().union(*members) == set(g.ids.tolist())
    sizes = p.sizes
    assert (np.diff(sizes) <= 0).all() and (sizes > 0).all()
    assert -0.5 - 1e-12 <= p.modularity <= 1.0


def _by_customer(p: det.Partition) -> dict[str, int]:
    return dict(zip(p.ids.tolist(), p.labels.tolist(), strict=True))


@SETTINGS
@given(graphs(), st.sampled_from(NATIVE), st.randoms(use_true_random=False))
def test_relabelling_customers_changes_nothing(case: tuple, algorithm: str, rnd) -> None:  # type: ignore[no-untyped-def]
    g, _ = case
    order = np.array(rnd.sample(range(g.n_customers), g.n_customers))
    a = det.detect(g, algorithm=algorithm, seed=3)  # type: ignore[arg-type]
    b = det.detect(g.relabel(order), algorithm=algorithm, seed=3)  # type: ignore[arg-type]
    assert _by_customer(a) == _by_customer(b)  # same communities, same ids
    assert abs(a.modularity - b.modularity) < 1e-12


@SETTINGS
@given(graphs(), st.sampled_from(NATIVE), st.randoms(use_true_random=False))
def test_edge_order_changes_nothing(case: tuple, algorithm: str, rnd) -> None:  # type: ignore[no-untyped-def]
    g, edges = case
    shuffled = list(edges)
    rnd.shuffle(shuffled)
    h = CustomerGraph.from_edges(list(g.ids), [e[0] for e in shuffled],
                                 [e[1] for e in shuffled], [e[2] for e in shuffled],
                                 directed=g.directed)
    a = det.detect(g, algorithm=algorithm, seed=8)  # type: ignore[arg-type]
    b = det.detect(h, algorithm=algorithm, seed=8)  # type: ignore[arg-type]
    assert _by_customer(a) == _by_customer(b)


@SETTINGS
@given(graphs(), st.randoms(use_true_random=False))
def test_roles_do_not_depend_on_numbering(case: tuple, rnd) -> None:  # type: ignore[no-untyped-def]
    g, _ = case
    order = np.array(rnd.sample(range(g.n_customers), g.n_customers))
    p = det.leiden(g, seed=1)
    r = roles(g, p.labels)
    h = g.relabel(order)
    q = det.leiden(h, seed=1)
    s = roles(h, q.labels)
    assert np.allclose(s.within_z, r.within_z[order])
    assert np.allclose(s.participation, r.participation[order])
    assert s.role.tolist() == r.role[order].tolist()
    assert ((r.participation >= 0) & (r.participation <= 1)).all()


@SETTINGS
@given(graphs())
def test_aligning_a_partition_to_itself_changes_no_id(case: tuple) -> None:
    g, _ = case
    p = det.leiden(g, seed=2)
    aligned, changes = det.align(p, p.to_frame().set_index("customer_id")["community"])
    assert np.array_equal(aligned.labels, p.labels)
    d = changes.to_dict()
    assert d["counts"]["continued"] == p.n_communities
    assert d["births"] == d["deaths"] == d["splits"] == d["merges"] == []
