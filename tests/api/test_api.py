"""The REST API through a real uvicorn server and a real HTTP client, on SQLite and (with
CARENET_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servicekit import BACKENDS, ROOT, Server, base_run, fresh_db, variant

import carenet
from carenet.config import AnalysisConfig
from carenet.store import RunStore

SAMPLE = ROOT / "data" / "sample"


@dataclass
class Service:
    server: Server
    store: RunStore
    run_id: str
    keys: dict[str, str]
    backend: str

    def client(self, role: str | None = "reader") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    with fresh_db(request.param, tmp) as url:
        store = RunStore(url, keep_runs=3)
        # older, kept runs first: the foundation's columns only, and pseudonymised ids
        store.publish(dataclasses.replace(base_run(), run_id="foundation-only"), kept=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CARENET_SALT", "pepper")
            pseudo = carenet.analyze(carenet.example_log(), config=AnalysisConfig.from_mapping(
                {"graph": {"pseudonymize": True}}))
        assert "ann" not in set(pseudo.customers.customer_id)
        store.publish(dataclasses.replace(pseudo, run_id="pseudo-run"), kept=True)
        rid = store.publish(variant(1.0))
        keys = {role: store.create_key(role, f"test {role}")[1]
                for role in ("reader", "analyst", "admin")}
        server = Server(url, tmp, max_upload_bytes=4_000_000, keep_runs=3).start()
        try:
            yield Service(server, store, rid, keys, request.param)
        finally:
            server.stop()
            store.close()


def problem_of(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"] and body["type"]
    return body


def test_customer_document(service: Service) -> None:
    run = variant(1.0)
    row = run.customers.iloc[42]
    with service.client() as c:
        r = c.get(f"/v1/customers/{row['customer_id']}")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["run"] == service.run_id and d["customer_id"] == row["customer_id"]
        assert d["priority"] == pytest.approx(row["priority"])
        assert d["reason"] == row["reason"] and d["role"] == row["role"]
        assert set(d["percentiles"]) >= {"influence", "exposure", "pagerank", "priority"}
        assert d == c.get(f"/v1/customers/{row['customer_id']}",
                          params={"run": service.run_id}).json()
        problem_of(c.get("/v1/customers/nobody"), 404)
        body = problem_of(c.get("/v1/customers/C000001", params={"run": "no-such-run"}), 404)
        assert "no-such-run" in body["detail"]


def test_ranked_filtered_cursor_pages(service: Service) -> None:
    c_ = variant(1.0).customers
    with service.client() as c:
        seen: list[str] = []
        params: dict[str, str | int] = {"sort": "exposure", "community": "2", "limit": 100,
                                        "min_influence": 2.0, "max_degree_in": 40}
        while True:
            r = c.get("/v1/customers", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["sort"] == "exposure" and page["run"] == service.run_id
            seen += [i["customer_id"] for i in page["items"]]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        want = c_[(c_.community == 2) & (c_.influence >= 2.0) & (c_.degree_in <= 40)]
        assert seen == list(want.sort_values(["exposure", "customer_id"],
                                             ascending=False)["customer_id"])
        for sort in ("priority", "influence", "exposure", "pagerank"):
            top = c.get("/v1/customers", params={"sort": sort, "limit": 1}).json()["items"][0]
            assert top["customer_id"] == c_.sort_values(sort, ascending=False)[
                "customer_id"].iloc[0]
        body = problem_of(c.get("/v1/customers", params={"sort": "charisma"}), 422)
        assert "pagerank" in body["available"] and "charisma" in body["detail"]
        problem_of(c.get("/v1/customers", params={"min_charisma": 1}), 422)
        problem_of(c.get("/v1/customers", params={"min_exposure": "lots"}), 422)
        problem_of(c.get("/v1/customers", params={"min_degree_in": "nan"}), 422)
        problem_of(c.get("/v1/customers", params={"limit": 0}), 422)
        problem_of(c.get("/v1/customers", params={"cursor": "%%%"}), 400)


def test_neighbors_communities_care_plan(service: Service) -> None:
    run = variant(1.0)
    cid = run.customers.customer_id.iloc[0]
    with service.client() as c:
        n = c.get(f"/v1/customers/{cid}/neighbors", params={"limit": 5}).json()
        assert len(n["items"]) == 5 and n["customer_id"] == cid
        assert all(set(i["channels"]) <= set(run.graph.channel_names) for i in n["items"])
        comms = c.get("/v1/communities", params={"limit": 4}).json()
        assert comms["total"] == 9 and len(comms["items"]) == 4 and comms["next_cursor"]
        rest = c.get("/v1/communities", params={"cursor": comms["next_cursor"]}).json()
        assert len(rest["items"]) == 5 and rest["next_cursor"] is None
        one = c.get("/v1/communities/5").json()
        assert one["community"] == "5" and one["top_customers"] and one["links"]
        problem_of(c.get("/v1/communities/nope"), 404)
        plan = c.get("/v1/care-plan", params={"budget": 3}).json()
        assert [i["rank"] for i in plan["items"]] == [1, 2, 3] and plan["available"] == 100
        problem_of(c.get("/v1/care-plan", params={"budget": 101}), 422)


def test_run_without_measures_answers_4xx_listing_what_it_has(service: Service) -> None:
    with service.client() as c:
        p = {"run": "foundation-only"}
        body = problem_of(c.get("/v1/customers", params={**p, "sort": "pagerank"}), 422)
        assert "strength_in" in body["available"]
        problem_of(c.get("/v1/customers", params={**p, "role": "hub"}), 422)
        body = problem_of(c.get("/v1/care-plan", params=p), 404)
        assert "care_plan" not in body["available"]
        assert set(body["available"]) == set(base_run().tables)
        problem_of(c.get("/v1/communities", params=p), 404)
        assert c.get("/v1/customers", params=p).json()["sort"] in body_sortable(c, p)
        assert c.get("/v1/customers/C000001").json()["run"] == service.run_id


def body_sortable(c: httpx.Client, params: dict[str, str]) -> list[str]:
    r = c.get("/v1/customers", params={**params, "sort": "no-such-column"})
    return list(problem_of(r, 422)["available"])


def test_auth_every_endpoint(service: Service) -> None:
    spec = httpx.get(service.server.url + "/openapi.json").json()
    calls = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        concrete = (path.replace("{customer_id}", "C000001").replace("{run_id}", "x")
                    .replace("{community_id}", "1").replace("{key_id}", "k1")
                    .replace("{upload_id}", "u1"))
        calls += [(method.upper(), concrete) for method in ops]
    assert len(calls) >= 16
    with service.client(None) as anon:
        for method, path in calls:
            r = anon.request(method, path)
            problem_of(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
            problem_of(anon.request(method, path, headers={"X-API-Key": "cn_kbad_nope"}), 401)
    with service.client("reader") as reader:
        for method, path in [("POST", "/v1/logs"), ("GET", "/v1/logs"),
                             ("DELETE", "/v1/logs/u1"), ("POST", "/v1/runs"),
                             ("DELETE", "/v1/runs/x"), ("PATCH", "/v1/runs/x"),
                             ("GET", "/v1/keys"), ("POST", "/v1/keys"),
                             ("DELETE", "/v1/keys/k1"), ("POST", "/v1/simulations")]:
            problem_of(reader.request(method, path), 403)
    with service.client("analyst") as analyst:
        problem_of(analyst.get("/v1/keys"), 403)
        assert analyst.get("/v1/logs").status_code == 200
    # the X-API-Key header works as well as the bearer token; revocation takes effect
    with service.client("admin") as admin:
        created = admin.post("/v1/keys", json={"role": "reader", "name": "crm"}).json()
        h = {"X-API-Key": created["key"]}
        assert httpx.get(service.server.url + "/v1/customers/C000001", headers=h
                         ).status_code == 200
        assert created["key"] not in admin.get("/v1/keys").text
        assert admin.delete(f"/v1/keys/{created['id']}").json()["revoked"]
        problem_of(httpx.get(service.server.url + "/v1/customers/C000001", headers=h), 401)
    for open_path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert httpx.get(service.server.url + open_path).status_code == 200


def test_upload_is_streamed_and_limited(service: Service) -> None:
    with service.client("analyst") as c:
        data = (SAMPLE / "events.csv").read_bytes()
        r = c.post("/v1/logs", params={"name": "../../etc/events.csv"}, content=data,
                   headers={"Content-Type": "text/csv"})
        assert r.status_code == 201, r.text
        up = r.json()
        assert up["bytes"] == len(data) and up["name"] == "events.csv"
        stored = list((service.server.tmp / "data" / "uploads").glob(f"{up['id']}/*"))
        assert [p.read_bytes() for p in stored] == [data]
        big = b"a,b\n" * 1_250_000  # 5 MB > the 4 MB limit of this server
        problem_of(c.post("/v1/logs", content=big), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(50):
                yield b"x" * 100_000

        problem_of(c.post("/v1/logs", content=chunks()), 413)
        problem_of(c.post("/v1/logs", content=b""), 422)
        problem_of(c.post("/v1/logs", files={"f": ("a.csv", b"a,b\n")}), 415)
        ids = {u["id"] for u in c.get("/v1/logs").json()["items"]}
        assert up["id"] in ids and len(ids) == 1  # refused uploads leave nothing behind
        assert c.delete(f"/v1/logs/{up['id']}").json()["id"] == up["id"]
        assert not stored[0].exists()
        problem_of(c.delete(f"/v1/logs/{up['id']}"), 404)


def test_bad_run_requests_are_422(service: Service) -> None:
    with service.client("analyst") as c:
        problem_of(c.post("/v1/runs", json={"logs": ["u-missing"]}), 422)
        problem_of(c.post("/v1/runs", json={"logs": []}), 422)
        problem_of(c.post("/v1/runs", content=b"{not json",
                          headers={"content-type": "application/json"}), 422)
        up = c.post("/v1/logs", content=b"source,target\na,b\n").json()["id"]
        body = problem_of(c.post("/v1/runs", json={"logs": [up],
                                                   "config": {"graph": {"half_lief": "3d"}}}),
                          422)
        assert "half_lief" in body["detail"]
        problem_of(c.post("/v1/runs", json={"logs": [up], "steps": ["astrology"]}), 422)
        problem_of(c.get("/v1/runs/none-such"), 404)
        problem_of(c.delete(f"/v1/runs/{service.run_id}"), 409)
        problem_of(c.post("/v1/simulations", json={"seeds": []}), 422)


def test_simulations(service: Service) -> None:
    from carenet.community.influence import simulate
    run = variant(1.0)
    g = run.graph
    hub = str(g.ids[int(g.out_degree().argmax())])
    nbrs = [str(g.ids[j]) for j in g.neighbors(int(g.out_degree().argmax()))[0][:3]]
    with service.client("analyst") as c:
        free = c.post("/v1/simulations", json={"seeds": [hub], "runs": 200, "seed": 5})
        assert free.status_code == 200, free.text
        f = free.json()
        assert f["run"] == service.run_id and f["seeds"] == [hub] and f["runs"] == 200
        # the same cascade as the diffusion library computes on the run's own graph
        direct = simulate(g, [hub], runs=200, seed=5)
        assert f["expected_size"] == pytest.approx(direct.expected_size)
        guarded = c.post("/v1/simulations", json={"seeds": [hub], "protected": nbrs,
                                                  "runs": 200, "seed": 5}).json()
        assert guarded["protected"] == sorted(nbrs) or set(guarded["protected"]) == set(nbrs)
        assert guarded["expected_size"] <= f["expected_size"]
        assert all(r["customer_id"] not in nbrs for r in guarded["most_likely_reached"])
        problem_of(c.post("/v1/simulations", json={"seeds": ["nobody"]}), 404)
        problem_of(c.post("/v1/simulations", json={"seeds": [hub], "protected": [hub]}), 422)
        problem_of(c.post("/v1/simulations", json={"seeds": [hub], "runs": 50_000}), 422)
        problem_of(c.post("/v1/simulations", json={"seeds": [hub], "model": "zombie"}), 422)


def test_pseudonymised_ids_found_by_raw_id(service: Service) -> None:
    salted = Server(service.server.db, service.server.tmp, salt="pepper", worker="false")
    salted.start()
    try:
        h = {"Authorization": f"Bearer {service.keys['reader']}"}
        r = httpx.get(salted.url + "/v1/customers/ann", params={"run": "pseudo-run"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["customer_id"].startswith("p_")
        n = httpx.get(salted.url + "/v1/customers/ann/neighbors", params={"run": "pseudo-run"},
                      headers=h).json()
        assert n["items"] and all(i["customer_id"].startswith("p_") for i in n["items"])
        # a server without the salt says why it cannot find a raw id
        r = httpx.get(service.server.url + "/v1/customers/ann", params={"run": "pseudo-run"},
                      headers=h)
        assert "CARENET_SALT" in problem_of(r, 404)["detail"]
    finally:
        salted.stop()


def wait_for(c: httpx.Client, run_id: str, states: set[str], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/v1/runs/{run_id}").json()
        if r["status"] in states:
            return r
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} stuck in {r['status']}")


def start_sample_run(c: httpx.Client, **extra: object) -> str:
    ids = {}
    for name in ("interactions", "customers", "events"):
        r = c.post("/v1/logs", params={"name": f"{name}.csv"},
                   content=(SAMPLE / f"{name}.csv").read_bytes())
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    r = c.post("/v1/runs", json={"logs": [ids["interactions"]], "customers": ids["customers"],
                                 "events": ids["events"], "config": {"seed": 7}, **extra})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/runs/{r.json()['id']}"
    assert r.json()["status"] == "queued"
    return str(r.json()["id"])


def test_run_computes_in_a_worker_while_reads_continue(service: Service) -> None:
    with service.client("analyst") as c:
        before = c.get("/v1/customers/C000001").json()["run"]
        rid = start_sample_run(c)
        running = wait_for(c, rid, {"running", "publishing", "published", "failed"})
        # the API keeps answering reads (from the published run) while the worker computes
        assert c.get("/v1/customers/C000001").json()["run"] in (before, rid)
        assert running["status"] != "failed", running
        done = wait_for(c, rid, {"published", "failed"})
        assert done["status"] == "published", done
        assert done["progress"]["fraction"] == 1.0 and done["latest"]
        assert done["counts"]["customers"] == 3000 and done["parameters"]["seed"] == 7
        d = c.get("/v1/customers/C000001").json()
        assert d["run"] == rid and d["scores"]["degree_in"] >= 0
        assert any(r["id"] == rid for r in c.get("/v1/runs").json()["items"])
        assert c.patch(f"/v1/runs/{rid}", json={"kept": True}).json()["kept"] is True


def test_cancel_a_running_run(service: Service) -> None:
    with service.client("analyst") as c:
        latest = c.get("/v1/customers/C000001").json()["run"]
        rid = start_sample_run(c)
        wait_for(c, rid, {"running"})
        r = c.delete(f"/v1/runs/{rid}")
        assert r.status_code == 202 and r.json()["cancel_requested"]
        done = wait_for(c, rid, {"cancelled", "failed", "published"}, timeout=60)
        assert done["status"] == "cancelled", done
        assert c.get("/v1/customers/C000001").json()["run"] == latest


def test_interrupted_run_is_failed_after_restart(service: Service, tmp_path: Path) -> None:
    with fresh_db(service.backend, tmp_path) as url:  # its own store: no other worker
        store = RunStore(url)
        latest = store.publish(variant(3.0))
        key = store.create_key("analyst")[1]
        server = Server(url, tmp_path).start()
        try:
            c = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": key})
            rid = start_sample_run(c)
            wait_for(c, rid, {"running"})
            c.close()
            server.stop(hard=True)  # the service dies mid-run (no shutdown handler runs)
            time.sleep(1.5)  # the orphaned worker notices and exits
            server.start()
            c = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": key})
            r = c.get(f"/v1/runs/{rid}").json()
            assert r["status"] == "failed" and "interrupted" in r["error"]
            time.sleep(2)  # nothing publishes it later either
            assert c.get(f"/v1/runs/{rid}").json()["status"] == "failed"
            assert c.get("/v1/customers/C000001").json()["run"] == latest
            problem_of(c.get("/v1/customers/C000001", params={"run": rid}), 409)
            c.close()
        finally:
            server.stop()
            store.close()


def test_fast_path_and_routed_endpoint_answer_the_same(service: Service) -> None:
    with service.client() as c:
        fast = c.get("/v1/customers/C000002")
        routed = c.get("/v1/customers/C000002", params={"run": fast.json()["run"], "x": "1"})
        assert fast.status_code == routed.status_code == 200
        assert fast.content == routed.content
        assert fast.headers["content-type"] == routed.headers["content-type"]


def test_rate_limit_per_key(service: Service, tmp_path: Path) -> None:
    server = Server(service.server.db, tmp_path, rate_limit=0.2, rate_burst=3,
                    worker="false").start()
    try:
        h = {"X-API-Key": service.keys["reader"]}
        codes = [httpx.get(server.url + path, headers=h).status_code
                 for path in ["/v1/customers/C000001", "/v1/runs", "/v1/customers/C000001",
                              "/v1/customers/C000001", "/v1/runs"]]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = httpx.get(server.url + "/v1/customers/C000001", headers=h)
        assert int(problem_of(r, 429) and r.headers["retry-after"]) >= 1
        other = {"X-API-Key": service.keys["analyst"]}  # the limit is per key
        assert httpx.get(server.url + "/v1/customers/C000001", headers=other
                         ).status_code == 200
    finally:
        server.stop()
