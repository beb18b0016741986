"""``carenet warmup`` fills numba's on-disk cache with the kernels the default analysis
runs (slow: it compiles them from nothing, in a cache directory of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carenet.cli import COMMANDS
from carenet.cli.warmup import warmup

ROOT = Path(__file__).resolve().parents[3]


def test_warmup_is_a_command_and_the_install_step_runs_it() -> None:
    assert warmup in COMMANDS
    install = (ROOT / "Makefile").read_text().split("$(STAMP): pyproject.toml")[1]
    install = install.split("\n\n")[0]
    assert "carenet warmup" in install


PROBE = """
import json
from carenet.cli.warmup import compile_kernels
from carenet.graphs import diffusion, exposure, blocking
from carenet.store import encode, points, records
seconds = compile_kernels()
kernels = {"exposure": exposure._exposure_kernel, "rr_counts": diffusion._rr_count_kernel,
           "rr_store": diffusion._rr_store_kernel, "monte_carlo": diffusion._mc_kernel,
           "packed_ties": records._pack_rows_kernel, "copy_rows": encode._copy_rows,
           "iso_times": encode.iso_digits, "point_blocks": points._assemble}
used = {k: d.stats.cache_hits or d.stats.cache_misses for k, d in kernels.items()}
print(json.dumps({"seconds": seconds, "used": {k: len(v) for k, v in used.items()}}))
"""


@pytest.mark.slow
def test_warmup_runs_the_default_analysis_kernels() -> None:
    # a fresh process (the suite's own process has called every kernel already): after the
    # warm-up, the kernels of exposure, influence, seed selection, the what-if view and the
    # publisher were loaded from numba's cache or compiled into it
    import json

    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(n > 0 for n in out["used"].values()), out["used"]
    assert set(out["seconds"]) == {"analysis", "report", "sampled_centrality", "publish",
                                   "total"}
