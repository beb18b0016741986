"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis): no 500, no
response that contradicts the schema, whatever the parameters and bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from servicekit import Server, fresh_db, variant

from carenet.store import RunStore


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with fresh_db("sqlite", tmp) as url:
        store = RunStore(url)
        store.publish(variant(1.0, run_id="fuzz-run"))
        key = store.create_key("admin")[1]
        server = Server(url, tmp, worker="false", max_upload_bytes=100_000).start()
        try:
            yield server.url, key
        finally:
            server.stop()
            store.close()


def _openapi() -> dict:
    # the document the server serves at /openapi.json, built without starting anything
    from carenet.api.app import create_app
    from carenet.api.settings import Settings

    app = create_app(Settings(db="sqlite://", worker=False))
    spec = app.openapi()
    app.state.store.close()
    return spec


_SPEC = _openapi()
schema = schemathesis.openapi.from_dict(_SPEC)


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_never_errs_and_keeps_its_schema(case: schemathesis.Case,
                                             fuzz_target: tuple[str, str]) -> None:
    url, key = fuzz_target
    assert httpx.get(url + "/openapi.json").json() == _SPEC
    if case.method == "DELETE" and case.path == "/v1/keys/{key_id}":
        # never let the fuzzer revoke the key it is using
        case.path_parameters = {"key_id": "k-not-a-key"}
    # Every check but "positive data acceptance": a schema-valid request may still be a 422
    # when it is semantically wrong for the run (an opaque cursor the API never returned, a
    # sort key the run lacks, a budget beyond its care plan); that is the contract.
    excluded = [schemathesis.checks.positive_data_acceptance]
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"},
                           excluded_checks=excluded)
