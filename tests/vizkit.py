"""Helpers for the view and report tests: a small real run, and reading a view's data back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from carenet.config import AnalysisConfig
from carenet.pipeline import AnalysisRun, analyze
from carenet.synthetic import GeneratorConfig, generate

FAST = AnalysisConfig().with_overrides({
    "influence.epsilon": 0.3, "influence.exposure_runs": 300, "influence.seed_set_size": 10,
    "influence.compare_runs": 200, "measures.exact_max": 500,
})


def small_run(directory: Path, *, customers: int = 400, interactions: int = 6000,
              seed: int = 3) -> tuple[AnalysisRun, Path]:
    """Generate a small synthetic community, analyse it and save the run under directory."""
    data = generate(GeneratorConfig(customers=customers, interactions=interactions,
                                    community_size=50, seed=seed))
    paths = data.write(directory / "input")
    run = analyze(paths["interactions"], customers=paths["customers"], events=paths["events"],
                  config=FAST)
    return run, run.save(directory / "run")


_DATA = re.compile(r'<script type="application/json" id="carenet-data">(.*?)</script>', re.S)


def view_data(html: str) -> dict[str, Any]:
    """The nodes, edges, options and cascade settings embedded in a view page."""
    m = _DATA.search(html)
    assert m is not None, "no data block in the page"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def nodes_by_id(html: str) -> dict[Any, dict[str, Any]]:
    """The page's nodes keyed by id."""
    return {n["id"]: n for n in view_data(html)["nodes"]}


URL_PATTERNS = [
    re.compile(r"https?://", re.I),                                # any absolute http(s) URL
    re.compile(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*//""", re.I),   # protocol-relative
    re.compile(r"<link\b", re.I),                                  # external stylesheets etc.
    re.compile(r"<script\b[^>]*\bsrc\s*=", re.I),                  # external scripts
    re.compile(r"@import", re.I),                                  # CSS imports
    re.compile(r"(?<![\w$])url\(\s*(?![\"']?data:)[^)\s]", re.I),             # CSS url() other than data:
    re.compile(r"sourceMappingURL", re.I),                         # devtools would fetch it
]


def external_references(html: str) -> list[str]:
    """Every piece of the page that would (or could) make the browser fetch something."""
    found = []
    for pattern in URL_PATTERNS:
        for m in pattern.finditer(html):
            found.append(html[max(0, m.start() - 40): m.end() + 40])
    return found
