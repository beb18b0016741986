"""Forward exposure (one set of live-edge worlds) against the reverse estimator on the shipped
sample (its own churn/complaint seeds) and on Wiki-Vote with synthetic seeds (slow, bounded:
seconds each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carenet.community.influence import ExposureScores, exposure_scores, seeds_from_events
from carenet.graphs.build import load_network

pytestmark = pytest.mark.slow


def _agree(a: ExposureScores, b: ExposureScores) -> None:
    """Both estimate the same probabilities: their intervals (at 0.999) overlap for every
    customer, seeds (leave-one-out) included, and they agree on average."""
    overlap = (a.exposure_low <= b.exposure_high) & (b.exposure_low <= a.exposure_high)
    assert overlap.all(), np.flatnonzero(~overlap)[:10]
    for mask in (a.is_seed, ~a.is_seed):
        assert abs(a.exposure[mask].mean() - b.exposure[mask].mean()) < 0.01


def test_sample_forward_matches_reverse(sample_dir: Path) -> None:
    net = load_network(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                       events=sample_dir / "events.csv")
    g = net.graph
    seeds = seeds_from_events(net.events, reference_time=g.reference_time)
    assert 10 < seeds.size < g.n_customers // 2
    fwd = exposure_scores(g, seeds, seeds_are_positions=True, runs=4000, error=0.03,
                          confidence=0.999, seed=1)
    rev = exposure_scores(g, seeds, seeds_are_positions=True, runs=2000, method="reverse",
                          confidence=0.999, seed=2)
    _agree(fwd, rev)
    assert fwd.to_dict()["error"] <= 0.03
    # the attribution names the same main source for most exposed customers
    top = ["customer_id", "source_id"]
    f1 = fwd.sources[fwd.sources["rank"] == 1][top]
    r1 = rev.sources[rev.sources["rank"] == 1][top]
    both = f1.merge(r1, on="customer_id", suffixes=("_f", "_r"))
    assert len(both) > 0.8 * len(r1)
    assert (both["source_id_f"] == both["source_id_r"]).mean() > 0.6


@pytest.mark.parametrize("model", ["ic", "lt"])
def test_wiki_vote_forward_matches_reverse(datasets: Path, model: str) -> None:
    g = load_network(datasets / "snap-wiki-vote" / "Wiki-Vote.txt").graph
    rng = np.random.default_rng(15)
    seeds = rng.choice(g.n_customers, int(0.07 * g.n_customers), replace=False)
    fwd = exposure_scores(g, seeds, seeds_are_positions=True, model=model, runs=3000,
                          error=0.03, confidence=0.999, seed=3)
    rev = exposure_scores(g, seeds, seeds_are_positions=True, model=model, runs=1000,
                          method="reverse", confidence=0.999, seed=4)
    _agree(fwd, rev)
    assert fwd.exposure[fwd.is_seed].max() > 0.05
