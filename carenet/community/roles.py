"""Roles of customers in their communities, after Guimerà and Amaral (Nature 433, 2005).

Two numbers place each customer, on the undirected weighted view (``weighted=False``: tie
counts):

* **within-community z-score** ``z_i = (kappa_i - mean_c(kappa)) / std_c(kappa)``, where
  ``kappa_i`` is i's tie weight to the other members of its community ``c`` and the mean and
  (population) standard deviation run over the members of ``c``; 0 when all members are alike
  (e.g. a community of one). High z: a local centre of its community.
* **participation coefficient** ``P_i = 1 - sum_s (kappa_is / k_i)^2`` over all communities
  ``s`` (``k_i`` is i's total tie weight); 0 when every tie stays inside one community, close
  to 1 when ties spread evenly over many; 0 for a customer without ties.

They map to plain roles (thresholds configurable; defaults are Guimerà and Amaral's):

================  ===============================  ==========================================
role              rule (defaults)                  Guimerà-Amaral classes
================  ===============================  ==========================================
community hub     z >= 2.5 and P < 0.30            R5 provincial hub
connector hub     z >= 2.5 and P >= 0.30           R6 connector hub, R7 kinless hub
bridge            z < 2.5 and P > 0.62             R3 non-hub connector, R4 non-hub kinless
peripheral        otherwise, <= 1 tie inside       part of R1 / R2: hangs on by one tie
member            otherwise                        the rest of R1 ultra-peripheral / R2
================  ===============================  ==========================================

Guimerà and Amaral split non-hub non-connectors by P alone (R1: P <= 0.05, R2: otherwise);
to a care strategist both are ordinary members, so carenet splits them instead by how many
ties hold the customer in its own community (at most ``peripheral_ties``, default 1: one tie
or none), which is who may drift away. (A z-score cut would not do: within-community degrees
are heavy-tailed, so hubs inflate the spread and hardly anybody falls below ``z = -1``.)
``ga_class`` keeps the original R1-R7 class.

>>> import numpy as np
>>> from carenet.graphs.model import CustomerGraph
>>> g = CustomerGraph.from_edges(list("abcde"), [0, 0, 0, 1, 3], [1, 2, 3, 2, 4],
...                              directed=False)
>>> r = roles(g, np.array([0, 0, 0, 1, 1]))
>>> r.participation.round(3).tolist()
[0.444, 0.0, 0.0, 0.5, 0.0]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph

ROLES: tuple[str, ...] = ("community hub", "connector hub", "bridge", "member", "peripheral")
"""The plain roles, most central first."""


@dataclass(frozen=True)
class RoleThresholds:
    """Where the roles split (defaults: Guimerà and Amaral 2005, plus ``peripheral_ties``).

    ``hub_z``: within-community z-score from which a customer is a hub. ``connector_p``:
    participation from which a hub is a connector hub. ``bridge_p``: participation above
    which a non-hub is a bridge. ``peripheral_ties``: a remaining customer with at most this
    many ties inside its community is peripheral.
    """

    hub_z: float = 2.5
    connector_p: float = 0.30
    bridge_p: float = 0.62
    peripheral_ties: int = 1

    def __post_init__(self) -> None:
        for name in ("connector_p", "bridge_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], not {value}")
        if self.peripheral_ties < 0:
            raise InvalidInputError(
                f"peripheral_ties must be >= 0, not {self.peripheral_ties}"
            )


@dataclass(frozen=True, eq=False)
class Roles:
    """Per-customer within-community z-score, participation and role, aligned to positions."""

    within_z: np.ndarray
    participation: np.ndarray
    role: np.ndarray
    ga_class: np.ndarray
    ids: np.ndarray = field(repr=False)
    thresholds: RoleThresholds
    weighted: bool
    seconds: float

    def counts(self) -> dict[str, int]:
        """Customers per role, in :data:`ROLES` order."""
        values, counts = np.unique(self.role, return_counts=True)
        got = dict(zip(values.tolist(), counts.tolist(), strict=True))
        return {r: int(got.get(r, 0)) for r in ROLES}

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ``customer_id``, ``role``, ``within_z``, ``participation``."""
        return pd.DataFrame({"customer_id": self.ids, "role": self.role,
                             "within_z": self.within_z, "participation": self.participation})

    def to_dict(self, *, values: bool = True) -> dict[str, Any]:
        """JSON-ready (native Python numbers only)."""
        out: dict[str, Any] = {
            "thresholds": {k: (int(v) if isinstance(v, int) else float(v))
                           for k, v in vars(self.thresholds).items()},
            "weighted": bool(self.weighted),
            "seconds": float(self.seconds),
            "counts": self.counts(),
        }
        if values:
            out["ids"] = [str(x) for x in self.ids.tolist()]
            out["role"] = [str(x) for x in self.role.tolist()]
            out["within_z"] = self.within_z.tolist()
            out["participation"] = self.participation.tolist()
        return out


@nb.njit(cache=True, nogil=True)
def _inside_and_spread(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per node: weight to its own community, total weight, sum over communities of the
    squared weight to that community, number of ties inside its own community.
    """
    n = labels.size
    k = 0
    for v in range(n):
        if labels[v] + 1 > k:
            k = labels[v] + 1
    acc = np.zeros(k)
    seen = np.zeros(k, np.bool_)
    touched = np.empty(k, np.int64)
    inside = np.zeros(n)
    total = np.zeros(n)
    squares = np.zeros(n)
    inside_n = np.zeros(n, np.int64)
    for v in range(n):
        nt = 0
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if u == v:
                continue
            c = labels[u]
            if not seen[c]:
                seen[c] = True
                touched[nt] = c
                nt += 1
            acc[c] += weights[e]
            total[v] += weights[e]
            if c == labels[v]:
                inside_n[v] += 1
        inside[v] = acc[labels[v]] if seen[labels[v]] else 0.0
        s = 0.0
        for j in range(nt):
            c = touched[j]
            s += acc[c] * acc[c]
            acc[c] = 0.0
            seen[c] = False
        squares[v] = s
    return inside, total, squares, inside_n


def roles(
    graph: CustomerGraph,
    labels: np.ndarray,
    *,
    weighted: bool = True,
    thresholds: RoleThresholds = RoleThresholds(),
) -> Roles:
    """Within-community z-score, participation coefficient and plain role of every customer.

    ``labels`` are community labels aligned to node positions (e.g. ``Partition.labels``).
    See the module docstring for definitions and the role rules.
    """
    t0 = time.perf_counter()
    labels = np.asarray(labels)
    n = graph.n_customers
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or (n and labels.min() < 0):
        raise InvalidInputError(
            f"labels must hold one non-negative integer community per customer ({n})"
        )
    dense = np.unique(labels, return_inverse=True)[1].astype(np.int64) if n else labels
    view = graph.undirected_view()
    w = view.weights if weighted else np.ones(view.n_entries)
    inside, total, squares, inside_n = _inside_and_spread(
        view.indptr.astype(np.int64), view.indices, w, dense,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        participation = np.where(total > 0, 1.0 - squares / np.where(total > 0, total, 1.0)
                                 ** 2, 0.0)
    participation = np.clip(participation, 0.0, 1.0)
    k = int(dense.max()) + 1 if n else 0
    size = np.bincount(dense, minlength=k).astype(np.float64)
    mean = np.bincount(dense, weights=inside, minlength=k) / np.maximum(size, 1)
    sq = np.bincount(dense, weights=inside * inside, minlength=k) / np.maximum(size, 1)
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    s_node = std[dense]
    # a spread below rounding noise of the mean is no spread (a community of equals)
    flat = s_node <= 1e-12 * np.maximum(np.abs(mean[dense]), 1.0)
    within_z = np.where(flat, 0.0, (inside - mean[dense]) / np.where(flat, 1.0, s_node))
    th = thresholds
    hub = within_z >= th.hub_z
    role = np.full(n, "member", dtype=object)
    role[(~hub) & (inside_n <= th.peripheral_ties)] = "peripheral"
    role[(~hub) & (participation > th.bridge_p)] = "bridge"
    role[hub & (participation < th.connector_p)] = "community hub"
    role[hub & (participation >= th.connector_p)] = "connector hub"
    ga = np.empty(n, dtype=object)
    ga[~hub & (participation <= 0.05)] = "R1"
    ga[~hub & (participation > 0.05) & (participation <= 0.62)] = "R2"
    ga[~hub & (participation > 0.62) & (participation <= 0.80)] = "R3"
    ga[~hub & (participation > 0.80)] = "R4"
    ga[hub & (participation < 0.30)] = "R5"
    ga[hub & (participation >= 0.30) & (participation < 0.75)] = "R6"
    ga[hub & (participation >= 0.75)] = "R7"
    return Roles(within_z=within_z, participation=participation, role=role, ga_class=ga,
                 ids=graph.ids, thresholds=th, weighted=weighted,
                 seconds=time.perf_counter() - t0)


__all__ = ["ROLES", "RoleThresholds", "Roles", "roles"]
