"""Diffusion kernels: exactness against live-edge enumeration, reproducibility, invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carenet.community.influence import wilson_interval
from carenet.errors import InvalidInputError
from carenet.graphs.diffusion import (
    DiffusionGraph,
    edge_probabilities,
    exact_spread,
    greedy_max_cover,
    monte_carlo,
    monte_carlo_attribution,
    reverse_hits,
    rr_counts,
    sample_rr_sets,
)
from carenet.graphs.model import CustomerGraph

Z = 4.4  # two-sided 1e-5: a correct estimator essentially never fails, a biased one does

# 8 customers, 14 ties: cycles, a hub, a dead end, parallel paths, a probability-1 tie
SRC = [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7]
DST = [1, 2, 2, 3, 3, 4, 0, 5, 5, 6, 7, 4, 0, 6]
PROB = [0.5, 0.3, 0.6, 0.25, 0.4, 0.7, 0.35, 0.8, 0.45, 0.55, 0.2, 0.9, 0.3, 1.0]


@pytest.fixture(scope="module")
def tiny() -> DiffusionGraph:
    return DiffusionGraph.from_arrays(8, SRC, DST, PROB)


@pytest.fixture(scope="module")
def tiny_wc() -> DiffusionGraph:
    w = [1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 1.0, 4.0, 2.0, 1.0, 3.0, 1.0, 2.0, 1.0]
    g = CustomerGraph.from_edges([f"c{i}" for i in range(8)], SRC, DST, w)
    return DiffusionGraph.from_graph(g)


def _within(est: float, se: float, truth: float) -> bool:
    return abs(est - truth) <= Z * se + 1e-12


@pytest.mark.parametrize("model", ["ic", "lt"])
@pytest.mark.parametrize("seeds", [[0], [3], [0, 5], [1, 6, 7]])
def test_monte_carlo_matches_enumeration(tiny: DiffusionGraph, model: str,
                                         seeds: list[int]) -> None:
    truth, per_node = exact_spread(tiny, seeds, model=model, per_node=True)
    mc = monte_carlo(tiny, seeds, model=model, runs=100_000, seed=7)
    assert _within(mc.mean, mc.std_error, truth)
    lo, hi = wilson_interval(mc.activation_counts, mc.runs, 0.99999)
    assert ((per_node >= lo - 1e-12) & (per_node <= hi + 1e-12)).all()
    assert mc.curve[-1] == pytest.approx(mc.mean)


def test_sir_with_full_recovery_is_ic(tiny_wc: DiffusionGraph) -> None:
    truth = exact_spread(tiny_wc, [0], model="ic")
    mc = monte_carlo(tiny_wc, [0], model="sir", recovery=1.0, runs=100_000, seed=3)
    assert _within(mc.mean, mc.std_error, truth)


def test_sir_transmission_on_one_tie() -> None:
    # infectious for a geometric number of steps: P(infect) = b / (1 - (1 - b)(1 - g))
    b, g = 0.2, 0.3
    dg = DiffusionGraph.from_arrays(2, [0], [1], [b])
    mc = monte_carlo(dg, [0], model="sir", recovery=g, runs=200_000, seed=1)
    p = b / (1 - (1 - b) * (1 - g))
    assert _within(mc.mean, mc.std_error, 1 + p)
    ic = monte_carlo(dg, [0], model="ic", runs=200_000, seed=1)
    assert mc.mean > ic.mean + 10 * ic.std_error  # repeated attempts spread further


@pytest.mark.parametrize("model", ["ic", "lt"])
def test_protected_customers_never_activate(tiny: DiffusionGraph, model: str) -> None:
    truth, per_node = exact_spread(tiny, [0], model=model, protected=[2, 5], per_node=True)
    mc = monte_carlo(tiny, [0], model=model, protected=[2, 5], runs=100_000, seed=11)
    assert mc.activation_counts[[2, 5]].tolist() == [0, 0]
    assert per_node[[2, 5]].tolist() == [0.0, 0.0]
    assert _within(mc.mean, mc.std_error, truth)


@pytest.mark.parametrize("model", ["ic", "lt"])
@pytest.mark.parametrize("fixture", ["tiny", "tiny_wc"])
def test_rr_counts_give_exact_influence(model: str, fixture: str,
                                       request: pytest.FixtureRequest) -> None:
    dg: DiffusionGraph = request.getfixturevalue(fixture)
    r = 400_000
    counts, _ = rr_counts(dg, r, model=model, seed=5)
    lo, hi = wilson_interval(counts, r, 0.99999)
    n = dg.n_nodes
    for v in range(n):
        other = exact_spread(dg, [v], model=model) - 1.0  # influence counts other customers
        assert n * lo[v] - 1e-9 <= other <= n * hi[v] + 1e-9, (v, n * counts[v] / r, other)


def test_rr_counts_exclude_the_root() -> None:
    # no ties: every RR set is just its root, so nobody influences anybody
    dg = DiffusionGraph.from_arrays(5, [], [], [])
    counts, total = rr_counts(dg, 1000, seed=1)
    assert counts.tolist() == [0] * 5
    assert total == 1000


def test_value_weighted_roots(tiny: DiffusionGraph) -> None:
    values = np.array([5.0, 1.0, 0.0, 2.0, 3.0, 0.5, 1.0, 4.0])
    r = 400_000
    counts, _ = rr_counts(tiny, r, seed=9, root_weights=values)
    lo, hi = wilson_interval(counts, r, 0.99999)
    total = values.sum()
    for v in range(8):
        _, p = exact_spread(tiny, [v], per_node=True)
        truth = float(values @ p - values[v])  # value of the *other* customers reached
        assert total * lo[v] - 1e-9 <= truth <= total * hi[v] + 1e-9


def test_stored_sets_equal_streamed_counts(tiny: DiffusionGraph) -> None:
    sets = sample_rr_sets(tiny, 5000, seed=4, chunk_members=64)  # tiny buffer: many rounds
    counts, total = rr_counts(tiny, 5000, seed=4)
    assert sets.count == 5000
    assert sets.members.size == total
    non_root = np.ones(sets.members.size, bool)
    non_root[sets.offsets[:-1]] = False
    assert np.bincount(sets.members[non_root], minlength=8).tolist() == counts.tolist()
    # continuing the streams gives the same sets as sampling them in one go
    a = sample_rr_sets(tiny, 2000, seed=4)
    b = sample_rr_sets(tiny, 3000, seed=4, first=2000)
    joined = a.extend(b)
    assert joined.offsets.tolist() == sets.offsets.tolist()
    assert joined.members.tolist() == sets.members.tolist()
    assert sets.nbytes == sets.members.nbytes + sets.offsets.nbytes


def test_results_do_not_depend_on_thread_count(tiny_wc: DiffusionGraph) -> None:
    def run() -> tuple[list[int], list[int], list[int]]:
        mc = monte_carlo(tiny_wc, [0, 3], runs=3001, seed=12)
        counts, _ = rr_counts(tiny_wc, 7001, seed=12)
        sets = sample_rr_sets(tiny_wc, 999, seed=12)
        return mc.sizes.tolist(), counts.tolist(), sets.members.tolist()

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run()
    finally:
        numba.set_num_threads(before)
    assert one == many
    assert run() == many
    other = monte_carlo(tiny_wc, [0, 3], runs=3001, seed=13)
    assert other.sizes.tolist() != many[0]


def test_runs_can_be_split(tiny: DiffusionGraph) -> None:
    whole = monte_carlo(tiny, [0], runs=2000, seed=5)
    a = monte_carlo(tiny, [0], runs=1200, seed=5)
    b = monte_carlo(tiny, [0], runs=800, seed=5, first_run=1200)
    assert whole.sizes.tolist() == a.sizes.tolist() + b.sizes.tolist()
    assert (whole.activation_counts == a.activation_counts + b.activation_counts).all()


def test_attribution_counts_add_up(tiny: DiffusionGraph) -> None:
    mc, att = monte_carlo_attribution(tiny, [0, 5], runs=4000, seed=2, batch_records=16)
    plain = monte_carlo(tiny, [0, 5], runs=4000, seed=2)
    assert mc.sizes.tolist() == plain.sizes.tolist()
    per_node = np.bincount(att.node, weights=att.count, minlength=8)
    expected = plain.activation_counts.copy()
    expected[[0, 5]] = 0
    assert per_node.astype(int).tolist() == expected.tolist()
    assert set(att.origin.tolist()) <= {0, 1}
    # every recorded parent is a real in-neighbour of the node
    ties = set(zip(SRC, DST, strict=True))
    assert all((p, v) in ties for p, v in zip(att.parent.tolist(), att.node.tolist(), strict=True))


def test_reverse_hits_leave_one_out(tiny: DiffusionGraph) -> None:
    seeds = [0, 3, 6]
    hit, via = reverse_hits(tiny, seeds, seeds, runs=50_000, seed=3)
    for row, s in enumerate(seeds):
        others = [x for x in seeds if x != s]
        _, p = exact_spread(tiny, others, per_node=True)
        lo, hi = wilson_interval(np.array([(hit[row] >= 0).sum()]), 50_000, 0.99999)
        assert lo[0] <= p[s] <= hi[0]
        assert set(hit[row][hit[row] >= 0].tolist()) <= set(others)
        assert ((hit[row] >= 0) == (via[row] >= 0)).all()


def test_greedy_cover_and_budget(tiny: DiffusionGraph) -> None:
    sets = sample_rr_sets(tiny, 20_000, seed=8)
    picks, gains = greedy_max_cover(sets, 3)
    assert len(set(picks.tolist())) == 3
    assert list(gains) == sorted(gains, reverse=True)
    assert int(gains.sum()) == sets.covered_by(picks)
    cost = np.array([10.0, 1, 1, 1, 1, 1, 1, 1])
    bp, _ = greedy_max_cover(sets, 8, cost=cost, budget=3.0)
    assert cost[bp].sum() <= 3.0
    assert 0 not in bp.tolist()


def test_edge_models() -> None:
    g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1, 0], [2, 2, 1], [3.0, 1.0, 2.0])
    wc = edge_probabilities(g)
    # in-ties of c: 3 and 1 -> 0.75, 0.25; b has one in-tie -> 1
    lookup = dict(zip(zip(g.sources().tolist(), g.indices.tolist(), strict=True), wc.tolist(),
                      strict=True))
    assert lookup == {(0, 1): 1.0, (0, 2): 0.75, (1, 2): 0.25}
    ex = edge_probabilities(g, edge_model="exponential", scale=2.0)
    assert np.allclose(ex, 1 - np.exp(-g.weights / 2.0))
    assert edge_probabilities(g, edge_model="constant", probability=0.2).tolist() == [0.2] * 3
    with pytest.raises(InvalidInputError, match="edge_model"):
        edge_probabilities(g, edge_model="nope")
    with pytest.raises(InvalidInputError, match="scale"):
        edge_probabilities(g, edge_model="exponential", scale=0)
    with pytest.raises(InvalidInputError, match="probability"):
        edge_probabilities(g, edge_model="constant", probability=1.5)


def test_bad_parameters(tiny: DiffusionGraph) -> None:
    with pytest.raises(InvalidInputError, match="model"):
        monte_carlo(tiny, [0], model="sis")
    with pytest.raises(InvalidInputError, match="runs"):
        monte_carlo(tiny, [0], runs=0)
    with pytest.raises(InvalidInputError, match="seeds"):
        monte_carlo(tiny, [99])
    with pytest.raises(InvalidInputError, match="protected"):
        monte_carlo(tiny, [0], protected=[0])
    with pytest.raises(InvalidInputError, match="recovery"):
        monte_carlo(tiny, [0], model="sir", recovery=0.0)
    with pytest.raises(InvalidInputError, match="model"):
        rr_counts(tiny, 10, model="sir")
    with pytest.raises(InvalidInputError, match="seed"):
        monte_carlo(tiny, [0], seed=1.5)  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=3, unique=True), st.integers(0, 7))
def test_spread_grows_with_the_seed_set(seeds: list[int], extra: int) -> None:
    dg = DiffusionGraph.from_arrays(8, SRC, DST, PROB)
    small = exact_spread(dg, seeds)
    assert exact_spread(dg, sorted(set(seeds) | {extra})) >= small - 1e-12
    # the simulated spread of a superset, on the same random streams, is never smaller
    a = monte_carlo(dg, seeds, runs=500, seed=1)
    b = monte_carlo(dg, sorted(set(seeds) | {extra}), runs=500, seed=1)
    assert b.mean >= a.mean - 4 * (a.std_error + b.std_error)


def test_results_do_not_depend_on_labels(tiny_wc: DiffusionGraph) -> None:
    w = [1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 1.0, 4.0, 2.0, 1.0, 3.0, 1.0, 2.0, 1.0]
    g = CustomerGraph.from_edges([f"c{i}" for i in range(8)], SRC, DST, w)
    order = np.array([5, 2, 7, 0, 3, 6, 1, 4])
    h = g.relabel(order)
    dh = DiffusionGraph.from_graph(h)
    inverse = np.argsort(order)
    for v in range(8):
        assert exact_spread(dh, [int(inverse[v])]) == pytest.approx(exact_spread(tiny_wc, [v]))
    counts, _ = rr_counts(dh, 200_000, seed=2)
    lo, hi = wilson_interval(counts, 200_000, 0.99999)
    truth = np.array([exact_spread(tiny_wc, [v]) - 1 for v in range(8)])[order]
    assert ((8 * lo <= truth + 1e-9) & (truth <= 8 * hi + 1e-9)).all()


def test_greedy_cover_membership_equals_the_argsort_one() -> None:
    from carenet.graphs.diffusion import _membership

    rng = np.random.default_rng(7)
    n = 50
    sizes = rng.integers(1, 9, 400)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.concatenate([rng.choice(n, s, replace=False) for s in sizes]).astype(np.int32)
    ptr, node_sets = _membership(n, offsets, members)
    set_of = np.repeat(np.arange(sizes.size, dtype=np.int32), sizes)
    assert np.array_equal(node_sets, set_of[np.argsort(members, kind="stable")])
    assert np.array_equal(np.diff(ptr), np.bincount(members, minlength=n))
