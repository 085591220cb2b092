"""Snapping points to the national graph."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from routing import RoadGraphProvider, haversine_km

SNAP_FILE = Path(__file__).parents[2] / "routing" / "data" / "prefecture_seat_snap.csv"


def test_snap_is_the_nearest_node(national: RoadGraphProvider) -> None:
    """For random points, the snapped node is the great-circle nearest candidate node (brute
    force) and distance_km is that distance."""
    g = national.graph
    rng = np.random.default_rng(1)
    pts = np.column_stack((rng.uniform(22, 45, 40), rng.uniform(100, 122, 40)))
    snap = national.snap(pts)
    big = np.flatnonzero(np.bincount(g.component)[g.component] >= national.min_component_nodes)
    d = haversine_km(pts, np.column_stack((g.lat[big], g.lon[big])))
    nearest = big[d.argmin(axis=1)]
    near = d.min(axis=1) <= 50
    assert np.array_equal(snap.node[near], nearest[near])
    assert np.allclose(snap.distance_km, d.min(axis=1), atol=1e-6)
    assert (snap.node[~near] == -1).all()


def test_prefecture_seats_snap_like_the_reference(national: RoadGraphProvider) -> None:
    """Seats snap to the reference file's node (at least 330 of 338); the rest are near-ties
    under 0.35 km apart or Sansha, flagged for being 300 km out at sea."""
    with SNAP_FILE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    pts = np.array([[float(r["lat_wgs84"]), float(r["lng_wgs84"])] for r in rows])
    ref = np.array([int(r["snap_node"]) for r in rows])
    snap = national.snap(pts)
    assert (snap.node == ref).sum() >= 330
    g = national.graph
    for i in np.flatnonzero(snap.node != ref):
        if rows[i]["name"] == "三沙市":
            assert snap.node[i] == -1 and snap.distance_km[i] > 50
            continue
        ref_km = haversine_km(pts[i : i + 1], np.array([[g.lat[ref[i]], g.lon[ref[i]]]]))[0, 0]
        assert snap.distance_km[i] <= ref_km < snap.distance_km[i] + 0.35


def test_fragments_are_not_snap_targets(national: RoadGraphProvider) -> None:
    """Zhoushan's 72-node island fragment is skipped: its seat joins the mainland network,
    unless min_component_nodes allows fragments."""
    zhoushan = [(29.985, 122.207)]
    snap = national.snap(zhoushan)
    assert snap.component[0] == np.bincount(national.graph.component).argmax()
    every = RoadGraphProvider(national.graph, min_component_nodes=1).snap(zhoushan)
    assert np.bincount(national.graph.component)[every.component[0]] < 100


def test_bad_snap_settings(national: RoadGraphProvider) -> None:
    """Negative or infinite snap limits are refused with ValueError."""
    with pytest.raises(ValueError, match="max_snap_km"):
        RoadGraphProvider(national.graph, max_snap_km=-1)
    with pytest.raises(ValueError, match="max_snap_km"):
        RoadGraphProvider(national.graph, max_snap_km=float("inf"))


def test_empty_inputs(national: RoadGraphProvider) -> None:
    """Empty point sets give empty results, not errors."""
    empty = np.empty((0, 2))
    assert len(national.snap(empty)) == 0
    km, minutes = national.matrix(empty, [(36.6, 117.1)])
    assert km.shape == (0, 1) and minutes.shape == (0, 1)
    assert len(national.within(empty, [(36.6, 117.1)], 150)) == 0
