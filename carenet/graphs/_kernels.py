"""Compiled kernels behind log loading and graph building.

These loops are where the time goes on a 10M-row log, so they run under numba with
``cache=True`` (compiled once per machine, then loaded from ``__pycache__``) and ``nogil=True``.
They work on plain numpy arrays; the Python wrappers in :mod:`carenet.graphs.ids` and
:mod:`carenet.graphs.build` choose, validate and allocate.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

# numba's default "workqueue" threading layer aborts the process when two threads enter a
# parallel kernel at once (the API calls graph code from worker threads): serialise them.
PARALLEL_LOCK = threading.Lock()

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_K2 = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)


@nb.njit(cache=True, nogil=True)
def _fmix(h: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finaliser: spreads every input bit over the output."""
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


@nb.njit(cache=True, nogil=True)
def hash_strings(offsets: np.ndarray, data: np.ndarray, h1: np.ndarray, h2: np.ndarray) -> None:
    """Two independent 64-bit hashes of every string in an Arrow-style (offsets, bytes) column.

    Together they form a 128-bit fingerprint: two distinct ids share one with probability about
    2**-128, so the id table compares fingerprints and never bytes (bytes comparisons cost 3x).
    """
    for r in range(offsets.size - 1):
        s = offsets[r]
        e = offsets[r + 1]
        a = _FNV_OFFSET
        b = _K2
        for i in range(s, e):
            c = np.uint64(data[i])
            a = (a ^ c) * _FNV_PRIME
            b = (b + c + np.uint64(1)) * _M2
            b ^= b >> np.uint64(29)
        n = np.uint64(e - s)
        h1[r] = _fmix(a ^ n)
        h2[r] = _fmix(b + n * _K2)


@nb.njit(cache=True, nogil=True)
def table_lookup_insert(
    h1: np.ndarray,
    h2: np.ndarray,
    slot_code: np.ndarray,
    slot_h1: np.ndarray,
    slot_h2: np.ndarray,
    n_keys: int,
    insert: bool,
    out: np.ndarray,
    new_rows: np.ndarray,
) -> tuple[int, int]:
    """Map fingerprints to dense codes with an open-addressing (linear probing) table.

    Unknown keys get the next code when ``insert`` is true (their row positions are written to
    ``new_rows`` so the caller can copy the id bytes), else code -1. Returns the new key count and
    the number of new rows. The caller keeps the load factor under 1/2 by growing the table.
    """
    mask = np.uint64(slot_code.size - 1)
    n_new = 0
    for r in range(h1.size):
        a = h1[r]
        b = h2[r]
        j = a & mask
        while True:
            c = slot_code[j]
            if c < 0:
                if insert:
                    slot_code[j] = n_keys
                    slot_h1[j] = a
                    slot_h2[j] = b
                    out[r] = n_keys
                    new_rows[n_new] = r
                    n_new += 1
                    n_keys += 1
                else:
                    out[r] = -1
                break
            if slot_h1[j] == a and slot_h2[j] == b:
                out[r] = c
                break
            j = (j + np.uint64(1)) & mask
    return n_keys, n_new


@nb.njit(cache=True, nogil=True)
def table_rehash(
    slot_code: np.ndarray,
    slot_h1: np.ndarray,
    slot_h2: np.ndarray,
    new_code: np.ndarray,
    new_h1: np.ndarray,
    new_h2: np.ndarray,
) -> None:
    """Re-insert every occupied slot into a larger table."""
    mask = np.uint64(new_code.size - 1)
    for i in range(slot_code.size):
        c = slot_code[i]
        if c < 0:
            continue
        a = slot_h1[i]
        j = a & mask
        while new_code[j] >= 0:
            j = (j + np.uint64(1)) & mask
        new_code[j] = c
        new_h1[j] = a
        new_h2[j] = slot_h2[i]


@nb.njit(cache=True, nogil=True)
def copy_new_keys(
    offsets: np.ndarray,
    data: np.ndarray,
    rows: np.ndarray,
    key_offsets: np.ndarray,
    key_data: np.ndarray,
    first_key: int,
) -> int:
    """Append the bytes of newly inserted ids to the id table's byte store; returns bytes used."""
    pos = key_offsets[first_key]
    for k in range(rows.size):
        r = rows[k]
        s = offsets[r]
        e = offsets[r + 1]
        for i in range(s, e):
            key_data[pos] = data[i]
            pos += 1
        key_offsets[first_key + k + 1] = pos
    return pos


@nb.njit(cache=True, nogil=True)
def _sort_row(key: np.ndarray, a: int, b: int) -> int:
    """Sort ``key[a:b]`` in place; return the number of distinct targets in the row."""
    if b - a > 24:
        key[a:b].sort()
    else:
        for x in range(a + 1, b):
            kx = key[x]
            y = x - 1
            while y >= a and key[y] > kx:
                key[y + 1] = key[y]
                y -= 1
            key[y + 1] = kx
    distinct = 0
    prev = np.int64(-1)
    for x in range(a, b):
        t = key[x] >> 32
        if t != prev:
            distinct += 1
            prev = t
    return distinct


@nb.njit(cache=True, nogil=True, parallel=True)
def _reduce_edges(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    count: np.ndarray,
    channels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate a list of (src, dst) contributions into CSR: weights and counts summed,
    channel bit masks OR-ed, column indices sorted within each row.

    One counting sort by source (O(m + n)) buckets the entries by row; rows are then sorted by
    target independently (in parallel; insertion sort for the short rows that dominate
    heavy-tailed graphs, numpy's in-place sort on packed int64 keys for long ones), counted,
    and merged into their final place. Equal targets keep input order, so floating-point sums
    are the same on every run and with any number of threads. Needs fewer than 2**32 entries
    (callers aggregate in chunks far below that).
    """
    m = src.size
    row_start = np.zeros(n + 1, np.int64)
    for i in range(m):
        row_start[src[i] + 1] += 1
    for v in range(n):
        row_start[v + 1] += row_start[v]
    fill = row_start[:-1].copy()
    # key = target << 32 | input position: sorting keys orders a row by target, equal targets
    # in input order. Only the key is scattered; payloads are gathered in the parallel merge.
    key = np.empty(m, np.int64)
    for i in range(m):
        s = src[i]
        p = fill[s]
        key[p] = (np.int64(dst[i]) << 32) | i
        fill[s] = p + 1
    distinct = np.zeros(n + 1, np.int64)
    for v in nb.prange(n):
        distinct[v + 1] = _sort_row(key, row_start[v], row_start[v + 1])
    indptr = np.cumsum(distinct)
    nnz = indptr[n]
    out_idx = np.empty(nnz, np.int32)
    out_w = np.empty(nnz, np.float64)
    out_c = np.empty(nnz, np.uint32)
    out_ch = np.empty(nnz, np.uint16)
    low = np.int64(0xFFFFFFFF)
    for v in nb.prange(n):
        o = indptr[v] - 1
        prev = np.int64(-1)
        for x in range(row_start[v], row_start[v + 1]):
            kx = key[x]
            t = kx >> 32
            q = kx & low
            if t == prev:
                out_w[o] += weight[q]
                out_c[o] += count[q]
                out_ch[o] |= channels[q]
            else:
                o += 1
                out_idx[o] = t
                out_w[o] = weight[q]
                out_c[o] = count[q]
                out_ch[o] = channels[q]
                prev = t
    return indptr, out_idx, out_w, out_c, out_ch


def reduce_edges(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    count: np.ndarray,
    channels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Thread-safe entry to :func:`_reduce_edges` (see there); inputs of any int dtype."""
    if len(src) >= 2**32:
        raise ValueError("reduce_edges takes fewer than 2**32 entries per call")
    with PARALLEL_LOCK:
        return _reduce_edges(
            int(n),
            np.ascontiguousarray(src, dtype=np.int32),
            np.ascontiguousarray(dst, dtype=np.int32),
            np.ascontiguousarray(weight, dtype=np.float64),
            np.ascontiguousarray(count, dtype=np.uint32),
            np.ascontiguousarray(channels, dtype=np.uint16),
        )


@nb.njit(cache=True, nogil=True)
def update_span(src: np.ndarray, dst: np.ndarray, t: np.ndarray, span: np.ndarray) -> None:
    """Per-customer first and last interaction time; ``span`` is (n, 2) so that both bounds of
    a customer share one cache line (this loop is bound by random memory access).
    """
    for i in range(src.size):
        x = t[i]
        s = src[i]
        if x < span[s, 0]:
            span[s, 0] = x
        if x > span[s, 1]:
            span[s, 1] = x
        d = dst[i]
        if x < span[d, 0]:
            span[d, 0] = x
        if x > span[d, 1]:
            span[d, 1] = x
