"""Shared fixtures: paths to the shipped sample and the shared real datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
