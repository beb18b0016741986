"""Point-read rows of layout 4: what a customer's document is built from, 64 customers a
stored row, compressed.

A layout-3 run stored one SQL row per customer (its id, the texts a document shows, its
packed numbers and percentiles): ~570 MB and 1M B-tree inserts at 1M customers, most of a
SQLite publication. Layout 4 keeps a thin ``customers`` table (id and position, for the key
look-up) and stores the document fields of :data:`POINT_BLOCK` consecutive positions as one
LZ4-compressed block in ``cn_<key>_points``: ~390 MB in 15,625 rows. A point read joins the
two (one indexed look-up each), decompresses one block and cuts its customer's fields out.
(zstd wrote 10% fewer bytes but took 3x as long to decompress: 56 against 18 us a block.)

A block, before compression: ``count`` and ``fields`` (uint32), a kind byte per field (0:
UTF-8 text, 1: bytes), the start of each field's section (uint32), then per field its
``count + 1`` offsets (uint32, into the section's data), ``count`` valid bytes (0: null) and
the data. Stored: the uncompressed size (uint32) then the LZ4 frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from carenet.store.encode import flat

POINT_BLOCK = 64
"""Customer positions whose document fields share one stored row (layout 4)."""
_CODEC = pa.Codec("lz4")
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<II")
_TEXT, _BYTES = 0, 1
_EMPTY = np.zeros(0, np.uint8)


def point_blocks(fields: Sequence[pa.Array], size: int = POINT_BLOCK) -> list[bytes]:
    """The stored blocks of ``fields`` (equal-length string or binary arrays, the document
    fields in :attr:`~carenet.store.records.DocumentBuilder.fields` order; a null-typed
    array is a field that is null throughout), ``size`` positions a block, in order.
    """
    n = len(fields[0]) if fields else 0
    prepared = [_prepared(f, n) for f in fields]
    kinds = bytes(k for k, _, _, _ in prepared)
    nf = len(prepared)
    out = []
    for a in range(0, n, size):
        e = min(a + size, n)
        count = e - a
        start = _HEAD.size + nf + 4 * nf
        starts, parts = [], []
        for _, offsets, data, valid in prepared:
            first, last = int(offsets[a]), int(offsets[e])
            starts.append(start)
            parts += [(offsets[a:e + 1] - first).astype("<u4").tobytes(),
                      valid[a:e].tobytes(), data[first:last].tobytes()]
            start += 4 * (count + 1) + count + last - first
        raw = b"".join([_HEAD.pack(count, nf), kinds,
                        np.asarray(starts, "<u4").tobytes(), *parts])
        out.append(_U32.pack(len(raw)) + _CODEC.compress(raw, asbytes=True))
    return out


def _prepared(field: pa.Array, n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(kind, offsets, data, valid)`` of one field as numpy views (offsets int64)."""
    field = flat(field)
    if len(field) != n:
        raise ValueError(f"point block fields differ in length ({len(field)} != {n})")
    kind = (_TEXT if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
            else _BYTES)
    field = field.cast(pa.large_string() if kind == _TEXT else pa.large_binary())
    buffers = field.buffers()
    offsets = (np.frombuffer(buffers[1], np.int64, n + 1, field.offset) if n
               else np.zeros(1, np.int64))
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else _EMPTY
    valid = (np.ones(n, np.uint8) if field.null_count == 0
             else field.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8))
    return kind, offsets, data, valid


def point_rows(block: bytes | memoryview, indices: Iterable[int]) -> list[tuple[Any, ...]]:
    """The fields of positions ``indices`` (within the block) of one stored block: ``str``
    for text fields, ``bytes`` for the others, None where null (one decompression).
    """
    view = memoryview(block)
    (size,) = _U32.unpack_from(view)
    raw = _CODEC.decompress(view[_U32.size:], decompressed_size=size, asbytes=True)
    count, nf = _HEAD.unpack_from(raw)
    kinds = raw[_HEAD.size:_HEAD.size + nf]
    starts = struct.unpack_from(f"<{nf}I", raw, _HEAD.size + nf)
    rows = []
    for i in indices:
        if not 0 <= i < count:
            raise IndexError(f"position {i} is not in a point block of {count}")
        values: list[Any] = []
        for kind, start in zip(kinds, starts, strict=True):
            if not raw[start + 4 * (count + 1) + i]:
                values.append(None)
                continue
            lo, hi = struct.unpack_from("<II", raw, start + 4 * i)
            at = start + 5 * count + 4
            value = raw[at + lo:at + hi]
            values.append(value.decode() if kind == _TEXT else value)
        rows.append(tuple(values))
    return rows


def point_row(block: bytes | memoryview, i: int) -> tuple[Any, ...]:
    """The fields of position ``i`` of one stored block (see :func:`point_rows`)."""
    return point_rows(block, (i,))[0]
