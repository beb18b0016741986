"""The lapse rule, the windows chosen from a log, and gaps in the data (small synthetic logs)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from carenet.community.lapse import (
    DAY,
    check_clear,
    choose_windows,
    contact_gaps,
    find_gaps,
    lapsed_at,
    silence,
)
from carenet.errors import InvalidInputError
from carenet.evaluation.stats import silence_labels


def _log(seed: int, n: int = 40, rows: int = 600, span: float = 100 * DAY
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, rows)
    dst = (src + rng.integers(1, n, rows)) % n
    t = np.sort(rng.uniform(0, span, rows))
    return src, dst, t


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_silence_matches_a_loop_over_customers(seed: int) -> None:
    src, dst, t = _log(seed)
    n, cutoff, h, w = 40, 60 * DAY, 10 * DAY, 15 * DAY
    got = silence(src, dst, t, n, cutoff=cutoff, horizon=h, window=w)
    for c in range(n):
        times = [tt for s, d, tt in zip(src, dst, t, strict=True) if c in (s, d)]
        active = any(cutoff - w <= x < cutoff for x in times)
        quiet = not any(cutoff <= x < cutoff + h for x in times)
        assert got.active[c] == active
        assert got.lapsed[c] == (active and quiet)
    # the backtest's labels are the same rule
    lab = silence_labels(src, dst, t, n, cutoff=cutoff, horizon=h, lookback=w)
    assert (lab.churned == got.lapsed).all() and (lab.active == got.active).all()
    # lapsed by T is the rule one horizon earlier
    at = lapsed_at(src, dst, t, n, at=cutoff + h, horizon=h, window=w)
    assert (at.lapsed == got.lapsed).all()


def test_default_horizon_is_the_quantile_of_gaps_capped_at_a_quarter_of_the_span() -> None:
    src, dst, t = _log(4, rows=300)
    gaps = []
    for c in range(40):
        times = sorted(tt for s, d, tt in zip(src, dst, t, strict=True) if c in (s, d))
        gaps += [b - a for a, b in itertools.pairwise(times)]
    assert sorted(contact_gaps(src, dst, t)) == pytest.approx(sorted(gaps))
    q = float(np.quantile([g for g in gaps if g > 0], 0.9))
    win = choose_windows(src, dst, t, quantile=0.9)
    assert win.horizon == pytest.approx(min(q, (t.max() - t.min()) / 4))
    assert win.window == win.horizon and win.min_gap == pytest.approx(win.horizon / 2)
    # few customers, long silences: the cap applies
    capped = choose_windows(np.array([0, 0, 1]), np.array([1, 1, 0]),
                            np.array([0.0, 1.0, 100 * DAY]))
    assert capped.horizon == pytest.approx(25 * DAY)
    assert "capped" in capped.chosen["horizon"]
    fixed = choose_windows(src, dst, t, horizon=5 * DAY, window=7 * DAY)
    assert (fixed.horizon, fixed.window) == (5 * DAY, 7 * DAY)
    assert fixed.chosen == {"horizon": "configured", "window": "configured",
                            "min_gap": "half the horizon"}


def test_gaps_are_found_reported_and_refused() -> None:
    _src, _dst, t = _log(5, span=40 * DAY)
    t2 = np.where(t > 20 * DAY, t + 60 * DAY, t)  # 60 quiet days in the middle
    gaps = find_gaps(t2, 10 * DAY)
    assert len(gaps) == 1
    g = gaps[0]
    assert g.start == t2[t2 <= 20 * DAY].max() and g.end == t2[t2 > 20 * DAY].min()
    assert g.days == pytest.approx((g.end - g.start) / DAY)
    start = pd.Timestamp(g.start, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
    with pytest.raises(InvalidInputError, match="overlaps a period with no interactions") as e:
        check_clear(gaps, 30 * DAY, 50 * DAY, "the horizon")
    assert start in str(e.value)
    check_clear(gaps, g.end, g.end + 5 * DAY, "after it")  # clear: no error
    assert find_gaps(t, 10 * DAY) == []


def test_bad_windows_are_refused() -> None:
    src, dst, t = _log(6)
    with pytest.raises(InvalidInputError, match="horizon must be > 0"):
        silence(src, dst, t, 40, cutoff=10.0, horizon=0.0)
    with pytest.raises(InvalidInputError, match="window must be > 0"):
        silence(src, dst, t, 40, cutoff=10.0, horizon=1.0, window=-1.0)
    with pytest.raises(InvalidInputError, match="timestamps"):
        choose_windows(src[:0], dst[:0], t[:0])


@pytest.mark.parametrize("time_sorted", [True, False])
@pytest.mark.parametrize(("n", "m"), [(2, 1), (3, 5), (40, 2_000), (2**58, 300)])
def test_contact_gaps_equals_a_lexsort_of_customer_and_time(n: int, m: int,
                                                            time_sorted: bool) -> None:
    """The packed-key sort gives exactly the customer-major, time-minor gaps of a lexsort,
    on sorted and unsorted times with ties, and falls back to the lexsort where the key
    would overflow (``n = 2**58`` customer positions).
    """
    rng = np.random.default_rng(n + m)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    t = np.round(rng.random(m) * 50.0)  # many equal times
    if time_sorted:
        t.sort()
    node = np.concatenate([src, dst])
    both = np.concatenate([t, t])
    order = np.lexsort((both, node))
    expected = np.diff(both[order])[node[order][1:] == node[order][:-1]]
    np.testing.assert_array_equal(contact_gaps(src, dst, t), expected)
