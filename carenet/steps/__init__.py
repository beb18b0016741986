"""Analysis steps run by :func:`carenet.pipeline.analyze`, one module per capability.

Each module defines functions decorated with :func:`carenet.steps.base.register_step`;
:func:`import_steps` imports them all, in the order of :data:`STEP_MODULES` (the run order).
"""

from __future__ import annotations

import importlib

# Each capability adds its module here, in run order.
STEP_MODULES: tuple[str, ...] = ("measures", "influence", "care", "changes")


def import_steps() -> None:
    """Import every step module so that its steps are registered, then put the registry in
    the order of :data:`STEP_MODULES`: a module may have been imported earlier, by anyone (a
    doctest run, ``carenet plan`` importing the care step), which registered it first.
    Steps of one module keep their order; steps from elsewhere run after the known ones.
    """
    from carenet.steps.base import STEPS

    for module in STEP_MODULES:
        importlib.import_module(f"carenet.steps.{module}")
    rank = {f"carenet.steps.{m}": i for i, m in enumerate(STEP_MODULES)}
    STEPS.sort(key=lambda item: rank.get(item[1].__module__, len(rank)))
