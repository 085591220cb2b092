"""Seasonal demand: ``[demand] month_factors`` and ``weekday_factors``.

The daily breakdown rate is ``breakdowns_per_day`` x the day's month factor x its weekday
factor. Each list is normalised to mean 1, so the factors shape the year without changing its
mean rate (a month's factor is relative, not absolute: 1.3 = 30% above the average month).
Simulated day 0 is ``[demand] start_date``.

ASSUMPTIONS (no public series of truck breakdowns by month or weekday in the project's data):
the shipped defaults are flat (all 1). The illustrative national values in docs/simulations.md
(a Spring Festival peak in January-February as freight rushes before the holiday, winter cold
starts and tyre faults, a summer heat bump, fewer breakdowns on Sundays) are the planner's
to change.
"""

from __future__ import annotations

import datetime as dt

import numpy as np


def daily_season_factors(
    start_date: dt.date,
    days: int,
    month_factors: tuple[float, ...],
    weekday_factors: tuple[float, ...],
) -> np.ndarray:
    """Per simulated day (day 0 = ``start_date``): month factor x weekday factor, each list
    normalised to mean 1 (12 months January first; 7 weekdays Monday first)."""
    months = np.asarray(month_factors, dtype=float)
    weekdays = np.asarray(weekday_factors, dtype=float)
    if months.shape != (12,) or weekdays.shape != (7,):
        raise ValueError("month_factors needs 12 values and weekday_factors 7")
    months = months / months.mean()
    weekdays = weekdays / weekdays.mean()
    dates = [start_date + dt.timedelta(days=d) for d in range(days)]
    month_index = np.array([d.month - 1 for d in dates], dtype=np.int64)
    weekday_index = np.array([d.weekday() for d in dates], dtype=np.int64)
    return months[month_index] * weekdays[weekday_index]
