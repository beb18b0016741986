"""Exposure of every customer, seeds included (leave-one-out), from one set of forward
realisations: two source labels per customer, propagated over random live-edge worlds.

Why
---
Exposure asks, for every customer v, how likely the cascade started by the seed customers S
(recent complaints and churn) reaches v. For a seed s the question is *leave-one-out*: how
likely do the **other** seeds reach s. The reverse estimator answers the seeds' question with
``runs`` reverse samples *per seed*, so its cost grows with the number of seeds (at 1M
customers and 70k seeds: 140M reverse samples). Here one set of forward realisations answers
both questions at once, and the cost does not depend on how many seeds there are beyond the
cascades themselves.

How
---
IC, LT and SIR all have a *live-edge* form (Kempe, Kleinberg & Tardos 2003; for SIR the
percolation mapping with fixed infectious periods): draw a random subgraph of "live" ties;
the customers a cascade from S reaches are exactly those reachable from S over live ties.

* IC: tie ``u -> v`` (position e) is live with probability ``p(e)``.
* LT: every customer v picks at most one in-tie, ``u -> v`` with probability ``b(u -> v)``
  (none with ``1 - sum``); only the picked tie is live.
* SIR: every customer u draws an infectious period ``T_u ~ Geometric(recovery)`` on
  ``{1, 2, ...}`` (rounds of transmission before it recovers); tie ``u -> v`` is live with
  probability ``1 - (1 - p(e))^T_u``. With ``recovery = 1`` this is IC.

Each realisation r decides liveness by a *counter-based* draw, the draw number ``k`` of the
splitmix64 stream ``(seed, r)`` of :mod:`carenet.graphs.rng` (ties at ``k = e``, per-customer
draws at ``k = n_ties + v``), so a tie's state can be asked for any number of times without
storing the world. In each world:

1. **First label**: breadth first from all seeds at once (a forward cascade), every reached
   customer records the seed that reached it first (``l1``) and the neighbour it came
   through; a seed's first label is itself. This settles every non-seed: exposed iff it has a
   first label, attributed to that seed and neighbour.
2. **Second label of each seed**: a seed s is reached by another seed iff some live path ends
   in s from a customer of another region (first label not s): along any live path from
   another seed to s, the customers after the last one outside s's region all have first
   label s. So a search *backwards* from s over live in-ties, through reached customers of
   s's own region, stops at the first reached customer u of another region: s's second
   label is ``l1(u)`` (the nearest other seed's cascade, breadth first), attributed to s's
   in-neighbour on that path. Regions are disjoint, so the searches of all seeds together
   visit each customer at most once and look at each in-tie at most once.

Both answers come from the same world. A world costs one forward cascade plus the backward
searches, which only walk the parts of the seeds' own regions that lead back to them, so the
cost does not grow with the number of seeds beyond the cascade itself (more seeds: smaller
regions).

Stopping
--------
Worlds are simulated in rounds; after each round every customer's Wilson interval is
computed, and the run stops when the largest half-width is at most ``error`` (or at
``max_runs``, or at the work ``budget``: a cap on worlds x directed ties, so that a graph ten
times larger gets a tenth of the worlds and the run's cost stays bounded; the result then
says ``stop_reason="budget"`` and the half-width it reached instead of the target).
The next round's size comes from the current estimates (the count a binomial proportion
near the worst customer's needs), so there are only a few looks, which keeps the effect
of stopping on a look small; the half-width reached is reported.

>>> from carenet.graphs.diffusion import DiffusionGraph
>>> dg = DiffusionGraph.from_arrays(3, [0, 2], [1, 1], [0.5, 0.5])
>>> fx = forward_exposure(dg, [0, 2], error=0.01, max_runs=40_000, seed=1)
>>> [round(float(p), 1) for p in fx.counts / fx.runs]    # seeds 0 and 2: nobody reaches them
[0.0, 0.8, 0.0]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from carenet.errors import InvalidInputError
from carenet.graphs._kernels import PARALLEL_LOCK
from carenet.graphs.diffusion import MODELS, DiffusionGraph, as_nodes
from carenet.graphs.rng import GOLDEN, MASK64, S11, TO_UNIT, mix

_MODEL_CODE = {"ic": 0, "lt": 1, "sir": 2}

#: Default work budget of exposure, in tie-worlds (worlds x directed ties): 2e9 lets 100k
#: customers (about 0.5M ties) run their 2,000 worlds and caps 1M customers (about 5M ties)
#: at about 380 worlds (a half-width near 0.05) so the default analysis stays within its
#: time budget there; see benchmarks/README.md, "exposure.py".
DEFAULT_BUDGET = 2e9


# ---------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True, inline="always")
def _world(seed: np.uint64, index: np.int64) -> np.uint64:
    """Start of realisation ``index``'s stream (as diffusion.py's streams)."""
    return mix(mix(seed) + np.uint64(index) * GOLDEN + GOLDEN)


@nb.njit(cache=True, nogil=True, inline="always")
def _draw(state: np.uint64, k: np.int64) -> float:
    """Draw number ``k`` of the stream started at ``state`` (random access), in [0, 1)."""
    return float(mix(state + (np.uint64(k) + np.uint64(1)) * GOLDEN) >> S11) * TO_UNIT


@nb.njit(cache=True, nogil=True, inline="always")
def _live(
    model: int, state: np.uint64, u: int, v: int, e: int, m: int, p: float,
    rindptr: np.ndarray, rindices: np.ndarray, rcum: np.ndarray, log_stay: float,
) -> bool:
    """Is tie ``e`` (``u -> v``, probability ``p``) live in the world of ``state``? The same
    answer every time. The caller reads ``p`` from the array in its own tie order (forward
    or reverse), so the backward searches read probabilities sequentially.
    """
    if model == 1:  # LT: v's one picked in-tie
        a = rindptr[v]
        b = rindptr[v + 1]
        if a == b:
            return False
        x = _draw(state, np.int64(m) + v)
        if x >= rcum[b - 1]:
            return False
        j = a + int(np.searchsorted(rcum[a:b], x, side="right"))
        return j < b and rindices[j] == u
    if model == 2 and log_stay < 0.0:  # SIR: u's infectious period T_u >= 1
        y = _draw(state, np.int64(m) + u)
        t = 1.0 + math.floor(math.log1p(-y) / log_stay)
        p = -math.expm1(t * math.log1p(-p)) if p < 1.0 else 1.0
    return _draw(state, np.int64(e)) < p


# columns of the per-thread node state: one row of 8 int32 (32 bytes, half a cache line) per
# customer, so a visit of a reached customer touches one line instead of one per array
_L1, _P1, _MARK2, _L2, _P2, _HITS = 0, 1, 2, 3, 4, 5
STATE_COLUMNS = 8


@nb.njit(cache=True, nogil=True, inline="always")
def _is_set(bits: np.ndarray, v: int) -> bool:
    return (bits[v >> 6] >> np.uint64(v & 63)) & np.uint64(1) != np.uint64(0)


@nb.njit(cache=True, nogil=True, inline="always")
def _flip(bits: np.ndarray, v: int) -> None:
    bits[v >> 6] ^= np.uint64(1) << np.uint64(v & 63)


@nb.njit(cache=True, nogil=True, parallel=True)
def _exposure_kernel(
    indptr: np.ndarray, indices: np.ndarray, prob: np.ndarray, rindptr: np.ndarray,
    rindices: np.ndarray, rcum: np.ndarray, rperm: np.ndarray, rprob: np.ndarray, model: int,
    log_stay: float, seeds: np.ndarray, seed: np.uint64, first: int, count: int, record: bool,
    node_state: np.ndarray, reached: np.ndarray, queue: np.ndarray, queue2: np.ndarray,
    rec_key: np.ndarray, used: np.ndarray,
) -> None:
    """Worlds ``first .. first + count - 1``: adds exposure hits to
    ``node_state[thread, :, _HITS]``. With ``record``, world i writes one int64 key per
    (customer v, source seed index j, via u), ``(v * n_seeds + j) * n + u``, to the region
    ``[i * n, (i + 1) * n)`` of ``rec_key`` (``used[i]`` rows; one key instead of three
    columns halves the bytes written and lets the aggregation sort one array). ``rprob`` is
    ``prob`` in reverse-CSR order (``prob[rperm]``). The node state (labels, parents, hits;
    one row per customer and thread) persists between calls; its stamps are world index + 1.
    ``reached`` (one bit per customer and thread, all clear between worlds) says who the
    cascade reached: every tie looked at tests its head's bit, and the bits of 1M customers
    (128 KB) stay in the core's cache where a stamp array (4 MB) missed on most ties.
    """
    n = indptr.size - 1
    m = indices.size
    n_seeds = seeds.size
    for i in nb.prange(count):
        tid = nb.get_thread_id()
        w = first + i
        state = _world(seed, np.int64(w))
        stamp = np.int32(w + 1)
        st = node_state[tid]
        bits = reached[tid]
        q = queue[tid]
        q2 = queue2[tid]
        # 1. first labels: breadth first from every seed at once
        size = 0
        for j in range(n_seeds):
            s = seeds[j]
            _flip(bits, s)
            st[s, _L1] = j
            st[s, _P1] = -1
            q[size] = s
            size += 1
        head = 0
        while head < size:
            u = q[head]
            head += 1
            lab = st[u, _L1]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                if not _is_set(bits, v) and _live(model, state, u, v, e, m, prob[e],
                                                  rindptr, rindices, rcum, log_stay):
                    _flip(bits, v)
                    st[v, _L1] = lab
                    st[v, _P1] = u
                    st[v, _HITS] += 1  # a non-seed reached: exposed in this world
                    q[size] = v
                    size += 1
        # 2. second labels of the seeds: backwards from seed s over live ties within its
        # region (first label s) to the nearest reached customer of another region. Regions
        # are disjoint, so a customer is visited by one seed's search at most.
        for j in range(n_seeds):
            s = seeds[j]
            st[s, _MARK2] = stamp
            st[s, _P2] = -1
            q2[0] = s
            size2 = 1
            head = 0
            found = -1
            while head < size2 and found < 0:
                x = q2[head]
                head += 1
                for k in range(rindptr[x], rindptr[x + 1]):
                    u = rindices[k]
                    if not _is_set(bits, u) or (st[u, _L1] == j and st[u, _MARK2] == stamp):
                        continue  # unreached (its tie does not matter) or seen
                    if not _live(model, state, u, x, rperm[k], m, rprob[k], rindptr,
                                 rindices, rcum, log_stay):
                        continue
                    branch = u if x == s else st[x, _P2]  # s's in-neighbour on the path
                    if st[u, _L1] != j:
                        found = st[u, _L1]
                        st[s, _L2] = found
                        st[s, _P2] = branch
                        break
                    st[u, _MARK2] = stamp
                    st[u, _P2] = branch
                    q2[size2] = u
                    size2 += 1
            if found < 0:
                st[s, _P2] = -2
            else:
                st[s, _HITS] += 1  # a seed reached by another seed's cascade
        for h in range(size):  # clear the reached bits for the next world
            _flip(bits, q[h])
        if record:
            pos = np.int64(i) * n
            start = pos
            nn = np.int64(n)
            ns = np.int64(n_seeds)
            for h in range(n_seeds, size):
                v = q[h]
                rec_key[pos] = (np.int64(v) * ns + st[v, _L1]) * nn + st[v, _P1]
                pos += 1
            for j in range(n_seeds):
                s = seeds[j]
                if st[s, _P2] >= 0:
                    rec_key[pos] = (np.int64(s) * ns + st[s, _L2]) * nn + st[s, _P2]
                    pos += 1
            used[i] = pos - start


@nb.njit(cache=True, nogil=True)
def _reverse_positions(indices: np.ndarray, rindptr: np.ndarray) -> np.ndarray:
    """Forward position of every in-tie in reverse-CSR order: a stable counting sort of the
    ties by head (what ``np.argsort(indices, kind="stable")`` gives, in one pass instead of
    a comparison sort of 5M ties).
    """
    nxt = rindptr[:-1].copy()
    out = np.empty(indices.size, np.int64)
    for e in range(indices.size):
        v = indices[e]
        out[nxt[v]] = e
        nxt[v] += 1
    return out


def _kernel_arrays(dg: DiffusionGraph, model: str,
                   recovery: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, float]:
    """The kernel's per-graph inputs: model code, forward position of every in-tie (the
    reverse CSR lists in-ties in this order), probabilities in forward and reverse order,
    and SIR's ``log(1 - recovery)`` (0 for IC and LT).
    """
    rperm = _reverse_positions(dg.indices, dg.rindptr)
    prob = dg.lt_weight if model == "lt" else dg.prob
    log_stay = math.log1p(-recovery) if (model == "sir" and recovery < 1.0) else 0.0
    return _MODEL_CODE[model], rperm, prob, prob[rperm], log_stay


WorldsFn = Callable[..., tuple[np.ndarray, np.ndarray]]
"""Called as :func:`exposure_worlds` is (``worlds(dg, seeds, model=, recovery=, seed=,
first=, count=, record=)``) and returning what it returns, computed elsewhere (e.g. as Spark
tasks over blocks of the range, :mod:`carenet.spark.sampling`); :func:`forward_exposure` takes
one to run its worlds there instead of in this process."""


def exposure_worlds(
    dg: DiffusionGraph,
    seeds: Sequence[int] | np.ndarray,
    *,
    model: str = "ic",
    recovery: float = 1.0,
    seed: int = 0,
    first: int = 0,
    count: int = 1,
    record: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Worlds ``first .. first + count - 1`` of :func:`forward_exposure`'s stream, alone: the
    entry point of a task that simulates one block of worlds (blocks can run anywhere; their
    results add up to the one-process run's, bit for bit, since world r draws only from the
    stream ``(seed, r)``).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``hits[v]``: worlds of the block in which v was exposed; and with ``record`` the
        attribution keys ``(v * n_seeds + source) * n + via`` of those worlds, counted: two
        arrays stacked as ``[[key...], [count...]]`` (int64, keys sorted and distinct).

    >>> dg = DiffusionGraph.from_arrays(3, [0, 2], [1, 1], [0.5, 0.5])
    >>> whole = forward_exposure(dg, [0, 2], min_runs=64, max_runs=64, seed=1)
    >>> parts = [exposure_worlds(dg, [0, 2], seed=1, first=f, count=32) for f in (0, 32)]
    >>> bool((parts[0][0] + parts[1][0] == whole.counts).all())
    True
    """
    n = dg.n_nodes
    s_nodes = as_nodes(seeds, n, "seeds")
    count = int(count)
    if count < 0 or first < 0:
        raise InvalidInputError(f"first and count must be >= 0, not {first}, {count}")
    code, rperm, prob, rprob, log_stay = _kernel_arrays(dg, model, recovery)
    threads = max(1, int(nb.get_num_threads()))
    node_state = np.zeros((threads, n, STATE_COLUMNS), np.int32)
    bits = np.zeros((threads, (n + 63) // 64), np.uint64)
    q1, q2 = (np.empty((threads, n), np.int32) for _ in range(2))
    record = bool(record) and count > 0
    rec = np.empty(count * n if record else 0, np.int64)
    used = np.zeros(count if record else 0, np.int64)
    if count and s_nodes.size:
        with PARALLEL_LOCK, nb.parallel_chunksize(1):
            _exposure_kernel(dg.indptr, dg.indices, prob, dg.rindptr, dg.rindices, dg.rlt_cum,
                             rperm, rprob, code, log_stay, s_nodes,
                             np.uint64(int(seed) & MASK64), int(first), count, record,
                             node_state, bits, q1, q2, rec, used)
    hits = node_state[:, :, _HITS].sum(axis=0, dtype=np.int64)
    keys = np.zeros((2, 0), np.int64)
    if record and s_nodes.size:
        key, cnt = _count_keys(np.concatenate([rec[i * n: i * n + used[i]]
                                               for i in range(count)]))
        keys = np.stack([key, cnt])
    return hits, keys


# ---------------------------------------------------------------------------- driver
@dataclass(frozen=True, eq=False)
class ForwardExposure:
    """What the forward worlds showed.

    ``counts[v]``: worlds in which v was exposed (a non-seed reached by the seeds' cascade; a
    seed reached by another seed's); ``runs``: worlds simulated; ``error``: the largest
    Wilson half-width at ``confidence`` over all customers (the error reached) and
    ``error_target`` the one asked for; ``rounds``: how many times the stopping rule looked;
    ``stop_reason``: ``"error"`` (target met), ``"max_runs"``, ``"budget"`` (the work budget's
    world cap ``budget_runs`` was reached first) or ``"no_seeds"``.
    Attribution rows from the first ``attribution_runs`` worlds, aggregated: ``count[i]``
    worlds exposed ``node[i]`` first through seed ``seeds[source[i]]`` and the in-neighbour
    ``via[i]`` (for a seed: another seed that reached it, and the neighbour it came through);
    sorted by (node, source, via), distinct, int32 (tens of millions of rows at 1M customers).
    """

    seeds: np.ndarray
    counts: np.ndarray
    runs: int
    error: float
    error_target: float
    confidence: float
    rounds: int
    attribution_runs: int
    node: np.ndarray
    source: np.ndarray
    via: np.ndarray
    count: np.ndarray
    model: str
    seconds: float
    scratch_bytes: int
    stop_reason: str = "error"
    budget_runs: int | None = None


def _hits(node_state: np.ndarray, n: int) -> np.ndarray:
    """Hits per customer summed over the threads' state (zeros when it holds no rows)."""
    if node_state.shape[1] != n:
        return np.zeros(n, np.int64)
    return node_state[:, :, _HITS].sum(axis=0, dtype=np.int64)


def wilson_half_width(counts: np.ndarray, trials: int, z: float) -> np.ndarray:
    """Half-width of the Wilson score interval of ``counts / trials`` (vectorised).

    >>> round(float(wilson_half_width(np.array([500]), 1000, 1.96)[0]), 4)
    0.0309
    """
    if trials <= 0:
        return np.full(np.shape(counts), 0.5)
    p = np.asarray(counts, np.float64) / trials
    z2 = z * z / trials
    return np.asarray(z * np.sqrt(p * (1 - p) / trials + z2 / (4 * trials)) / (1 + z2))


def runs_for(p: float, error: float, z: float) -> int:
    """Worlds a proportion near ``p`` needs for a normal half-width of ``error``."""
    return math.ceil(z * z * max(p * (1 - p), 1e-12) / (error * error))


def _count_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and how often each occurs: one plain sort (numpy's SIMD sort
    of int64 on x86) and run lengths, no argsort and no gathers.
    """
    if keys.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.sort(keys)
    new = np.empty(keys.size, bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return keys[starts], np.diff(np.append(starts, keys.size)).astype(np.int64)


@nb.njit(cache=True, nogil=True)
def _decode_keys(key: np.ndarray, n_seeds: int,
                 n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, source seed index, via) of every attribution key
    ``(v * n_seeds + source) * n + via``, as int32 (positions are below 2**31): at 1M
    customers there are tens of millions of keys, and three int64 columns plus numpy's
    divmod remainder held twice the memory.
    """
    node = np.empty(key.size, np.int32)
    source = np.empty(key.size, np.int32)
    via = np.empty(key.size, np.int32)
    ns = np.int64(n_seeds)
    nn = np.int64(n)
    for i in range(key.size):
        k = key[i]
        rest = k // nn
        via[i] = k - rest * nn
        v = rest // ns
        source[i] = rest - v * ns
        node[i] = v
    return node, source, via


@nb.njit(cache=True, nogil=True)
def _merge_counts(k1: np.ndarray, c1: np.ndarray, k2: np.ndarray,
                  c2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted distinct-key count tables into one (counts of equal keys added), in
    one linear pass: the attribution's running table grows to tens of millions of rows at
    1M customers, and re-sorting it after every batch cost seconds.
    """
    keys = np.empty(k1.size + k2.size, np.int64)
    counts = np.empty(k1.size + k2.size, np.int64)
    i = j = o = 0
    while i < k1.size and j < k2.size:
        if k1[i] < k2[j]:
            keys[o] = k1[i]
            counts[o] = c1[i]
            i += 1
        elif k2[j] < k1[i]:
            keys[o] = k2[j]
            counts[o] = c2[j]
            j += 1
        else:
            keys[o] = k1[i]
            counts[o] = c1[i] + c2[j]
            i += 1
            j += 1
        o += 1
    while i < k1.size:
        keys[o] = k1[i]
        counts[o] = c1[i]
        i += 1
        o += 1
    while j < k2.size:
        keys[o] = k2[j]
        counts[o] = c2[j]
        j += 1
        o += 1
    return keys[:o], counts[:o]


def forward_exposure(
    dg: DiffusionGraph,
    seeds: Sequence[int] | np.ndarray,
    *,
    model: str = "ic",
    recovery: float = 1.0,
    error: float = 0.025,
    confidence: float = 0.95,
    max_runs: int = 2000,
    min_runs: int = 128,
    attribution_runs: int = 512,
    seed: int = 0,
    record_rows: int = 16_000_000,
    budget: float | None = None,
    worlds: WorldsFn | None = None,
) -> ForwardExposure:
    """Leave-one-out exposure of every customer from forward live-edge worlds (module doc).

    Parameters
    ----------
    dg
        The diffusion graph (tie probabilities; LT uses its normalised in-weights).
    seeds
        Seed node positions (distinct after sorting).
    model
        ``"ic"``, ``"lt"`` or ``"sir"``.
    recovery
        SIR's per-step recovery probability (1: SIR is IC); ignored by IC and LT.
    error
        Target: the largest half-width of the customers' Wilson intervals at ``confidence``.
    confidence
        Level of those intervals (0.95: the 95% interval).
    max_runs, min_runs
        At most ``max_runs`` worlds; the first look is after ``min_runs`` (or ``max_runs``).
    attribution_runs
        Worlds (the first ones) whose (customer, source, via) rows are kept for attribution.
    seed
        World r draws from the splitmix64 stream ``(seed, r)``: results do not depend on the
        number of threads, and the first k worlds are the same whatever ``max_runs``.
    record_rows
        Bound on attribution rows held before they are counted (memory: 8 bytes a row);
        sets how many worlds are recorded per kernel call.
    budget
        Work budget in tie-worlds: at most ``budget / ties`` worlds (at least ``min_runs``),
        whatever the error reached; None: no budget. Deterministic (a count, not a clock),
        so a run repeats exactly.
    worlds
        Runs the worlds elsewhere (:data:`WorldsFn`, e.g. Spark tasks); the stopping rule,
        the attribution table and the result stay here and are the same as without it.
    """
    t0 = time.perf_counter()
    if model not in MODELS:
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    if not 0.0 < recovery <= 1.0:
        raise InvalidInputError(f"recovery must be in (0, 1], not {recovery}")
    if not 0.0 < error < 0.5:
        raise InvalidInputError(f"error must be in (0, 0.5), not {error}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), not {confidence}")
    if isinstance(max_runs, bool) or not 1 <= int(max_runs) < 2**31 - 1:
        raise InvalidInputError(f"runs must be a positive integer below 2**31, not {max_runs}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer, not {seed!r}")
    if budget is not None and not budget > 0:
        raise InvalidInputError(f"budget must be > 0 tie-worlds (or None), not {budget}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n = dg.n_nodes
    s_nodes = as_nodes(seeds, n, "seeds")
    max_runs = int(max_runs)
    budget_runs = None
    if budget is not None:
        budget_runs = max(1, min(int(min_runs), max_runs),
                          int(min(float(budget) / max(1, dg.indices.size), 2.0**31)))
    cap = max_runs if budget_runs is None else min(max_runs, budget_runs)
    # (scratch of one thread only when the worlds run elsewhere: its hits stay 0)
    threads = 1 if worlds is not None else max(1, int(nb.get_num_threads()))
    # marks 0 = never; hits 0
    node_state = np.zeros((threads, n if worlds is None else 0, STATE_COLUMNS), np.int32)
    reached_bits = np.zeros((threads, (n + 63) // 64), np.uint64)
    queues = [np.empty((threads, n if worlds is None else 0), np.int32) for _ in range(2)]
    scratch_bytes = node_state.nbytes + reached_bits.nbytes + sum(a.nbytes for a in queues)
    remote_hits = np.zeros(n, np.int64)
    code, rperm, prob, rprob, log_stay = _kernel_arrays(dg, model, recovery)
    u64 = np.uint64(int(seed) & MASK64)
    table = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # attribution: key, count
    attribution_runs = max(0, min(int(attribution_runs), max_runs))
    if attribution_runs and float(n) * n * max(1, s_nodes.size) >= 2.0**63:
        raise InvalidInputError(f"too many customers ({n}) and seeds ({s_nodes.size}) for "
                                "the attribution's keys; pass attribution_runs=0")
    per_batch = max(1, int(record_rows) // max(1, n))
    empty64 = np.zeros(0, np.int64)
    done = 0
    rounds = 0
    target = min(cap, max(1, int(min_runs)))
    half = 0.5
    while s_nodes.size:
        while done < target:
            record = done < attribution_runs
            step = min(target, attribution_runs) - done if record else target - done
            if record:
                step = min(step, per_batch)
            if worlds is not None:
                hits, counted = worlds(dg, s_nodes, model=model, recovery=recovery,
                                       seed=int(seed), first=done, count=step, record=record)
                remote_hits += hits
                if record:
                    table = _merge_counts(*table, counted[0], counted[1])
                done += step
                continue
            if record:
                rec = np.empty(step * n, np.int64)
                used = np.zeros(step, np.int64)
            else:
                rec = empty64
                used = empty64
            with PARALLEL_LOCK, nb.parallel_chunksize(1):
                _exposure_kernel(dg.indptr, dg.indices, prob, dg.rindptr, dg.rindices,
                                 dg.rlt_cum, rperm, rprob, code, log_stay, s_nodes, u64, done,
                                 step, record, node_state, reached_bits, queues[0], queues[1],
                                 rec, used)
            if record:
                # one int64 key per (customer, source, via): (v * seeds + source) * n + via
                key = np.concatenate([rec[i * n: i * n + used[i]] for i in range(step)])
                del rec
                table = _merge_counts(*table, *_count_keys(key))
                del key
            done += step
        rounds += 1
        total = _hits(node_state, n) + remote_hits
        half = float(wilson_half_width(total, done, z).max()) if n else 0.0
        if half <= error or done >= cap:
            break
        # the worst customer's proportion, read from the upper end of its interval so an
        # early low count does not promise too few worlds
        p = total / done
        worst = float(p[np.argmin(np.abs(p - 0.5))])
        need = runs_for(min(0.5, worst + half / 2), error, z)
        target = min(cap, max(need, done + max(1, done // 4)))
    total = _hits(node_state, n) + remote_hits
    if not s_nodes.size:
        reason = "no_seeds"
    elif half <= error:
        reason = "error"
    else:
        reason = "max_runs" if cap == max_runs else "budget"
    key, cnt = table
    del table
    node, source, via = _decode_keys(key, max(1, s_nodes.size), n)
    del key
    count = cnt.astype(np.int32)  # at most attribution_runs < 2**31 worlds
    del cnt
    return ForwardExposure(
        seeds=s_nodes, counts=total, runs=max(done, 1) if s_nodes.size else max_runs,
        error=half if s_nodes.size else 0.0, error_target=float(error),
        confidence=float(confidence), rounds=rounds,
        attribution_runs=min(attribution_runs, done), node=node, source=source, via=via,
        count=count, model=model, seconds=time.perf_counter() - t0, scratch_bytes=scratch_bytes,
        stop_reason=reason, budget_runs=budget_runs,
    )
