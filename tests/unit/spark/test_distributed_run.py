"""The distributed path's own run format (written when no store is given), without a JVM."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from carenet.errors import InvalidInputError
from carenet.spark.distributed import SKIPPED_DISTRIBUTED, DistributedRun
from carenet.spark.engine import publishable_run


def test_a_distributed_run_saves_its_table_rejects_and_run_json(tmp_path: Path) -> None:
    customers = pd.DataFrame({"customer_id": ["a", "b"], "degree_in": [1, 0],
                              "pagerank": [0.6, 0.4]})
    rejects = pd.DataFrame({"file": ["log.csv"], "line": [3], "reason": ["missing_id"]})
    meta = {"format": "carenet-run-distributed", "run_id": "r1",
            "results": {"engine": {"path": "distributed", "skipped": {
                "influence": SKIPPED_DISTRIBUTED["influence"]}}}}
    run = DistributedRun(run_id="r1", customers=customers, rejects=rejects, meta=meta)
    out = run.save(tmp_path / "run")
    assert pd.read_parquet(out / "customers.parquet").equals(customers)
    assert pd.read_csv(out / "rejects.csv")["reason"].tolist() == ["missing_id"]
    back = json.loads((out / "run.json").read_text())
    assert back["results"]["engine"]["skipped"]["influence"].startswith("all-customer influence")
    # without the Spark load it came from there is nothing to publish: a clear error
    with pytest.raises(InvalidInputError, match="no Spark load"):
        publishable_run(run, config=None)  # type: ignore[arg-type]
