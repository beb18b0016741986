"""Bounded work: what-if simulations computed at once, and the throttle on failed logins and
unauthenticated requests per client address.

Both are per server process (``carenet serve --workers N`` multiplies them by N), in memory,
and cost a lock and a dictionary look-up per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from carenet.api.errors import ApiError


class SimulationSlots:
    """At most ``size`` what-if simulations at once in this process (API and cascade page).

    A simulation that finds every slot taken waits up to ``wait`` seconds, then is refused
    with 503 and ``Retry-After``: CPU work is bounded however many keys ask for it.

    >>> slots = SimulationSlots(1, wait=0)
    >>> with slots.take():
    ...     try:
    ...         with slots.take():
    ...             pass
    ...     except ApiError as exc:
    ...         print(exc.status, exc.headers)
    503 {'Retry-After': '2'}
    """

    def __init__(self, size: int, *, wait: float = 2.0) -> None:
        self.size = size
        self.wait = wait
        self._sem = threading.BoundedSemaphore(size)

    @contextmanager
    def take(self) -> Iterator[None]:
        """Hold one slot for the ``with`` block, or raise a 503 problem."""
        acquired = (self._sem.acquire(timeout=self.wait) if self.wait > 0
                    else self._sem.acquire(blocking=False))
        if not acquired:
            raise ApiError(503, "busy",
                           f"{self.size} simulation(s) are already running on this server "
                           "(CARENET_MAX_CONCURRENT_SIMULATIONS); retry shortly",
                           headers={"Retry-After": "2"})
        try:
            yield
        finally:
            self._sem.release()


class AddressThrottle:
    """A token bucket per client address for requests that failed authentication.

    Each failed login, unknown key or request without a key takes a token; a client address
    may fail ``burst`` times at once, then ``rate`` times per second. An address out of tokens
    is answered 429 *before* its key is looked up, so guessing keys costs the store nothing.
    Successful requests take no token.

    >>> t = AddressThrottle(rate=1.0, burst=2)
    >>> t.fail("1.2.3.4"); t.fail("1.2.3.4"); t.blocked("1.2.3.4") > 0
    True
    >>> t.blocked("5.6.7.8")
    0.0
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, address: str, now: float) -> float:
        tokens, last = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def blocked(self, address: str) -> float:
        """Seconds until ``address`` may fail again (0.0: it may now)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            tokens = self._tokens(address, time.monotonic())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def fail(self, address: str) -> None:
        """Take one token for a failed authentication from ``address``."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 100_000:  # a flood of addresses: forget the full ones
                self._buckets = {a: b for a, b in self._buckets.items()
                                 if self._tokens(a, now) < self.burst}
            self._buckets[address] = (max(0.0, self._tokens(address, now) - 1.0), now)

    def check(self, address: str) -> None:
        """Raise a 429 problem if ``address`` failed authentication too often lately."""
        wait = self.blocked(address)
        if wait > 0:
            raise ApiError(429, "too-many-failures",
                           "too many failed logins or requests without a valid key from this "
                           f"address; retry in {wait:.1f} s",
                           headers={"Retry-After": str(max(1, round(wait + 0.5)))})
