"""A finished analysis run, and what one does with it.

:class:`AnalysisRun` is what :func:`carenet.analyze` returns and what a run directory holds:
parameters, timings, versions, the per-customer table, extra tables, the graph, the events and
the load's rejects (``save()``/``load()``). Using a finished run has one implementation each,
here, behind the CLI, the API and the views:

- :meth:`AnalysisRun.simulate` / :func:`what_if`: a what-if cascade with the run's tie model,
  recovery and confidence (the API and the views, which read runs from the store rather than
  from a directory, call :func:`what_if` with the run's graph and stored parameters);
- :meth:`AnalysisRun.care_plan`: the care plan for a budget, reusing the run's plan when it
  covers the budget with the same settings, else computing it from the run's tables;
- :meth:`AnalysisRun.explain`: the reasons of any one customer, with the run's settings.

A run directory holds ``customers.parquet`` and ``customers.csv`` (one row per customer:
``customer_id`` plus one column per measure), ``rejects.csv`` (every rejected input row),
``run.json`` (parameters, timings, counts, versions), any extra tables (``communities.parquet``
...), ``events.parquet`` and ``graph/`` (the CSR arrays). It is written to a temporary
directory and renamed into place, so a reader never sees half a run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carenet.community.care import explain as explain_customer
from carenet.community.influence import SimulationResult, simulate
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.model import CustomerGraph
from carenet.graphs.ties import TieModel
from carenet.steps.base import Progress, no_progress
from carenet.steps.care import compute_care

RUN_FORMAT = 1
"""Version of the run directory layout written by :meth:`AnalysisRun.save`."""


@dataclass(frozen=True, eq=False)
class AnalysisRun:
    """A finished analysis: parameters, timings, versions, the per-customer table, extra
    tables, the graph and the load's rejects. ``to_dict()`` is what ``run.json`` holds.
    """

    run_id: str
    created: str
    finished: str
    parameters: dict[str, Any]
    inputs: dict[str, Any]
    timings: dict[str, float]
    counts: dict[str, Any]
    versions: dict[str, str]
    summary: dict[str, Any]
    loading: dict[str, Any]
    customers: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    graph: CustomerGraph
    events: pd.DataFrame
    rejects: pd.DataFrame
    results: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the run (no per-customer data)."""
        return {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "created": self.created,
            "finished": self.finished,
            "parameters": self.parameters,
            "inputs": self.inputs,
            "timings": {k: round(float(v), 6) for k, v in self.timings.items()},
            "counts": self.counts,
            "versions": self.versions,
            "summary": self.summary,
            "load": self.loading,
            "tables": sorted(self.tables),
            "results": _jsonable(self.results),
        }

    def top(self, column: str, k: int = 10, *, ascending: bool = False) -> pd.DataFrame:
        """The k customers with the highest (or lowest) ``column``, with their ids."""
        if column not in self.customers:
            raise InvalidInputError(
                f"no column {column!r}; the run has {', '.join(self.customers.columns)}"
            )
        return self.customers.sort_values(column, ascending=ascending, kind="stable").head(k)

    @cached_property
    def config(self) -> AnalysisConfig:
        """The run's configuration, rebuilt from its stored parameters."""
        return AnalysisConfig.from_mapping(self.parameters)

    @property
    def tie_model(self) -> TieModel:
        """The tie probabilities the run's influence step used."""
        return TieModel.from_mapping(self.parameters.get("influence"))

    def simulate(
        self,
        seeds: Sequence[Any],
        *,
        protected: Sequence[Any] | None = None,
        model: str = "ic",
        runs: int = 1000,
        seed: int = 0,
        recovery: float | None = None,
        edge_model: str | None = None,
        max_steps: int = 50,
    ) -> SimulationResult:
        """What-if: the cascade from ``seeds`` while ``protected`` never activate, with this
        run's tie model, SIR recovery and confidence (see :func:`what_if`).

        Examples
        --------
        >>> import carenet
        >>> run = carenet.analyze(carenet.example_log())
        >>> run.simulate(["ann"], runs=200, seed=1).expected_size >= 1.0
        True
        """
        return what_if(self.graph, self.parameters, seeds, protected=protected, model=model,
                       runs=runs, seed=seed, recovery=recovery, edge_model=edge_model,
                       max_steps=max_steps)

    def care_plan(
        self,
        budget: int,
        *,
        retention: float | None = None,
        runs: int | None = None,
        evaluation_runs: int | None = None,
        compare: Sequence[int] | None = None,
        seed: int | None = None,
        progress: Progress = no_progress,
    ) -> PlanForBudget:
        """The care plan for ``budget`` contacts.

        The run's own plan is reused when it covers at least ``budget`` customers with the
        same settings (a greedy plan's first K rows are the plan for K); otherwise the plan is
        computed from the run's tables with the run's settings and the overrides given.

        Parameters
        ----------
        budget
            Customers to contact (>= 1).
        retention, runs, evaluation_runs, compare, seed
            Overrides of ``care.retention``, ``care.plan_runs``, ``care.evaluation_runs``,
            ``care.compare_k`` and the seed (None: the run's).
        progress
            Receives ``(step, done, total)`` while a plan is computed.

        Returns
        -------
        PlanForBudget
            The plan rows, the comparison with other strategies, and whether it was reused.
        """
        if budget < 1:
            raise InvalidInputError(f"budget must be at least 1, not {budget}")
        base = self.config
        cfg = base.with_overrides({
            "care.budget": budget, "care.retention": retention, "care.plan_runs": runs,
            "care.evaluation_runs": evaluation_runs, "seed": seed,
            "care.compare_k": [int(k) for k in compare] if compare else None,
        })
        old = self.tables.get("care_plan")
        same = cfg.with_overrides({"care.budget": base.care.budget}) == base
        if old is not None and same and len(old) >= budget:
            comparison = self.tables.get("care_comparison")
            if comparison is not None:
                comparison = comparison[comparison["k"] <= budget]
            return PlanForBudget(plan=old.head(budget).copy(), comparison=comparison,
                                 reused=True, planned=len(old), seconds=0.0)
        t0 = time.perf_counter()
        res = compute_care(cfg.with_overrides({"care.reasons_top": 0}), self.graph,
                           self.customers, self.events, self.tables.get("exposure_sources"),
                           progress=progress)
        if "care_plan" not in res.tables:
            raise InvalidInputError(str(res.results.get("skipped", "no care plan")))
        plan = res.tables["care_plan"]
        return PlanForBudget(plan=plan, comparison=res.tables.get("care_comparison"),
                             reused=False, planned=len(plan),
                             seconds=time.perf_counter() - t0)

    def explain(self, customer_id: str, *, ties: int | None = None) -> dict[str, Any]:
        """The reasons of one customer (any customer of the run, explained by the care step
        or not), with the run's event kinds, lookback and churn column.

        Returns the structured fields and the ``reason`` sentence as native Python values;
        an unknown id raises :class:`~carenet.errors.RunNotFoundError`.
        """
        cfg = self.config
        return explain_customer(
            self.graph, self.customers, str(customer_id),
            exposure_sources=self.tables.get("exposure_sources"), events=self.events,
            negative_events=cfg.influence.negative_events, lost_events=cfg.care.lost_events,
            lookback=cfg.influence.lookback_seconds, lookback_text=cfg.influence.lookback,
            churn_col=cfg.care.churn_col, ties=cfg.care.reason_ties if ties is None else ties,
        )

    def save(self, directory: str | Path) -> Path:
        """Write the run directory atomically (temporary sibling, then rename); returns it."""
        target = Path(directory)
        with atomic_directory(target) as tmp:
            _write_table(self.customers, tmp / "customers")
            for name, table in self.tables.items():
                _write_table(table, tmp / name)
            self.rejects.to_csv(tmp / "rejects.csv", index=False)
            self.events.to_parquet(tmp / "events.parquet", index=False)
            self.graph.save(tmp / "graph")
            (tmp / "run.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, directory: str | Path) -> AnalysisRun:
        """Read a run directory written by :meth:`save`."""
        d = Path(directory)
        meta_path = d / "run.json"
        if not meta_path.exists():
            raise RunNotFoundError(f"{d}: not a carenet run directory (no run.json)")
        meta = json.loads(meta_path.read_text())
        tables = {
            name: pd.read_parquet(d / f"{name}.parquet") for name in meta.get("tables", [])
        }
        rejects = pd.read_csv(d / "rejects.csv", dtype=str, keep_default_na=False)
        return cls(
            run_id=meta["run_id"], created=meta["created"], finished=meta["finished"],
            parameters=meta["parameters"], inputs=meta["inputs"], timings=meta["timings"],
            counts=meta["counts"], versions=meta["versions"], summary=meta["summary"],
            loading=meta["load"], customers=pd.read_parquet(d / "customers.parquet"),
            tables=tables, graph=CustomerGraph.load(d / "graph"),
            events=pd.read_parquet(d / "events.parquet"), rejects=rejects,
            results=meta.get("results", {}),
        )


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target``; when the block ends without error it
    replaces ``target`` in one rename (readers see the old or the new directory, never half
    of one), else it is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_table(frame: pd.DataFrame, stem: Path) -> None:
    frame.to_parquet(stem.with_suffix(".parquet"), index=False)
    frame.to_csv(stem.with_suffix(".csv"), index=False)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if hasattr(x, "to_dict"):
        return _jsonable(x.to_dict())
    return x




@dataclass(frozen=True)
class PlanForBudget:
    """The care plan for one budget (:meth:`AnalysisRun.care_plan`).

    ``plan``: one row per contacted customer in order (customer_id, rank, priority, reason,
    community, role, gain, protected with its interval, ...); ``comparison``: the plan against
    top-K by priority, degree, PageRank and at random (fresh simulations), or None;
    ``reused``: the run's own plan was cut to the budget (else computed, in ``seconds``);
    ``planned``: rows of the plan it came from.
    """

    plan: pd.DataFrame
    comparison: pd.DataFrame | None
    reused: bool
    planned: int
    seconds: float


def what_if(
    graph: CustomerGraph,
    parameters: Mapping[str, Any] | None,
    seeds: Sequence[Any],
    *,
    protected: Sequence[Any] | None = None,
    model: str = "ic",
    runs: int = 1000,
    seed: int = 0,
    recovery: float | None = None,
    edge_model: str | None = None,
    max_steps: int = 50,
    confidence: float | None = None,
) -> SimulationResult:
    """The what-if cascade of a run: the one implementation behind ``run.simulate``, ``carenet
    simulate``, ``POST /v1/simulations`` and the cascade view.

    Parameters
    ----------
    graph
        The run's graph (from its directory, or rebuilt from the store).
    parameters
        The run's parameters (``run.json``'s or the store's): its ``influence`` section gives
        the tie model, the SIR recovery and the confidence level.
    seeds, protected
        Customer ids starting the cascade, and customer ids that never activate.
    model, runs, seed, max_steps
        As for :func:`carenet.community.influence.simulate`.
    recovery, edge_model, confidence
        Overrides of the run's ``sir_recovery``, edge model and ``confidence`` (None: the
        run's).

    Returns
    -------
    SimulationResult
        Expected cascade size with its interval, per-customer activation probabilities.
    """
    infl = (parameters or {}).get("influence") or {}
    ties = TieModel.from_mapping(infl).with_edge_model(edge_model)
    rec = float(recovery) if recovery is not None else float(infl.get("sir_recovery", 0.5))
    conf = (float(confidence) if confidence is not None
            else float(infl.get("confidence", 0.95)))
    return simulate(graph, seeds, protected=list(protected) if protected else None,
                    model=model, runs=runs, seed=seed, recovery=rec, max_steps=max_steps,
                    confidence=conf, **ties.kwargs())
