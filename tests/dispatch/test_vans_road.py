"""Van candidates on the national road graph: the bounded searches equal a brute-force matrix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dispatch.synthetic import synthetic_requests, synthetic_vans
from dispatch.vans import VAN_PROFILE, VanState, build_van_matching_problem, match_vans
from fleet.demo import build_national_network
from fleet.model import GeoPoint
from routing import RoadGraphProvider, load_road_provider


@pytest.fixture(scope="module")
def road(road_graph_cache_dir: Path) -> RoadGraphProvider:
    return load_road_provider(cache_dir=road_graph_cache_dir)


@pytest.fixture(scope="module")
def batch() -> tuple[list, list[VanState]]:
    rng = np.random.default_rng(7)
    vans = synthetic_vans(build_national_network(), 1276, rng)
    pick = rng.choice(len(vans), size=300, replace=False)
    return synthetic_requests(60, rng), [vans[i] for i in sorted(pick)]


def _brute_force(
    road: RoadGraphProvider, requests: list, vans: list[VanState]
) -> dict[tuple[int, int], tuple[float, float, float]]:
    """(request, van) -> (home km, travel km, travel minutes) from full matrices."""
    locs = np.array([(r.location.lat, r.location.lon) for r in requests])
    homes = np.array([(v.home.lat, v.home.lon) for v in vans])
    pos = np.array([(v.expected_position.lat, v.expected_position.lon) for v in vans])
    home_km, _ = road.matrix(homes, locs, VAN_PROFILE)
    pos_km, pos_min = road.matrix(pos, locs, VAN_PROFILE)
    radius = np.array([v.van.service_radius_km for v in vans])
    out = {}
    for j, i in zip(*np.nonzero(home_km <= radius[:, None]), strict=True):
        if np.isfinite(pos_km[j, i]):
            out[(int(i), int(j))] = (home_km[j, i], pos_km[j, i], pos_min[j, i])
    return out


def test_road_candidates_equal_brute_force_matrix(
    road: RoadGraphProvider, batch: tuple[list, list[VanState]]
) -> None:
    """Every (request, van) with home road km <= the radius is an arc, no other pair is, and the
    travel km/minutes from the van's position (away vans included) are the matrix's."""
    requests, vans = batch
    p = build_van_matching_problem(requests, vans, road)
    expected = _brute_force(road, requests, vans)
    away = {j for j, v in enumerate(vans) if v.position is not None}
    got = {
        (int(i), int(j)): (hk, tk, tm)
        for i, j, hk, tk, tm in zip(
            p.arc_request,
            p.arc_van,
            p.arc_home_km,
            p.arc_travel_km,
            p.arc_travel_minutes,
            strict=True,
        )
    }
    assert sum(j in away for _, j in expected) >= 20  # the away-van searches are exercised
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, rel=1e-12), key


def test_pinned_away_van_beyond_radius_gets_exact_travel(
    road: RoadGraphProvider, batch: tuple[list, list[VanState]]
) -> None:
    """A van pinned to a request beyond its radius keeps that arc, timed exactly from where it
    will be (the triangle budget uses the unclipped home leg), and keeps the request."""
    requests, vans = batch
    locs = np.array([(r.location.lat, r.location.lon) for r in requests])
    v0 = next(v for v in vans if v.position is not None)
    home_km, _ = road.matrix([(v0.home.lat, v0.home.lon)], locs, VAN_PROFILE)
    far = int(np.argmax(np.where(np.isfinite(home_km[0]), home_km[0], -1)))
    assert home_km[0, far] > 2 * v0.van.service_radius_km
    pinned = dataclasses.replace(v0, pinned_request_id=requests[far].id)
    p = build_van_matching_problem([requests[far]], [pinned], road)
    assert p.num_arcs == 1
    km, minutes = road.matrix(
        [(v0.expected_position.lat, v0.expected_position.lon)], locs[far : far + 1], VAN_PROFILE
    )
    assert p.arc_travel_km[0] == pytest.approx(km[0, 0], rel=1e-12)
    assert p.arc_travel_minutes[0] == pytest.approx(minutes[0, 0], rel=1e-12)
    (a,) = match_vans(p).assignments
    assert a.pinned and a.van_id == v0.id


class CountingRoad(RoadGraphProvider):
    """The road engine, counting its multi-source searches for earliest arrivals."""

    calls = 0

    def earliest_arrival(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().earliest_arrival(*args, **kwargs)


def test_escalation_is_the_earliest_spare_van_by_road(
    road: RoadGraphProvider, batch: tuple[list, list[VanState]]
) -> None:
    """In a storm (60 requests, 25 vans) every unassigned request is told the spare capable
    van that arrives first by road (free-in + minutes from where it will be), over all spare
    vans as a brute-force matrix finds it; the explanation asks one search per set of capable
    vans (<= 4), not one per request."""
    requests, vans = batch
    few = vans[::12]
    counting = CountingRoad(road.graph)
    m = match_vans(build_van_matching_problem(requests, few, counting), provider=counting)
    assert len(m.unassigned) >= 30 and 1 <= counting.calls <= 4
    used = {a.van_id for a in m.assignments}
    locs = np.array([(r.location.lat, r.location.lon) for r in requests])
    pos = np.array([(v.expected_position.lat, v.expected_position.lon) for v in few])
    _, minutes = road.matrix(pos, locs, VAN_PROFILE)
    eta = np.array([v.free_in_minutes for v in few])[:, None] + minutes
    index = {r.id: i for i, r in enumerate(requests)}
    named = 0
    for u in m.unassigned:
        r = requests[index[u.request_id]]
        ok = [
            j
            for j, v in enumerate(few)
            if v.on_shift
            and v.id not in used
            and v.van.capability.can_handle(r.vehicle_class, needs_tow=r.needs_tow)
            and np.isfinite(eta[j, index[u.request_id]])
        ]
        if not ok:
            assert u.nearest_van_id is None and u.nearest_eta_minutes is None
            continue
        best = min(ok, key=lambda j: (eta[j, index[u.request_id]], j))
        assert u.nearest_van_id == few[best].id, u
        assert u.nearest_eta_minutes == pytest.approx(eta[best, index[u.request_id]], rel=1e-12)
        named += 1
    assert named >= 20


class WithinOnly:
    """The road engine without ``pair_legs``: away vans are timed by the plain ``within``
    searches with growing budgets."""

    def __init__(self, engine: RoadGraphProvider) -> None:
        self.engine = engine
        self.name = engine.name

    def leg(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.leg(*args, **kwargs)

    def matrix(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.matrix(*args, **kwargs)

    def within(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.within(*args, **kwargs)

    def keep_balls(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.engine.keep_balls(*args, **kwargs)


def test_away_vans_by_pair_legs_equal_the_plain_search(
    road: RoadGraphProvider, batch: tuple[list, list[VanState]]
) -> None:
    """Vans away from home at random (up to 80 km from their station, one of them pinned to a
    request beyond its radius) get the same arcs with the same km and minutes from the road
    engine's pair searches as from the plain within() searches: bit for bit when both search
    forwards from the vans, to float rounding when one searches backwards."""
    requests, vans = batch
    rng = np.random.default_rng(21)
    away = []
    for v in vans:
        r, theta = 80.0 * np.sqrt(rng.random()), rng.random() * 2 * np.pi
        lat = v.home.lat + r * np.cos(theta) / 111.2
        lon = v.home.lon + r * np.sin(theta) / (111.2 * np.cos(np.radians(v.home.lat)))
        away.append(dataclasses.replace(v, position=GeoPoint(lat, lon)))
    locs = np.array([(q.location.lat, q.location.lon) for q in requests])
    home_km, _ = road.matrix([(away[0].home.lat, away[0].home.lon)], locs, VAN_PROFILE)
    far = int(np.argmax(np.where(np.isfinite(home_km[0]), home_km[0], -1)))
    away[0] = dataclasses.replace(away[0], pinned_request_id=requests[far].id)
    fast = build_van_matching_problem(requests, away, road)
    plain = build_van_matching_problem(requests, away, WithinOnly(road))
    assert fast.num_arcs > 200
    for field in ("arc_request", "arc_van", "arc_home_km"):
        assert np.array_equal(getattr(fast, field), getattr(plain, field)), field
    # 60 breakdowns against 300 positions: pair_legs searches backwards from the breakdowns,
    # within() forwards (its targets include the homes), so the sums differ in their last bits
    assert fast.arc_travel_km == pytest.approx(plain.arc_travel_km, rel=1e-12, abs=0)
    assert fast.arc_travel_minutes == pytest.approx(plain.arc_travel_minutes, rel=1e-12, abs=0)
    # the 6 vans with the most arcs reach more breakdowns than 6: both search forwards
    busiest = [away[j] for j in np.argsort(-np.bincount(fast.arc_van), kind="stable")[:6]]
    forwards = build_van_matching_problem(requests, busiest, road)
    assert len(np.unique(forwards.arc_request)) > 6
    plain = build_van_matching_problem(requests, busiest, WithinOnly(road))
    for field in ("arc_request", "arc_van", "arc_travel_km", "arc_travel_minutes"):
        assert np.array_equal(getattr(forwards, field), getattr(plain, field)), field
    assert far in fast.arc_request[fast.arc_van == 0]
