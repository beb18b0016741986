"""Helpers shared by the benchmark scripts: timing in fresh subprocesses, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def run_child(code: str, *, timeout: float = 3600, env: dict[str, str] | None = None,
              python: str | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (``python``: another environment's; default this
    one); it must print one JSON object as its last line.

    A fresh process per measurement keeps peak memory (``ru_maxrss``) its own.
    """
    prologue = textwrap.dedent(
        """
        import json, resource, time, sys
        def _peak_mb():
            # VmHWM belongs to this process's address space; ru_maxrss would include the
            # parent's peak, which Linux carries across exec
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        """
    )
    proc = subprocess.run(
        [python or sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in results if key in r]
    return statistics.median(vals) if vals else None


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
