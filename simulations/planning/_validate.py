"""Input checks shared by the solvers: every error names the argument and the reason."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def check_p(p: object, n_sites: int, name: str = "p") -> int:
    if isinstance(p, bool) or not isinstance(p, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {p!r}")
    if p <= 0:
        raise ValueError(f"{name} must be >= 1, got {p}")
    if p > n_sites:
        raise ValueError(f"{name} = {p} exceeds the number of candidate sites ({n_sites})")
    return int(p)


def check_demand(demand: object, n_demand: int, name: str = "demand") -> np.ndarray:
    arr = np.asarray(demand, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n_demand:
        raise ValueError(f"{name} must be a vector of length {n_demand}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    if (arr < 0).any():
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name} must be >= 0, got {arr[i]} at index {i}")
    return arr


def check_distances(dist: object, name: str = "dist") -> np.ndarray:
    arr = np.asarray(dist, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (demand x site) matrix, got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0")
    return arr


def check_fixed(fixed: Iterable[int], n_sites: int, p: int | None = None) -> np.ndarray:
    out = []
    for f in fixed:
        if isinstance(f, bool) or not isinstance(f, int | np.integer):
            raise ValueError(f"fixed must hold site indices, got {f!r}")
        if not 0 <= int(f) < n_sites:
            raise ValueError(f"fixed site {f} is out of range 0..{n_sites - 1}")
        out.append(int(f))
    if len(set(out)) != len(out):
        raise ValueError("fixed must not repeat a site")
    if p is not None and len(out) > p:
        raise ValueError(f"fixed has {len(out)} sites, more than p = {p}")
    return np.asarray(sorted(out), dtype=np.int64)


def check_time_limit(time_limit_s: object) -> float:
    try:
        value = float(time_limit_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"time_limit_s must be a number, got {time_limit_s!r}") from None
    if not value > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s!r}")
    return value


def is_integral(*arrays: np.ndarray) -> bool:
    return all(np.all(np.isfinite(a)) and np.all(a == np.round(a)) for a in arrays)
