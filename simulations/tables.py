"""Demand points and the travel tables a run indexes instead of routing per event.

Breakdowns happen at a finite set of demand points (county seats, prefecture seats, the
stations themselves, points along the road graph (:mod:`simulations.demand_roads`), or explicit
points), weighted by the population proxy. Once per scenario
(network stations x demand points x the partners' depots) the provider computes:

- station -> demand point pairs within the largest service radius of the station's vans
  (``provider.within``), with km and minutes for the ``rescue_van`` and ``towing`` profiles;
- truck depot -> demand point (``empty_truck``), demand point -> cargo destination
  (``loaded_truck``) and destination -> depot (``empty_truck``) dense matrices.

Road km are symmetric on the national graph, so a van's drive back uses the outbound minutes
and a truck's drive back from the destination the depot -> destination minutes (on an imported
OSM graph with one-way streets this is an approximation). Only depots of partners serving a
demand point's province are tabled (the others can never be booked).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleet.geography import county_seats, prefecture_population, prefecture_seats
from routing.provider import GreatCircleProvider, TravelTimeProvider
from routing.road import RoadGraphSource
from simulations.demand_roads import road_demand_rows
from simulations.scenario import Scenario, ScenarioError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DemandPoints:
    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray
    """Normalised to sum 1."""
    province: tuple[str, ...]
    name: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.lat)

    @property
    def latlon(self) -> np.ndarray:
        return np.column_stack([self.lat, self.lon])


def demand_points(
    scenario: Scenario,
    *,
    provider: TravelTimeProvider | None = None,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> DemandPoints:
    """The scenario's demand points with population weights (see :class:`DemandSpec`); road
    points (``points = "roads"``) come from ``provider``'s road graph, else ``road_graph``."""
    spec = scenario.demand
    pop = prefecture_population()
    median = float(np.median(list(pop.values())))
    rows: list[tuple[float, float, float, str, str]] = []
    if spec.points == "roads":
        rows = _road_rows(scenario, provider, road_graph)
    elif spec.points == "explicit":
        rows = [(p.lat, p.lon, p.weight, p.province_adcode, p.name) for p in spec.explicit_points]
    elif spec.points == "prefecture_seats":
        for u in prefecture_seats():
            assert u.lat is not None
            assert u.lon is not None
            rows.append((u.lat, u.lon, pop.get(u.adcode, median), u.province_adcode, u.name))
    elif spec.points == "county_seats":
        rows = county_seat_rows()
    else:  # stations: each station's seat, weighted by its prefecture's population share
        per_pref: dict[str, int] = defaultdict(int)
        for s in scenario.network.stations:
            per_pref[s.prefecture_adcode] += 1
        for s in scenario.network.stations:
            w = pop.get(s.prefecture_adcode, median) / per_pref[s.prefecture_adcode]
            rows.append((s.location.lat, s.location.lon, w, s.province_adcode, s.name))
    if spec.provinces:
        rows = [r for r in rows if r[3] in spec.provinces]
    if not rows or sum(r[2] for r in rows) <= 0:
        raise ScenarioError(f"{scenario.source}: demand: no demand points with positive weight")
    weights = np.array([r[2] for r in rows], dtype=float)
    return DemandPoints(
        lat=np.array([r[0] for r in rows], dtype=float),
        lon=np.array([r[1] for r in rows], dtype=float),
        weight=weights / weights.sum(),
        province=tuple(r[3] for r in rows),
        name=tuple(r[4] for r in rows),
    )


def county_seat_rows() -> list[tuple[float, float, float, str, str]]:
    """County seats, each with its prefecture's population proxy shared among its counties."""
    pop = prefecture_population()
    median = float(np.median(list(pop.values())))
    counties = county_seats()
    per_pref: dict[str, int] = defaultdict(int)
    for c in counties:
        per_pref[c.prefecture_adcode] += 1
    rows = []
    for c in counties:
        assert c.lat is not None
        assert c.lon is not None
        w = pop.get(c.prefecture_adcode, median) / per_pref[c.prefecture_adcode]
        rows.append((c.lat, c.lon, w, c.province_adcode, c.name))
    return rows


def _road_rows(
    scenario: Scenario, provider: TravelTimeProvider | None, road_graph: RoadGraphSource
) -> list[tuple[float, float, float, str, str]]:
    """``points = "roads"``: road points (:mod:`simulations.demand_roads`) carrying
    ``1 - urban_share`` of the weight, county seats the rest."""
    spec = scenario.demand
    graph = getattr(provider, "graph", None)
    if graph is None:
        try:
            graph = road_graph.load().graph
        except (ImportError, ValueError, OSError) as exc:
            raise ScenarioError(
                f'{scenario.source}: demand.points = "roads" needs the road graph: {exc}'
            ) from None
    roads = road_demand_rows(
        graph.lat, graph.lon, graph.edge_u, graph.edge_v, graph.edge_km,
        spacing_km=spec.road_spacing_km,
    )  # fmt: skip
    seats = county_seat_rows()
    if spec.provinces:  # before the shares are applied, so they hold within the region
        roads = [r for r in roads if r[3] in spec.provinces]
        seats = [r for r in seats if r[3] in spec.provinces]
    out = []
    for share, part in ((1.0 - spec.urban_share, roads), (spec.urban_share, seats)):
        total = sum(r[2] for r in part)
        if share > 0 and total > 0:
            out += [(a, o, w * share / total, prov, name) for a, o, w, prov, name in part]
    return out


@dataclass(frozen=True, eq=False)
class TravelTables:
    """Everything a run needs to know about distances, computed once per scenario."""

    provider_name: str
    points: DemandPoints
    station_ids: tuple[str, ...]
    # sparse station -> demand point arcs, sorted by demand point (CSR over points)
    arc_ptr: np.ndarray  # (n_points + 1,)
    arc_station: np.ndarray
    arc_km: np.ndarray
    arc_minutes: np.ndarray  # rescue_van profile
    arc_tow_minutes: np.ndarray  # towing profile
    # trucks
    depot_latlon: np.ndarray  # unique truck depots (n_depots, 2)
    dest_latlon: np.ndarray  # cargo destinations (n_dest, 2)
    dest_weight: np.ndarray  # normalised
    empty_km: np.ndarray  # (n_depots, n_points)
    empty_minutes: np.ndarray
    loaded_km: np.ndarray  # (n_points, n_dest)
    loaded_minutes: np.ndarray
    back_km: np.ndarray  # (n_dest, n_depots)
    back_minutes: np.ndarray
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def make_provider(
    scenario: Scenario, road_graph: RoadGraphSource = RoadGraphSource()
) -> TravelTimeProvider:
    """The scenario's travel engine: the road graph ``road_graph`` (``road``, or ``auto`` when
    it loads) or great-circle x circuity."""
    kind = scenario.travel.provider
    if kind == "great-circle":
        return GreatCircleProvider(scenario.travel.circuity)
    try:
        return road_graph.load()
    except (ImportError, ValueError, OSError) as exc:
        if kind == "road":
            raise ScenarioError(f'{scenario.source}: travel.provider = "road": {exc}') from None
        log.warning("road graph unavailable (%s); using great-circle distances", exc)
        return GreatCircleProvider(scenario.travel.circuity)


_CACHE: dict[str, TravelTables] = {}


def build_tables(
    scenario: Scenario,
    provider: TravelTimeProvider | None = None,
    *,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> TravelTables:
    """Compute (or reuse, per process) the travel tables of the scenario's geometry, with
    ``provider`` or else the scenario's engine on ``road_graph``."""
    provider = provider or make_provider(scenario, road_graph)
    points = demand_points(scenario, provider=provider, road_graph=road_graph)
    net = scenario.network
    st_ll = np.array([(s.location.lat, s.location.lon) for s in net.stations], dtype=float)
    radius = np.zeros(len(net.stations))
    index = {s.id: i for i, s in enumerate(net.stations)}
    for v in net.vans:
        i = index[v.station_id]
        radius[i] = max(radius[i], v.service_radius_km)
    provinces = set(points.province)
    partners = net.partner_by_id
    depots = sorted(
        {
            (t.depot.lat, t.depot.lon)
            for t in net.trucks
            if partners[t.partner_id].provinces & provinces
        }
    )
    seats = prefecture_seats()
    pop = prefecture_population()
    dest = np.array([(u.lat, u.lon) for u in seats], dtype=float)
    dest_w = np.array([pop.get(u.adcode, 0.0) for u in seats], dtype=float)
    profiles = {
        n: scenario.travel.profile(n)
        for n in ("rescue_van", "towing", "empty_truck", "loaded_truck")
    }
    key = hashlib.sha256(
        repr(
            (
                getattr(provider, "name", type(provider).__name__),
                getattr(provider, "circuity", None),
                id(provider),
                st_ll.tobytes(),
                radius.tobytes(),
                points.latlon.tobytes(),
                depots,
                sorted(profiles.items()),
            )
        ).encode()
    ).hexdigest()
    cached = _CACHE.get(key)
    if cached is not None:
        return cached

    started = time.perf_counter()
    pts = points.latlon
    live = radius > 0
    src = np.nonzero(live)[0]
    van_pairs = provider.within(st_ll[src], pts, radius[src], profiles["rescue_van"])
    tow_pairs = provider.within(st_ll[src], pts, radius[src], profiles["towing"])
    s_idx = src[np.asarray(van_pairs.source, dtype=np.int64)]
    p_idx = np.asarray(van_pairs.target, dtype=np.int64)
    km = np.asarray(van_pairs.km, dtype=float)
    minutes = np.asarray(van_pairs.minutes, dtype=float)
    # towing minutes on the same pairs (same km criterion, so the same pair set)
    tow_key = src[np.asarray(tow_pairs.source)] * len(pts) + np.asarray(tow_pairs.target)
    order = np.argsort(tow_key)
    tow_sorted = tow_key[order]
    want = s_idx * len(pts) + p_idx
    pos = np.searchsorted(tow_sorted, want)
    pos_ok = np.minimum(pos, max(len(tow_sorted) - 1, 0))
    found = (
        (pos < len(tow_sorted)) & (tow_sorted[pos_ok] == want)
        if len(tow_sorted)
        else (np.zeros(len(want), dtype=bool))
    )
    tow_speed = profiles["towing"].speed_kmh
    tow_minutes = np.where(
        found,
        np.asarray(tow_pairs.minutes, dtype=float)[order][pos_ok] if len(tow_sorted) else 0.0,
        km / tow_speed * 60.0,
    )
    by_point = np.lexsort((s_idx, p_idx))
    s_idx, p_idx = s_idx[by_point], p_idx[by_point]
    km, minutes, tow_minutes = km[by_point], minutes[by_point], tow_minutes[by_point]
    ptr = np.zeros(len(pts) + 1, dtype=np.int64)
    np.add.at(ptr, p_idx + 1, 1)
    ptr = np.cumsum(ptr)

    depot_ll = np.array(depots, dtype=float).reshape(-1, 2)
    if len(depot_ll):
        # one search set for both empty legs: depot -> point and (reversed) depot -> destination
        # for the drive back; road km and minutes are symmetric on the national graph
        ekm_all, emin_all = provider.matrix(
            depot_ll, np.vstack([pts, dest]), profiles["empty_truck"]
        )
        ekm, emin = ekm_all[:, : len(pts)], emin_all[:, : len(pts)]
        bkm, bmin = ekm_all[:, len(pts) :].T, emin_all[:, len(pts) :].T
        lkm, lmin = provider.matrix(pts, dest, profiles["loaded_truck"])
    else:
        ekm = emin = np.zeros((0, len(pts)))
        lkm = lmin = np.zeros((len(pts), len(dest)))
        bkm = bmin = np.zeros((len(dest), 0))
    seconds = time.perf_counter() - started
    tables = TravelTables(
        provider_name=str(getattr(provider, "name", type(provider).__name__)),
        points=points,
        station_ids=tuple(s.id for s in net.stations),
        arc_ptr=ptr,
        arc_station=s_idx,
        arc_km=km,
        arc_minutes=minutes,
        arc_tow_minutes=tow_minutes,
        depot_latlon=depot_ll,
        dest_latlon=dest,
        dest_weight=dest_w / dest_w.sum(),
        empty_km=np.asarray(ekm, dtype=float),
        empty_minutes=np.asarray(emin, dtype=float),
        loaded_km=np.asarray(lkm, dtype=float),
        loaded_minutes=np.asarray(lmin, dtype=float),
        back_km=np.asarray(bkm, dtype=float),
        back_minutes=np.asarray(bmin, dtype=float),
        seconds=seconds,
        meta={"station_point_arcs": len(km), "points": len(pts), "depots": len(depot_ll)},
    )
    log.info(
        "travel tables (%s): %d points, %d station arcs, %d depots in %.1f s",
        tables.provider_name,
        len(pts),
        len(km),
        len(depot_ll),
        seconds,
    )
    _CACHE[key] = tables
    return tables
