"""What the store's read paths hand out: a published run's :class:`RunView` and a :class:`Page`
of ranked customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from carenet.store import records as rec


@dataclass
class RunView:
    """A published run as the read paths see it: its tables and its column catalogue."""

    run_id: str
    key: str
    columns: list[dict[str, Any]]
    tables: list[str]
    graph: dict[str, Any]
    customers: Table
    ties: Table
    rows: Table
    documents: rec.DocumentBuilder | None = None  # None: documents stored (older runs)
    typed: Table | None = None  # layout 3: the typed columns' Arrow blocks
    points: Table | None = None  # layout 4: the document fields, in blocks
    pseudonymized: bool = False
    stmts: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> dict[str, list[Any]]:
        """``{table: [records a stored row, rows]}`` of the extra tables stored in blocks of
        JSON records, ``[records a stored row, rows, "arrow", column kinds]`` of those stored
        in Arrow blocks.
        """
        return self.graph.get("blocks") or {}  # type: ignore[no-any-return]

    def column(self, name: str) -> dict[str, Any] | None:
        """The catalogue entry of customer column ``name`` (None if the run lacks it)."""
        return next((c for c in self.columns if c["name"] == name), None)

    @property
    def numeric(self) -> list[str]:
        """Names of the numeric (sortable, filterable) customer columns."""
        return [c["name"] for c in self.columns
                if c["type"] in ("int", "float") and c["sql"] and c["role"] != "attribute"]

    @property
    def default_sort(self) -> str | None:
        """The sort key used when none is given: the first of priority, influence, ..."""
        num = set(self.numeric)
        return next((c for c in rec.RANK_PREFERENCE if c in num), None)


@dataclass(frozen=True)
class Page:
    """One page of a ranked customer list."""

    run_id: str
    sort: str
    order: str
    items: list[str]
    next_cursor: str | None
