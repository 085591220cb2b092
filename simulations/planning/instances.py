"""Readers for the public benchmark formats and a realistic random covering instance.

* OR-Library ``pmedN.txt`` (Beasley 1985): first line ``n m p``, then ``m`` undirected edges
  ``u v cost`` (1-based). Distances are shortest paths over the edges. The files repeat some
  ``(u, v)`` pairs and the **last occurrence wins** (that is how the published optima were
  computed: with the minimum of the duplicates pmed1 would give 5718, not 5819).
* Beasley-style random p-median instances (:func:`beasley_pmedian_text`): the construction
  read off pmed1-20, so larger ones (pmed21-40 sizes) can be generated and measured.
* Swain's 55-node covering set (``x y demand`` rows after a count line, optionally with a
  leading id column), Euclidean distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


@dataclass(frozen=True, slots=True)
class PMedianInstance:
    name: str
    n: int
    p: int
    dist: np.ndarray
    """(n, n) shortest-path distances; every vertex is a demand point and a candidate site."""


@dataclass(frozen=True, slots=True)
class PointInstance:
    name: str
    xy: np.ndarray
    """(n, 2) coordinates."""
    demand: np.ndarray

    def distances(self) -> np.ndarray:
        diff = self.xy[:, None, :] - self.xy[None, :, :]
        result: np.ndarray = np.sqrt((diff**2).sum(axis=2))
        return result


def _numbers(text: str, source: str) -> list[str]:
    tokens = text.split()
    if not tokens:
        raise ValueError(f"{source}: file is empty")
    return tokens


def parse_orlib_pmedian(text: str, name: str = "pmedian") -> PMedianInstance:
    """Parse an OR-Library p-median file (see the module docstring for the format)."""
    tokens = _numbers(text, name)
    try:
        n, m, p = (int(t) for t in tokens[:3])
        body = np.asarray([int(t) for t in tokens[3:]], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"{name}: not an OR-Library p-median file ({exc})") from None
    if n <= 0 or p <= 0 or m < 0:
        raise ValueError(f"{name}: header 'n m p' must be positive, got {n} {m} {p}")
    if body.size != 3 * m:
        raise ValueError(f"{name}: header promises {m} edges, found {body.size / 3:g}")
    edges = body.reshape(m, 3)
    u, v, cost = edges[:, 0] - 1, edges[:, 1] - 1, edges[:, 2]
    if ((u < 0) | (u >= n) | (v < 0) | (v >= n)).any():
        raise ValueError(f"{name}: an edge names a vertex outside 1..{n}")
    if (cost < 0).any():
        raise ValueError(f"{name}: edge costs must be >= 0")
    # Last occurrence wins: key each undirected pair and keep the final row for it.
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    key = lo * n + hi
    _, last_from_end = np.unique(key[::-1], return_index=True)
    keep = m - 1 - last_from_end
    lo, hi, cost = lo[keep], hi[keep], cost[keep]
    off_diag = lo != hi
    lo, hi, cost = lo[off_diag], hi[off_diag], cost[off_diag]
    # A zero-cost edge must stay an edge: store costs + 1 in the sparse graph, then subtract
    # by running on exact weights via a dense fallback when zeros are present.
    graph = np.full((n, n), np.inf)
    graph[lo, hi] = cost
    graph[hi, lo] = cost
    np.fill_diagonal(graph, 0.0)
    dist = csgraph.shortest_path(sp.csr_matrix(np.where(np.isinf(graph), 0, graph)), directed=False)
    if (cost == 0).any():
        dist = csgraph.floyd_warshall(graph, directed=False)
    if not np.isfinite(dist).all():
        raise ValueError(f"{name}: the graph is not connected")
    if p > n:
        raise ValueError(f"{name}: p = {p} exceeds n = {n}")
    return PMedianInstance(name=name, n=n, p=p, dist=dist)


def read_orlib_pmedian(path: str | Path) -> PMedianInstance:
    path = Path(path)
    return parse_orlib_pmedian(path.read_text(), name=path.stem)


def beasley_pmedian_text(n: int, p: int, seed: int = 0, *, edges: int | None = None) -> str:
    """A random p-median instance in the OR-Library format, built the way pmed1-20 were.

    Those files start with the cycle ``1-2-...-n-1`` (so the graph is connected), then
    ``edges - n`` more edges between uniformly drawn distinct vertices (a pair may repeat:
    the last line wins, as in the originals), every cost a uniform integer in 1..100, and
    ``edges = n^2 / 50`` (pmed1: 100 / 200, pmed16: 400 / 3200; pmed21-40 follow suit).
    The same ``(n, p, seed)`` always gives the same text (numpy's PCG64 stream)."""
    if n < 3:
        raise ValueError(f"n must be >= 3, got {n}")
    if not 1 <= p <= n:
        raise ValueError(f"p must be in 1..n = {n}, got {p}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    m = max(n, round(n * n / 50)) if edges is None else edges
    if m < n:
        raise ValueError(f"edges must be >= n = {n} (the connecting cycle), got {m}")
    rng = np.random.default_rng(seed)
    u = np.empty(m, dtype=np.int64)
    v = np.empty(m, dtype=np.int64)
    u[:n] = np.arange(1, n + 1)
    v[:n] = np.roll(u[:n], -1)
    extra = m - n
    u[n:] = rng.integers(1, n + 1, size=extra)
    shift = rng.integers(1, n, size=extra)  # a different vertex, uniformly
    v[n:] = (u[n:] - 1 + shift) % n + 1
    cost = rng.integers(1, 101, size=m)
    lines = [f" {n} {m} {p} "]
    lines += [
        f" {a} {b} {c} " for a, b, c in zip(u.tolist(), v.tolist(), cost.tolist(), strict=True)
    ]
    return "\n".join(lines) + "\n"


def beasley_pmedian(n: int, p: int, seed: int = 0) -> PMedianInstance:
    """:func:`beasley_pmedian_text` parsed like an OR-Library file, named ``beasley-n-p-sSEED``."""
    return parse_orlib_pmedian(beasley_pmedian_text(n, p, seed), name=f"beasley-{n}-{p}-s{seed}")


def parse_points(text: str, name: str = "points") -> PointInstance:
    """Parse ``x y demand`` rows (Swain's file: a count line, then ``id x y demand``).

    A first line holding a single integer is the count; rows with four columns have a leading
    id, which is dropped."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{name}: file is empty")
    count = None
    if len(lines[0]) == 1:
        count = int(lines[0][0])
        lines = lines[1:]
    widths = {len(r) for r in lines}
    if widths not in ({3}, {4}):
        raise ValueError(f"{name}: every row must be 'x y demand' or 'id x y demand'")
    try:
        rows = np.asarray([[float(t) for t in r[-3:]] for r in lines], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if count is not None and count != len(rows):
        raise ValueError(f"{name}: count line says {count} points, found {len(rows)}")
    if (rows[:, 2] < 0).any():
        raise ValueError(f"{name}: demand must be >= 0")
    return PointInstance(name=name, xy=rows[:, :2].copy(), demand=rows[:, 2].copy())


def read_points(path: str | Path) -> PointInstance:
    path = Path(path)
    return parse_points(path.read_text(), name=path.stem)


@dataclass(frozen=True, slots=True)
class CountySeatInstance:
    """Demand at every mainland county seat, candidate bases at a random subset of them."""

    names: tuple[str, ...]
    demand: np.ndarray
    """Prefecture population proxy split evenly over its county seats, times a seeded
    lognormal factor (sigma 0.5) so that seats differ."""
    dist_km: np.ndarray
    """(demand points, candidate sites) great-circle km."""
    site_index: np.ndarray
    """Demand-point index of each candidate site."""


def county_seat_instance(n_sites: int = 1000, *, seed: int = 0) -> CountySeatInstance:
    """A realistic national covering instance from :mod:`fleet.geography` (2,844 county seats)."""
    from fleet import geography
    from routing.provider import haversine_km

    seats = geography.county_seats()
    if not 1 <= n_sites <= len(seats):
        raise ValueError(f"n_sites must be in 1..{len(seats)}, got {n_sites}")
    population = geography.prefecture_population()
    per_prefecture: dict[str, int] = {}
    for s in seats:
        per_prefecture[s.prefecture_adcode] = per_prefecture.get(s.prefecture_adcode, 0) + 1
    median = float(np.median(list(population.values())))
    base = np.array(
        [
            population.get(s.prefecture_adcode, median) / per_prefecture[s.prefecture_adcode]
            for s in seats
        ]
    )
    rng = np.random.default_rng(seed)
    demand = np.round(base * rng.lognormal(0.0, 0.5, size=len(seats)) / 1000.0)  # thousands
    xy = np.array([[s.lat, s.lon] for s in seats], dtype=np.float64)
    site_index = np.sort(rng.choice(len(seats), size=n_sites, replace=False))
    dist = haversine_km(xy, xy[site_index])
    return CountySeatInstance(
        names=tuple(s.name for s in seats), demand=demand, dist_km=dist, site_index=site_index
    )
