"""Headerless logs: telling a column of times from a column of weights.

A headerless ``SRC DST T`` log whose times count seconds from the start of a study (not epoch
seconds) used to have its third column read as a weight, silently. :func:`time_likeness`
looks at the first rows of such a column; :func:`detect_time_column` turns a clear case into
the timestamp and says so, and leaves an unsure one as a weight with a warning; both notes
give the exact ``--columns`` option for the other reading. Kept apart from the loader's
validation (:mod:`carenet.graphs.logs`) so that each can change on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from carenet.graphs.tables import RawTable


def time_likeness(vals: Sequence[str]) -> str:
    """Whether the first values of a headerless numeric column look like times.

    ``"time"``: integers that are mostly non-decreasing (at least 90% of consecutive steps)
    and either epoch-sized (over 1e8) or spread over at least 1,000 units with mostly distinct
    values - a log written in time order, times counted from any origin. ``"maybe"``:
    integers, at least 70% of steps non-decreasing, but not clearly so. ``"no"`` otherwise.

    >>> time_likeness(["18", "37", "40", "40", "112", "170", "2001"])
    'time'
    >>> time_likeness(["3", "1", "2", "5", "1", "4"])
    'no'
    """
    try:
        nums = np.array([float(v) for v in vals], dtype=np.float64)
    except ValueError:
        return "no"
    if nums.size < 3 or not np.all(np.isfinite(nums)) or not np.all(nums == np.round(nums)):
        return "no"
    rising = float(np.mean(np.diff(nums) >= 0))
    distinct = len(np.unique(nums)) / nums.size
    if rising >= 0.9 and (nums.min() > 1e8 or (nums.max() - nums.min() >= 1000
                                                and distinct >= 0.5)):
        return "time"
    return "maybe" if rising >= 0.7 and nums.max() - nums.min() > 0 else "no"


def detect_time_column(table: RawTable, columns: dict[str, str], *,
                       weight_col: str | None = None, time_col: str | None = None,
                       named: bool = False) -> str | None:
    """In a headerless CSV log, a column taken as the weight by position that looks like a
    time (:func:`time_likeness`) becomes the timestamp; ``columns`` is updated in place.
    Nothing is decided when the user named the columns (``named``, ``--columns``) or gave
    a weight or time column.

    Returns a note for the report and the terminal (None when nothing was decided): what
    was read as what, and the exact ``--columns`` option that reads it the other way.
    """
    sn = table.sniffed
    if (sn.header or sn.format != "csv" or named or weight_col
            or time_col is not None or "timestamp" in columns
            or "weight" not in columns):
        return None
    col = columns["weight"]
    i = list(table.names).index(col)
    vals = [r[i] for r in sn.first_rows if i < len(r) and r[i]]
    kind = time_likeness(vals)
    names = list(table.names)
    if kind == "time":
        columns["timestamp"] = columns.pop("weight")
        as_weight = ",".join("source" if n == columns["source"] else "target"
                             if n == columns["target"] else "weight" if n == col
                             else f"unused{j + 1}" for j, n in enumerate(names))
        return (f"column {col} (no header) holds large, mostly non-decreasing integers: read "
                f"as the timestamp, not a weight; if it is a weight, pass --columns "
                f"{as_weight}")
    if kind == "maybe":
        as_time = ",".join("source" if n == columns["source"] else "target"
                           if n == columns["target"] else "timestamp" if n == col
                           else f"unused{j + 1}" for j, n in enumerate(names))
        return (f"column {col} (no header) was read as a weight, but its values look like "
                f"times; if they are, pass --columns {as_time}")
    return None



__all__ = ["detect_time_column", "time_likeness"]
