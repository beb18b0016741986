"""The analyze summary's exposure row says the error reached, the target and why the
estimate stopped (a budget stop on a large graph must be visible)."""

from __future__ import annotations

from carenet.cli.analyze import _exposure_error
from carenet.community.influence import exposure_scores
from carenet.graphs.model import CustomerGraph


def test_budget_stop_is_spelled_out() -> None:
    g = CustomerGraph.from_edges([f"c{i}" for i in range(5)], [0, 1, 2, 3], [1, 2, 3, 4],
                                 [1.0, 1.0, 1.0, 1.0])
    # 4 ties: a budget of 800 tie-worlds allows 200 worlds
    ex = exposure_scores(g, ["c0"], runs=5000, error=0.001, budget=800.0, seed=1)
    line = _exposure_error(ex.to_dict())
    assert line == (f"; half-width {ex.to_dict()['error']:.3f} (target 0.001) after 200 "
                    "worlds, work budget spent: the graph is large")
    met = exposure_scores(g, ["c0"], runs=5000, error=0.3, seed=1).to_dict()
    assert _exposure_error(met).endswith("target met")
    assert _exposure_error({"seeds": 0}) == ""
