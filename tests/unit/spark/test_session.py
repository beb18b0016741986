"""The Spark engine's pieces that need no JVM: settings, config, the lazy import of pyspark."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from carenet.cli.options import ENGINE_KEYS, config_overrides, spark_settings
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.spark.distributed import label_propagation_reference
from carenet.spark.session import INSTALL_HINT, local_defaults, parse_conf, require_pyspark


def test_carenet_and_the_spark_modules_import_without_starting_or_importing_pyspark() -> None:
    code = ("import sys, carenet, carenet.spark.engine, carenet.cli.analyze; "
            "print('pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip() == "False"


def test_a_missing_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    with pytest.raises(InvalidInputError, match=r"carenet\[spark\]"):
        require_pyspark()
    assert "pip install 'carenet[spark]'" in INSTALL_HINT


def test_spark_settings_from_flags_and_config() -> None:
    assert parse_conf(["a.b=1", " c = x=y "]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(InvalidInputError, match="key=value"):
        parse_conf(["novalue"])
    assert spark_settings(None) is None and spark_settings([]) is None
    with pytest.raises(InvalidInputError, match="--spark-conf"):
        spark_settings(["=1"])
    overrides = config_overrides({"engine": "spark", "spark_master": "local[1]",
                                  "spark_conf": ["spark.x=1"], "collect_max_ties": 0},
                                 ENGINE_KEYS)
    cfg = AnalysisConfig().with_overrides(overrides)
    assert cfg.engine.name == "spark" and cfg.engine.spark_master == "local[1]"
    assert cfg.engine.spark_conf == {"spark.x": "1"} and cfg.engine.collect_max_ties == 0
    assert AnalysisConfig().engine.name == "local"
    assert AnalysisConfig.from_mapping(cfg.to_dict()) == cfg


def test_engine_config_rejects_bad_values() -> None:
    with pytest.raises(InvalidInputError, match=r"engine\.name"):
        AnalysisConfig.from_mapping({"engine": {"name": "dask"}})
    with pytest.raises(InvalidInputError, match="collect_max_ties"):
        AnalysisConfig.from_mapping({"engine": {"collect_max_ties": -1}})


def test_local_masters_bind_to_loopback_with_the_ui_off_and_clusters_keep_theirs() -> None:
    local = local_defaults("local[2]")
    assert local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.ui.enabled"] == "false"
    assert int(local["spark.sql.shuffle.partitions"]) <= 8
    assert "-XX:+UseSerialGC" in local["spark.driver.extraJavaOptions"]
    cluster = local_defaults("yarn")
    assert "spark.driver.bindAddress" not in cluster and "spark.ui.enabled" not in cluster
    assert cluster["spark.sql.session.timeZone"] == "UTC"


def test_label_propagation_reference_follows_its_rule_on_a_hand_checked_graph() -> None:
    # two triangles joined by one light tie, plus an isolated customer (6)
    src = np.array([0, 1, 2, 3, 4, 5, 2])
    dst = np.array([1, 2, 0, 4, 5, 3, 3])
    w = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1])
    labels, steps = label_propagation_reference(src, dst, w, 7, max_iter=1)
    # step 1: 0 sees {1: 1, 2: 1} -> 1 (smallest on a tie); 2 sees {0, 1} at 1 and {3} at 0.1
    assert labels.tolist() == [1, 0, 0, 4, 3, 3, 6] and steps == 1
    labels, _ = label_propagation_reference(src, dst, w, 7)
    assert labels[6] == 6  # no ties: keeps its own position
    assert set(labels[:3]).isdisjoint(labels[3:6])  # the light tie never carries a label over
