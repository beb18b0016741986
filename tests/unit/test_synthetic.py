"""The synthetic generator: reproducible, and its ground truth is consistent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carenet.errors import InvalidInputError
from carenet.graphs.build import load_network
from carenet.synthetic import GeneratorConfig, generate, truth_summary


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(customers=1500, interactions=30_000, seed=11))


def test_same_seed_same_data() -> None:
    cfg = GeneratorConfig(customers=300, interactions=3000, seed=5)
    a, b = generate(cfg), generate(cfg)
    for name in ("interactions", "customers", "events", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = generate(GeneratorConfig(customers=300, interactions=3000, seed=6))
    assert not a.interactions.equals(c.interactions)


@pytest.mark.parametrize(("customers", "interactions"), [(500, 4000), (2000, 10_000), (300, 300), (1000, 50_000)])
def test_exact_interaction_count(customers: int, interactions: int) -> None:
    d = generate(GeneratorConfig(customers=customers, interactions=interactions, seed=2))
    ties = len({tuple(sorted(p)) for p in zip(d.interactions["source"], d.interactions["target"], strict=True)})
    assert len(d.interactions) == max(interactions, ties)


def test_planted_communities_dominate_ties(data) -> None:
    truth = data.truth.set_index("customer_id")["community"]
    log = data.interactions
    inside = (truth.loc[log["source"]].to_numpy() == truth.loc[log["target"]].to_numpy()).mean()
    assert inside > 0.75  # mixing 0.15 plants ~85% of ties inside communities


def test_churned_customers_go_silent(data) -> None:
    truth = data.truth.set_index("customer_id")
    t = pd.to_datetime(data.interactions["timestamp"], utc=True).astype("int64") / 1e9
    churn = truth["churn_time"]
    src_churn = churn.loc[data.interactions["source"]].to_numpy()
    dst_churn = churn.loc[data.interactions["target"]].to_numpy()
    after = (t.to_numpy() > np.fmin(src_churn, dst_churn) + 1)
    assert not after.any()


def test_cascade_is_causal(data) -> None:
    truth = data.truth.set_index("customer_id")
    infected = truth[truth["infected_by"].notna()]
    assert len(infected) > 0
    parents = truth.loc[infected["infected_by"]]
    assert parents["churned"].all()
    assert (parents["churn_time"].to_numpy() < infected["churn_time"].to_numpy()).all()
    # the infector is a neighbour in the log
    log = data.interactions
    pairs = set(zip(log["source"], log["target"], strict=True)) | set(zip(log["target"], log["source"], strict=True))
    linked = [(c, p) in pairs for c, p in zip(infected.index, infected["infected_by"], strict=True)]
    assert np.mean(linked) > 0.9  # a tie may carry no interaction if a customer churned first


def test_events_match_truth(data) -> None:
    churn_ids = set(data.events.loc[data.events["event"] == "churn", "customer_id"])
    assert churn_ids == set(data.truth.loc[data.truth["churned"], "customer_id"])
    s = truth_summary(data)
    assert s["churned"] == s["spontaneous_churn"] + s["cascade_churn"]


def test_generated_log_loads_cleanly(data) -> None:
    net = load_network(data.interactions, customers=data.customers, events=data.events)
    assert net.report.rows_rejected == 0
    assert net.graph.n_customers == 1500
    assert set(net.graph.channel_names) <= {"sms", "call", "chat", "email", "forum", "referral"}


@pytest.mark.parametrize("bad", [{"mixing": 1.5}, {"customers": 1}, {"timestamps": "roman"}, {"activity_shape": 1.0}])
def test_bad_parameters(bad: dict) -> None:
    with pytest.raises(InvalidInputError):
        GeneratorConfig(**bad)
