"""Hostile and broken inputs at load time (issue 13): Parquet columns carenet cannot read,
corrupt gzip data, ids the API could not address, nested JSON ids, boolean timestamps, a
repeated header line. Each is one clear error (exit 2 through the CLI) or a rejected row kept
with its own reason.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.errors import EmptyGraphError, InvalidInputError
from carenet.graphs.build import load_network


def _parquet(path: Path, **columns: object) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _corrupt_gzip(path: Path) -> Path:
    """A valid gzip header, then deflate data with garbage in the middle of the first block."""
    blob = gzip.compress(b"source,target,time\n" + b"ann,bob,1700000000\n" * 5000)
    path.write_bytes(blob[:20] + b"\x00garbage" * 50 + blob[200:])
    return path


BROKEN = {
    "list_column": (lambda d: _parquet(d / "list.parquet", source=[["a", "b"], ["c"]],
                                       target=["x", "y"]), "source", "list"),
    "struct_column": (lambda d: _parquet(d / "struct.parquet", source=["a", "b"],
                                         target=[{"k": 1}, {"k": 2}]), "target", "struct"),
    "unused_struct": (lambda d: _parquet(d / "extra.parquet", source=["a", "b"],
                                         target=["b", "c"], meta=[{"k": 1}, {"k": 2}]),
                      "meta", "struct"),
    "binary_column": (lambda d: _parquet(d / "binary.parquet", source=[b"a", b"\xff\xfe"],
                                         target=["x", "y"]), "source", "not UTF-8"),
    "corrupt_gzip": (lambda d: _corrupt_gzip(d / "log.csv.gz"), None, "gzip-compressed"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_are_one_error_naming_file_and_column(tmp_path: Path, name: str) -> None:
    make, column, message = BROKEN[name]
    path = make(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        load_network(path)
    err = info.value
    assert Path(str(err.file)).name == path.name and err.column == column
    assert message in str(err)
    result = CliRunner().invoke(app, ["analyze", str(path), "--out", str(tmp_path / "run"),
                                      "-q"])
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text and "error:" in text
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and path.name in lines[0], text  # one line naming the file
    if column is not None:
        assert repr(column) in lines[0]


def test_binary_column_of_text_still_loads(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "ok.parquet", source=[b"ann", b"bob"], target=["bob", "cid"])
    net = load_network(path)
    assert sorted(net.customers["customer_id"]) == ["ann", "bob", "cid"]


HOSTILE_IDS = ["a/b", "x" * 257, "evil\u202egnp.exe", "tab\tbed", "rtl\u2067iso", "nul\x00x"]


def test_unaddressable_ids_are_rejected_as_bad_id(tmp_path: Path) -> None:
    frame = pd.DataFrame({"source": ["ann"] * len(HOSTILE_IDS) + ["ann", "x" * 256],
                          "target": [*HOSTILE_IDS, "bob", "ann"]})
    path = tmp_path / "ids.parquet"  # Parquet: the cells arrive exactly as written
    frame.to_parquet(path)
    net = load_network(path)
    assert sorted(net.customers["customer_id"]) == sorted(["ann", "bob", "x" * 256])
    rej = net.rejects.to_frame()
    assert (rej["reason"] == "bad_id").sum() == len(HOSTILE_IDS)
    assert set(rej["column"]) == {"target"}
    assert net.report.rejected == {"bad_id": len(HOSTILE_IDS)}


def test_customers_table_rejects_bad_ids_too(tmp_path: Path) -> None:
    log = pd.DataFrame({"source": ["ann", "bob"], "target": ["bob", "cid"]})
    customers = pd.DataFrame({"customer_id": ["ann", "bob/evil", "x" * 300],
                              "value": [1.0, 2.0, 3.0]})
    net = load_network(log, customers=customers)
    rej = net.rejects.to_frame()
    assert sorted(rej.loc[rej["reason"] == "bad_id", "value"].str[:8]) == ["bob/evil", "x" * 8]
    assert "bob/evil" not in set(net.customers["customer_id"])


def test_jsonl_nested_object_id_and_bool_time_are_rejected(tmp_path: Path) -> None:
    rows = [{"source": "ann", "target": "bob", "time": 1_700_000_000},
            {"source": {"id": "cid"}, "target": "bob", "time": 1_700_000_100},
            {"source": "bob", "target": ["ann", "cid"], "time": 1_700_000_200},
            {"source": "bob", "target": "cid", "time": True},
            {"source": "cid", "target": "ann", "time": 1_700_000_300}]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    net = load_network(path)
    ids = set(net.customers["customer_id"])
    assert ids == {"ann", "bob", "cid"}  # no '{"id": "cid"}' customer
    rej = net.rejects.to_frame().sort_values("line")
    assert rej[["line", "reason", "column"]].values.tolist() == [
        [2, "bad_id", "source"], [3, "bad_id", "target"], [4, "bad_timestamp", "time"]]


@pytest.mark.parametrize("kind", ["parquet", "frame"])
def test_boolean_timestamps_are_bad_timestamp_not_1970(tmp_path: Path, kind: str) -> None:
    frame = pd.DataFrame({"source": ["ann", "bob", "cid"], "target": ["bob", "cid", "ann"],
                          "time": [True, False, True]})
    src: object = frame
    if kind == "parquet":
        src = tmp_path / "b.parquet"
        frame.to_parquet(src)
    with pytest.raises(EmptyGraphError) as info:  # every row is rejected: a clear error
        load_network(src)
    assert "bad_timestamp" in str(info.value) and "3" in str(info.value)


def test_repeated_header_line_has_its_own_reason(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("source,target,time\nann,bob,1700000000\nbob,cid,1700000100\n"
                    "source,target,time\ncid,ann,1700000200\n")
    net = load_network(path)
    rej = net.rejects.to_frame()
    assert rej[["line", "reason"]].values.tolist() == [[4, "repeated_header"]]
    assert net.graph.n_ties == 3
