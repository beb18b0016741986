"""The exposure attribution table (``_source_table``), vectorised with numpy, against the
pandas implementation it replaced (kept here as the oracle): same rows, same order, same
values, on sorted and unsorted rows, with ties in counts and duplicate (node, source, via)
rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carenet.community.influence import _source_table, exposure_scores
from carenet.graphs.diffusion import DiffusionGraph
from carenet.graphs.exposure import forward_exposure
from carenet.graphs.model import CustomerGraph


def _oracle(graph: CustomerGraph, node: np.ndarray, source: np.ndarray, via: np.ndarray,
            count: np.ndarray, reached: np.ndarray, runs: int, keep: int) -> pd.DataFrame:
    """The earlier pandas version, verbatim but for its tie-weight column (compared apart)."""
    frame = pd.DataFrame({"node": node, "source": source, "via": via, "count": count})
    by_src = frame.groupby(["node", "source"], sort=False)["count"].sum().rename("n_src")
    best_via = (frame.sort_values(["node", "source", "count", "via"],
                                  ascending=[True, True, False, True], kind="stable")
                .drop_duplicates(["node", "source"]).set_index(["node", "source"]))
    pairs = best_via.join(by_src).reset_index()
    pairs = pairs.sort_values(["node", "n_src", "source"], ascending=[True, False, True],
                              kind="stable")
    pairs["rank"] = pairs.groupby("node").cumcount() + 1
    pairs = pairs[pairs["rank"] <= keep]
    nodes = pairs["node"].to_numpy(np.int64)
    return pd.DataFrame({
        "customer_id": graph.ids[nodes],
        "rank": pairs["rank"].to_numpy(np.int64),
        "source_id": graph.ids[pairs["source"].to_numpy(np.int64)],
        "share": pairs["n_src"].to_numpy(np.float64) / reached[nodes],
        "probability": pairs["n_src"].to_numpy(np.float64) / runs,
        "via_id": graph.ids[pairs["via"].to_numpy(np.int64)],
        "via_share": pairs["count"].to_numpy(np.float64) / pairs["n_src"].to_numpy(np.float64),
    })


def _graph(n: int, rng: np.random.Generator) -> CustomerGraph:
    src = rng.integers(0, n, 6 * n)
    dst = rng.integers(0, n, 6 * n)
    ok = src != dst
    return CustomerGraph.from_edges([f"c{i}" for i in range(n)], src[ok], dst[ok],
                                    rng.uniform(0.5, 2.0, int(ok.sum())))


def _equal_to_oracle(g: CustomerGraph, node: np.ndarray, source: np.ndarray, via: np.ndarray,
                     count: np.ndarray, runs: int, keep: int) -> pd.DataFrame:
    """``_source_table`` of the rows, checked equal to the pandas oracle (tie weights
    aside); returns it for the test's own checks.
    """
    reached = np.bincount(node, weights=count, minlength=g.n_customers).astype(np.float64)
    got = _source_table(g, node, source, via, count, reached, runs, keep)
    want = _oracle(g, node, source, via, count, reached, runs, keep)
    pd.testing.assert_frame_equal(got.drop(columns="tie_weight").reset_index(drop=True),
                                  want.reset_index(drop=True))
    return got


@pytest.mark.parametrize("sort_rows", [True, False])
@pytest.mark.parametrize("keep", [1, 3])
def test_matches_the_pandas_version(sort_rows: bool, keep: int) -> None:
    rng = np.random.default_rng(7 + keep)
    n = 60
    g = _graph(n, rng)
    rows = 3000
    # few distinct values so that counts tie, pairs repeat and (node, source, via) repeats
    node = rng.integers(0, n, rows)
    source = rng.choice([3, 11, 17, 40], rows)
    via = rng.integers(0, 8, rows)
    count = rng.integers(1, 5, rows)
    if sort_rows:  # the forward estimator's rows: distinct and sorted by (node, source, via)
        key = np.unique((node * n + source) * n + via)
        node, rest = np.divmod(key, n * n)
        source, via = np.divmod(rest, n)
        count = rng.integers(1, 5, key.size)
    got = _equal_to_oracle(g, node, source, via, count, 50, keep)
    assert len(got) > 0
    # tie weight: the weight of the tie via -> customer where there is one, else NaN
    w = {(a, b): c for a, b, c in zip(g.ids[g.sources()], g.ids[g.indices], g.weights,
                                      strict=True)}
    expect = [w.get((v, c), np.nan) for v, c in zip(got["via_id"], got["customer_id"],
                                                    strict=True)]
    np.testing.assert_array_equal(got["tie_weight"].to_numpy(), np.asarray(expect, float))


def test_forward_rows_give_the_pandas_table() -> None:
    # the rows the forward estimator hands over (sorted by (node, source, via), distinct)
    rng = np.random.default_rng(3)
    g = _graph(200, rng)
    seeds = np.sort(rng.choice(200, 15, replace=False))
    fx = forward_exposure(DiffusionGraph.from_graph(g), seeds, max_runs=300, min_runs=300,
                          attribution_runs=300, seed=5)
    key = (fx.node * seeds.size + fx.source) * 200 + fx.via
    assert (np.diff(key) > 0).all()
    got = _equal_to_oracle(g, fx.node, seeds[fx.source], fx.via, fx.count, 300, 3)
    assert len(got) > 100 and set(got["rank"]) == {1, 2, 3}
    ex = exposure_scores(g, seeds, seeds_are_positions=True, runs=300, error=0.2,
                         attribution_runs=300, sources=3, seed=5)
    assert len(ex.sources) > 100


@pytest.mark.parametrize("keep", [2, 6])
def test_many_sources_per_customer_match_the_pandas_version(keep: int) -> None:
    # more pairs per customer than kept slots, so later pairs displace earlier ones; counts
    # from a small range so n_src ties across sources (ranked by source) and within a pair
    rng = np.random.default_rng(11 + keep)
    n = 80
    g = _graph(n, rng)
    key = np.unique(rng.integers(0, n, 20_000) * (n * n) + rng.integers(0, n, 20_000) * n
                    + rng.integers(0, 6, 20_000))
    node, rest = np.divmod(key, n * n)
    source, via = np.divmod(rest, n)
    count = rng.integers(1, 4, key.size)
    got = _equal_to_oracle(g, node, source, via, count, 40, keep)
    assert (got.groupby("customer_id")["rank"].max() == keep).all()
