"""Influence and exposure computed from blocks of their random streams equal the one-process
run, bit for bit: what lets the Spark engine run them as tasks (carenet.spark.sampling).

Oracle: the same estimator without the hook (``rr_counter`` / ``worlds`` unset), on the same
graph and seeds. The hooks here cut every range into three uneven blocks, run each with the
local entry points (``rr_counts`` with ``first``, ``exposure_worlds``) and add the parts up;
no JVM is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from carenet.community.influence import exposure_scores, influence_scores
from carenet.graphs.diffusion import DiffusionGraph, rr_counts
from carenet.graphs.exposure import exposure_worlds
from carenet.graphs.model import CustomerGraph
from carenet.spark.sampling import _blocks


@pytest.fixture(scope="module")
def graph() -> CustomerGraph:
    rng = np.random.default_rng(11)
    n, m = 300, 1500
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    return CustomerGraph.from_edges([f"c{i}" for i in range(n)], src[keep], dst[keep],
                                    rng.exponential(1.0, keep.sum()))


class Blocks:
    """Hooks that run a range as three blocks and record the ranges they were asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def rr_counts(self, dg: DiffusionGraph, count: int, **kw: Any) -> tuple[np.ndarray, int]:
        first = kw.pop("first")
        self.calls.append((first, count))
        parts = [rr_counts(dg, c, first=f, **kw) for f, c in _blocks(first, count, 3)]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)  # type: ignore[return-value]

    def worlds(self, dg: DiffusionGraph, seeds: np.ndarray, **kw: Any
               ) -> tuple[np.ndarray, np.ndarray]:
        first, count = kw.pop("first"), kw.pop("count")
        self.calls.append((first, count))
        parts = [exposure_worlds(dg, seeds, first=f, count=c, **kw)
                 for f, c in _blocks(first, count, 3)]
        hits = sum(p[0] for p in parts)
        keys = np.concatenate([p[1] for p in parts], axis=1)
        frame = pd.DataFrame({"k": keys[0], "c": keys[1]}).groupby("k", sort=True)["c"].sum()
        return hits, np.stack([frame.index.to_numpy(np.int64),  # type: ignore[return-value]
                               frame.to_numpy(np.int64)])


@pytest.mark.parametrize("model", ["ic", "lt"])
def test_influence_from_blocks_of_rr_sets_equals_one_process(graph: CustomerGraph,
                                                              model: str) -> None:
    values = np.linspace(0.0, 5.0, graph.n_customers)
    kw: dict[str, Any] = {"model": model, "epsilon": 0.3, "top": 10, "seed": 5,
                          "values": values}
    whole = influence_scores(graph, **kw)
    hooks = Blocks()
    parts = influence_scores(graph, rr_counter=hooks.rr_counts, **kw)
    assert len(hooks.calls) >= 2  # the search and the final phase, both through the hook
    for name, col in whole.columns().items():
        np.testing.assert_array_equal(parts.columns()[name], col, err_msg=name)
    assert whole.influence.max() > 0 and parts.value_influence is not None
    assert parts.estimate.rr_sets == whole.estimate.rr_sets
    assert parts.estimate.members == whole.estimate.members


@pytest.mark.parametrize("model", ["ic", "sir"])
def test_exposure_from_blocks_of_worlds_equals_one_process(graph: CustomerGraph,
                                                           model: str) -> None:
    seeds = np.arange(0, graph.n_customers, 37)
    kw: dict[str, Any] = {"model": model, "runs": 700, "error": 0.03, "seed": 9,
                          "seeds_are_positions": True, "attribution_runs": 300}
    whole = exposure_scores(graph, seeds, **kw)
    hooks = Blocks()
    parts = exposure_scores(graph, seeds, worlds=hooks.worlds, **kw)
    # a look after min_runs, then more rounds; the recorded worlds come in one call
    assert len(hooks.calls) >= 2 and hooks.calls[0] == (0, 128)
    for name, col in whole.columns().items():
        np.testing.assert_array_equal(parts.columns()[name], col, err_msg=name)
    assert parts.runs == whole.runs and whole.exposure[~whole.is_seed].max() > 0
    assert len(whole.sources) > 0
    pd.testing.assert_frame_equal(parts.sources, whole.sources)


def test_exposure_worlds_of_a_range_are_the_worlds_of_a_longer_run() -> None:
    dg = DiffusionGraph.from_arrays(4, [0, 1, 2, 3], [1, 2, 3, 1], [0.6, 0.5, 0.4, 0.3])
    a, ka = exposure_worlds(dg, [0, 3], seed=2, first=0, count=50, record=True)
    b, kb = exposure_worlds(dg, [0, 3], seed=2, first=50, count=70, record=True)
    c, kc = exposure_worlds(dg, [0, 3], seed=2, first=0, count=120, record=True)
    np.testing.assert_array_equal(a + b, c)
    assert c.sum() > 0 and not np.array_equal(a, b * 50 // 70)
    merged = pd.concat([pd.Series(k[1], index=k[0]) for k in (ka, kb)]).groupby(level=0).sum()
    np.testing.assert_array_equal(merged.index.to_numpy(), kc[0])
    np.testing.assert_array_equal(merged.to_numpy(), kc[1])
    hits, keys = exposure_worlds(dg, [0, 3], seed=2, first=0, count=0, record=True)
    assert hits.sum() == 0 and keys.shape == (2, 0)
