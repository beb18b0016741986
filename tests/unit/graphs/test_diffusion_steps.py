"""Step-tracking Monte Carlo (the cascade view's engine) against exact oracles."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from carenet.errors import InvalidInputError
from carenet.graphs.diffusion import (
    DiffusionGraph,
    exact_spread,
    monte_carlo,
    monte_carlo_steps,
)


def test_path_with_certain_ties_reaches_node_k_at_step_k() -> None:
    n = 6
    dg = DiffusionGraph.from_arrays(n, range(n - 1), range(1, n), [1.0] * (n - 1))
    r = monte_carlo_steps(dg, [0], runs=50, seed=1)
    assert r.median_step.tolist() == list(range(n))
    assert r.probability.tolist() == [1.0] * n
    # every run reaches node k exactly at step k: the whole histogram is on the diagonal
    assert (r.step_counts[np.arange(n), np.arange(n)] == 50).all()
    assert r.step_counts.sum() == 50 * n


def test_star_leaves_are_reached_at_step_one() -> None:
    leaves = 7
    dg = DiffusionGraph.from_arrays(leaves + 1, [0] * leaves, range(1, leaves + 1),
                                    [1.0] * leaves)
    r = monte_carlo_steps(dg, [0], runs=20, seed=2)
    assert r.median_step.tolist() == [0] + [1] * leaves
    # seeded at a leaf: the centre is not reached (ties point outwards)
    r2 = monte_carlo_steps(dg, [3], runs=20, seed=2)
    assert r2.median_step.tolist() == [-1, -1, -1, 0, -1, -1, -1, -1]


def test_steps_equal_bfs_distance_when_every_tie_fires() -> None:
    g = nx.gnp_random_graph(60, 0.06, seed=4, directed=True)
    s, t = zip(*g.edges(), strict=True)
    dg = DiffusionGraph.from_arrays(60, s, t, [1.0] * len(s))
    r = monte_carlo_steps(dg, [0, 5], runs=5, seed=3)
    dist = nx.multi_source_dijkstra_path_length(g, {0, 5}, weight=lambda u, v, d: 1)
    expected = [dist.get(v, -1) for v in range(60)]
    assert r.median_step.tolist() == expected


def test_probabilities_agree_with_exact_and_counts_with_monte_carlo() -> None:
    # a diamond with a shortcut: 0->1->3, 0->2->3, 0->3 (uncertain ties)
    dg = DiffusionGraph.from_arrays(4, [0, 0, 1, 2, 0], [1, 2, 3, 3, 3],
                                    [0.5, 0.4, 0.6, 0.7, 0.2])
    runs = 40_000
    r = monte_carlo_steps(dg, [0], runs=runs, seed=9)
    _, exact = exact_spread(dg, [0], per_node=True)
    se = np.sqrt(np.clip(exact * (1 - exact), 0, None) / runs)
    assert np.all(np.abs(r.probability - exact) <= 4 * se + 1e-12)
    # same streams as monte_carlo: identical counts, not just close
    mc = monte_carlo(dg, [0], runs=runs, seed=9)
    assert np.array_equal(r.activation_counts, mc.activation_counts)
    # node 3 is reached at step 1 only through the shortcut (p = 0.2), else at step 2
    p_step1 = r.step_counts[3, 1] / runs
    assert abs(p_step1 - 0.2) <= 4 * np.sqrt(0.2 * 0.8 / runs)
    assert r.step_counts[3, 3:].sum() == 0
    assert r.median_step[3] == 2


def test_tracked_subset_and_lt_sir_models() -> None:
    dg = DiffusionGraph.from_arrays(5, [0, 1, 2, 3], [1, 2, 3, 4], [1.0] * 4)
    sub = monte_carlo_steps(dg, [0], nodes=[4, 2], runs=10, seed=0)
    assert sub.nodes.tolist() == [2, 4]
    assert sub.median_step.tolist() == [2, 4]
    lt = monte_carlo_steps(dg, [0], model="lt", runs=10, seed=0)
    assert lt.median_step.tolist() == [0, 1, 2, 3, 4]
    sir = monte_carlo_steps(dg, [0], model="sir", recovery=1.0, runs=10, seed=0)
    assert sir.median_step.tolist() == [0, 1, 2, 3, 4]
    # later steps than max_steps share the last column
    capped = monte_carlo_steps(dg, [0], runs=10, seed=0, max_steps=2)
    assert capped.median_step.tolist() == [0, 1, 2, 2, 2]


def test_protected_and_bad_arguments() -> None:
    dg = DiffusionGraph.from_arrays(3, [0, 1], [1, 2], [1.0, 1.0])
    r = monte_carlo_steps(dg, [0], protected=[1], runs=10)
    assert r.median_step.tolist() == [0, -1, -1]
    with pytest.raises(InvalidInputError):
        monte_carlo_steps(dg, [0], runs=0)
    with pytest.raises(InvalidInputError):
        monte_carlo_steps(dg, [0], protected=[0])
    with pytest.raises(InvalidInputError):
        monte_carlo_steps(dg, [0], nodes=[7])
