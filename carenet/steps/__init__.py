"""Analysis steps run by :func:`carenet.pipeline.analyze`, one module per capability.

Each module defines plain functions ``step(ctx: RunContext) -> None``
(:mod:`carenet.steps.base`); :data:`carenet.pipeline.STEPS` lists them in run order. Nothing
registers itself on import, so the order never depends on who imported what first.
"""
