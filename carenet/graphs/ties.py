"""How likely a tie passes churn on: the :class:`TieModel` value object.

Diffusion needs one probability per tie. carenet derives it from the tie weight with one of
three edge models (:data:`EDGE_MODELS`); :class:`TieModel` carries the model with its two
parameters, so they travel together from the config to every simulation instead of as three
loose arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carenet.errors import InvalidInputError

WEIGHTED_CASCADE = "weighted_cascade"
"""The default edge model: ``p(u -> v) = w(u, v) / sum_x w(x, v)``."""
EDGE_MODELS: tuple[str, ...] = (WEIGHTED_CASCADE, "exponential", "constant")
"""The edge models: weighted cascade, ``1 - exp(-w / scale)``, a constant ``probability``."""


@dataclass(frozen=True)
class TieModel:
    """The probability model of the ties: edge model plus its parameters.

    Parameters
    ----------
    edge_model
        ``weighted_cascade`` (``p(u -> v) = w(u, v) / sum_x w(x, v)``: a customer's in-ties
        share one unit of probability by weight), ``exponential`` (``1 - exp(-w / scale)``)
        or ``constant`` (``probability`` on every tie).
    scale
        Weight scale of the exponential model (> 0).
    probability
        Probability of every tie under the constant model (in [0, 1]).

    Examples
    --------
    >>> TieModel.from_mapping({"edge_model": "constant", "edge_probability": 0.2})
    TieModel(edge_model='constant', scale=1.0, probability=0.2)
    >>> TieModel().with_edge_model(None) == TieModel()
    True
    """

    edge_model: str = WEIGHTED_CASCADE
    scale: float = 1.0
    probability: float = 0.1

    def __post_init__(self) -> None:
        if self.edge_model not in EDGE_MODELS:
            raise InvalidInputError(
                f"edge_model must be one of {', '.join(EDGE_MODELS)}, not {self.edge_model!r}")
        if not float(self.scale) > 0:
            raise InvalidInputError(f"edge scale must be > 0, not {self.scale}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise InvalidInputError(
                f"edge probability must be in [0, 1], not {self.probability}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "probability", float(self.probability))

    @classmethod
    def from_mapping(cls, influence: Mapping[str, Any] | None) -> TieModel:
        """The tie model of an ``influence`` config section (or a run's stored parameters
        of it): keys ``edge_model``, ``edge_scale``, ``edge_probability``; missing keys take
        the defaults.
        """
        d = influence or {}
        default = cls()
        return cls(edge_model=str(d.get("edge_model") or default.edge_model),
                   scale=float(d.get("edge_scale", default.scale)),
                   probability=float(d.get("edge_probability", default.probability)))

    def with_edge_model(self, edge_model: str | None) -> TieModel:
        """The same parameters under another edge model (None: unchanged)."""
        if edge_model is None or edge_model == self.edge_model:
            return self
        return TieModel(edge_model, self.scale, self.probability)

    def kwargs(self) -> dict[str, Any]:
        """``edge_model``, ``scale`` and ``probability`` as keyword arguments of the
        diffusion functions that take them one by one (``DiffusionGraph.from_graph(graph,
        **ties.kwargs())``).
        """
        return {"edge_model": self.edge_model, "scale": self.scale,
                "probability": self.probability}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (native Python values)."""
        return {"edge_model": self.edge_model, "scale": self.scale,
                "probability": self.probability}
