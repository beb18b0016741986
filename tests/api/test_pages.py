"""The served pages over real HTTP: login and sessions, the dashboard's content, error pages,
and the store reads behind the views (whole customer table, extra tables) on SQLite and
(with CARENET_TEST_POSTGRES_URL) PostgreSQL. The browser side is tests/browser/test_pages_browser.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest
from servicekit import BACKENDS, Server, base_run, free_port, fresh_db, variant

from carenet.api.sessions import COOKIE, cookie_value
from carenet.store import RunStore


@dataclass
class Site:
    server: Server
    store: RunStore
    run_id: str
    keys: dict[str, str]

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=60, follow_redirects=False,
                            **kw)  # type: ignore[arg-type]

    @contextmanager
    def logged_in(self, role: str = "reader") -> Iterator[httpx.Client]:
        with self.client() as c:
            r = login(c, self.keys[role], "/dashboard")
            assert r.status_code == 303, r.text
            yield c


def login(c: httpx.Client, key: str, target: str) -> httpx.Response:
    """Log in as a browser does: fetch the form (its CSRF cookie and token), then post it."""
    form = c.get("/login")
    assert form.status_code == 200, form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    return c.post("/login", data={"key": key, "next": target, "csrf": csrf.group(1)})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    with fresh_db("sqlite", tmp) as url:
        store = RunStore(url, keep_runs=3)
        store.publish(dataclasses.replace(base_run(), run_id="foundation-only"), kept=True)
        rid = store.publish(variant(2.0, run_id="pages-run"))
        keys = {role: store.create_key(role, f"pages {role}")[1]
                for role in ("reader", "analyst", "admin")}
        keys["doomed"] = store.create_key("reader", "revoked later")[1]
        server = Server(url, tmp).start()
        try:
            yield Site(server, store, rid, keys)
        finally:
            server.stop()
            store.close()


class _Table(HTMLParser):
    """The text of each cell of the table with a given id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[list[str]] = []
        self.hrefs: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
            self.hrefs.append([])
        elif self.inside and tag == "td":
            self.cell = []
        elif self.inside and tag == "a" and self.hrefs:
            self.hrefs[-1].append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str) -> tuple[list[list[str]], list[list[str]]]:
    p = _Table(table_id)
    p.feed(html)
    keep = [i for i, r in enumerate(p.rows) if r]  # the header row has th cells only
    return [p.rows[i] for i in keep], [p.hrefs[i] for i in keep]


def is_html_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    m = re.search(r'id="error-detail">(.*?)</p>', r.text, re.S)
    assert m and m.group(1).strip()
    return m.group(1)


# ---------------------------------------------------------------------------- auth
def test_pages_redirect_to_login_without_a_key(site: Site) -> None:
    with site.client() as c:
        for path in ("/dashboard?top=5", "/pages/community-map", "/pages/customers/C000001",
                     "/pages/communities/1", "/pages/cascade?seeds=a,b"):
            r = c.get(path)
            assert r.status_code == 303, (path, r.status_code)
            loc = urlsplit(r.headers["location"])
            assert loc.path == "/login"
            assert parse_qs(loc.query)["next"] == [path]
        r = c.get("/login?next=/dashboard%3Ftop%3D5")
        assert r.status_code == 200 and 'id="login"' in r.text
        assert 'name="next" value="/dashboard?top=5"' in r.text
        # the JSON API keeps its 401 problem documents
        r = c.get("/v1/customers")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")


def test_login_sets_a_signed_http_only_strict_cookie(site: Site) -> None:
    key = site.keys["reader"]
    with site.client() as c:
        r = login(c, key, "/dashboard?top=3")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard?top=3"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite", "path", "max-age"} <= flags
        assert "samesite=strict" in cookie.lower()
        value = c.cookies[COOKIE]
        # neither the key nor its stored hash is in the cookie
        assert key not in value and key.split("_", 2)[2] not in value
        assert hashlib.sha256(key.encode()).hexdigest() not in value
        r = c.get("/dashboard?top=3")
        assert r.status_code == 200 and 'id="top-customers"' in r.text
        # a session does not open the JSON API
        assert c.get("/v1/customers").status_code == 401
        # logging out forgets the cookie, and ends the session on the server: the old
        # cookie value no longer works either
        r = c.post("/logout")
        assert r.status_code == 303
        assert c.get("/dashboard").status_code == 303
    with site.client() as c:
        c.cookies.set(COOKIE, value)
        assert c.get("/dashboard").status_code == 303


def test_login_refuses_bad_keys_and_foreign_redirects(site: Site) -> None:
    with site.client() as c:
        for key in ("", "cn_knope_nope", site.keys["reader"] + "x"):
            r = login(c, key, "/dashboard")
            assert r.status_code == 401 and 'id="login-error"' in r.text
            assert COOKIE not in r.headers.get("set-cookie", "")
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil", "dashboard"):
            r = login(c, site.keys["analyst"], target)
            assert r.status_code == 303 and r.headers["location"] == "/dashboard", target


def test_tampered_expired_and_revoked_sessions_go_back_to_login(site: Site) -> None:
    info = site.store.verify_key(site.keys["doomed"])
    assert info is not None
    with site.client() as c:
        assert login(c, site.keys["doomed"], "/dashboard").status_code == 303
        good = c.cookies[COOKIE]
        assert c.get("/dashboard?top=1").status_code == 200
    token, _, sig = good.rpartition(".")
    expired = site.store.create_session(info.id, -1.0)  # a row whose server-side expiry passed
    secret = (site.server.tmp / "data" / "session.secret").read_text().strip().encode()
    bad = {
        "tampered signature": f"{token}.{'0' * len(sig)}",
        "other token, old signature": f"{token[:-2]}xx.{sig}",
        "expired": cookie_value(secret, expired),
        "never created": cookie_value(secret, "made-up-token"),
        "wrong secret": cookie_value(b"x" * 64, token),
        "garbage": "x.y.z",
    }
    for why, value in bad.items():
        with site.client() as c:
            c.cookies.set(COOKIE, value)
            assert c.get("/dashboard?top=1").status_code == 303, why
    site.store.revoke_key(info.id)
    with site.client() as c:
        c.cookies.set(COOKIE, good)
        assert c.get("/dashboard?top=1").status_code == 303


def test_keys_in_headers_open_pages_too(site: Site) -> None:
    with site.client(headers={"X-API-Key": site.keys["reader"]}) as c:
        r = c.get("/dashboard?top=2")
        assert r.status_code == 200
    with site.client(headers={"Authorization": "Bearer cn_kbad_nope"}) as c:
        detail = is_html_error(c.get("/dashboard"), 401)
        assert "unknown or revoked" in detail


# ---------------------------------------------------------------------------- dashboard
def test_dashboard_lists_top_customers_by_priority_and_communities(site: Site) -> None:
    run = variant(2.0)
    frame = run.customers
    expected = frame.sort_values(["priority", "customer_id"], ascending=False).head(25)
    with site.logged_in() as c:
        r = c.get("/dashboard")
    assert r.status_code == 200
    for name, value in (("Content-Security-Policy", "default-src 'none'"),
                        ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")):
        assert value in r.headers[name]
    assert "(by priority)" in r.text and site.run_id in r.text
    rows, hrefs = table(r.text, "top-customers")
    assert [row[1] for row in rows] == expected["customer_id"].tolist()
    assert [h[0] for h in hrefs] == [f"/pages/customers/{i}" for i in expected["customer_id"]]
    first = expected.iloc[0]
    assert float(rows[0][2].replace(",", "")) == pytest.approx(first["priority"], rel=1e-3)
    assert rows[0][-1] == first["reason"] and rows[0][-2] == first["role"]
    crows, chrefs = table(r.text, "communities")
    sizes = frame["community"].value_counts()
    assert len(crows) == len(sizes)
    assert [int(row[0]) for row in crows] == sorted(sizes.index, key=lambda k: (-sizes[k], k))
    assert [int(row[1].replace(",", "")) for row in crows] == sorted(sizes, reverse=True)
    assert chrefs[0][0] == f"/pages/communities/{crows[0][0]}"
    for link_id in ("link-community-map", "link-cascade", "link-customer"):
        assert f'id="{link_id}"' in r.text


def test_dashboard_ranks_by_influence_without_priority(site: Site) -> None:
    frame = base_run().customers
    assert "priority" not in frame.columns
    expected = frame.dropna(subset=["influence"]).sort_values(
        ["influence", "customer_id"], ascending=False).head(10)
    with site.logged_in() as c:
        r = c.get("/dashboard?run=foundation-only&top=10")
    assert r.status_code == 200 and "(by influence)" in r.text
    rows, hrefs = table(r.text, "top-customers")
    assert [row[1] for row in rows] == expected["customer_id"].tolist()
    # links stay on the run that was asked for
    assert hrefs[0][0].endswith("?run=foundation-only")
    assert "This run has no communities" in r.text


def test_dashboard_search(site: Site) -> None:
    ids = variant(2.0).customers["customer_id"].astype(str)
    target = ids.iloc[17]
    with site.logged_in() as c:
        r = c.get("/dashboard", params={"q": target})
        assert r.status_code == 303 and r.headers["location"] == f"/pages/customers/{target}"
        prefix = target[:-2]
        r = c.get("/dashboard", params={"q": prefix})
        assert r.status_code == 200
        found = re.findall(r'<li><a href="/pages/customers/([^"?]+)">', r.text)
        want = sorted(i for i in ids if i.startswith(prefix))[:20]
        assert [unquote(f) for f in found] == want and target in found
        r = c.get("/dashboard", params={"q": "no-such-customer"})
        assert r.status_code == 200 and "No customer id is or starts with" in r.text
        r = c.get("/pages/search", params={"q": prefix, "limit": 5})
        assert r.status_code == 200 and r.json()["items"] == want[:5]
        # LIKE wildcards are searched literally
        assert c.get("/pages/search", params={"q": "%"}).json()["items"] == []


# ---------------------------------------------------------------------------- errors
def test_bad_requests_are_html_error_pages(site: Site) -> None:
    cid = variant(2.0).customers["customer_id"].iloc[3]
    cases = {
        "/dashboard?run=no-such-run": 404,
        "/dashboard?top=0": 422,
        "/dashboard?top=abc": 422,
        "/pages/communities/999": 404,
        "/pages/communities/abc": 404,
        "/pages/customers/no-such-customer": 404,
        f"/pages/customers/{cid}?hops=zero": 422,
        f"/pages/customers/{cid}?hops=9": 422,
        f"/pages/customers/{cid}?max_nodes=0": 422,
        "/pages/cascade": 422,
        "/pages/cascade?seeds=,,": 422,
        f"/pages/cascade?seeds={cid},nobody": 404,
        f"/pages/cascade?seeds={cid}&model=xyz": 422,
        f"/pages/cascade?seeds={cid}&runs=100000000": 422,
        "/pages/communities/1?run=foundation-only": 404,
        "/pages/no-such-page": 404,
    }
    with site.logged_in() as c:
        for path, status in cases.items():
            is_html_error(c.get(path), status)
        assert c.post("/dashboard").status_code == 405


def test_carenet_serve_prints_the_dashboard_url(site: Site, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CARENET_WORKER": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "carenet.cli", "serve", "--port", str(port), "--db",
         site.server.db, "--log-level", "warning"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not any("dashboard:" in line for line in lines) and len(lines) < 20:
            lines.append(proc.stderr.readline())
        url = next(m.group(1) for line in lines
                   if (m := re.search(r"dashboard: (http://\S+)", line)))
        assert url == f"http://127.0.0.1:{port}/dashboard"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url, follow_redirects=False, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, lines
                time.sleep(0.2)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        r = httpx.get(url, headers={"X-API-Key": site.keys["reader"]}, timeout=30)
        assert r.status_code == 200 and site.run_id in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_favicon_is_public(site: Site) -> None:
    with site.client() as c:
        r = c.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")


# ---------------------------------------------------------------------------- store reads
@pytest.mark.parametrize("backend", BACKENDS)
def test_store_gives_back_the_whole_customer_table(backend: str, tmp_path: Path) -> None:
    run = variant(3.0, run_id="frame-run")
    with fresh_db(backend, tmp_path) as url:
        store = RunStore(url)
        try:
            store.publish(run)
            view = store.resolve("frame-run")
            got = store.customers_frame(view)
            want = run.customers
            assert got.columns[0] == "customer_id"
            assert got["customer_id"].tolist() == want["customer_id"].astype(str).tolist()
            for col in want.columns[1:]:
                if col in ("community",):  # kept as labels (text) in the store
                    assert got[col].tolist() == want[col].astype(str).tolist()
                elif pd.api.types.is_numeric_dtype(want[col]) and not pd.api.types.is_bool_dtype(
                        want[col]):
                    np.testing.assert_allclose(got[col].to_numpy(float),
                                               want[col].to_numpy(float), equal_nan=True)
                elif pd.api.types.is_datetime64_any_dtype(want[col]):
                    pd.testing.assert_series_equal(
                        got[col], want[col].dt.floor("s").reset_index(drop=True),
                        check_dtype=False)
                else:
                    assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), col
            g = store.load_graph(view)
            assert g.ids.tolist() == got["customer_id"].tolist()
            plan = store.table_frame(view, "care_plan")
            pd.testing.assert_frame_equal(plan, run.tables["care_plan"].reset_index(drop=True),
                                          check_dtype=False)
            assert store.search_customers(view, want["customer_id"].iloc[0]) [0] == \
                want["customer_id"].iloc[0]
        finally:
            store.close()
