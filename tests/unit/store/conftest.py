"""The store the store tests share: a fresh SQLite file and (with CARENET_TEST_POSTGRES_URL)
a fresh PostgreSQL schema, keeping the last two published runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servicekit import BACKENDS, fresh_db

from carenet.store import RunStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    with fresh_db(request.param, tmp_path) as url:
        s = RunStore(url, keep_runs=2)
        yield s
        s.close()
