"""Steps run in STEP_MODULES order whatever order their modules were imported in (doctest
collection imports carenet/steps/care.py before influence.py, for instance)."""

from __future__ import annotations

import subprocess
import sys


def test_steps_run_in_module_order_after_any_import_order() -> None:
    code = (
        "import carenet.steps.care, carenet.steps.changes, carenet.steps.influence\n"
        "from carenet.steps import STEP_MODULES, import_steps\n"
        "from carenet.steps.base import STEPS\n"
        "import_steps()\n"
        "mods = [f.__module__.rsplit('.', 1)[1] for _, f in STEPS]\n"
        "assert mods == sorted(mods, key=STEP_MODULES.index), mods\n"
        "names = [n for n, _ in STEPS]\n"
        "assert names.index('influence') < names.index('care') < names.index('changes'), names\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
