"""Point-read rows of layout 4 (SQLite's): what a customer's document is built from, 32
customers a stored row, compressed.

A layout-3 run stored one SQL row per customer (its id, the texts a document shows, its packed
numbers and percentiles): ~570 MB and 1M B-tree inserts at 1M customers, most of a SQLite
publication. Layout 4 keeps a thin ``customers`` table (id and position, for the key look-up)
and stores the document fields of :data:`POINT_BLOCK` consecutive positions (16 in a layout-4
run on PostgreSQL: :func:`block_size`) as one LZ4-compressed block in ``cn_<key>_points``: ~390
MB in 31,250 rows at 1M customers. A point read joins the two (one indexed look-up each),
decompresses one block and cuts its customer's fields out. (zstd wrote 10% fewer bytes but took
3x as long to decompress 64 customers' block: 56 against 18 us.)

A block, before compression: ``count`` and ``fields`` (uint32), a kind byte per field (0:
UTF-8 text, 1: bytes), the start of each field's section (uint32), then per field its
``count + 1`` offsets (uint32, into the section's data), ``count`` valid bytes (0: null) and
the data. Stored: the uncompressed size (uint32) then the LZ4 frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numba as nb
import numpy as np
import pyarrow as pa

from carenet.store.encode import flat, large_buffers

POINT_BLOCK = 32
"""Customer positions whose document fields share one stored row (layout 4, SQLite)."""
PG_POINT_BLOCK = 16
"""The same in a layout-4 run on PostgreSQL (which publishes layout 3 by default,
:func:`~carenet.store.schema.default_layout`): ~6 KB blocks, kept in the row
(``toast_tuple_target`` 8160), so a point read fetches one heap page; 32 customers (12 KB,
TOASTed) took 182 against 171 us a point read and 8.8 against 5.9 ms a page of 100 at 1M
customers. SQLite takes 32: its 4 KB pages hold the 12 KB blocks better (1M customers published
in 10.3 s against 11.8 s with 16; point reads 30 against 27 us)."""


def block_size(backend: str) -> int:
    """Customers a stored block holds in a store of ``backend`` (``sqlite``, ``postgresql``)."""
    return PG_POINT_BLOCK if backend == "postgresql" else POINT_BLOCK


_CODEC = pa.Codec("lz4")
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<II")
_TEXT, _BYTES = 0, 1


def point_blocks(fields: Sequence[pa.Array], size: int = POINT_BLOCK) -> list[bytes]:
    """The stored blocks of ``fields`` (equal-length string or binary arrays, the document
    fields in :attr:`~carenet.store.records.DocumentBuilder.fields` order; a null-typed
    array is a field that is null throughout), ``size`` positions a block, in order: laid
    out by one compiled pass (:func:`_assemble`), then each compressed.
    """
    n = len(fields[0]) if fields else 0
    if n == 0:
        return []
    prepared = [_prepared(f, n) for f in fields]
    kinds = np.array([k for k, _, _, _ in prepared], np.uint8)
    bases = np.cumsum([0, *[o[-1] - o[0] for _, o, _, _ in prepared]])[:-1].astype(np.int64)
    offsets = np.stack([o - o[0] + base for (_, o, _, _), base in zip(prepared, bases,
                                                                        strict=True)])
    valid = np.stack([v for _, _, _, v in prepared])
    data = np.concatenate([d[o[0]:o[-1]] for _, o, d, _ in prepared])
    raw, starts = _assemble(offsets, valid, data, kinds, size)
    compress = _CODEC.compress
    return [_U32.pack(int(starts[b + 1] - starts[b]))
            + compress(raw[starts[b]:starts[b + 1]], asbytes=True)
            for b in range(len(starts) - 1)]


@nb.njit(cache=True, nogil=True)
def _assemble(offsets: np.ndarray, valid: np.ndarray, data: np.ndarray, kinds: np.ndarray,
              size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every block's uncompressed bytes back to back, and where each starts (one more: the
    end). Field ``f`` of position ``i`` is ``data[offsets[f, i]:offsets[f, i + 1]]``, null
    where ``valid[f, i]`` is 0; integers are written little-endian.
    """
    nf, n = valid.shape
    blocks = (n + size - 1) // size
    starts = np.zeros(blocks + 1, np.int64)
    for b in range(blocks):
        a, e = b * size, min(b * size + size, n)
        length = 8 + 5 * nf
        for f in range(nf):
            length += 5 * (e - a) + 4 + offsets[f, e] - offsets[f, a]
        starts[b + 1] = starts[b] + length
    out = np.empty(starts[blocks], np.uint8)
    for b in range(blocks):
        a, e = b * size, min(b * size + size, n)
        count = e - a
        o = starts[b]
        _u32(out, o, count)
        _u32(out, o + 4, nf)
        for f in range(nf):
            out[o + 8 + f] = kinds[f]
        at = 8 + 5 * nf  # the first section, from the block's start
        for f in range(nf):
            _u32(out, o + 8 + nf + 4 * f, at)
            first = offsets[f, a]
            for i in range(count + 1):
                _u32(out, o + at + 4 * i, offsets[f, a + i] - first)
            at += 4 * (count + 1)
            for i in range(count):
                out[o + at + i] = valid[f, a + i]
            at += count
            length = offsets[f, e] - first
            out[o + at:o + at + length] = data[first:first + length]
            at += length
    return out, starts


@nb.njit(inline="always")
def _u32(out: np.ndarray, at: int, value: int) -> None:
    """Write ``value`` as a little-endian uint32 at ``out[at:at + 4]``."""
    out[at] = value & 0xFF
    out[at + 1] = (value >> 8) & 0xFF
    out[at + 2] = (value >> 16) & 0xFF
    out[at + 3] = (value >> 24) & 0xFF


def _prepared(field: pa.Array, n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(kind, offsets, data, valid)`` of one field as numpy views (offsets int64)."""
    field = flat(field)
    if len(field) != n:
        raise ValueError(f"point block fields differ in length ({len(field)} != {n})")
    kind = (_TEXT if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
            else _BYTES)
    field = field.cast(pa.large_string() if kind == _TEXT else pa.large_binary())
    offsets, data = large_buffers(field)
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
