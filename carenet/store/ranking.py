"""Ranked, filtered pages of a run's customers computed in numpy over its stored columns.

Runs of layout 3 (see :mod:`carenet.store.schema`) keep every typed customer column as one
compressed Arrow block (``cn_<key>_columns``) instead of one SQL column each with an index per
sort key: at 1M customers the typed columns and their six indexes were most of a SQLite
publication (see benchmarks/README.md, "publish.py"). A page is then selected here, in
O(customers) vectorised work on the columns it names, which a reading process keeps in a
small cache (:class:`ColumnCache`); the order is the SQL one: by the sort key, ties by
customer id in code point order (SQLite's BINARY, PostgreSQL's "C"), nulls never ranked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from carenet.store.encode import ipc_block, read_ipc_block


def column_block(values: pa.Array) -> bytes:
    """One column as a zstd-compressed Arrow IPC stream (what ``cn_<key>_columns`` holds)."""
    return ipc_block(pa.table({"v": values}))


def read_column_block(data: bytes) -> pa.Array:
    """The column written by :func:`column_block`."""
    return read_ipc_block(data).column(0).combine_chunks()


@dataclass(frozen=True)
class IdOrder:
    """Customer ids in code point order: ``rank[pos]`` is the rank of the id at position
    ``pos``; :meth:`bounds` places any id among them (for a cursor's tie-break).
    """

    ids: pa.Array
    order: np.ndarray
    rank: np.ndarray

    @classmethod
    def of(cls, ids: pa.Array) -> IdOrder:
        """Sort ``ids`` (UTF-8 byte order, which is code point order)."""
        order = pc.sort_indices(ids).to_numpy().astype(np.int64)
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return cls(ids=ids, order=order, rank=rank)

    def bounds(self, customer_id: str) -> tuple[int, int]:
        """``(lo, hi)``: ids ranked below ``lo`` sort before ``customer_id``, ids ranked at or
        above ``hi`` after it (``hi - lo`` is 1 when the id is a customer's, else 0).
        """
        key = customer_id.encode()
        lo, hi = 0, len(self.order)
        while lo < hi:  # first rank whose id is >= customer_id
            mid = (lo + hi) // 2
            if self._at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo, lo + int(lo < len(self.order) and self._at(lo) == key)

    def _at(self, rank: int) -> bytes:
        return str(self.ids[int(self.order[rank])].as_py()).encode()


def numbers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as (values in their numpy dtype, nulls filled; valid mask)."""
    valid = (values.is_valid().to_numpy(zero_copy_only=False) if values.null_count
             else np.ones(len(values), bool))
    filled = values.fill_null(0) if values.null_count else values
    return filled.to_numpy(zero_copy_only=False), valid


@dataclass(frozen=True)
class SortedKey:
    """The customers with a value of one sort key, ordered by ``(value, id rank)``
    ascending (a descending page reads it from the end): built once per key and process, so
    that a page is two binary searches and a slice (plus a scan of the filter mask when the
    page is filtered), like a walk down a SQL index.
    """

    order: np.ndarray
    values: np.ndarray
    ranks: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, valid: np.ndarray, ids: IdOrder) -> SortedKey:
        """Sort the valid customers of one key."""
        pos = np.flatnonzero(valid)
        v, r = values[pos], ids.rank[pos]
        by = np.lexsort((r, v))
        return cls(order=pos[by], values=v[by], ranks=r[by])

    @property
    def nbytes(self) -> int:
        """Memory held (for :class:`ColumnCache`)."""
        return int(self.order.nbytes + self.values.nbytes + self.ranks.nbytes)

    def page(self, mask: np.ndarray | None, ids: IdOrder, *, descending: bool,
             after: tuple[Any, str] | None, limit: int) -> np.ndarray:
        """Positions of the first ``limit`` customers (of ``mask``, when given) in
        ``(value, id)`` order, descending or ascending, strictly after the cursor ``after =
        (value, id)``, in order.
        """
        n = len(self.order)
        if after is None:
            cut = n if descending else 0
        else:
            cv, cid = after
            lo, hi = ids.bounds(cid)
            a = int(np.searchsorted(self.values, cv, "left"))
            b = int(np.searchsorted(self.values, cv, "right"))
            cut = a + int(np.searchsorted(self.ranks[a:b], lo if descending else hi, "left"))
        if limit <= 0:
            return self.order[:0]
        if mask is None:
            return (self.order[max(0, cut - limit):cut][::-1] if descending
                    else self.order[cut:cut + limit])
        found: list[np.ndarray] = []
        have, step = 0, max(4 * limit, 4096)
        while have < limit and (cut > 0 if descending else cut < n):
            if descending:
                seg = self.order[max(0, cut - step):cut][::-1]
                cut = max(0, cut - step)
            else:
                seg = self.order[cut:cut + step]
                cut += step
            seg = seg[mask[seg]]
            found.append(seg)
            have += len(seg)
            step *= 2
        out = np.concatenate(found) if found else self.order[:0]
        return out[:limit]


class ColumnCache:
    """Columns of published runs kept by a reading process, least recently used dropped
    first beyond ``max_bytes`` (a run's columns never change once it is published).
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], load: Callable[[], object], size: Callable[[object],
            int]) -> object:
        """The cached value of ``key``, else ``load()`` (cached with its ``size``)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
        value = load()
        nbytes = size(value)
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, nbytes)
                self._bytes += nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value

    def cached(self) -> list[tuple[str, str]]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def drop(self, table_key: str) -> None:
        """Forget every column of one run (its tables were dropped)."""
        with self._lock:
            for k in [k for k in self._items if k[0] == table_key]:
                self._bytes -= self._items.pop(k)[1]
