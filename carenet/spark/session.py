"""A Spark session for carenet, and the lazy import of pyspark.

Local mode (``local[2]`` by default) is what tests, CI and a laptop use: the driver binds to
127.0.0.1 with the UI off (no ports opened beyond loopback), few shuffle partitions (the default
200 costs seconds per shuffle on small data), the Python workers run this interpreter (else they
ignore the virtual environment), and the JVM uses the serial collector (less start-up and
memory on a small machine). The JIT keeps its default tiers: limiting it to the client
compiler (``-XX:TieredStopAtLevel=1``) starts the session a few seconds sooner but makes the
long iterative DataFrame steps slower (benchmarks/spark_jit.py: loading CollegeMsg plus 20
PageRank and label-propagation steps took 383 s with the default tiers against 461 s with
the client compiler only, both run at once at load 5-11). A cluster master URL keeps Spark's
own defaults except what ``conf`` sets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from carenet.errors import InvalidInputError

INSTALL_HINT = "the Spark engine needs pyspark and Java 17+: pip install 'carenet[spark]'"
LOCAL_JVM_FLAGS = "-XX:+UseSerialGC"


def require_pyspark() -> Any:
    """The ``pyspark`` module, or a clear error saying how to install it.

    Returns
    -------
    module
        The imported ``pyspark`` package.

    Raises
    ------
    InvalidInputError
        When pyspark is not installed.
    """
    try:
        import pyspark
    except ImportError as exc:
        raise InvalidInputError(INSTALL_HINT) from exc
    return pyspark


def to_pandas(frame: Any) -> Any:
    """``frame.toPandas()`` without pyspark's warnings about pandas >= 3.

    pyspark 4.x warns that it does not fully support pandas 3, and its Arrow conversion calls
    pandas with a deprecated ``copy`` keyword. carenet converts only plain numeric and string
    columns (the parity tests check the values), so these warnings carry no information here
    and would fail a test run that treats warnings as errors; they are silenced for the
    conversion only.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return frame.toPandas()


def parse_conf(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Spark settings from ``k=v`` strings (``--spark-conf``) or a mapping.

    >>> parse_conf(["spark.executor.memory=4g", "spark.sql.shuffle.partitions=64"])
    {'spark.executor.memory': '4g', 'spark.sql.shuffle.partitions': '64'}
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"a Spark setting must be key=value, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def local_defaults(master: str) -> dict[str, str]:
    """The settings carenet adds for a ``local[...]`` master (a cluster keeps its own)."""
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if master.startswith("local"):
        conf |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.driver.extraJavaOptions": LOCAL_JVM_FLAGS,
            "spark.executor.extraJavaOptions": LOCAL_JVM_FLAGS,
        }
    return conf


def get_session(master: str | None = None, conf: Mapping[str, str] | None = None,
                app_name: str = "carenet") -> Any:
    """A (possibly existing) SparkSession set up for carenet.

    Parameters
    ----------
    master
        Spark master URL (``local[2]`` when None; ``spark://host:7077``, ``yarn``, ``k8s://...``
        on a cluster). Under ``spark-submit`` pass None to keep the submitted master.
    conf
        Extra Spark settings; they win over carenet's defaults.
    app_name
        The application name shown by the cluster.

    Returns
    -------
    pyspark.sql.SparkSession
        The session (``getOrCreate``: an active session is reused).
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    submitted = os.environ.get("SPARK_ENV_LOADED") or "spark.master" in (conf or {})
    chosen = master or ("" if submitted else "local[2]")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if chosen.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # never another interface
    builder = SparkSession.builder.appName(app_name)
    if chosen:
        builder = builder.master(chosen)
    for key, value in (local_defaults(chosen or "cluster") | dict(conf or {})).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise InvalidInputError(
            f"could not start Spark ({type(exc).__name__}: {str(exc)[:300]}); "
            "is Java 17+ installed (java -version) and JAVA_HOME right?"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    return session
