"""Shared fixtures: paths to the shipped sample and the shared real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.exists():  # pragma: no cover - the shared folder is on every machine
        pytest.fail(f"shared datasets not found at {DATASETS}")
    return DATASETS
