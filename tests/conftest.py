"""Shared fixtures: paths to the shipped sample and the shared real datasets."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never touch a user's own store, however pytest is started: a private CARENET_HOME (where
# the default SQLite store and uploads live) and no inherited CARENET_DB. Set at import time so
# that subprocesses (servers, workers, CLI runs) inherit it too.
os.environ.pop("CARENET_DB", None)
os.environ["CARENET_HOME"] = tempfile.mkdtemp(prefix="carenet-test-home-")
atexit.register(shutil.rmtree, os.environ["CARENET_HOME"], True)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def _find_datasets() -> Path | None:
    """The shared real datasets: $CARENET_DATASETS, ../shared/datasets, or /work/shared/datasets."""
    candidates = [os.environ.get("CARENET_DATASETS"), ROOT.parent / "shared" / "datasets",
                  "/work/shared/datasets"]
    for c in candidates:
        if c and (Path(c) / "MANIFEST.md").exists():
            return Path(c)
    return None


DATASETS = _find_datasets()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def datasets() -> Path:
    if DATASETS is None:  # pragma: no cover - the shared folder is on every machine
        pytest.fail("shared datasets not found: set CARENET_DATASETS to ../shared/datasets")
    return DATASETS
