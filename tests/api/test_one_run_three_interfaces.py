"""Using a finished run has one implementation each (carenet.run): the what-if, the care plan
and a customer's explanation give the same numbers through the library, the CLI, the REST API
(a real uvicorn server over a real store) and the views, for the same request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from servicekit import Server, fresh_db
from typer.testing import CliRunner
from vizkit import nodes_by_id, small_run, view_data

from carenet.cli import app
from carenet.run import AnalysisRun
from carenet.store import RunStore
from carenet.viz.data import ViewData
from carenet.viz.views import cascade_view


@dataclass
class Published:
    run: AnalysisRun
    path: Path
    server: Server
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    tmp = tmp_path_factory.mktemp("interfaces")
    run, path = small_run(tmp)
    with fresh_db("sqlite", tmp) as url:
        store = RunStore(url)
        store.publish(run)
        key = store.create_key("analyst", "interfaces test")[1]
        server = Server(url, tmp).start()
        try:
            yield Published(run, path, server, key)
        finally:
            server.stop()
            store.close()


def _hub_and_neighbours(run: AnalysisRun) -> tuple[str, list[str]]:
    g = run.graph
    hub = int(g.out_degree().argmax())
    return str(g.ids[hub]), [str(g.ids[j]) for j in g.neighbors(hub)[0][:2]]


@pytest.mark.parametrize("model", ["ic", "sir"])
def test_what_if_is_the_same_through_library_cli_api_and_view(
        published: Published, tmp_path: Path, model: str) -> None:
    run = published.run
    hub, guarded = _hub_and_neighbours(run)
    runs, seed = 300, 11
    lib = run.simulate([hub], protected=guarded, model=model, runs=runs, seed=seed)
    with published.client() as c:
        r = c.post("/v1/simulations", json={"seeds": [hub], "protected": guarded,
                                            "model": model, "runs": runs, "seed": seed,
                                            "top": 1000})
    assert r.status_code == 200, r.text
    api = r.json()
    out = tmp_path / "sim.json"
    res = CliRunner().invoke(app, ["simulate", str(published.path), "--seeds", hub,
                                   "--protected", ",".join(guarded), "--model", model,
                                   "--runs", str(runs), "--seed", str(seed), "--top", "1000",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    cli = json.loads(out.read_text())
    html = cascade_view(ViewData.from_run(run), [hub], protected=guarded, model=model,
                        runs=runs, seed=seed, max_nodes=10_000)
    view = view_data(html)

    # the cascade size and its interval
    assert api["expected_size"] == cli["expected_size"] == pytest.approx(lib.expected_size)
    assert view["cascade"]["total"] == pytest.approx(lib.expected_size)
    assert api["low"] == cli["low"] == pytest.approx(lib.low)
    assert api["recovery"] == cli["recovery"]
    assert lib.expected_size > 1.0  # the hub reaches someone: the comparison is not vacuous
    # every customer's probability of being reached
    want = lib.to_frame().set_index("customer_id")["activation_probability"]
    for doc in (api, cli):
        got = {d["customer_id"]: d["probability"] for d in doc["most_likely_reached"]}
        assert got and all(got[c] == pytest.approx(want[c]) for c in got)
    nodes = nodes_by_id(html)
    shown = {i: n["probability"] for i, n in nodes.items() if i in want.index and i != hub}
    assert shown and all(shown[c] == pytest.approx(want[c]) for c in shown)
    for g in guarded:
        assert want[g] == 0.0


def test_care_plan_is_the_same_through_library_cli_and_api(published: Published,
                                                            tmp_path: Path) -> None:
    run = published.run
    budget = 10
    lib = run.care_plan(budget)
    assert lib.reused and len(lib.plan) == budget
    with published.client() as c:
        r = c.get("/v1/care-plan", params={"budget": budget})
    assert r.status_code == 200, r.text
    api = r.json()["items"]
    res = CliRunner().invoke(app, ["plan", str(published.path), "--budget", str(budget),
                                   "--out", str(tmp_path / "plan.csv")])
    assert res.exit_code == 0, res.output
    cli = pd.read_csv(tmp_path / "plan.csv")
    want = lib.plan["customer_id"].astype(str).tolist()
    assert [d["customer_id"] for d in api] == want == cli["customer_id"].astype(str).tolist()
    assert [d["protected"] for d in api] == pytest.approx(lib.plan["protected"].tolist())
    assert cli["protected"].tolist() == pytest.approx(lib.plan["protected"].tolist())


def test_explanation_is_the_reason_the_api_cli_and_views_show(published: Published,
                                                             tmp_path: Path) -> None:
    run = published.run
    c = run.customers
    explained = c[c["reason"] != ""].head(3)
    assert len(explained)
    with published.client() as client:
        for cid, reason in zip(explained["customer_id"], explained["reason"], strict=True):
            assert run.explain(cid)["reason"] == reason
            doc = client.get(f"/v1/customers/{cid}").json()
            assert doc["reason"] == reason
    # on demand, the customer ranked last gets the reason the care step stored for it
    last = c.sort_values("priority_rank")["customer_id"].iloc[-1]
    assert run.explain(last)["reason"] == c.set_index("customer_id").loc[last, "reason"]
    assert run.explain(last)["reason"]
    # and the CLI prints and writes the same explanation
    out = tmp_path / "why.json"
    res = CliRunner().invoke(app, ["explain", str(published.path), str(last), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["reason"] == run.explain(last)["reason"]
    res = CliRunner().invoke(app, ["explain", str(published.path), "no-such-customer"])
    assert res.exit_code == 2 and "no-such-customer" in res.output
