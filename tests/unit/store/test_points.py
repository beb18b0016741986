"""Layout 4's blocks of document fields give back every field of every position exactly
(Arrow's own values are the oracle): text and bytes, nulls beside empty values, non-ASCII
text, zero bytes, a field null throughout, blocks of any size and a partial last block.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from carenet.store.points import POINT_BLOCK, point_blocks, point_row, point_rows


def _fields(n: int, seed: int) -> list[pa.Array]:
    rng = np.random.default_rng(seed)
    words = ["", "a", "é", "日本", "x" * 300, 'q"\n\\', "\x00z"]
    text = [None if k % 7 == 3 else words[k % len(words)] + str(k) * int(rng.integers(0, 3))
            for k in range(n)]
    blobs = [None if k % 5 == 1 else rng.bytes(int(rng.integers(0, 40))) + b"\x00"
             for k in range(n)]
    fixed = rng.standard_normal((n, 4)).astype("<f8")
    packed = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer((np.arange(n + 1) * 32).astype(np.int32)),
                         pa.py_buffer(fixed.tobytes())])
    # slices that start inside their buffers (as a publication's chunks of a run do)
    shifted = pa.array(["pad", None, "pad", *text], pa.large_string()).slice(3, n)
    cut = pa.array([b"x" * 9, *blobs, b"y"], pa.large_binary()).slice(1, n)
    return [pa.array(text, pa.string()), shifted, cut, pa.array(blobs, pa.large_binary()),
            packed, pa.nulls(n),
            pa.chunked_array([pa.array(text[: n // 2], pa.string()),
                              pa.array(text[n // 2:], pa.string())])]


def _expected(fields: list[pa.Array], i: int) -> tuple[object, ...]:
    out = []
    for f in fields:
        v = f[i].as_py()
        out.append(bytes(v) if isinstance(v, (bytes, bytearray)) else v)
    return tuple(out)


@pytest.mark.parametrize(("n", "size"), [(1, POINT_BLOCK), (POINT_BLOCK, POINT_BLOCK),
                                         (3 * POINT_BLOCK + 5, POINT_BLOCK), (100, 7)])
def test_point_blocks_give_every_field_back(n: int, size: int) -> None:
    fields = _fields(n, seed=n)
    blocks = point_blocks(fields, size)
    assert len(blocks) == -(-n // size)
    for i in range(n):
        assert point_row(blocks[i // size], i % size) == _expected(fields, i)
    last = blocks[-1]
    within = list(range(n - (len(blocks) - 1) * size))[::-1]  # any order, one decompression
    assert point_rows(memoryview(last), within) == [
        _expected(fields, (len(blocks) - 1) * size + k) for k in within]


def test_point_blocks_refuse_what_they_cannot_hold() -> None:
    fields = _fields(10, seed=1)
    block = point_blocks(fields, POINT_BLOCK)[0]
    with pytest.raises(IndexError, match="not in a point block of 10"):
        point_row(block, 10)
    with pytest.raises(ValueError, match="differ in length"):
        point_blocks([fields[0], fields[1].slice(0, 5)])
    assert point_blocks([pa.array([], pa.string())]) == []
