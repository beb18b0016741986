"""The API as a hostile client would use it (issue 13), through a real uvicorn server on
loopback, on SQLite and (with CARENET_TEST_POSTGRES_URL) PostgreSQL. Every request is bounded:
bodies of a few MB at most, a handful of concurrent requests, seconds of work.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import resource
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from servicekit import BACKENDS, ROOT, Server, fresh_db, variant
from sqlalchemy import select

from carenet.store import RunStore

SAMPLE = ROOT / "data" / "sample"


@dataclass
class Service:
    server: Server
    store: RunStore
    run_id: str
    keys: dict[str, str]
    backend: str

    def client(self, role: str | None = "reader", **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60,
                            **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp(f"hard-{request.param}")
    with fresh_db(request.param, tmp) as url:
        store = RunStore(url, keep_runs=3)
        run = variant(3.0, run_id="hardening-run")
        top = run.customers["priority"].idxmax()  # first row of the dashboard
        run.customers.loc[top, "reason"] = "ties to \u202eexe.gnp"
        rid = store.publish(run)
        keys = {role: store.create_key(role, f"hard {role}")[1]
                for role in ("reader", "analyst", "admin")}
        keys["analyst2"] = store.create_key("analyst", "second analyst")[1]
        server = Server(url, tmp, worker="false", max_concurrent_simulations=1,
                        simulation_wait_seconds=0, max_queued_runs_per_key=2,
                        max_queued_runs=3).start()
        try:
            yield Service(server, store, rid, keys, request.param)
        finally:
            server.stop()
            store.close()


def problem_of(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def raw_request(url: str, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a hand-made HTTP/1.1 request; the server's answer (first 64 KB)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:  # broken pipe, reset, not connected: refused early, stopped reading
            pass
        # the server may have answered and closed first (ENOTCONN): its answer is still read
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        data = b""
        while len(data) < 65536:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    return data


# ---------------------------------------------------------------------------- item 2: bodies
def test_oversize_body_is_refused_before_the_key_is_checked(service: Service) -> None:
    big = b'{"role": "reader", "name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with service.client(None) as c:  # no key at all: still 413, not 401
        body = problem_of(c.post("/v1/keys", content=big,
                                 headers={"Content-Type": "application/json"}), 413)
        assert "1,048,576" in body["detail"]
    with service.client("admin") as c:
        problem_of(c.post("/v1/keys", content=big,
                          headers={"Content-Type": "application/json"}), 413)
        # a normal body still works
        r = c.post("/v1/keys", json={"role": "reader", "name": "small"})
        assert r.status_code == 201, r.text


def test_streamed_oversize_body_is_cut_at_the_limit(service: Service) -> None:
    # chunked transfer, no Content-Length: counted while streaming, refused at 1 MiB
    head = (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 40 + [b"0\r\n\r\n"]  # 2.5 MiB
    answer = raw_request(service.server.url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"exceeds the limit" in answer


# ---------------------------------------------------------------------------- item 3: NUL
def test_nul_characters_are_a_400_everywhere(service: Service) -> None:
    cid = variant(3.0).customers["customer_id"].iloc[0]
    with service.client("admin") as c:
        for method, path, kwargs in [
            ("GET", "/v1/customers/a%00b", {}),
            ("GET", f"/v1/customers/{cid}", {"params": {"run": "r\x00"}}),
            ("GET", "/v1/customers", {"params": {"community": "1\x00"}}),
            ("GET", "/v1/customers", {"params": {"role": "hub\x00"}}),
            ("GET", "/v1/runs/x%00y", {}),
            ("GET", "/v1/communities/1%00", {}),
            ("GET", "/pages/search", {"params": {"q": "C\x00"}}),
            ("POST", "/v1/simulations", {"json": {"seeds": ["a\x00b"]}}),
            ("POST", "/v1/keys", {"json": {"role": "reader", "name": "evil\x00"}}),
            ("POST", "/v1/runs", {"json": {"logs": ["u\x00"]}}),
            ("POST", "/login", {"data": {"key": "cn_k\x00_x", "next": "/dashboard"}}),
        ]:
            r = c.request(method, path, **kwargs)  # type: ignore[arg-type]
            body = problem_of(r, 400)
            assert "NUL" in body["detail"], (method, path)
        # and the service is fine afterwards
        assert c.get(f"/v1/customers/{cid}").status_code == 200


# ---------------------------------------------------------------------------- item 1: cascade
def _hub(service: Service) -> str:
    g = variant(3.0).graph
    return str(g.ids[int(g.out_degree().argmax())])


def test_readers_get_only_default_or_cached_cascades(service: Service) -> None:
    hub = _hub(service)
    with service.client("reader") as c:
        r = c.get("/pages/cascade", params={"seeds": hub, "runs": 50, "seed": 987654})
        assert r.status_code == 403, r.text[:300]
        assert "analyst" in r.text
        r = c.get("/pages/cascade", params={"seeds": hub, "runs": 50, "seed": 987654,
                                           "model": "sir"})
        assert r.status_code == 403
    with service.client("analyst") as c:
        r = c.get("/pages/cascade", params={"seeds": hub, "runs": 50, "seed": 987654})
        assert r.status_code == 200, r.text[:300]
    with service.client("reader") as c:
        # the analyst's cascade is cached: a reader may look at it (no new simulation)
        r = c.get("/pages/cascade", params={"seeds": hub, "runs": 50, "seed": 987654})
        assert r.status_code == 200, r.text[:300]
        r = c.get("/pages/cascade", params={"seeds": hub})  # default parameters
        assert r.status_code == 200, r.text[:300]
        r = c.get("/pages/cascade", params={"seeds": hub, "model": "ic"})  # the default, named
        assert r.status_code == 200, r.text[:300]
        page = c.get("/dashboard").text  # a reader's what-if form offers no model to choose
        assert 'id="cascade-form"' in page and 'name="model"' not in page
    with service.client("analyst") as c:
        assert 'name="model"' in c.get("/dashboard").text
        r = c.get("/pages/cascade", params={"seeds": hub, "runs": 100_000})
        assert r.status_code == 422


def test_concurrent_simulations_are_bounded_with_503(service: Service) -> None:
    hub = _hub(service)
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def one(i: int) -> None:
        with service.client("analyst") as c:
            start.wait()
            r = c.post("/v1/simulations", json={"seeds": [hub], "runs": 10_000, "seed": i,
                                                "model": "sir"})
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers)
    assert 200 in codes and 503 in codes, codes
    assert set(codes) <= {200, 503}
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "2"
            assert "CARENET_MAX_CONCURRENT_SIMULATIONS" in r.json()["detail"]


def test_simulation_runs_cap_is_one_documented_number(service: Service) -> None:
    spec = httpx.get(service.server.url + "/openapi.json").json()
    runs = spec["components"]["schemas"]["SimulationCreate"]["properties"]["runs"]
    assert runs["maximum"] == 10_000 and "10,000" in runs["description"]
    with service.client("analyst") as c:
        body = problem_of(c.post("/v1/simulations", json={"seeds": [_hub(service)],
                                                          "runs": 10_001}), 422)
        assert "10000" in body["detail"] or "10,000" in body["detail"]


# ---------------------------------------------------------------------------- item 4: bounds
def _upload(c: httpx.Client) -> str:
    r = c.post("/v1/logs", params={"name": "events.csv"},
               content=(SAMPLE / "events.csv").read_bytes())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_run_settings_are_bounded_and_the_queue_is_capped(service: Service) -> None:
    admin = service.client("admin")
    # start from an empty queue (the worker is off in this service: runs stay queued)
    for row in admin.get("/v1/runs", params={"status": "queued"}).json()["items"]:
        admin.delete(f"/v1/runs/{row['id']}")
    with service.client("analyst") as c:
        up = _upload(c)
        for section, key, value in (("influence", "exposure_runs", 10**9),
                                    ("care", "plan_runs", 10**9),
                                    ("influence", "max_rr_sets", 10**12)):
            body = problem_of(c.post("/v1/runs", json={"logs": [up], "config": {
                section: {key: value}}}), 422)
            assert f"{section}.{key}" in body["detail"] and "at most" in body["detail"]
        queued = [c.post("/v1/runs", json={"logs": [up]}) for _ in range(2)]
        assert [r.status_code for r in queued] == [202, 202]
        body = problem_of(c.post("/v1/runs", json={"logs": [up]}), 429)
        assert "CARENET_MAX_QUEUED_RUNS_PER_KEY=2" in body["detail"]
    with service.client("analyst2") as c:
        assert c.post("/v1/runs", json={"logs": [up]}).status_code == 202  # 3 in all
        r = c.post("/v1/runs", json={"logs": [up]})
        body = problem_of(r, 429)
        assert "CARENET_MAX_QUEUED_RUNS=3" in body["detail"] and r.headers["retry-after"]
    # a cancelled run frees its place
    first = queued[0].json()["id"]
    assert admin.delete(f"/v1/runs/{first}").json()["status"] == "cancelled"
    with service.client("analyst") as c:
        assert c.post("/v1/runs", json={"logs": [up]}).status_code == 202
    for row in admin.get("/v1/runs", params={"status": "queued"}).json()["items"]:
        admin.delete(f"/v1/runs/{row['id']}")
    admin.close()


# ---------------------------------------------------------------------------- item 6: cursors
def _forge(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_forged_cursors_are_a_400(service: Service) -> None:
    with service.client() as c:
        page = c.get("/v1/customers", params={"sort": "influence", "limit": 2}).json()
        real = json.loads(base64.urlsafe_b64decode(page["next_cursor"] + "=="))
        for v in ({"a": 1}, [1, 2], 10**30, float("inf"), "text", True, None):
            forged = _forge({**real, "v": v}) if v != float("inf") else _forge(
                {**real, "v": 1e308 * 10})
            body = problem_of(c.get("/v1/customers", params={"sort": "influence",
                                                            "cursor": forged}), 400)
            assert "cursor" in body["detail"]
        for bad in ({**real, "id": {"x": 1}}, {**real, "r": ["x"]}, [1, 2, 3], "cursor"):
            problem_of(c.get("/v1/customers", params={"sort": "influence",
                                                     "cursor": _forge(bad)}), 400)
        # the real cursor still pages on
        r = c.get("/v1/customers", params={"sort": "influence", "cursor": page["next_cursor"]})
        assert r.status_code == 200 and len(r.json()["items"]) == 50


# ---------------------------------------------------------------------------- item 9: leaks
def test_a_failed_runs_error_shows_no_server_path(service: Service) -> None:
    from carenet.api.worker import execute

    bad = service.server.tmp / "data" / "uploads" / "uhardening" / "calls.csv.gz"
    bad.parent.mkdir(parents=True, exist_ok=True)
    blob = (SAMPLE / "interactions.csv").read_bytes()[:5000]
    import gzip

    good = gzip.compress(blob)
    bad.write_bytes(good[:20] + b"\x00garbage" * 50 + good[200:])
    row = service.store.create_run({"logs": ["uhardening"], "config": {},
                                    "files": {"logs": [str(bad)]}}, created_by="test")
    assert execute(row["id"], service.store.url) == 0  # a bad input, not a crash
    stored = service.store.get_run(row["id"])
    assert stored["status"] == "failed" and str(bad) in stored["error"]  # the operator's view
    for role in ("reader", "analyst"):
        with service.client(role) as c:
            shown = c.get(f"/v1/runs/{row['id']}").json()
            assert shown["status"] == "failed"
            assert "calls.csv.gz" in shown["error"] and "gzip" in shown["error"]
            assert str(bad.parent) not in shown["error"] and "/" not in shown["error"]
            listed = {r["id"]: r for r in c.get("/v1/runs").json()["items"]}
            assert "/" not in listed[row["id"]]["error"]


def test_404_does_not_echo_a_huge_id(service: Service) -> None:
    huge = "z" * 200_000
    with service.client("analyst") as c:
        r = c.post("/v1/simulations", json={"seeds": [huge]})
        assert r.status_code in (404, 413, 422)
        assert len(r.content) < 3000
        r = c.post("/v1/simulations", json={"seeds": ["q" * 900_000]})
        assert r.status_code in (404, 413, 422) and len(r.content) < 3000
        r = c.get("/v1/runs/" + "r" * 60)
        body = problem_of(r, 404)
        r = c.get("/v1/communities/" + "c" * 30_000)
        assert len(r.content) < 3000, r.status_code
        del body


# ---------------------------------------------------------------------------- throttle, 507
@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A SQLite service with the failed-auth throttle on and a 16 MB file size limit (the
    server's disk is 'full' beyond it: writes fail with EFBIG, as ENOSPC would)."""
    # 16 MB: the store (10 MB) still has room, an upload of 17 MB does not
    tmp = tmp_path_factory.mktemp("strict")
    with fresh_db("sqlite", tmp) as url:
        store = RunStore(url)
        rid = store.publish(variant(4.0, run_id="strict-run"))
        keys = {role: store.create_key(role)[1] for role in ("reader", "analyst")}
        server = Server(url, tmp, worker="false", auth_failure_rate=0.5,
                        auth_failure_burst=5)

        def limit_files() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16_000_000, 16_000_000))

        server.preexec_fn = limit_files
        server.start()
        try:
            yield Service(server, store, rid, keys, "sqlite")
        finally:
            server.stop()
            store.close()


def test_an_upload_that_fills_the_disk_is_a_507(strict: Service) -> None:
    with strict.client("analyst") as c:
        data = (SAMPLE / "interactions.csv").read_bytes() * 11
        assert len(data) > 17_000_000
        body = problem_of(c.post("/v1/logs", params={"name": "big.csv"}, content=data), 507)
        assert "no room" in body["detail"]
        assert c.get("/v1/logs").json()["items"] == []  # nothing half-written is kept
        folder = strict.server.tmp / "data" / "uploads"
        assert not any(p.is_file() for p in folder.rglob("*"))
        small = c.post("/v1/logs", params={"name": "e.csv"},
                       content=(SAMPLE / "events.csv").read_bytes())
        assert small.status_code == 201, small.text  # the service goes on


def test_failed_authentication_is_throttled_per_address(strict: Service) -> None:
    # a fresh address bucket: no other test of this service fails authentication;
    # burst 5, then one failure per 2 s (CARENET_AUTH_FAILURE_RATE=0.5)
    with strict.client(None) as c:
        t0 = time.monotonic()
        codes = [c.get("/v1/customers", headers={"X-API-Key": f"cn_kfake{i}_x"}).status_code
                 for i in range(8)]
        refilled = int((time.monotonic() - t0) * 0.5)  # tokens back while these were sent
        assert codes[:5] == [401] * 5 and set(codes) <= {401, 429}, codes
        assert codes.count(401) <= 5 + refilled and 429 in codes, codes
        r = c.get("/v1/runs")  # no key at all counts too
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = c.post("/login", data={"key": "cn_kfake_x", "next": "/dashboard"})
        assert r.status_code == 429  # the login form too (before its CSRF or key is checked)
        time.sleep(2.2)  # one token back: one more failure allowed, then refused again
        assert c.get("/v1/runs").status_code == 401
        assert c.get("/v1/runs").status_code == 429
    time.sleep(2.2)
    with strict.client("reader") as c:
        assert c.get("/v1/runs").status_code == 200  # a valid key is let through


# ---------------------------------------------------------------------------- item 11: bidi
def test_bidi_overrides_are_shown_not_applied_on_pages(service: Service) -> None:
    with service.client("reader") as c:
        r = c.get("/dashboard")
    assert r.status_code == 200
    assert "\u202e" not in r.text
    assert "ties to &lt;U+202E&gt;exe.gnp" in r.text


# ---------------------------------------------------------------------------- item 10: sessions
def _login(c: httpx.Client, key: str) -> httpx.Response:
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None, form.text[:500]
    return c.post("/login", data={"key": key, "next": "/dashboard", "csrf": token.group(1)})


def test_sessions_are_server_side_and_signed_with_a_secret_kept_apart(service: Service
                                                                      ) -> None:
    from carenet.store.schema import api_keys

    secret = service.server.tmp / "data" / "session.secret"
    assert secret.exists() and stat.S_IMODE(secret.stat().st_mode) == 0o600
    # what someone who can read the store could build (an HMAC keyed by a stored key hash,
    # any expiry) is no session
    info = service.store.verify_key(service.keys["reader"])
    assert info is not None
    with service.store.engine.connect() as conn:
        key_hash = conn.execute(select(api_keys.c.hash).where(api_keys.c.id == info.id)
                                ).scalar_one()
    expires = int(time.time()) + 10 * 365 * 86400
    msg = f"carenet-session:{info.id}.{expires}".encode()
    forged = f"{info.id}.{expires}.{hmac.new(key_hash.encode(), msg, hashlib.sha256).hexdigest()}"
    with service.client(None, follow_redirects=False) as c:
        c.cookies.set("carenet_session", forged)
        assert c.get("/dashboard").status_code == 303
    with service.client(None, follow_redirects=False) as c:
        assert _login(c, service.keys["reader"]).status_code == 303
        value = c.cookies["carenet_session"]
        assert token_hash_absent(service, value)
        assert c.get("/dashboard?top=1").status_code == 200
        assert c.post("/logout").status_code == 303
    with service.client(None, follow_redirects=False) as c:  # the old cookie is dead
        c.cookies.set("carenet_session", value)
        assert c.get("/dashboard?top=1").status_code == 303


def token_hash_absent(service: Service, value: str) -> bool:
    """The store holds the hash of the session token, never the token or the cookie."""
    from carenet.store.schema import sessions

    token = value.rpartition(".")[0]
    with service.store.engine.connect() as conn:
        ids = list(conn.execute(select(sessions.c.id)).scalars())
    return token not in ids and value not in ids and hashlib.sha256(
        token.encode()).hexdigest() in ids


def test_login_form_needs_its_csrf_token(service: Service) -> None:
    with service.client(None, follow_redirects=False) as c:
        r = c.post("/login", data={"key": service.keys["reader"], "next": "/dashboard"})
        assert r.status_code == 403 and "carenet_session" not in r.headers.get("set-cookie", "")
        form = c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
    with service.client(None, follow_redirects=False) as other:  # a token without its cookie
        r = other.post("/login", data={"key": service.keys["reader"], "next": "/dashboard",
                                       "csrf": token.group(1)})
        assert r.status_code == 403
