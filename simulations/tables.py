"""Demand points and the travel tables a run indexes instead of routing per event.

Breakdowns happen at a finite set of demand points (county seats, prefecture seats, the
stations themselves, points along the road graph (:mod:`simulations.demand_roads`), or explicit
points), weighted by the population proxy. Once per scenario
(network stations x demand points x the partners' depots) the provider computes:

- station -> demand point pairs within the largest service radius of the station's vans
  (``provider.within``), with km and minutes for the ``rescue_van`` and ``towing`` profiles;
- truck depot -> demand point (``empty_truck``), demand point -> cargo destination
  (``loaded_truck``) and destination -> depot (``empty_truck``) dense matrices;
- partner rescue provider base -> demand point (``rescue_van``) for the points a provider at
  that base covers (its provinces or radius), by the partner columns' searches
  (:func:`dispatch.partner_rescue.legs_from`): ``inf`` for a pair more than 3x the straight
  line + 20 km apart by road (a radius reaching over the Bohai strait), as in production.

Road km are symmetric on the national graph, so a van's drive back uses the outbound minutes
and a truck's drive back from the destination the depot -> destination minutes (on an imported
OSM graph with one-way streets this is an approximation). Only depots of partners serving a
demand point's province are tabled (the others can never be booked).

The national tables take 15-20 s with the road graph, so :func:`build_tables` keeps them on
disk when the caller passes ``cache_dir`` (the CLI passes ``RESCUE_CACHE_DIR``/tables; nothing
here reads the environment). The entry's name is a hash of everything the tables depend on
(:func:`tables_key`: the road graph's content and snapping parameters, or the great-circle
circuity; the stations, their largest van radius, the demand points, the depots, the
destinations and the speeds); the key is stored inside the file and checked on load, and the
file is written under a temporary name and renamed into place, so a reader never sees half a
file and a stale or foreign entry is never used. A provider whose identity is unknown
(anything but the road graph and great-circle engines) is cached per process only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dispatch.partner_rescue import legs_from
from fleet.geography import county_seats, prefecture_population, prefecture_seats
from routing.provider import GreatCircleProvider, TravelTimeProvider, haversine_km
from routing.road import RoadGraphProvider, RoadGraphSource
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
    # partner rescue providers' bases (unique; only with [partner_offers] rescue_providers)
    rescue_base_latlon: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    rescue_km: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """(n_bases, n_points): road km, ``inf`` where no provider there covers the point or
    beyond the 3x + 20 km rule."""
    rescue_minutes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


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

TABLES_FORMAT = 2
"""Part of every disk key: bump it when the way tables are computed or stored changes."""


def provider_identity(provider: TravelTimeProvider) -> str | None:
    """What makes two engines give the same tables, as text: the road graph's content
    (coordinates, edges, km, speeds, direction) and snapping parameters, or the great-circle
    circuity; ``None`` for any other engine (its tables are cached per process only)."""
    if type(provider) is GreatCircleProvider:  # a subclass may compute anything
        return f"great-circle|{provider.circuity!r}"
    if type(provider) is RoadGraphProvider:
        g = provider.graph
        h = hashlib.sha256()
        for a in (g.lat, g.lon, g.edge_u, g.edge_v, g.edge_km, g.component):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(b"|")
        if g.edge_speed_kmh is not None:
            h.update(np.ascontiguousarray(g.edge_speed_kmh).tobytes())
        return (
            f"road|{g.name}|{g.directed}|{h.hexdigest()}|{provider.max_snap_km!r}|"
            f"{provider.min_component_nodes}"
        )
    return None


@dataclass(frozen=True, eq=False)
class _Geometry:
    """What a scenario's tables are computed from, besides the engine."""

    points: DemandPoints
    station_ids: tuple[str, ...]
    station_latlon: np.ndarray
    radius_km: np.ndarray
    """Per station: its vans' largest service radius (0 = no vans)."""
    depots: list[tuple[float, float]]
    dest: np.ndarray
    dest_weight: np.ndarray
    profiles: dict[str, Any]
    rescue_bases: np.ndarray
    """The partner rescue providers' unique bases (lat, lon)."""
    rescue_cover: np.ndarray
    """(n_bases, n_points): a provider at the base covers the point (provinces or radius)."""

    @classmethod
    def of(
        cls,
        scenario: Scenario,
        provider: TravelTimeProvider | None = None,
        road_graph: RoadGraphSource = RoadGraphSource(),
    ) -> _Geometry:
        """The geometry of ``scenario``; road demand points come from ``provider``'s road
        graph, else ``road_graph`` (:func:`demand_points`)."""
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
        bases, cover = _rescue_cover(scenario, points)
        return cls(
            points=points,
            station_ids=tuple(s.id for s in net.stations),
            station_latlon=st_ll.reshape(-1, 2),
            radius_km=radius,
            depots=depots,
            dest=np.array([(u.lat, u.lon) for u in seats], dtype=float),
            dest_weight=np.array([pop.get(u.adcode, 0.0) for u in seats], dtype=float),
            profiles={
                n: scenario.travel.profile(n)
                for n in ("rescue_van", "towing", "empty_truck", "loaded_truck")
            },
            rescue_bases=bases,
            rescue_cover=cover,
        )

    def digest(self, engine: str) -> str:
        """A hash of the engine's identity and every input of the tables."""
        h = hashlib.sha256(f"tables-v{TABLES_FORMAT}|{engine}".encode())
        p = self.points
        for a in (p.lat, p.lon, p.weight, self.station_latlon, self.radius_km, self.dest,
                  self.dest_weight, self.rescue_bases, self.rescue_cover):  # fmt: skip
            h.update(np.ascontiguousarray(a, dtype=float).tobytes())
            h.update(b"|")
        h.update(
            repr(
                (p.province, p.name, self.station_ids, self.depots, sorted(self.profiles.items()))
            ).encode()
        )
        return h.hexdigest()


def _rescue_cover(scenario: Scenario, points: DemandPoints) -> tuple[np.ndarray, np.ndarray]:
    """The unique bases of the scenario's partner rescue providers and, per base, the demand
    points a provider there covers (``dispatch.partner_rescue.covers``: its provinces, or its
    great-circle radius)."""
    providers = scenario.partner_rescue_providers
    bases = sorted({(p.base.lat, p.base.lon) for p in providers})
    base_ll = np.array(bases, dtype=float).reshape(-1, 2)
    cover = np.zeros((len(bases), len(points)), dtype=bool)
    if not bases or not len(points):
        return base_ll, cover
    row = {b: k for k, b in enumerate(bases)}
    straight = haversine_km(base_ll, points.latlon)
    province = np.array(points.province, dtype=object)
    for p in providers:
        k = row[(p.base.lat, p.base.lon)]
        if p.radius_km > 0:
            cover[k] |= straight[k] <= p.radius_km
        if p.provinces:
            cover[k] |= np.isin(province, sorted(p.provinces)) & (province != "")
    return base_ll, cover


def tables_key(
    scenario: Scenario,
    provider: TravelTimeProvider,
    *,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> str | None:
    """The disk-cache key of the scenario's tables on ``provider`` (``None``: not cached on
    disk)."""
    engine = provider_identity(provider)
    if engine is None:
        return None
    return _Geometry.of(scenario, provider, road_graph).digest(engine)


_ARRAY_FIELDS = (
    "arc_ptr", "arc_station", "arc_km", "arc_minutes", "arc_tow_minutes", "depot_latlon",
    "dest_latlon", "dest_weight", "empty_km", "empty_minutes", "loaded_km", "loaded_minutes",
    "back_km", "back_minutes", "rescue_base_latlon", "rescue_km", "rescue_minutes",
)  # fmt: skip


def tables_cache_path(cache_dir: Path, key: str) -> Path:
    """The file of ``key``'s tables in ``cache_dir``."""
    return Path(cache_dir).expanduser() / f"tables-{key[:32]}.npz"


def _save_tables(path: Path, key: str, tables: TravelTables) -> None:
    """Write atomically (temporary file, then rename); a failure only logs."""
    header = {
        "key": key,
        "provider_name": tables.provider_name,
        "station_ids": list(tables.station_ids),
        "province": list(tables.points.province),
        "name": list(tables.points.name),
        "seconds": tables.seconds,
        "meta": tables.meta,
    }
    p = tables.points
    arrays = {f: getattr(tables, f) for f in _ARRAY_FIELDS}
    arrays |= {"points_lat": p.lat, "points_lon": p.lon, "points_weight": p.weight}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tables-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, header=np.array(json.dumps(header)), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.info("travel tables not cached on disk (%s)", exc)


def _load_tables(path: Path, key: str) -> TravelTables | None:
    """The cached tables if ``path`` holds exactly ``key``'s; ``None`` when it is missing,
    unreadable or written for another key (never trusted then)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header.get("key") != key:
                log.warning("ignoring travel tables %s: written for another geometry", path)
                return None
            arrays = {f: z[f] for f in _ARRAY_FIELDS}
            points = DemandPoints(
                lat=z["points_lat"],
                lon=z["points_lon"],
                weight=z["points_weight"],
                province=tuple(header["province"]),
                name=tuple(header["name"]),
            )
        return TravelTables(
            provider_name=header["provider_name"],
            points=points,
            station_ids=tuple(header["station_ids"]),
            seconds=float(header["seconds"]),
            meta={**header["meta"], "cache_file": str(path)},
            **arrays,
        )
    except Exception as exc:  # a damaged entry is rebuilt, never trusted
        log.warning("ignoring unreadable travel tables %s: %s", path, exc)
        return None


def build_tables(
    scenario: Scenario,
    provider: TravelTimeProvider | None = None,
    *,
    road_graph: RoadGraphSource = RoadGraphSource(),
    cache_dir: Path | None = None,
) -> TravelTables:
    """Compute (or reuse) the travel tables of the scenario's geometry, with ``provider`` or
    else the scenario's engine on ``road_graph``. Reused within the process; with
    ``cache_dir`` also read from and written to disk there (see the module doc)."""
    provider = provider or make_provider(scenario, road_graph)
    geometry = _Geometry.of(scenario, provider, road_graph)
    engine = provider_identity(provider)
    # in process an unknown engine is told apart by its object identity
    key = geometry.digest(engine if engine is not None else f"object-{id(provider)}")
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    disk_path = tables_cache_path(cache_dir, key) if cache_dir is not None and engine else None
    if disk_path is not None:
        loaded = _load_tables(disk_path, key)
        if loaded is not None:
            log.info("travel tables from %s", disk_path)
            _CACHE[key] = loaded
            return loaded
    tables = _compute_tables(geometry, provider)
    if disk_path is not None:
        _save_tables(disk_path, key, tables)
    _CACHE[key] = tables
    return tables


def _rescue_legs(
    geometry: _Geometry, provider: TravelTimeProvider
) -> tuple[np.ndarray, np.ndarray]:
    """Road km and minutes (``rescue_van``) from each rescue base to the points it covers;
    ``inf`` elsewhere and beyond the partner columns' 3x + 20 km rule."""
    pts = geometry.points.latlon
    bases = geometry.rescue_bases
    km = np.full((len(bases), len(pts)), np.inf)
    minutes = km.copy()
    if not len(bases) or not len(pts):
        return km, minutes
    straight = haversine_km(bases, pts)
    for k in range(len(bases)):
        idx = np.flatnonzero(geometry.rescue_cover[k])
        if len(idx):
            km[k, idx], minutes[k, idx] = legs_from(
                provider, bases[k], pts[idx], straight[k, idx], geometry.profiles["rescue_van"]
            )
    return km, minutes


def _compute_tables(geometry: _Geometry, provider: TravelTimeProvider) -> TravelTables:
    """The provider's searches over the geometry: the expensive part the caches avoid."""
    points, st_ll, radius = geometry.points, geometry.station_latlon, geometry.radius_km
    depots, dest, dest_w = geometry.depots, geometry.dest, geometry.dest_weight
    profiles = geometry.profiles
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
    rkm, rmin = _rescue_legs(geometry, provider)
    seconds = time.perf_counter() - started
    tables = TravelTables(
        provider_name=str(getattr(provider, "name", type(provider).__name__)),
        points=points,
        station_ids=geometry.station_ids,
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
        meta={
            "station_point_arcs": len(km),
            "points": len(pts),
            "depots": len(depot_ll),
            "rescue_bases": len(geometry.rescue_bases),
        },
        rescue_base_latlon=geometry.rescue_bases,
        rescue_km=rkm,
        rescue_minutes=rmin,
    )
    log.info(
        "travel tables (%s): %d points, %d station arcs, %d depots in %.1f s",
        tables.provider_name,
        len(pts),
        len(km),
        len(depot_ll),
        seconds,
    )
    return tables
