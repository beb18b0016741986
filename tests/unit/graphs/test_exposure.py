"""Forward exposure (two source labels per live-edge world): exact against brute-force
enumeration, against the forward simulations for SIR, against the reverse estimator, and the
stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

from carenet.community.influence import exposure_scores
from carenet.errors import InvalidInputError
from carenet.graphs.diffusion import DiffusionGraph, exact_spread, monte_carlo
from carenet.graphs.exposure import forward_exposure, wilson_half_width
from carenet.graphs.model import CustomerGraph

SRC = [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7]
DST = [1, 2, 2, 3, 3, 4, 0, 5, 5, 6, 7, 4, 0, 6]
W = [1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 1.0, 4.0, 2.0, 1.0, 3.0, 1.0, 2.0, 1.0]
Z = 4.4  # about 0.99999 two-sided: the checks below fail by chance once in 10^5


@pytest.fixture(scope="module")
def graph() -> CustomerGraph:
    return CustomerGraph.from_edges([f"c{i}" for i in range(8)], SRC, DST, W)


@pytest.fixture(scope="module")
def dg(graph: CustomerGraph) -> DiffusionGraph:
    return DiffusionGraph.from_graph(graph)


def _truth(dg: DiffusionGraph, seeds: list[int], model: str) -> np.ndarray:
    """Exposure by enumerating every world: the seeds' cascade for non-seeds, the other
    seeds' cascade for each seed (leave-one-out)."""
    _, p = exact_spread(dg, seeds, model=model, per_node=True)
    out = np.asarray(p, np.float64).copy()
    for s in seeds:
        others = [x for x in seeds if x != s]
        out[s] = exact_spread(dg, others, model=model, per_node=True)[1][s] if others else 0.0
    return out


@pytest.mark.parametrize("model", ["ic", "lt"])
@pytest.mark.parametrize("seeds", [[0, 5], [0, 5, 6], [3]])
def test_matches_enumeration(dg: DiffusionGraph, model: str, seeds: list[int]) -> None:
    fx = forward_exposure(dg, seeds, model=model, error=0.01, confidence=0.99999,
                          max_runs=100_000, seed=7)
    truth = _truth(dg, seeds, model)
    est = fx.counts / fx.runs
    half = wilson_half_width(fx.counts, fx.runs, Z)
    assert (np.abs(est - truth) <= half + 1e-9).all(), (est, truth)
    assert fx.error <= 0.01 and fx.runs < 100_000


def test_constant_probability_graph_matches_enumeration() -> None:
    # a denser random graph with several paths between seeds: the second label must travel
    rng = np.random.default_rng(3)
    n = 7
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v and rng.random() < 0.3]
    src, dst = np.array(pairs).T
    dg = DiffusionGraph.from_arrays(n, src, dst, rng.uniform(0.2, 0.9, src.size))
    seeds = [0, 2, 4]
    fx = forward_exposure(dg, seeds, error=0.008, confidence=0.99999, max_runs=200_000, seed=1)
    truth = _truth(dg, seeds, "ic")
    half = wilson_half_width(fx.counts, fx.runs, Z)
    assert (np.abs(fx.counts / fx.runs - truth) <= half + 1e-9).all()


def test_sir_matches_forward_simulation() -> None:
    # SIR has no enumeration oracle: compare with the step-by-step epidemic (monte_carlo)
    rng = np.random.default_rng(5)
    n = 12
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v and rng.random() < 0.25]
    src, dst = np.array(pairs).T
    dg = DiffusionGraph.from_arrays(n, src, dst, rng.uniform(0.05, 0.4, src.size))
    seeds = [0, 1, 7]
    fx = forward_exposure(dg, seeds, model="sir", recovery=0.3, error=0.006, max_runs=100_000,
                          confidence=0.99999, seed=2)
    runs = 60_000
    sim = monte_carlo(dg, seeds, model="sir", recovery=0.3, runs=runs, seed=9)
    truth = sim.activation_counts / runs
    for s in seeds:
        others = [x for x in seeds if x != s]
        truth[s] = monte_carlo(dg, others, model="sir", recovery=0.3, runs=runs,
                               seed=10 + s).activation_counts[s] / runs
    tol = wilson_half_width(fx.counts, fx.runs, Z) + wilson_half_width(truth * runs, runs, Z)
    assert (np.abs(fx.counts / fx.runs - truth) <= tol).all()
    # recovery 1 is IC, world for world
    a = forward_exposure(dg, seeds, model="sir", recovery=1.0, max_runs=500, error=0.01, seed=4)
    b = forward_exposure(dg, seeds, model="ic", max_runs=500, error=0.01, seed=4)
    assert a.counts.tolist() == b.counts.tolist()


def test_attribution_names_the_seed_and_the_tie() -> None:
    # chain 0 -> 1 -> 2 -> 3 with 3 a seed too: 1 and 2 can only hear from 0 (through 0, 1);
    # seed 3 only from seed 0, arriving through 2
    dg = DiffusionGraph.from_arrays(4, [0, 1, 2], [1, 2, 3], [1.0, 1.0, 1.0])
    fx = forward_exposure(dg, [0, 3], max_runs=50, min_runs=50, attribution_runs=20, seed=1)
    assert fx.runs == 50 and fx.counts.tolist() == [0, 50, 50, 50]
    rows = {(int(a), int(fx.seeds[b]), int(c)): int(k)
            for a, b, c, k in zip(fx.node, fx.source, fx.via, fx.count, strict=True)}
    assert rows == {(1, 0, 0): 20, (2, 0, 1): 20, (3, 0, 2): 20}
    assert fx.attribution_runs == 20


def test_stopping_rule_and_reproducibility(dg: DiffusionGraph) -> None:
    capped = forward_exposure(dg, [0, 5], error=0.001, max_runs=300, seed=3)
    assert capped.runs == 300 and capped.error > 0.001
    assert capped.error == pytest.approx(
        wilson_half_width(capped.counts, 300, 1.959964).max(), rel=1e-4)
    again = forward_exposure(dg, [0, 5], error=0.001, max_runs=300, seed=3)
    assert again.counts.tolist() == capped.counts.tolist()
    early = forward_exposure(dg, [0, 5], error=0.05, max_runs=100_000, seed=3)
    assert early.error <= 0.05 and early.runs < 2000
    # the first worlds do not depend on how many follow
    short = forward_exposure(dg, [0, 5], error=0.4, max_runs=128, min_runs=128, seed=3)
    first = forward_exposure(dg, [0, 5], error=0.4, max_runs=128, min_runs=64, seed=3)
    assert short.runs == 128 and first.runs >= 64
    with pytest.raises(InvalidInputError, match="error"):
        forward_exposure(dg, [0], error=0.0)
    with pytest.raises(InvalidInputError, match="model"):
        forward_exposure(dg, [0], model="sis")


def test_forward_agrees_with_reverse_estimator() -> None:
    # a few hundred customers, many seeds: both estimators within their intervals
    rng = np.random.default_rng(11)
    n = 300
    src = rng.integers(0, n, 1500)
    dst = rng.integers(0, n, 1500)
    keep = src != dst
    g = CustomerGraph.from_edges([f"u{i}" for i in range(n)], src[keep], dst[keep],
                                 rng.uniform(0.5, 3.0, int(keep.sum())))
    seeds = rng.choice(n, 25, replace=False)
    fwd = exposure_scores(g, seeds, seeds_are_positions=True, runs=8000, error=0.02,
                          confidence=0.999, seed=1)
    rev = exposure_scores(g, seeds, seeds_are_positions=True, runs=3000, method="reverse",
                          confidence=0.999, seed=2)
    assert fwd.method == "forward" and rev.method == "reverse"
    overlap = (fwd.exposure_low <= rev.exposure_high) & (rev.exposure_low <= fwd.exposure_high)
    assert overlap.all()
    assert fwd.exposure[fwd.is_seed].max() > 0  # seeds do get leave-one-out exposure
    d = fwd.to_dict()
    assert d["error"] <= 0.02 and d["error_target"] == 0.02 and d["runs"] <= 8000
    # the attribution table has the same shape as the reverse estimator's
    assert list(fwd.sources.columns) == list(rev.sources.columns)
    assert set(fwd.sources["source_id"]) <= set(g.ids[seeds])
    assert (fwd.sources.groupby("customer_id")["share"].sum() <= 1 + 1e-9).all()


def test_work_budget_caps_the_worlds_and_says_so(dg: DiffusionGraph) -> None:
    ties = dg.indices.size
    # 150 worlds' worth of tie-worlds: the target (0.001) cannot be met, the budget stops it
    capped = forward_exposure(dg, [0, 5], error=0.001, max_runs=5000, budget=150.5 * ties,
                              seed=3)
    assert capped.runs == 150 and capped.budget_runs == 150
    assert capped.stop_reason == "budget" and capped.error > 0.001
    # the same worlds as a run capped at 150 by max_runs: the budget only stops early
    plain = forward_exposure(dg, [0, 5], error=0.001, max_runs=150, seed=3)
    assert plain.stop_reason == "max_runs" and plain.budget_runs is None
    assert plain.counts.tolist() == capped.counts.tolist()
    met = forward_exposure(dg, [0, 5], error=0.2, max_runs=5000, budget=1e9, seed=3)
    assert met.stop_reason == "error" and met.error <= 0.2
    assert forward_exposure(dg, [], budget=1e9).stop_reason == "no_seeds"
    with pytest.raises(InvalidInputError, match="budget"):
        forward_exposure(dg, [0], budget=0.0)


def test_scores_report_the_stop_in_their_dict(graph: CustomerGraph) -> None:
    ties = DiffusionGraph.from_graph(graph).indices.size
    ex = exposure_scores(graph, ["c0", "c5"], runs=5000, error=0.001, budget=200 * ties,
                         seed=1)
    d = ex.to_dict()
    assert d["runs"] == 200 and d["stop_reason"] == "budget" and d["budget_runs"] == 200
    assert d["error"] > d["error_target"] == 0.001 and d["max_runs"] == 5000
    assert d["budget"] == 200.0 * ties
    free = exposure_scores(graph, ["c0", "c5"], runs=300, error=0.001, budget=None, seed=1)
    assert free.to_dict()["stop_reason"] == "max_runs" and free.runs == 300
    # the budget changes how many worlds, never what a world shows
    assert free.exposure[:3].tolist() != [] and ex.runs < free.runs
    rev = exposure_scores(graph, ["c0", "c5"], runs=50, method="reverse", seed=1)
    assert rev.to_dict()["stop_reason"] == "runs"


def test_reverse_positions_are_the_stable_argsort() -> None:
    from carenet.graphs.exposure import _reverse_positions

    rng = np.random.default_rng(4)
    n = 500
    src, dst = rng.integers(0, n, 4000), rng.integers(0, n, 4000)
    dg = DiffusionGraph.from_arrays(n, src, dst, rng.uniform(0, 1, 4000))
    got = _reverse_positions(dg.indices, dg.rindptr)
    assert got.tolist() == np.argsort(dg.indices, kind="stable").tolist()
    # and the reverse CSR lists in-ties in that order: same tails, same probabilities
    tails = np.repeat(np.arange(n), np.diff(dg.indptr))
    assert (tails[got] == dg.rindices).all() and (dg.prob[got] == dg.rprob).all()


def test_counter_based_worlds_match_a_plain_python_oracle() -> None:
    """A tie's state in world r is the draw (seed, r, tie): a pure-Python breadth first
    search over the same coins gives exactly the kernel's counts (seeds: leave-one-out
    reachability) and, for non-seeds, its (customer, first seed, parent) rows. Any kernel
    change that alters which ties are live, or the order ties are looked at, fails here."""
    from carenet.graphs import rng as r

    m64 = (1 << 64) - 1
    c1, c2, gold = int(r.C1), int(r.C2), int(r.GOLDEN)

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * c1) & m64
        z = ((z ^ (z >> 27)) * c2) & m64
        return z ^ (z >> 31)

    rng = np.random.default_rng(21)
    n = 40
    src, dst = rng.integers(0, n, 160), rng.integers(0, n, 160)
    keep = src != dst
    dg = DiffusionGraph.from_arrays(n, src[keep], dst[keep], rng.uniform(0.1, 0.7, keep.sum()))
    seeds = [2, 9, 17, 30]
    worlds, seed = 40, 9
    fx = forward_exposure(dg, seeds, max_runs=worlds, min_runs=worlds,
                          attribution_runs=worlds, seed=seed)
    counts = np.zeros(n, np.int64)
    rows: dict[tuple[int, int, int], int] = {}
    for w in range(worlds):
        state = mix((mix(seed) + w * gold + gold) & m64)
        live = [(mix((state + (e + 1) * gold) & m64) >> 11) * 2.0**-53 < dg.prob[e]
                for e in range(dg.indices.size)]

        def bfs(start: list[int], live: list[bool] = live) -> tuple[dict[int, int], ...]:
            label = {s: j for j, s in enumerate(start)}
            parent = {s: -1 for s in start}
            queue = list(start)
            for u in queue:
                for e in range(dg.indptr[u], dg.indptr[u + 1]):
                    v = int(dg.indices[e])
                    if v not in label and live[e]:
                        label[v], parent[v] = label[u], u
                        queue.append(v)
            return label, parent

        label, parent = bfs(seeds)
        for v in set(label) - set(seeds):
            counts[v] += 1
            key = (v, label[v], parent[v])
            rows[key] = rows.get(key, 0) + 1
        for s in seeds:
            counts[s] += s in bfs([x for x in seeds if x != s])[0]
    assert fx.counts.tolist() == counts.tolist()
    got = {(int(a), int(b), int(c)): int(k)
           for a, b, c, k in zip(fx.node, fx.source, fx.via, fx.count, strict=True)
           if int(a) not in seeds}
    assert got == rows and sum(rows.values()) > 100


def test_attribution_counting_matches_np_unique() -> None:
    from carenet.graphs.exposure import _count_keys, _merge_counts

    rng = np.random.default_rng(8)
    table = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    seen = []
    for size in (0, 1, 500, 3000, 7):
        batch = rng.integers(0, 2000, size).astype(np.int64)
        seen.append(batch)
        table = _merge_counts(*table, *_count_keys(batch))
    keys, counts = np.unique(np.concatenate(seen), return_counts=True)
    assert table[0].tolist() == keys.tolist() and table[1].tolist() == counts.tolist()
