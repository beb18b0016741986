"""Choosing a backend: carenet's own numba/scipy code (``native``), igraph or networkx.

:func:`resolve_backend` is the one place that turns a requested backend into the one that will
run: ``auto`` picks the first the computation supports; an explicitly requested backend never
silently falls back, and one that cannot run says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from carenet.errors import BackendUnavailableError, InvalidInputError

Backend = Literal["auto", "native", "igraph", "networkx"]
BACKENDS: tuple[str, ...] = ("auto", "native", "igraph", "networkx")
"""The backends a caller may ask for."""


def resolve_backend(backend: str, supported: Sequence[str], what: str) -> str:
    """The backend that computes ``what``: ``auto`` -> the first of ``supported``.

    Parameters
    ----------
    backend
        What the caller asked for: ``auto``, ``native``, ``igraph`` or ``networkx``.
    supported
        The backends that implement ``what``, preferred first.
    what
        The computation, for error messages (``pagerank``, ``leiden``, ...).

    Returns
    -------
    str
        A backend of ``supported`` whose library is installed.

    Raises
    ------
    InvalidInputError
        ``backend`` is not one of :data:`BACKENDS`.
    BackendUnavailableError
        ``backend`` does not implement ``what``, or its library is not installed.

    Examples
    --------
    >>> resolve_backend("auto", ("native", "igraph"), "leiden")
    'native'
    >>> resolve_backend("networkx", ("igraph",), "infomap")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    carenet.errors.BackendUnavailableError: infomap: backend 'networkx' cannot compute ...
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        return supported[0]
    if backend not in supported:
        raise BackendUnavailableError(
            f"{what}: backend {backend!r} cannot compute this; use one of {', '.join(supported)}")
    try:
        if backend == "igraph":
            import igraph  # noqa: F401
        elif backend == "networkx":
            import networkx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - both are dependencies
        package = "igraph" if backend == "igraph" else "networkx"
        raise BackendUnavailableError(
            f"backend {backend!r} requested but it is not installed (pip install {package})"
        ) from exc
    return backend
