"""carenet's one random-number scheme: sub-seeds for the phases of a computation, and the
splitmix64 streams the numba kernels draw from.

Every stochastic function takes an explicit ``seed``. A computation with several random phases
gives each its own independent sub-seed, :func:`derive_seed` ``(seed, tag)`` (numpy's
``SeedSequence``, so sub-seeds of different tags are statistically independent); the numba
kernels (:mod:`carenet.graphs.diffusion`, :mod:`carenet.graphs.blocking`) turn a seed and a
run index into a splitmix64 stream (:func:`mix` and the constants below), so run ``i`` of a
simulation draws the same numbers whatever the thread count or the order of the runs.
"""

from __future__ import annotations

import zlib

import numba as nb
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
"""splitmix64's increment (the golden ratio in 64 bits)."""
C1 = np.uint64(0xBF58476D1CE4E5B9)
C2 = np.uint64(0x94D049BB133111EB)
S30 = np.uint64(30)
S27 = np.uint64(27)
S31 = np.uint64(31)
S11 = np.uint64(11)
TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53: the top 53 bits of a draw -> [0, 1)
MASK64 = (1 << 64) - 1


@nb.njit(cache=True, nogil=True, inline="always")
def mix(z: np.uint64) -> np.uint64:
    """splitmix64's output function (a bijection that spreads every bit)."""
    z = (z ^ (z >> S30)) * C1
    z = (z ^ (z >> S27)) * C2
    return z ^ (z >> S31)


def derive_seed(seed: int, tag: int | str, *, bits: int = 64) -> int:
    """An independent sub-seed of ``seed`` for one phase or use (``tag``) of a computation.

    Parameters
    ----------
    seed
        The seed of the whole computation (a run's seed, a function's ``seed=``); >= 0.
    tag
        Which phase: a small integer, or a name (hashed with CRC-32).
    bits
        Width of the result: 64 for the kernels' streams, 31 where a library wants a signed
        32-bit seed (igraph, scikit-learn).

    Returns
    -------
    int
        A seed in ``[0, 2**bits)``; the same arguments always give the same seed.

    Examples
    --------
    >>> derive_seed(42, 1) == derive_seed(42, 1) != derive_seed(42, 2)
    True
    >>> 0 <= derive_seed(42, "communities", bits=31) < 2**31
    True
    """
    key = zlib.crc32(tag.encode()) if isinstance(tag, str) else int(tag)
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), key]).generate_state(1, np.uint64)
    return int(state[0]) & ((1 << bits) - 1)
