"""Kept station balls and earliest arrivals: the same answers as the searches they replace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fleet.demo import build_national_network
from routing import RoadGraph, RoadGraphProvider
from routing.balls import balls_path, graph_fingerprint, load_balls
from routing.provider import earliest_arrival
from routing.reference import random_breakdowns


@pytest.fixture(scope="module")
def stations() -> np.ndarray:
    network = build_national_network()
    return np.array([(s.location.lat, s.location.lon) for s in network.stations[::4]])


class MatrixOnly:
    """The protocol without the engine's own earliest_arrival: the generic matrix path."""

    def __init__(self, engine: RoadGraphProvider) -> None:
        self.engine = engine
        self.name = "matrix-only"

    def leg(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.leg(*args, **kwargs)

    def matrix(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.matrix(*args, **kwargs)

    def within(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.within(*args, **kwargs)


def test_kept_balls_give_identical_candidates(
    national: RoadGraphProvider, stations: np.ndarray, tmp_path: Path
) -> None:
    """With the stations' balls kept, within() from vans at those stations finds exactly the
    pairs, km and minutes of the bounded searches (bit for bit when both search forwards), and
    the same pairs when the searches would run backwards from fewer targets."""
    rng = np.random.default_rng(3)
    homes = stations[rng.integers(0, len(stations), size=600)]
    breakdowns = random_breakdowns(national, 400, rng)
    radius = np.where(rng.random(600) < 0.3, 90.0, 150.0)
    searched = RoadGraphProvider(national.graph)
    kept = RoadGraphProvider(national.graph, ball_cache_dir=tmp_path)
    snapped = national.snap(stations)
    assert kept.keep_balls(stations, 150.0) == len(np.unique(snapped.node[snapped.snapped]))
    a, b = searched.within(homes, breakdowns, radius), kept.within(homes, breakdowns, radius)
    assert len(a) > 2000
    for field in ("source", "target", "km", "minutes"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    few = breakdowns[:12]  # fewer targets than stations: the plain engine searches backwards
    a, b = searched.within(homes, few, radius), kept.within(homes, few, radius)
    assert len(a) > 20 and a.as_set() == b.as_set()
    np.testing.assert_allclose(a.km, b.km, rtol=1e-12)


def test_budgets_beyond_the_kept_radius_are_searched(
    national: RoadGraphProvider, stations: np.ndarray
) -> None:
    """A budget larger than the balls' radius is never answered from them (it would miss
    pairs): those sources are searched, and the result equals the searches alone."""
    rng = np.random.default_rng(5)
    breakdowns = random_breakdowns(national, 300, rng)
    kept = RoadGraphProvider(national.graph)
    kept.keep_balls(stations, 60.0)
    budgets = np.where(np.arange(len(stations)) % 2 == 0, 50.0, 140.0)
    a = RoadGraphProvider(national.graph).within(stations, breakdowns, budgets)
    b = kept.within(stations, breakdowns, budgets)
    assert (b.km[b.source % 2 == 1] > 60).any()
    assert a.as_set() == b.as_set()
    np.testing.assert_allclose(a.km, b.km, rtol=1e-12)


def test_balls_are_reused_from_disk_and_grow_with_the_radius(
    helsinki: RoadGraphProvider, tmp_path: Path
) -> None:
    """A second provider on the same graph loads the balls instead of computing them; a
    larger radius replaces them; on a directed graph within() still equals the searches."""
    g = helsinki.graph
    rng = np.random.default_rng(1)
    pick = rng.choice(g.n_nodes, size=30, replace=False)
    places = np.column_stack((g.lat[pick], g.lon[pick]))
    first = RoadGraphProvider(g, ball_cache_dir=tmp_path)
    assert first.keep_balls(places, 2.0) == 30
    assert first.keep_balls(places[:10], 1.5) == 0  # smaller radius: already kept
    assert balls_path(tmp_path, graph_fingerprint(g), 2.0).is_file()
    second = RoadGraphProvider(g, ball_cache_dir=tmp_path)
    assert second.keep_balls(places, 2.0) == 0
    assert second.keep_balls(places, 3.0) == 30
    assert second.kept_balls is not None and second.kept_balls.radius_km == 3.0
    targets = np.column_stack((g.lat, g.lon))[rng.choice(g.n_nodes, size=200)]
    a = RoadGraphProvider(g).within(places, targets, 2.5)
    b = second.within(places, targets, 2.5)
    assert g.directed and len(a) > 100
    assert a.as_set() == b.as_set()
    np.testing.assert_array_equal(a.km, b.km)


def test_stale_or_damaged_ball_cache_is_not_used(
    helsinki: RoadGraphProvider, tmp_path: Path
) -> None:
    """Balls written for another graph (even under this graph's file name) or a damaged file
    are ignored: the balls are computed again and the answers are this graph's."""
    g = helsinki.graph
    other = dataclasses.replace(g, edge_km=g.edge_km * 0.5)  # same nodes, shorter roads
    assert graph_fingerprint(other) != graph_fingerprint(g)
    places = np.column_stack((g.lat[:20], g.lon[:20]))
    RoadGraphProvider(other, ball_cache_dir=tmp_path).keep_balls(places, 2.0)
    stale = balls_path(tmp_path, graph_fingerprint(other), 2.0)
    mine = balls_path(tmp_path, graph_fingerprint(g), 2.0)
    stale.rename(mine)
    assert load_balls(tmp_path, g, 2.0) is None
    fresh = RoadGraphProvider(g, ball_cache_dir=tmp_path)
    assert fresh.keep_balls(places, 2.0) == 20
    targets = np.column_stack((g.lat, g.lon))[::7]
    assert fresh.within(places, targets, 2.0).as_set() == (
        RoadGraphProvider(g).within(places, targets, 2.0).as_set()
    )
    mine.write_bytes(b"not a ball cache")
    assert load_balls(tmp_path, g, 2.0) is None
    assert RoadGraphProvider(g, ball_cache_dir=tmp_path).keep_balls(places, 2.0) == 20
    assert load_balls(tmp_path, g, 2.0) is not None  # rewritten


@pytest.mark.parametrize("radius", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_ball_radius(line: RoadGraphProvider, radius: float) -> None:
    with pytest.raises(ValueError, match="radius_km must be a finite number > 0"):
        line.keep_balls([(0.0, 0.0)], radius)
    assert line.kept_balls is None


@pytest.mark.parametrize("n_targets", [5, 150])
def test_earliest_arrival_equals_matrix(national: RoadGraphProvider, n_targets: int) -> None:
    """The multi-source search names the same first-arriving source as start + matrix over
    all sources (bounded first pass for a few targets, unbounded for many), to 1e-12; an
    unsnapped target and one on another road component get -1 and inf."""
    rng = np.random.default_rng(11)
    sources = random_breakdowns(national, 120, rng)
    sources[:8] = sources[8:16]  # shared positions: ties go to the lowest index
    start = np.where(rng.random(120) < 0.5, 0.0, rng.uniform(0, 180, 120))
    targets = random_breakdowns(national, n_targets, rng)
    targets[0] = (20.0, 160.0)  # open Pacific: not snapped
    targets[1] = (19.2, 109.7)  # Hainan: no road to the mainland
    fast = earliest_arrival(national, sources, start, targets)
    slow = earliest_arrival(MatrixOnly(national), sources, start, targets)
    assert fast.source[:2].tolist() == [-1, -1] and np.isinf(fast.minutes[:2]).all()
    np.testing.assert_array_equal(fast.source, slow.source)
    np.testing.assert_allclose(fast.minutes, slow.minutes, rtol=1e-12)


def test_earliest_arrival_bad_input(line: RoadGraphProvider) -> None:
    with pytest.raises(ValueError, match="start_minutes has 1 entries, sources has 2"):
        earliest_arrival(line, [(0.0, 0.0), (0.0, 0.01)], [0.0], [(0.0, 0.0)])
    with pytest.raises(ValueError, match=r"start_minutes must be >= 0, got -5\.0"):
        earliest_arrival(line, [(0.0, 0.0)], [-5.0], [(0.0, 0.0)])


def test_road_graph_fingerprint_follows_the_data() -> None:
    """Same arrays, same fingerprint (the cache survives a reload); any change, another."""
    g = RoadGraph(
        lat=np.array([0.0, 0.0]),
        lon=np.array([0.0, 0.01]),
        edge_u=np.array([0], dtype=np.int32),
        edge_v=np.array([1], dtype=np.int32),
        edge_km=np.array([1.2]),
    )
    same = dataclasses.replace(g, lat=g.lat.copy())
    assert graph_fingerprint(g) == graph_fingerprint(same)
    assert graph_fingerprint(g) != graph_fingerprint(dataclasses.replace(g, directed=True))
    assert graph_fingerprint(g) != graph_fingerprint(
        dataclasses.replace(g, edge_km=np.array([1.3]))
    )
