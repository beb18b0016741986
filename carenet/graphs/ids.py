"""Customer id table: external string ids <-> dense integer node positions.

The core works on positions 0..n-1; external ids live here and come back only at the edges
(``top()``, ``to_frame()``, the API). Encoding is the hottest step of loading a log (two ids per
row), so it runs as a numba hash table over 128-bit fingerprints of the id bytes, fed directly
from Arrow string buffers without creating a Python object per row.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from carenet.errors import InvalidInputError
from carenet.graphs import _kernels as k

SALT_ENV = "CARENET_SALT"


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of an Arrow string array as numpy views, offsets rebased to the slice."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    )
    return offsets.astype(np.int64, copy=False), data


class IdTable:
    """A growing, append-only map from external customer id to node position.

    >>> t = IdTable()
    >>> t.encode(pa.array(["ann", "bob", "ann"])).tolist()
    [0, 1, 0]
    >>> t.lookup(pa.array(["bob", "eve"])).tolist()
    [1, -1]
    >>> t.to_numpy().tolist()
    ['ann', 'bob']
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        cap = 1 << max(4, int(np.ceil(np.log2(max(capacity, 8) * 2))))
        self._slot_code = np.full(cap, -1, np.int32)
        self._slot_h1 = np.zeros(cap, np.uint64)
        self._slot_h2 = np.zeros(cap, np.uint64)
        self._key_offsets = np.zeros(cap // 2 + 1, np.int64)
        self._key_data = np.zeros(max(cap * 8, 1024), np.uint8)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _reserve(self, extra_keys: int, extra_bytes: int) -> None:
        need = self._n + extra_keys
        if need * 2 > self._slot_code.size:
            cap = self._slot_code.size
            while need * 2 > cap:
                cap *= 2
            code = np.full(cap, -1, np.int32)
            h1 = np.zeros(cap, np.uint64)
            h2 = np.zeros(cap, np.uint64)
            k.table_rehash(self._slot_code, self._slot_h1, self._slot_h2, code, h1, h2)
            self._slot_code, self._slot_h1, self._slot_h2 = code, h1, h2
        if need + 1 > self._key_offsets.size:
            grown = np.zeros(max(need + 1, self._key_offsets.size * 2), np.int64)
            grown[: self._n + 1] = self._key_offsets[: self._n + 1]
            self._key_offsets = grown
        used = int(self._key_offsets[self._n])
        if used + extra_bytes > self._key_data.size:
            grown_b = np.zeros(max(used + extra_bytes, self._key_data.size * 2), np.uint8)
            grown_b[:used] = self._key_data[:used]
            self._key_data = grown_b

    def _run(self, arr: pa.Array, insert: bool) -> np.ndarray:
        if isinstance(arr, pa.ChunkedArray):
            parts = [self._run(c, insert) for c in arr.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, np.int32)
        offsets, data = _string_buffers(arr)
        m = offsets.size - 1
        h1 = np.empty(m, np.uint64)
        h2 = np.empty(m, np.uint64)
        k.hash_strings(offsets, data, h1, h2)
        out = np.empty(m, np.int32)
        if insert:
            # Worst case every row is new: reserve for it so the kernel never overflows.
            self._reserve(m, int(offsets[-1] - offsets[0]) if m else 0)
        new_rows = np.empty(m if insert else 0, np.int64)
        first = self._n
        self._n, n_new = k.table_lookup_insert(
            h1, h2, self._slot_code, self._slot_h1, self._slot_h2, self._n, insert, out, new_rows
        )
        if n_new:
            k.copy_new_keys(
                offsets, data, new_rows[:n_new], self._key_offsets, self._key_data, first
            )
        return out

    def encode(self, arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Positions of the ids in ``arr`` (int32), adding unseen ids at the end."""
        return self._run(arr, insert=True)

    def lookup(self, arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Positions of the ids in ``arr`` (int32), -1 where an id is unknown."""
        return self._run(arr, insert=False)

    def to_arrow(self) -> pa.LargeStringArray:
        """All ids in position order, as one Arrow string array (no copy of the bytes)."""
        n = self._n
        offsets = self._key_offsets[: n + 1].copy()
        data = self._key_data[: int(offsets[-1])].copy()
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))

    def to_numpy(self) -> np.ndarray:
        """All ids in position order as a numpy object array of ``str``."""
        return np.asarray(self.to_arrow().to_numpy(zero_copy_only=False), dtype=object)


class Pseudonymizer:
    """Salted, keyed hash of customer ids (HMAC-SHA256, 80 bits shown as 20 hex digits).

    The salt comes from the environment (``CARENET_SALT`` by default) so that it never sits in a
    config file next to the data; the same salt maps the same raw id to the same pseudonym in every
    file and in API look-ups.

    >>> Pseudonymizer(b"pepper")("C001")
    'p_b26bb638f54e0ac29f93'
    """

    def __init__(self, salt: bytes) -> None:
        if not salt:
            raise InvalidInputError("pseudonymisation needs a non-empty salt")
        self._salt = salt

    @classmethod
    def from_env(cls, variable: str = SALT_ENV) -> Pseudonymizer:
        """Build from the salt in environment variable ``variable``; a clear error if unset."""
        salt = os.environ.get(variable, "")
        if not salt:
            raise InvalidInputError(
                f"pseudonymisation asked for, but the environment variable {variable} holding "
                "the salt is not set (export it, e.g. from your secret store)"
            )
        return cls(salt.encode())

    def __call__(self, raw: str) -> str:
        """The pseudonym of one raw id."""
        digest = hmac.new(self._salt, raw.encode(), hashlib.sha256).hexdigest()
        return "p_" + digest[:20]

    def many(self, raw: Iterable[str]) -> np.ndarray:
        """Pseudonyms of many ids, as an object array (empty strings stay empty)."""
        return np.array([self(r) if r else r for r in raw], dtype=object)
