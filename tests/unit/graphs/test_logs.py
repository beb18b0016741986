"""Loading interaction logs: formats, column mapping, time units, rejects with exact lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from carenet.graphs.build import GraphBuilder, load_network
from carenet.graphs.logs import LogOptions
from carenet.graphs.tables import ReadOptions

LOG = """caller,callee,when,how,minutes
a,b,2026-01-01T10:00:00Z,call,3
b,a,2026-01-02T10:00:00Z,sms,1
a,c,2026-01-03T10:00:00Z,call,2
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def edges(net) -> dict[tuple[str, str], float]:
    g = net.graph
    return {
        (g.ids[s], g.ids[t]): w
        for s, t, w in zip(g.sources().tolist(), g.indices.tolist(), g.weights.tolist(), strict=True)
    }


def test_header_synonyms_map_columns(tmp_path: Path) -> None:
    net = load_network(write(tmp_path, "log.csv", LOG.replace("when", "timestamp").replace("how", "channel").replace("minutes", "duration").replace("caller", "from").replace("callee", "to")))
    f = net.report.files[0]
    assert f.columns == {"source": "from", "target": "to", "timestamp": "timestamp", "channel": "channel", "weight": "duration"}
    assert f.time_unit == "iso"
    assert edges(net) == {("a", "b"): 3.0, ("b", "a"): 1.0, ("a", "c"): 2.0}  # no half-life given


def test_explicit_columns_and_no_decay(tmp_path: Path) -> None:
    p = write(tmp_path, "log.csv", LOG)
    net = load_network(
        p,
        log_options=LogOptions(source_col="caller", target_col="callee", time_col="when",
                               channel_col="how", weight_col="minutes"),
    )
    assert edges(net) == {("a", "b"): 3.0, ("b", "a"): 1.0, ("a", "c"): 2.0}
    assert net.graph.channel_names == ("call", "sms")
    assert net.graph.reference_time == pd.Timestamp("2026-01-03T10:00:00Z").timestamp()


def test_time_decay_halves_per_half_life(tmp_path: Path) -> None:
    p = write(tmp_path, "log.csv", LOG)
    opts = LogOptions(source_col="caller", target_col="callee", time_col="when", weight_col="minutes")
    net = load_network(p, log_options=opts, half_life="1d")
    e = edges(net)
    assert e[("a", "c")] == pytest.approx(2.0)
    assert e[("b", "a")] == pytest.approx(0.5)  # one day old
    assert e[("a", "b")] == pytest.approx(3.0 * 0.25)  # two days old


def test_channel_weights_multiply(tmp_path: Path) -> None:
    p = write(tmp_path, "log.csv", LOG)
    opts = LogOptions(source_col="caller", target_col="callee", time_col="", channel_col="how", weight_col="")
    net = load_network(p, log_options=opts, channel_weights={"call": 2.5})
    assert edges(net) == {("a", "b"): 2.5, ("b", "a"): 1.0, ("a", "c"): 2.5}
    assert net.graph.reference_time is None  # no time column -> no decay, no reference


def test_rejects_have_reason_line_column_and_record(tmp_path: Path) -> None:
    text = (
        "source,target,timestamp,weight,channel\n"  # line 1
        "a,b,2026-01-01T00:00:00Z,1,call\n"  # 2 ok
        ",b,2026-01-01T00:00:00Z,1,call\n"  # 3 missing id
        "a,a,2026-01-01T00:00:00Z,1,call\n"  # 4 self
        "a,b,yesterday,1,call\n"  # 5 bad timestamp
        "a,b,2026-01-01T00:00:00Z,-1,call\n"  # 6 negative weight
        "a,b,2026-01-01T00:00:00Z,lots,call\n"  # 7 bad weight
        "\n"  # 8 blank
        "a,b,2026-01-01T00:00:00Z\n"  # 9 malformed
        "a,b,2026-01-01T00:00:00Z,1,pigeon\n"  # 10 unknown channel
        "b,c,,1,sms\n"  # 11 missing timestamp
        "c,a,2026-01-02T00:00:00Z,nan,sms\n"  # 12 nonfinite
        "c,a,2026-01-02T00:00:00Z,2,sms\n"  # 13 ok
    )
    p = write(tmp_path, "log.csv", text)
    b = GraphBuilder(channels=["call", "sms"])
    b.add_log(p)
    net = b.build()
    rej = net.rejects.to_frame().sort_values("line")
    got = list(zip(rej["line"], rej["reason"], strict=True))
    assert got == [
        (3, "missing_id"),
        (4, "self_interaction"),
        (5, "bad_timestamp"),
        (6, "negative_weight"),
        (7, "bad_weight"),
        (9, "malformed_row"),
        (10, "unknown_channel"),
        (11, "missing_timestamp"),
        (12, "nonfinite_weight"),
    ]
    row = rej[rej["reason"] == "bad_timestamp"].iloc[0]
    assert row["column"] == "timestamp"
    assert row["value"] == "yesterday"
    assert row["record"] == "a,b,yesterday,1,call"
    assert (rej["file"] == str(p)).all()
    f = net.report.files[0]
    assert f.rows_loaded == 2
    assert f.rows_read == 11  # every data row, good or bad; the blank line is not a row
    assert f.blank_lines == 1
    assert sum(f.rejected.values()) == 9


def test_line_numbers_survive_many_batches(tmp_path: Path) -> None:
    # small blocks: many batches, malformed and blank rows in between
    lines = ["source,target,weight"]
    bad_lines = []
    for i in range(2, 5002):
        if i % 997 == 0:
            lines.append("x,y")  # malformed
            bad_lines.append((i, "malformed_row"))
        elif i % 1231 == 0:
            lines.append("")
        elif i % 401 == 0:
            lines.append(f"u{i},v{i},-{i}")
            bad_lines.append((i, "negative_weight"))
        else:
            lines.append(f"u{i},v{i},1")
    p = write(tmp_path, "log.csv", "\n".join(lines) + "\n")
    b = GraphBuilder()
    b.add_log(p, LogOptions(read=ReadOptions(block_size=4096)))
    net = b.build()
    rej = net.rejects.to_frame().sort_values("line")
    assert list(zip(rej["line"], rej["reason"], strict=True)) == bad_lines
    # the record of each negative-weight reject is the text of its line
    for line, record in zip(rej["line"], rej["record"], strict=True):
        if record.count(",") == 2:
            assert lines[line - 1] == record


def test_snap_whitespace_with_comments(tmp_path: Path) -> None:
    text = "# Directed graph\n# FromNodeId\tToNodeId\n1\t2\n2\t3\n3\t1\n"
    net = load_network(write(tmp_path, "g.txt", text))
    assert net.graph.n_ties == 3
    assert net.report.files[0].comment_lines == 2
    assert net.report.files[0].header is False


def test_ragged_whitespace_is_normalised(tmp_path: Path) -> None:
    text = "  1   2    100\n2 3\t200\n\t3  1  300  \n"
    net = load_network(write(tmp_path, "g.txt", text), log_options=LogOptions(weight_col=""))
    assert net.graph.n_ties == 3
    assert "runs of spaces" in " ".join(net.report.files[0].notes)


def test_headerless_positional_timestamp_then_weight(tmp_path: Path) -> None:
    text = "1 2 1082040961\n3 4 1082155839\n"
    net = load_network(write(tmp_path, "c.txt", text))
    f = net.report.files[0]
    assert f.columns == {"source": "column_1", "target": "column_2", "timestamp": "column_3"}
    assert f.time_unit == "s"
    text = "1 2 5\n3 4 7\n"
    f = load_network(write(tmp_path, "w.txt", text)).report.files[0]
    assert f.columns == {"source": "column_1", "target": "column_2", "weight": "column_3"}


def test_named_columns_for_headerless_file(tmp_path: Path) -> None:
    text = "1;2;5\n3;4;7\n"
    opts = LogOptions(read=ReadOptions(columns=("source", "target", "weight")))
    net = load_network(write(tmp_path, "w.csv", text), log_options=opts)
    assert sorted(edges(net).values()) == [5.0, 7.0]
    assert net.report.files[0].delimiter == ";"


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1000), ("us", 1_000_000)])
def test_epoch_units_detected(tmp_path: Path, unit: str, scale: int) -> None:
    t0 = 1_700_000_000
    text = "source,target,timestamp\n" + "".join(f"a{i},b{i},{(t0 + i * 3600) * scale}\n" for i in range(5))
    net = load_network(write(tmp_path, "t.csv", text))
    assert net.report.files[0].time_unit == unit
    assert net.graph.reference_time == pytest.approx(t0 + 4 * 3600)


def test_gzip_parquet_jsonl_and_dataframe_agree(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "source": ["a", "b", "a", "c"], "target": ["b", "a", "c", "a"],
        "timestamp": [1_700_000_000, 1_700_000_100, 1_700_000_200, 1_700_000_300],
        "weight": [1.0, 2.0, 3.0, 4.0],
    })
    csv = tmp_path / "log.csv.gz"
    with gzip.open(csv, "wt") as f:
        frame.to_csv(f, index=False)
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.Table.from_pandas(frame), parquet)
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    results = [edges(load_network(src, half_life="1h")) for src in (csv, parquet, jsonl, frame)]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for k in other:
            assert other[k] == pytest.approx(results[0][k])


def test_integer_ids_in_parquet_become_strings(tmp_path: Path) -> None:
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"source": [1, 2], "target": [2, 3]}), parquet)
    net = load_network(parquet)
    assert sorted(net.graph.ids.tolist()) == ["1", "2", "3"]


def test_jsonl_bad_line_is_rejected_not_fatal(tmp_path: Path) -> None:
    text = '{"source": "a", "target": "b"}\n{oops\n{"source": "b", "target": "c"}\n[1, 2]\n'
    net = load_network(write(tmp_path, "log.jsonl", text))
    rej = net.rejects.to_frame()
    assert sorted(zip(rej["line"], rej["reason"], strict=True)) == [(2, "invalid_json"), (4, "invalid_json")]
    assert net.graph.n_ties == 2


def test_constant_channel_per_file(tmp_path: Path) -> None:
    calls = write(tmp_path, "calls.csv", "from,to\na,b\n")
    sms = write(tmp_path, "sms.csv", "from,to\na,b\nb,c\n")
    b = GraphBuilder(channel_weights={"call": 3})
    b.add_log(calls, LogOptions(channel="call"))
    b.add_log(sms, LogOptions(channel="sms"))
    g = b.build().graph
    e = {(g.ids[s], g.ids[t]): (w, g.channel_list(int(c)))
         for s, t, w, c in zip(g.sources(), g.indices, g.weights, g.channels, strict=True)}
    assert e[("a", "b")] == (4.0, ["call", "sms"])
    assert e[("b", "c")] == (1.0, ["sms"])


def test_reference_time_rejects_later_rows(tmp_path: Path) -> None:
    text = "source,target,timestamp\na,b,100\nb,c,200\nc,d,300\n"
    net = load_network(write(tmp_path, "t.csv", text), reference_time=200.0, half_life="100s")
    assert net.report.rejected == {"after_reference": 1}
    e = edges(net)
    assert e[("a", "b")] == pytest.approx(0.5)
    assert e[("b", "c")] == pytest.approx(1.0)
    assert "d" not in net.graph.ids.tolist()  # a customer seen only in a rejected row is not one


def test_min_weight_and_symmetrize(tmp_path: Path) -> None:
    text = "source,target,weight\na,b,1\nb,a,2\nb,c,0.5\n"
    net = load_network(write(tmp_path, "w.csv", text), symmetrize=True, min_weight=0.8)
    g = net.graph
    assert not g.directed
    assert g.n_ties == 1
    assert g.weights.tolist() == [3.0, 3.0]
    assert g.n_customers == 3  # c stays, isolated


def test_side_tables_customers_and_events(tmp_path: Path) -> None:
    log = write(tmp_path, "log.csv", "source,target\na,b\nb,c\n")
    cust = write(tmp_path, "cust.csv", "customer_id,value,segment,churn_score,plan_age\na,10,gold,0.2,3\nz,5,basic,0.9,1\na,99,dup,0.1,2\nq,-3,bad,0.1,1\nr,4,x,1.7,1\n")
    ev = write(tmp_path, "ev.csv", "customer_id,event,timestamp\nb,Complaint,2026-01-01T00:00:00Z\nnobody,churn,2026-01-01T00:00:00Z\nc,,2026-01-01T00:00:00Z\n")
    net = load_network(log, customers=cust, events=ev)
    c = net.customers.set_index("customer_id")
    assert c.loc["a", "value"] == 10.0
    assert c.loc["a", "segment"] == "gold"
    assert c.loc["z", "in_log"] == False  # noqa: E712 - numpy bool
    assert c.loc["b", "in_log"] == True  # noqa: E712
    assert np.isnan(c.loc["b", "value"])
    assert c.loc["a", "plan_age"] == 3.0
    assert net.graph.n_customers == 4  # a, b, c + z from the customers table
    assert net.events["event"].tolist() == ["complaint"]
    reasons = sorted(net.rejects.to_frame()["reason"].tolist())
    assert reasons == ["bad_churn_score", "bad_value", "duplicate_customer", "missing_event", "unknown_customer"]


def test_pseudonymised_ids_never_reach_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARENET_SALT", "s3cret")
    log = write(tmp_path, "log.csv", "source,target,weight\nalice,bob,1\nbob,carol,-1\n")
    cust = write(tmp_path, "c.csv", "customer_id,value\nalice,3\n")
    import carenet

    run = carenet.analyze(log, customers=cust, config=carenet.AnalysisConfig().with_overrides({"graph.pseudonymize": True}))
    out = run.save(tmp_path / "run")
    blob = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file() and p.suffix in (".csv", ".json"))
    blob += "".join(p.read_bytes().decode("latin-1") for p in out.rglob("*.parquet"))
    for raw in ("alice", "bob", "carol"):
        assert raw not in blob
    assert all(i.startswith("p_") for i in run.customers["customer_id"])
    assert run.customers.set_index("customer_id")["value"].notna().sum() == 1
    assert run.rejects["reason"].tolist() == ["negative_weight"]


def test_pseudonymise_without_salt_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from carenet.errors import InvalidInputError

    monkeypatch.delenv("CARENET_SALT", raising=False)
    with pytest.raises(InvalidInputError, match="CARENET_SALT"):
        load_network(write(tmp_path, "l.csv", "source,target\na,b\n"), pseudonymize=True)


def test_real_collegemsg_counts(datasets: Path) -> None:
    net = load_network(datasets / "snap-collegemsg" / "CollegeMsg.txt")
    assert net.report.rows_read == 59_835
    assert net.report.rows_loaded == 59_835
    assert net.graph.n_customers == 1_899
    assert net.graph.n_ties == 20_296
    assert net.graph.summary().ties == 20_296
    sym = net.graph.symmetrize()
    assert sym.n_ties < 20_296


def test_real_copenhagen_calls(datasets: Path) -> None:
    net = load_network(datasets / "copenhagen-networks-study" / "calls.csv",
                       log_options=LogOptions(weight_col="duration"))
    assert net.report.rows_read == 3_600
    assert net.report.rejected == {"negative_weight": 366}
    rej = net.rejects.to_frame()
    assert (rej["value"] == "-1").all()
    assert rej["line"].iloc[0] == 5  # "9252,401,457,-1" is the file's 5th line
