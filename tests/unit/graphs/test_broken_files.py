"""A corpus of files that cannot be used at all: each gives one clear error naming the file
(and the line and column where there is one), in the library and through the CLI (exit 2,
no traceback)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.errors import InvalidInputError
from carenet.graphs.build import load_network
from carenet.graphs.logs import LogOptions

Maker = Callable[[Path], Path]


def _text(name: str, text: str) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        p.write_text(text, encoding="utf-8")
        return p

    return make


def _bytes(name: str, data: bytes) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    return make


def _late_latin1(d: Path) -> Path:
    # valid UTF-8 for 400 KB (beyond the sniff window), then a Latin-1 byte on line 20,002
    p = d / "late.csv"
    rows = ["source,target"] + [f"customer{i:06d},customer{i + 1:06d}" for i in range(20_000)]
    p.write_bytes(("\n".join(rows) + "\n").encode() + "caf\xe9,bob\n".encode("latin-1"))
    return p


def _truncated_gzip(d: Path) -> Path:
    p = d / "log.csv.gz"
    blob = gzip.compress(b"source,target\n" + b"a,b\n" * 10_000)
    p.write_bytes(blob[: len(blob) // 2])
    return p


# name -> (maker, expected message part, expected line or None, extra LogOptions)
CASES: dict[str, tuple[Maker, str, int | None, LogOptions]] = {
    "missing": (lambda d: d / "nope.csv", "no such file", None, LogOptions()),
    "directory": (lambda d: d, "is a directory", None, LogOptions()),
    "empty": (_bytes("empty.csv", b""), "empty (0 bytes)", None, LogOptions()),
    "blank_lines": (_text("blank.csv", "\n\n  \n"), "only blank lines", None, LogOptions()),
    "only_comments": (_text("c.txt", "# nothing\n# here\n"), "no rows", None, LogOptions()),
    "header_only": (_text("h.csv", "source,target,timestamp\n"), "no data rows", None, LogOptions()),
    "binary": (_bytes("b.csv", b"\x00\x01\x02binary\x00junk" * 10), "binary data", None, LogOptions()),
    "latin1_early": (_bytes("l.csv", "source,target\nann,bob\nr\xe9my,ann\n".encode("latin-1")),
                     "not valid UTF-8", 3, LogOptions()),
    "latin1_late": (_late_latin1, "not valid UTF-8", 20_002, LogOptions()),
    "truncated_gzip": (_truncated_gzip, "gzip", None, LogOptions()),
    "fake_parquet": (_text("log.parquet", "source,target\na,b\n"), "not a Parquet file", None, LogOptions()),
    "corrupt_parquet": (_bytes("c.parquet", b"PAR1" + b"\x13" * 200 + b"PAR1"), "Parquet", None, LogOptions()),
    "zip": (_bytes("log.zip", b"PK\x03\x04" + b"\x00" * 100), "ZIP archive", None, LogOptions()),
    "missing_named_column": (_text("m.csv", "a,b,c\n1,2,3\n"), "source column 'caller' not found; the file has columns a, b, c", 1,
                             LogOptions(source_col="caller")),
    "unknown_columns": (_text("u.csv", "x,y,z\n1,2,3\n"), "required column(s) source, target not found", 1, LogOptions()),
    "one_column": (_text("one.csv", "alice\nbob\ncarol\n"), "only one column", 1, LogOptions()),
    "jsonl_not_objects": (_text("a.jsonl", "[1, 2]\n[3, 4]\n"), "not JSON Lines", 1, LogOptions()),
    "duplicate_header": (_text("d.csv", "source,source,target\na,b,c\n"), "repeats column name", 1, LogOptions()),
    "same_source_target": (_text("s.csv", "a,b\n1,2\n"), "source and target are the same column", None,
                           LogOptions(source_col="a", target_col="a")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_error_names_file_and_line(tmp_path: Path, name: str) -> None:
    maker, message, line, options = CASES[name]
    path = maker(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        load_network(path, log_options=options)
    err = info.value
    assert message in str(err)
    assert err.file is not None
    assert Path(err.file).name == path.name
    assert err.line == line


CLI_FLAGS = {"missing_named_column": ["--source-col", "caller"],
             "same_source_target": ["--source-col", "a", "--target-col", "a"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_exit_code_two_and_no_traceback(tmp_path: Path, name: str) -> None:
    maker, message, _line, _ = CASES[name]
    path = maker(tmp_path)
    result = CliRunner().invoke(app, ["analyze", str(path), "--out", str(tmp_path / "run"), "-q",
                                      *CLI_FLAGS.get(name, [])])
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert "error:" in text
    assert message.split(";")[0] in " ".join(text.split())
    assert not (tmp_path / "run").exists()


def test_bad_config_file_names_key(tmp_path: Path) -> None:
    cfg = tmp_path / "analysis.toml"
    cfg.write_text("[graph]\nhalflife = '7d'\n")
    log = tmp_path / "l.csv"
    log.write_text("source,target\na,b\n")
    result = CliRunner().invoke(app, ["analyze", str(log), "-c", str(cfg), "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "unknown setting 'graph.halflife'" in result.stderr
    assert "analysis.toml" in result.stderr
    cfg.write_text("[graph\n")
    result = CliRunner().invoke(app, ["analyze", str(log), "-c", str(cfg), "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--half-life", "soon", "cannot read duration"),
    ("--time-unit", "fortnights", "time unit must be one of"),
    ("--reference-time", "tomorrow-ish", "cannot read time"),
    ("--channel-weights", "call", "name=weight"),
    ("--min-weight", "-1", "min_weight must be >= 0"),
])
def test_bad_flags_are_clear(tmp_path: Path, flag: str, value: str, message: str) -> None:
    log = tmp_path / "l.csv"
    log.write_text("source,target\na,b\n")
    result = CliRunner().invoke(app, ["analyze", str(log), flag, value, "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_every_row_rejected_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "l.csv"
    log.write_text("source,target\na,a\nb,b\n")
    result = CliRunner().invoke(app, ["analyze", str(log), "-q", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no customers" in result.stderr
    assert "self_interaction" in result.stderr
