"""The service's CLI: analyze/demo publish to the store, keys create|list|revoke."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.store import RunStore

runner = CliRunner()


@pytest.mark.slow  # a full analysis: runs in make test, not in make test-fast
def test_analyze_publishes_and_keys_roundtrip(tmp_path: Path, sample_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "store.db"
    result = runner.invoke(app, ["analyze", str(sample_dir / "interactions.csv"), "--out",
                                 str(tmp_path / "run"), "--db", str(db), "-q"])
    assert result.exit_code == 0, result.output
    assert f"sqlite:///{db}" in result.output.replace("\n", "")
    store = RunStore(str(db))
    latest = store.latest_id()
    assert latest is not None and latest in result.output
    created = runner.invoke(app, ["keys", "create", "--role", "analyst", "--name", "crm",
                                  "--db", str(db)])
    assert created.exit_code == 0, created.output
    token = re.search(r"cn_\S+", created.output)
    assert token is not None
    info = store.verify_key(token.group(0))
    assert info is not None and info.role == "analyst"
    listed = runner.invoke(app, ["keys", "list", "--db", str(db)])
    assert info.id in listed.output and token.group(0) not in listed.output
    assert runner.invoke(app, ["keys", "revoke", info.id, "--db", str(db)]).exit_code == 0
    assert store.verify_key(token.group(0)) is None
    bad = runner.invoke(app, ["keys", "create", "--role", "root", "--db", str(db)])
    assert bad.exit_code == 2 and "role must be one of" in bad.output
    store.close()
    # $CARENET_DB is the default store of every command
    monkeypatch.setenv("CARENET_DB", str(tmp_path / "env.db"))
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "-q"])
    assert result.exit_code == 0, result.output
    assert RunStore(str(tmp_path / "env.db")).latest_id() is not None
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo2"), "-q",
                                 "--no-publish"])
    assert result.exit_code == 0 and "published" not in result.output
