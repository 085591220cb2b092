"""Accepting points in the shapes callers have, and rejecting bad coordinates early."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np


class HasLatLon(Protocol):
    @property
    def lat(self) -> float: ...

    @property
    def lon(self) -> float: ...


Points: TypeAlias = HasLatLon | Sequence[HasLatLon] | np.ndarray | Sequence[Sequence[float]]
"""One point with ``.lat``/``.lon``, a sequence of them, or an (n, 2) array of (lat, lon)."""


def as_latlon_array(points: Any) -> np.ndarray:
    """An (n, 2) float array of (lat, lon), validated: raises ``ValueError`` naming the first
    latitude outside [-90, 90], longitude outside [-180, 180] or NaN."""
    if hasattr(points, "lat") and hasattr(points, "lon"):
        arr = np.array([[points.lat, points.lon]], dtype=float)
    elif isinstance(points, np.ndarray):
        arr = np.asarray(points, dtype=float).reshape(-1, 2)
    else:
        seq = list(points)
        if seq and hasattr(seq[0], "lat"):
            arr = np.array([[p.lat, p.lon] for p in seq], dtype=float).reshape(-1, 2)
        else:
            arr = np.asarray(seq, dtype=float).reshape(-1, 2)
    lat, lon = arr[:, 0], arr[:, 1]
    bad_lat = np.isnan(lat) | (lat < -90) | (lat > 90)
    if bad_lat.any():
        i = int(np.argmax(bad_lat))
        raise ValueError(f"latitude {float(lat[i])!r} (point {i}) is outside [-90, 90] or NaN")
    bad_lon = np.isnan(lon) | (lon < -180) | (lon > 180)
    if bad_lon.any():
        i = int(np.argmax(bad_lon))
        raise ValueError(f"longitude {float(lon[i])!r} (point {i}) is outside [-180, 180] or NaN")
    return arr
