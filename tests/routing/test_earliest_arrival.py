"""The road engine's earliest arrivals: backward searches, the forward search and the generic
matrix path name the same sources with the same minutes, whichever way the engine picks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import routing.road
from routing import RoadGraph, RoadGraphProvider
from routing.provider import Arrivals, TravelProfile, earliest_arrival, haversine_km
from routing.reference import random_breakdowns
from tests.routing.test_balls import MatrixOnly

ONE_KM_A_MINUTE = TravelProfile("one-km-a-minute", speed_kmh=60.0)
"""Network minutes = road km, which keeps the hand-made graph's numbers readable."""
DEG_PER_KM = 1 / 111.195


class CountingRoad(RoadGraphProvider):
    """The road engine, noting the limit of each forward search it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forward_limits: list[float] = []

    def _arrivals_forwards(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        self.forward_limits.append(float(kwargs.get("limit", np.inf)))
        return super()._arrivals_forwards(*args, **kwargs)


def each_way(
    engine: RoadGraphProvider,
    monkeypatch: pytest.MonkeyPatch,
    sources: np.ndarray,
    start: np.ndarray,
    targets: np.ndarray,
    profile: TravelProfile | str = "rescue_van",
) -> dict[str, Arrivals]:
    """The answer as the engine chooses, forced backwards (bounded searches whatever their
    work; unsettled targets still go forwards), forced forwards, and from the matrix."""
    out = {"chosen": earliest_arrival(engine, sources, start, targets, profile)}
    with monkeypatch.context() as m:
        m.setattr(routing.road, "EARLIEST_ARRIVAL_WORK_SHARE", np.inf)
        out["backwards"] = earliest_arrival(engine, sources, start, targets, profile)
    with monkeypatch.context() as m:
        m.setattr(routing.road, "EARLIEST_ARRIVAL_PER_TARGET_MAX", 0)
        out["forwards"] = earliest_arrival(engine, sources, start, targets, profile)
    out["matrix"] = earliest_arrival(MatrixOnly(engine), sources, start, targets, profile)
    return out


def assert_same(answers: dict[str, Arrivals]) -> None:
    ref = answers["matrix"]
    for way, got in answers.items():
        np.testing.assert_array_equal(got.source, ref.source, err_msg=way)
        np.testing.assert_allclose(got.minutes, ref.minutes, rtol=1e-12, err_msg=way)


@pytest.fixture(scope="module")
def pool(national: RoadGraphProvider) -> np.ndarray:
    return random_breakdowns(national, 20000, np.random.default_rng(7))


def test_far_sources_take_the_forward_search(
    national: RoadGraphProvider, pool: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 targets in the west whose 300 sources are all more than 800 km away: bounded backward
    searches would each cover much of the graph, so the engine runs the one forward search
    (unbounded); every way gives the same answer, for a target no road reaches too. Twins of
    a winning source (same place, same start) at a lower and a higher index: the lower one
    takes all its targets, every way."""
    targets = pool[pool[:, 1] < 90.0][:10]
    far = pool[haversine_km(pool, targets).min(axis=1) > 800.0]
    rng = np.random.default_rng(2)
    sources = far[rng.choice(len(far), 300, replace=False)]
    start = np.where(rng.random(300) < 0.5, 0.0, rng.uniform(0, 120, 300))
    targets[-1] = (19.2, 109.7)  # Hainan: no road from the mainland sources
    engine = CountingRoad(national.graph)
    answers = each_way(engine, monkeypatch, sources, start, targets)
    assert engine.forward_limits[0] == np.inf  # the chosen way: no bounded search first
    assert_same(answers)
    got = answers["chosen"]
    assert got.source[-1] == -1 and np.isinf(got.minutes[-1])
    assert (got.source[:-1] >= 0).all() and np.isfinite(got.minutes[:-1]).all()

    w = int(got.source[0])
    low = next(i for i in range(w) if i not in got.source)  # a lower index that won nothing
    twins, twin_start = np.vstack((sources, sources[w])), np.r_[start, start[w]]
    twins[low], twin_start[low] = sources[w], start[w]
    answers = each_way(engine, monkeypatch, twins, twin_start, targets)
    assert_same(answers)
    expected = np.where(got.source == w, low, got.source)
    np.testing.assert_array_equal(answers["chosen"].source, expected)
    np.testing.assert_allclose(answers["chosen"].minutes, got.minutes, rtol=1e-12)


def test_near_sources_search_backwards(
    national: RoadGraphProvider, pool: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 targets among 500 sources spread over the country: the bounded backward searches
    settle every target and no forward search runs; the same answer every way."""
    rng = np.random.default_rng(4)
    sources = pool[:500].copy()
    sources[:30] = sources[30:60]
    start = np.where(rng.random(500) < 0.5, 0.0, rng.uniform(0, 120, 500))
    targets = pool[500:510]
    engine = CountingRoad(national.graph)
    answers = each_way(engine, monkeypatch, sources, start, targets)
    assert engine.forward_limits == [np.inf]  # only the forced one
    assert_same(answers)
    assert (answers["chosen"].source >= 0).all()


def detour_graph(detour_km: float) -> RoadGraph:
    """Target node 0 at the origin; node 1 two km east, but by road only through node 3 (12 km
    north), ``detour_km`` away; node 2 five km west, 5 km by road; an island 4 - 5."""
    north = 12.0 * DEG_PER_KM
    lat = np.array([0.0, 0.0, 0.0, north, 10.0, 10.0])
    lon = np.array([0.0, 2 * DEG_PER_KM, -5 * DEG_PER_KM, DEG_PER_KM, 0.0, DEG_PER_KM])
    return RoadGraph(
        lat=lat,
        lon=lon,
        edge_u=np.array([0, 3, 0, 4], dtype=np.int32),
        edge_v=np.array([3, 1, 2, 5], dtype=np.int32),
        edge_km=np.array([detour_km / 2, detour_km / 2, 5.0, 1.0]),
        name="detour",
    )


@pytest.mark.parametrize(
    ("detour_km", "late", "winner", "minutes"),
    [
        (30.0, 0.0, 1, 30.0),  # the detour (30 km) beats the near late source (30 + 5)
        (30.0, 3.0, 2, 30.0),  # the same place, a later start at the lower index: the other
        (100.0, 0.0, 0, 35.0),  # a long detour: the near late source wins after all
    ],
)
def test_unsettled_targets_go_to_the_bounded_forward_search(
    monkeypatch: pytest.MonkeyPatch, detour_km: float, late: float, winner: int, minutes: float
) -> None:
    """The straight-line guess puts the source 2 km east near (bound 2 x 2 + 20 = 24 km) but
    its road winds: the bounded search reaches only the source 5 km west, which sets off
    after 30 min, and cannot rule out the one beyond. The target goes to the forward search
    bounded by that 35-minute arrival, which finds the true first one (ties at one place to
    the lowest index) for every way."""
    engine = CountingRoad(detour_graph(detour_km), min_component_nodes=1)
    g = engine.graph
    sources = np.array([(g.lat[2], g.lon[2]), (g.lat[1], g.lon[1]), (g.lat[1], g.lon[1])])
    start = np.array([30.0, late, 0.0])
    monkeypatch.setattr(routing.road, "BACKWARD_GROWTH", (1.0,))  # no larger backward round
    answers = each_way(engine, monkeypatch, sources, start, [(0.0, 0.0)], ONE_KM_A_MINUTE)
    assert engine.forward_limits[0] == pytest.approx(35.0, rel=1e-6)
    assert_same(answers)
    got = answers["chosen"]
    assert got.source.tolist() == [winner]
    assert got.minutes[0] == pytest.approx(minutes, rel=1e-12)


def test_cheap_larger_backward_rounds_settle_what_the_first_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the rounds as shipped, the detour target the first bounded search left unsettled
    is settled by the x4 round (96 km > the 30 km detour; predicted from the few nodes the
    first settled, cheap) with no forward search: the only one is the forced one."""
    engine = CountingRoad(detour_graph(30.0), min_component_nodes=1)
    g = engine.graph
    sources = np.array([(g.lat[2], g.lon[2]), (g.lat[1], g.lon[1])])
    got = earliest_arrival(engine, sources, np.array([30.0, 0.0]), [(0.0, 0.0)], ONE_KM_A_MINUTE)
    assert engine.forward_limits == []
    assert got.source.tolist() == [1] and got.minutes[0] == pytest.approx(30.0, rel=1e-12)
    answers = each_way(
        engine, monkeypatch, sources, np.array([30.0, 0.0]), [(0.0, 0.0)], ONE_KM_A_MINUTE
    )
    assert_same(answers)


def test_a_target_no_bounded_search_settles_goes_forwards_unbounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the bounded search finds no source at all (the near one is on an island), the
    forward search for that target runs without a limit and finds the far one."""
    deg = DEG_PER_KM
    lat = np.array([0.0, 0.0, 0.0, 0.01])
    lon = np.array([0.0, 300 * deg, 3 * deg, 3 * deg])
    g = RoadGraph(
        lat=lat,
        lon=lon,
        edge_u=np.array([0, 2], dtype=np.int32),
        edge_v=np.array([1, 3], dtype=np.int32),
        edge_km=np.array([300.0, 1.2]),
        name="island",
    )
    engine = CountingRoad(g, min_component_nodes=1)
    sources = np.array([(lat[2], lon[2]), (lat[1], lon[1])])
    monkeypatch.setattr(routing.road, "BACKWARD_GROWTH", (1.0,))  # no larger backward round
    answers = each_way(engine, monkeypatch, sources, np.zeros(2), [(0.0, 0.0)], ONE_KM_A_MINUTE)
    assert engine.forward_limits[0] == np.inf
    assert_same(answers)
    assert answers["chosen"].source.tolist() == [1]
    assert answers["chosen"].minutes[0] == pytest.approx(300.0, rel=1e-12)


@pytest.mark.parametrize("n_sources", [3, 200])
def test_directed_graph_with_edge_speeds(
    helsinki: RoadGraphProvider, monkeypatch: pytest.MonkeyPatch, n_sources: int
) -> None:
    """On an imported graph (one-way streets, per-edge speeds: the searches run in minutes)
    every way gives the same answer, with few sources (long searches) and many."""
    g = helsinki.graph
    rng = np.random.default_rng(n_sources)
    nodes = np.column_stack((g.lat, g.lon))
    sources = nodes[rng.choice(g.n_nodes, n_sources)] + rng.normal(0, 2e-4, (n_sources, 2))
    start = np.where(rng.random(n_sources) < 0.5, 0.0, rng.uniform(0, 20, n_sources))
    targets = nodes[rng.choice(g.n_nodes, 12)]
    answers = each_way(RoadGraphProvider(g), monkeypatch, sources, start, targets)
    assert g.directed and helsinki.has_edge_speeds
    assert_same(answers)
    assert (answers["chosen"].source >= 0).sum() >= 10
