"""Snapping WGS84 points to their nearest road-graph node (KD-tree on 3-D unit vectors)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geopy.distance import EARTH_RADIUS
from scipy.spatial import cKDTree

DEFAULT_MAX_SNAP_KM = 50.0
"""Points farther than this (great-circle) from every graph node are not snapped."""


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    c = np.cos(la)
    return np.column_stack((c * np.cos(lo), c * np.sin(lo), np.sin(la)))


def chord_to_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle km for a chord length on the unit sphere."""
    result: np.ndarray = 2 * EARTH_RADIUS * np.arcsin(np.clip(chord / 2, 0.0, 1.0))
    return result


@dataclass(frozen=True, slots=True)
class SnapResult:
    """Where each point joins the graph.

    ``node`` is the nearest graph node (``-1`` where the point is farther than ``max_snap_km``
    from every node: flagged, treated as unreachable); ``distance_km`` the great-circle km to
    that nearest node (reported even when flagged); ``component`` the node's road component
    (``-1`` when flagged).
    """

    node: np.ndarray
    distance_km: np.ndarray
    component: np.ndarray
    max_snap_km: float

    @property
    def snapped(self) -> np.ndarray:
        """Boolean mask of points that joined the graph."""
        result: np.ndarray = self.node >= 0
        return result

    @property
    def too_far(self) -> np.ndarray:
        """Indices of the points more than ``max_snap_km`` from any road."""
        return np.flatnonzero(self.node < 0)

    def __len__(self) -> int:
        return len(self.node)


class Snapper:
    """Nearest-node lookup for a graph's node coordinates (vectorised)."""

    def __init__(
        self,
        lat: np.ndarray,
        lon: np.ndarray,
        component: np.ndarray,
        min_component_nodes: int = 1,
    ) -> None:
        sizes = np.bincount(component)
        # Fragments below the size threshold are not snap targets (the largest always is).
        big = (sizes >= min_component_nodes) | (np.arange(len(sizes)) == np.argmax(sizes))
        self._candidates = np.flatnonzero(big[component])
        self._tree = cKDTree(unit_vectors(lat[self._candidates], lon[self._candidates]))
        self._component = component

    def snap(self, latlon: np.ndarray, max_snap_km: float = DEFAULT_MAX_SNAP_KM) -> SnapResult:
        """Snap an (n, 2) array of validated (lat, lon)."""
        if not max_snap_km >= 0:
            raise ValueError(f"max_snap_km must be >= 0, got {max_snap_km!r}")
        if len(latlon) == 0:
            empty_i = np.empty(0, dtype=np.int64)
            return SnapResult(empty_i, np.empty(0), empty_i.copy(), max_snap_km)
        # each distinct point is looked up once (vans at home share their station's point)
        points = np.ascontiguousarray(latlon, dtype=float)
        distinct, inverse = np.unique(points.view(np.complex128).reshape(-1), return_inverse=True)
        if len(distinct) < len(points):
            chord, idx = self._tree.query(unit_vectors(distinct.real, distinct.imag), k=1)
            chord, idx = (
                np.asarray(chord)[inverse.reshape(-1)],
                np.asarray(idx)[inverse.reshape(-1)],
            )
        else:
            chord, idx = self._tree.query(unit_vectors(points[:, 0], points[:, 1]), k=1)
        km = chord_to_km(np.asarray(chord, dtype=float))
        node = self._candidates[np.asarray(idx, dtype=np.int64)]
        ok = km <= max_snap_km
        node = np.where(ok, node, -1)
        comp = np.where(ok, self._component[np.maximum(node, 0)], -1).astype(np.int64)
        for a in (node, km, comp):
            a.setflags(write=False)
        return SnapResult(node, km, comp, float(max_snap_km))
