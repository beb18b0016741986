"""The Spark loader's model of the local reader's batches (no JVM needed): the first line of
every batch the local reader yields, found from the bytes alone.

Oracle: the local reader itself (``RawTable.batches`` and ``lines``) on the same file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carenet.graphs import tables
from carenet.graphs.logs import LogOptions, LogReader
from carenet.graphs.tables import ReadOptions
from carenet.spark.load import local_batch_starts


def _local_batch_starts(path: Path, options: LogOptions) -> list[int]:
    reader = LogReader(path, options)
    firsts = [first for _batch, first in reader.table.batches()]
    lines = reader.table.lines(np.asarray(firsts, dtype=np.int64))
    return [int(x) for x in lines[1:]]


def _rows(n: int) -> list[str]:
    rng = np.random.default_rng(5)
    # rows of uneven length, so batch boundaries fall at varied places
    return [f"C{rng.integers(0, 10**rng.integers(1, 9))},D{i % 97},{1700000000 + i}"
            for i in range(n)]


@pytest.mark.parametrize("kind", ["csv", "gzip", "whitespace", "headerless"])
def test_text_batch_starts_match_the_local_reader(tmp_path: Path, kind: str) -> None:
    rows = _rows(4000)
    if kind == "whitespace":  # SNAP style: runs of spaces, normalised before parsing
        body = "\n".join("  " + r.replace(",", " \t  ") + "   " for r in rows) + "\n"
    elif kind == "headerless":
        body = "\n".join(rows) + "\n"
    else:
        body = "source,target,timestamp\n" + "\n".join(rows)  # no newline at the end
    path = tmp_path / ("log.csv.gz" if kind == "gzip" else "log.txt" if kind == "whitespace"
                       else "log.csv")
    if kind == "gzip":
        path.write_bytes(gzip.compress(body.encode()))
    else:
        path.write_text(body)
    options = LogOptions(read=ReadOptions(block_size=4096))
    want = _local_batch_starts(path, options)
    assert len(want) > 10  # many batches: the check can fail
    got = local_batch_starts(path, LogReader(path, options), 4096)
    assert got == want
    assert local_batch_starts(path, LogReader(path, LogOptions()), 16 << 20) == []


def test_parquet_batch_starts_match_the_local_reader(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "BATCH_ROWS", 700)
    rows = [r.split(",") for r in _rows(5000)]
    frame = pd.DataFrame(rows, columns=["source", "target", "timestamp"])
    path = tmp_path / "log.parquet"
    frame.to_parquet(path, index=False, row_group_size=333)  # batches span row groups
    want = _local_batch_starts(path, LogOptions())
    assert want == [701, 1401, 2101, 2801, 3501, 4201, 4901]
    assert local_batch_starts(path, LogReader(path, LogOptions()), 16 << 20) == want
