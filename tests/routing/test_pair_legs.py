"""Timing given pairs (``RoadGraphProvider.pair_legs``): the matrix's numbers, bounded searches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fleet.demo import build_national_network
from routing import RoadGraphProvider
from routing.provider import PairLegProvider
from routing.reference import random_breakdowns

HAIKOU, OPEN_SEA = (20.04, 110.34), (30.0, 135.0)
YANTAI, DALIAN = (37.46, 121.45), (38.91, 121.60)
"""~160 km apart across the Bohai strait, ~1,400 km by road around the gulf."""


class CountingRounds(RoadGraphProvider):
    """The road engine, recording the limits of each round of pair searches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds: list[np.ndarray] = []

    def _bounded_pairs(self, u: np.ndarray, v: np.ndarray, limit: np.ndarray) -> np.ndarray:
        self.rounds.append(limit.copy())
        return super()._bounded_pairs(u, v, limit)


@pytest.fixture(scope="module")
def near_stations() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stations of the national network, a random station per van and the van's point up to
    60 km from it (vans finishing a job)."""
    rng = np.random.default_rng(11)
    network = build_national_network()
    stations = np.array([(s.location.lat, s.location.lon) for s in network.stations])
    home = rng.integers(0, len(stations), size=120)
    base = stations[home]
    r = 60.0 * np.sqrt(rng.random(len(base)))
    theta = rng.random(len(base)) * 2 * np.pi
    lat = base[:, 0] + r * np.cos(theta) / 111.2
    lon = base[:, 1] + r * np.sin(theta) / (111.2 * np.cos(np.radians(base[:, 0])))
    return stations, home, np.column_stack((lat, lon))


def test_pair_legs_with_kept_balls_are_the_matrix_in_one_round(
    national: RoadGraphProvider, near_stations: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """With the stations' balls kept, the pairs of a van and a breakdown that are both within
    150 road km of the van's station get a bound through it, one search per van settles them
    all (one round), and the km are the full matrix's bit for bit, the minutes to 1e-12."""
    stations, home, vans = near_stations
    engine = CountingRounds(national.graph, ball_cache_dir=national.ball_cache_dir)
    engine.keep_balls(stations, 150.0)
    breakdowns = random_breakdowns(national, 400, np.random.default_rng(5))
    station_km, _ = national.matrix(stations[home], np.vstack([breakdowns, vans]))
    to_van = station_km[np.arange(len(vans)), len(breakdowns) + np.arange(len(vans))]
    ps, pt = np.nonzero((station_km[:, : len(breakdowns)] <= 150.0) & (to_van[:, None] <= 150.0))
    assert len(ps) > 300
    km, minutes = engine.pair_legs(vans, breakdowns, ps, pt)
    want_km, want_min = national.matrix(vans, breakdowns)
    assert np.array_equal(km, want_km[ps, pt])
    assert minutes == pytest.approx(want_min[ps, pt], rel=1e-12)
    assert np.isfinite(km).all()
    assert len(engine.rounds) == 1
    assert np.isfinite(engine.rounds[0]).all()


def test_pair_legs_without_balls_grow_their_budget(
    national: RoadGraphProvider, near_stations: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Without kept balls the searches start from a straight-line guess and grow (Yantai to
    Dalian is ~9x its straight line by road): the same numbers as the matrix, unreachable
    pairs (Hainan, a point at sea) inf."""
    _, _, vans = near_stations
    engine = CountingRounds(national.graph)
    rng = np.random.default_rng(8)
    targets = np.vstack([random_breakdowns(national, 60, rng), [DALIAN, HAIKOU, OPEN_SEA]])
    src = np.vstack([vans[:40], [YANTAI, OPEN_SEA]])
    ps, pt = np.meshgrid(np.arange(len(src)), np.arange(len(targets)), indexing="ij")
    ps, pt = ps.reshape(-1), pt.reshape(-1)
    km, minutes = engine.pair_legs(src, targets, ps, pt, "loaded_truck")
    want_km, want_min = national.matrix(src, targets, "loaded_truck")
    assert np.array_equal(km, want_km[ps, pt])
    assert minutes == pytest.approx(want_min[ps, pt], rel=1e-12)
    yantai_haikou = km[(ps == len(src) - 2) & (pt == len(targets) - 2)]
    assert np.isinf(yantai_haikou)  # Hainan: another road component
    assert np.isinf(km[(pt == len(targets) - 1) | (ps == len(src) - 1)]).all()  # at sea
    engine.rounds.clear()
    (alone,), _ = engine.pair_legs([YANTAI], [DALIAN], [0], [0])
    assert alone == want_km[len(src) - 2, len(targets) - 3] > 1000.0
    assert len(engine.rounds) == 2  # the straight-line guess missed, 4x that found it


def test_pair_legs_on_a_directed_graph_with_speeds_ignore_the_balls(
    helsinki: RoadGraphProvider,
) -> None:
    """On a directed graph a ball (searched from its centre) bounds nothing towards it, so
    the pairs are searched with growing budgets: km the matrix's exactly (one-way streets
    respected), minutes the fastest route's as in the matrix."""
    engine = CountingRounds(helsinki.graph)
    g = helsinki.graph
    rng = np.random.default_rng(2)
    nodes = rng.choice(g.n_nodes, size=40, replace=False)
    pts = np.column_stack((g.lat[nodes], g.lon[nodes]))
    engine.keep_balls(pts[:10], 5.0)
    ps, pt = rng.integers(0, 40, size=300), rng.integers(0, 40, size=300)
    km, minutes = engine.pair_legs(pts, pts, ps, pt)
    want_km, want_min = helsinki.matrix(pts, pts)
    assert np.array_equal(km, want_km[ps, pt])
    assert minutes == pytest.approx(want_min[ps, pt], rel=1e-12)
    assert not np.array_equal(want_km, want_km.T)  # the test graph has one-way streets


def test_pair_legs_with_few_targets_search_backwards_from_them(
    national: RoadGraphProvider,
    helsinki: RoadGraphProvider,
    near_stations: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Many sources and few targets (a small batch against many vans away from home): one
    search backwards from each target instead of one per source, on the transposed graph for
    a directed one, with the matrix's km (which searches that way too) bit for bit."""
    _, _, vans = near_stations
    engine = CountingRounds(national.graph)
    targets = vans[:3] + 0.2
    ps, pt = np.repeat(np.arange(len(vans)), 3), np.tile(np.arange(3), len(vans))
    km, minutes = engine.pair_legs(vans, targets, ps, pt)
    want_km, want_min = national.matrix(vans, targets)
    assert np.array_equal(km, want_km[ps, pt])
    assert minutes == pytest.approx(want_min[ps, pt], rel=1e-12)
    g = helsinki.graph
    nodes = np.random.default_rng(4).choice(g.n_nodes, size=43, replace=False)
    pts = np.column_stack((g.lat[nodes], g.lon[nodes]))
    src, dst = pts[:40], pts[40:]
    ps, pt = np.repeat(np.arange(40), 3), np.tile(np.arange(3), 40)
    km, _ = helsinki.pair_legs(src, dst, ps, pt)
    want_km, _ = helsinki.matrix(src, dst)
    assert np.array_equal(km, want_km[ps, pt])
    back_km, _ = helsinki.matrix(dst, src)
    assert not np.array_equal(want_km, back_km.T)  # one-way streets: direction matters


def test_pair_legs_reject_bad_pairs(national: RoadGraphProvider) -> None:
    """Mismatched or out-of-range pair indices raise ValueError naming the argument; no
    pairs give empty arrays."""
    assert isinstance(national, PairLegProvider)
    pts = np.array([(36.65, 117.12), (36.07, 120.38)])
    with pytest.raises(ValueError, match="pair_target has 1 entries, pair_source has 2"):
        national.pair_legs(pts, pts, [0, 1], [0])
    with pytest.raises(ValueError, match=r"pair_source index out of range \[0, 2\)"):
        national.pair_legs(pts, pts, [2], [0])
    with pytest.raises(ValueError, match=r"pair_target index out of range \[0, 2\)"):
        national.pair_legs(pts, pts, [0], [-1])
    km, minutes = national.pair_legs(pts, pts, [], [])
    assert km.shape == minutes.shape == (0,)
    (one,), _ = national.pair_legs(pts, pts, [0], [1])
    assert one == pytest.approx(national.leg([tuple(pts[0])], [tuple(pts[1])]).km, rel=1e-12)
