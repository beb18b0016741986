"""Analysis steps run by :func:`carenet.pipeline.analyze`, one module per capability.

Each module defines functions decorated with :func:`carenet.steps.base.register_step`;
:func:`import_steps` imports them all, in the order of :data:`STEP_MODULES` (the run order).
"""

from __future__ import annotations

import importlib

# Each capability adds its module here, in run order.
STEP_MODULES: tuple[str, ...] = ("measures", "influence", "care", "changes")


def import_steps() -> None:
    """Import every step module so that its steps are registered."""
    for module in STEP_MODULES:
        importlib.import_module(f"carenet.steps.{module}")
