"""The small numeric helpers the plots share: a rolling mean and time buckets."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

ROLLING_WINDOW = 20  # answers per point: smooths one-off answers without hiding a drop over a canary's first samples


def rolling_mean(values: list[float], window: int = ROLLING_WINDOW) -> list[float]:
    """The mean of each value and up to `window - 1` before it (a short series is averaged over what there is)."""
    if not values:
        return []
    sums = np.cumsum(np.asarray(values, dtype=float))
    lagged = np.concatenate([np.zeros(window), sums[:-window]]) if len(sums) > window else np.zeros(len(sums))
    counts = np.minimum(np.arange(1, len(sums) + 1), window)
    return ((sums - lagged[: len(sums)]) / counts).tolist()


def bucket_size(start: datetime, end: datetime) -> timedelta:
    """Five minutes for a short history, hours for days, days for weeks, weeks beyond: at most about 70 bars (more after a year)."""
    span = end - start
    if span <= timedelta(hours=3):
        return timedelta(minutes=5)
    if span <= timedelta(days=3):
        return timedelta(hours=1)
    if span <= timedelta(days=70):
        return timedelta(days=1)
    return timedelta(days=7)


def bucket_of(moment: datetime, start: datetime, size: timedelta) -> datetime:
    return start + size * ((moment - start) // size)
