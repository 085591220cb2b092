"""A fast ``province_at`` for hot paths such as intake: the same answer as
:func:`fleet.geography.province_at` (same outlines, same even-odd ray test, same edge
arithmetic), found through a latitude-band index of the outline edges built once.

``fleet.geography.province_at`` tests every outline ring whose bounding box holds the point,
over all of the ring's vertices (about 0.3 ms a call). A horizontal ray from the point only
crosses edges whose latitude span holds the point's latitude, so the index keeps, per band of
``BAND_DEG`` degrees of latitude, the edges that reach into the band (about 1 % of the 74 000
edges for a typical band); a query tests only those, in one vectorised step. Most of the map
lies away from any outline: a query in a cell (one band high, ``BAND_DEG`` wide) that no edge
enters remembers the cell's answer, so later points of that cell cost a dictionary lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from fleet.geography import province_rings

BAND_DEG = 0.05
"""Height of a latitude band of the index (degrees)."""

MAX_CLEAN_CELLS = 100_000
"""Remembered clean cells at most (some 15 MB; the memory is emptied when full)."""

_UNKNOWN = object()


@dataclass(frozen=True)
class _Band:
    ring: np.ndarray  # ring index (into the outline rings) of each edge, ascending
    x: np.ndarray
    y: np.ndarray
    y2: np.ndarray
    dx: np.ndarray  # x2 - x, as the reference computes it per query
    dy: np.ndarray  # y2 - y
    x_lo: np.ndarray  # min(x, x2): the edge's longitude span, for the clean-cell test
    x_hi: np.ndarray  # max(x, x2)


@dataclass(frozen=True)
class ProvinceIndex:
    lat0: float
    bands: tuple[_Band, ...]
    adcodes: tuple[str, ...]  # adcode of each ring
    bboxes: np.ndarray  # (rings, 4): lon_min, lat_min, lon_max, lat_max
    clean_cells: dict[tuple[int, int], str | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Answers of the cells (one band high, ``BAND_DEG`` wide) that no edge enters, filled
    as queries meet them: inside such a cell every point has the same answer."""

    def province_at(self, lat: float, lon: float) -> str | None:
        """Adcode of the province containing the point, or ``None`` outside the outlines."""
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return None
        k = math.floor((lat - self.lat0) / BAND_DEG)
        if k < 0 or k >= len(self.bands):
            return None
        cell = (k, math.floor(lon / BAND_DEG))
        known = self.clean_cells.get(cell, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        answer = self._ray_test(self.bands[k], lat, lon)
        band = self.bands[k]
        west, east = cell[1] * BAND_DEG, (cell[1] + 1) * BAND_DEG
        # The band holds every edge that reaches into its latitudes, so if none of them
        # spans into the cell's longitudes either, no outline passes through the cell.
        if not np.any((band.x_lo <= east) & (band.x_hi >= west)):
            if len(self.clean_cells) >= MAX_CLEAN_CELLS:
                self.clean_cells.clear()
            self.clean_cells[cell] = answer
        return answer

    def _ray_test(self, band: _Band, lat: float, lon: float) -> str | None:
        if not len(band.ring):
            return None
        y = band.y
        crosses = (y > lat) != (band.y2 > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = band.x + (lat - y) * band.dx / band.dy
        hit = band.ring[crosses & (lon < x_at)].tolist()
        if not hit:
            return None
        odd: dict[int, bool] = {}
        for r in hit:
            odd[r] = not odd.get(r, False)
        inside: dict[str, bool] = {}
        for r in sorted(k for k, v in odd.items() if v):
            lon_min, lat_min, lon_max, lat_max = self.bboxes[r]
            if lon_min <= lon <= lon_max and lat_min <= lat <= lat_max:
                adcode = self.adcodes[r]
                inside[adcode] = not inside.get(adcode, False)
        for adcode, is_in in inside.items():
            if is_in:
                return adcode
        return None


@cache
def province_index() -> ProvinceIndex:
    """The index over :func:`fleet.geography` outline rings (built once, ~0.5 s)."""
    rings = province_rings()
    ring_ids, xs, ys, x2s, y2s = [], [], [], [], []
    for i, ring in enumerate(rings):
        x, y = ring.lon, ring.lat
        ring_ids.append(np.full(len(x), i, dtype=np.int32))
        xs.append(x)
        ys.append(y)
        x2s.append(np.roll(x, -1))
        y2s.append(np.roll(y, -1))
    rid = np.concatenate(ring_ids)
    x, y, x2, y2 = (np.concatenate(a) for a in (xs, ys, x2s, y2s))
    lo = np.minimum(y, y2)
    hi = np.maximum(y, y2)
    lat0 = math.floor(float(lo.min()) / BAND_DEG) * BAND_DEG - BAND_DEG
    n = math.ceil((float(hi.max()) - lat0) / BAND_DEG) + 2
    first = np.floor((lo - lat0) / BAND_DEG).astype(np.int64)
    last = np.floor((hi - lat0) / BAND_DEG).astype(np.int64)
    # Every (edge, band) pair the edge reaches into; a crossing edge at latitude ``lat`` has
    # lo <= lat <= hi, so it is in the band of ``lat`` (the float boundary rounding is covered
    # by extending each span by one band on both sides).
    first = np.maximum(first - 1, 0)
    last = np.minimum(last + 1, n - 1)
    spans = last - first + 1
    edge = np.repeat(np.arange(len(rid)), spans)
    offsets = np.arange(len(edge)) - np.repeat(np.cumsum(spans) - spans, spans)
    band_of = first[edge] + offsets
    order = np.lexsort((edge, band_of))
    edge, band_of = edge[order], band_of[order]
    bounds = np.searchsorted(band_of, np.arange(n + 1))
    bands = []
    for k in range(n):
        e = edge[bounds[k] : bounds[k + 1]]
        bands.append(
            _Band(
                ring=rid[e], x=x[e], y=y[e], y2=y2[e], dx=x2[e] - x[e], dy=y2[e] - y[e],
                x_lo=np.minimum(x[e], x2[e]), x_hi=np.maximum(x[e], x2[e]),
            )
        )  # fmt: skip
    bboxes = np.array([r.bbox for r in rings], dtype=float)
    return ProvinceIndex(
        lat0=lat0, bands=tuple(bands), adcodes=tuple(r.adcode for r in rings), bboxes=bboxes
    )


def province_at(lat: float, lon: float) -> str | None:
    """Same as :func:`fleet.geography.province_at`, through :func:`province_index`."""
    return province_index().province_at(lat, lon)
