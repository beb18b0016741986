"""The README's examples, run as written: its Python snippets and its ``carenet`` commands that
need no server and no file of the reader's own (``my_calls.csv``, ``logs/week-47.csv``), in
README order, in a scratch directory laid out like the repository (``data/``, ``../shared``).

Each command is bounded by a timeout; the whole test is marked slow (it analyses the shipped
sample and two real logs and runs two backtests).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Commands that need a running server or an input the reader brings.
NEEDS_SERVER = ("serve",)
PLACEHOLDERS = ("my_calls.csv", "logs/week-47.csv")
TIMEOUT = 900


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.S | re.M)


def commands() -> list[str]:
    """Every ``.venv/bin/carenet ...`` line of the bash blocks (continuations joined,
    comments dropped)."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith(".venv/bin/carenet "):
                out.append(line)
    return out


def runnable(command: str) -> bool:
    words = shlex.split(command)
    return words[1] not in NEEDS_SERVER and not any(p in words for p in PLACEHOLDERS)


def test_the_readme_has_what_this_test_runs() -> None:
    cmds = commands()
    names = {shlex.split(c)[1] for c in cmds if runnable(c)}
    assert {"demo", "simulate", "plan", "report", "backtest", "analyze", "generate"} <= names, cmds
    assert len(blocks("python")) >= 3


@pytest.mark.slow
@pytest.mark.timeout(3 * TIMEOUT)
def test_readme_examples_run_as_written(tmp_path: Path, datasets: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    (work / "data").mkdir()
    (work / "data" / "sample").symlink_to(ROOT / "data" / "sample")  # data/big is written here
    (tmp_path / "shared").symlink_to(datasets.parent)  # ../shared/datasets, as in the README
    env = dict(os.environ)
    env["CARENET_DB"] = f"sqlite:///{tmp_path / 'store.db'}"
    ran = []
    for command in commands():
        if not runnable(command):
            continue
        words = shlex.split(command)
        proc = subprocess.run([sys.executable, "-m", "carenet.cli", *words[1:]], cwd=work,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        ran.append(words[1])
    assert {"demo", "simulate", "plan", "report", "backtest", "analyze"} <= set(ran)
    assert (work / "out/demo/report/index.html").exists()
    assert (work / "plan.csv").exists() and (work / "cascade.json").exists()
    for snippet in blocks("python"):
        code = "import os\n" + snippet
        proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"{snippet}\n{proc.stderr[-3000:]}"
    assert (work / "out/notebook-run/run.json").exists()
    assert (work / "bt/sample/metrics.csv").exists()
