"""Dispatch per region: groups of provinces, each led through its own lock, so several worker
processes (on one or several machines sharing the database) dispatch in parallel; and the
border zone between them, dispatched with the vans of both sides.

The rule at the borders (a van near a border must be able to serve either side):

* a van belongs to the region of the station it serves from: its home station's province,
  or, when a dispatcher moved it up to another station (:mod:`api.dispatching.posts`), that
  station's; a truck to the region of its depot's, a request to the region of its province;
* a request is **interior** when no van of another region can reach it: every station of
  another region is farther (great-circle km, never more than the road km; the service
  radius is measured from the home station) than the largest service radius of its vans;
  a truck request when no truck outside the region belongs to a partner serving the
  request's province;
* a region's cycle holds that region's lock and decides its interior requests with its own
  vans and trucks: nobody else could serve them, so nothing is lost. It reads only them:
  the open requests of its provinces (plain columns, split by the rule), the free and
  soon-free vans of its stations, its trucks;
* the **border cycle** decides every other open request (border requests, requests outside
  every region) with the free and soon-free vans of every station that can reach one of them
  (of any region) and all free trucks, holding the border lock and every region's lock;
* each domain re-plans the jobs it owns: a job is its request's region's when its van is of
  that region too, else the border's.

Any cycle that may book a van or a truck holds the lock of its region (the border cycle all
of them), so no two cycles ever decide about the same van, truck or request at once: nothing
is booked twice across a border (and the database's partial unique indexes and the write's
re-check stay behind that). Region cycles only try their lock and skip a region another
worker leads, or any region while a border cycle waits for the region locks. The border
cycle, once it holds the border lock (one worker at a time), waits for the region locks
in one fixed order, up to :data:`BORDER_WAIT_S` each pass: it runs in
every pass of the worker that gets it, between two region cycles, instead of waiting for a
moment when no region cycle runs (which, with workers passing back to back, came late). No
deadlock: only the border cycle waits, and always in the same order. Partner rescue
providers are offered by every cycle; the write re-checks each provider's free slots under
its row lock (:mod:`api.dispatching.decisions`), so cycles of two regions never offer one
provider more jobs than it has slots. The border cycle also does the network-wide work of a
cycle (sweeping lapsed offers and unacknowledged jobs, flagging late jobs): region cycles
skip it.

All workers must use the same partition (same ``--regions`` count on the same network):
each region's lock id is derived from its provinces. A worker reads it when it starts and
again every ``REGION_MAP_CHECK_S`` (:mod:`api.dispatching.worker`), so after a change to the
stations or vans all workers agree again within that time (meanwhile two could lead
overlapping regions: the write's re-check under row locks still books nothing twice).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.dispatching import queries as q
from api.dispatching.leadership import NETWORK_SHARED, CycleLock, region_lock_key
from api.dispatching.posts import posted_stations
from api.dispatching.queries import province_of_adcode
from routing.snap import chord_to_km, unit_vectors

BORDER_LOCK = CycleLock("border", key=0)
BORDER = -1
"""The border cycle's domain index (regions are 0 .. N-1)."""
BORDER_WAIT_S = 30.0
"""How long the border cycle waits for the region locks (then it lets go and skips)."""
MEMO_MAX = 200_000
"""Requests whose domain a worker remembers (then it forgets them all and starts again)."""


@dataclass(frozen=True)
class Region:
    name: str
    provinces: frozenset[str]

    @property
    def lock(self) -> CycleLock:
        return CycleLock(self.name, key=region_lock_key(self.provinces))


@dataclass(frozen=True)
class Domain:
    """A region (``index`` 0 .. N-1) or the border (``index`` :data:`BORDER`) with the locks
    its cycle takes (``wait``: the border waits for the region locks, in this order)."""

    name: str
    index: int
    locks: tuple[CycleLock, ...]
    wait: bool = False


@dataclass(frozen=True)
class RegionMap:
    """The partition and what the border rule needs: every station with the largest service
    radius of its vans, and which regions' trucks can serve each province."""

    regions: tuple[Region, ...]
    station_ids: tuple[str, ...]
    station_latlon: np.ndarray  # (n, 2)
    station_radius_km: np.ndarray  # (n,)
    station_region: np.ndarray  # (n,) index into regions, -1 outside all
    truck_regions_by_province: dict[str, frozenset[int]]
    _memo: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def domains(self) -> tuple[Domain, ...]:
        region_locks = tuple(r.lock for r in self.regions)
        return (
            *(Domain(r.name, i, (NETWORK_SHARED, r.lock)) for i, r in enumerate(self.regions)),
            Domain("border", BORDER, (BORDER_LOCK, NETWORK_SHARED, *region_locks), wait=True),
        )

    def region_of_province(self, province: str | None) -> int:
        for i, r in enumerate(self.regions):
            if province in r.provinces:
                return i
        return BORDER

    def reachable_from_elsewhere(self, latlon: np.ndarray, region_index: int) -> np.ndarray:
        """For each point (a request of ``region_index``), whether a van of another region may
        reach it."""
        latlon = np.asarray(latlon, dtype=float).reshape(-1, 2)
        other = self.station_region != region_index
        if len(latlon) == 0 or not other.any():
            return np.zeros(len(latlon), dtype=bool)
        return _reached(latlon, self.station_latlon[other], self.station_radius_km[other])

    def request_domains(self, latlon: np.ndarray, provinces: Sequence[str | None]) -> np.ndarray:
        """The domain of each request at ``latlon`` (n, 2) in ``provinces``: its province's
        region when interior, else :data:`BORDER`."""
        latlon = np.asarray(latlon, dtype=float).reshape(-1, 2)
        region = np.array([self.region_of_province(p) for p in provinces], dtype=int)
        out = np.full(len(region), BORDER, dtype=int)
        for index in range(len(self.regions)):
            mine = np.nonzero(region == index)[0]
            if len(mine):
                interior = ~self.reachable_from_elsewhere(latlon[mine], index)
                out[mine[interior]] = index
        return out

    def domains_of(self, points: Sequence[tuple[str, float, float, str | None]]) -> list[int]:
        """The domain of each request ``(id, lat, lon, province)``, remembered by id and place
        (a pure function of them, the same in every worker; the memory is let go when it
        grows past :data:`MEMO_MAX` entries)."""
        keys = [f"{i}@{lat!r},{lon!r},{province}" for i, lat, lon, province in points]
        new = [(k, p) for k, p in zip(keys, points, strict=True) if k not in self._memo]
        if new:
            if len(self._memo) + len(new) > MEMO_MAX:
                self._memo.clear()
            domains = self.request_domains(
                np.array([(p[1], p[2]) for _, p in new], dtype=float), [p[3] for _, p in new]
            )
            self._memo.update(zip((k for k, _ in new), domains.tolist(), strict=True))
        return [self._memo[k] for k in keys]

    def domain_request_ids(
        self, points: Sequence[tuple[str, float, float, str | None]], index: int
    ) -> list[str]:
        """Of the requests ``(id, lat, lon, province)``, the ids of those of domain
        ``index``."""
        return [p[0] for p, d in zip(points, self.domains_of(points), strict=True) if d == index]

    def stations_reaching(self, latlon: np.ndarray) -> list[str]:
        """The stations whose vans may reach one of the points (the border cycle's vans)."""
        latlon = np.asarray(latlon, dtype=float).reshape(-1, 2)
        if len(latlon) == 0 or len(self.station_ids) == 0:
            return []
        reach = _nearest_km(self.station_latlon, latlon) <= self.station_radius_km
        return [s for s, r in zip(self.station_ids, reach.tolist(), strict=True) if r]

    def interior_truck_provinces(self, index: int) -> frozenset[str]:
        """A region's provinces whose truck requests are interior (no truck outside the region
        belongs to a partner serving them)."""
        return frozenset(
            p
            for p in self.regions[index].provinces
            if self.truck_regions_by_province.get(p, frozenset()) <= {index}
        )

    def same_partition(self, other: RegionMap) -> bool:
        """Whether ``other`` splits the network the same way (same regions, stations, radii
        and truck rule: the same locks and the same domain for every request)."""
        return (
            self.regions == other.regions
            and self.station_ids == other.station_ids
            and np.array_equal(self.station_latlon, other.station_latlon)
            and np.array_equal(self.station_radius_km, other.station_radius_km)
            and np.array_equal(self.station_region, other.station_region)
            and self.truck_regions_by_province == other.truck_regions_by_province
        )

    def scope(self, index: int) -> DomainScope:
        return DomainScope(self, index)


@dataclass
class DomainScope:
    """What a domain's cycle reads (:class:`api.dispatching.queries.SnapshotScope`).

    A region: its interior requests, the free and soon-free vans of its stations, the jobs
    it may re-plan (an interior request held by a van of its stations), its interior truck
    requests and its depots' trucks. The border: the other requests, the free and soon-free
    vans of every station that reaches one of them or one of its jobs, every other job (a
    border request's, or one held by a van of another region), the other truck requests and
    all free trucks. So every waiting request and every job in progress is decided by
    exactly one domain, and a van only ever by its own region's cycle or the border's."""

    region_map: RegionMap
    index: int
    _points: list[tuple[float, float]] | None = None

    @property
    def _provinces(self) -> frozenset[str] | None:
        return None if self.index == BORDER else self.region_map.regions[self.index].provinces

    def open_request_rows(self, db_session: Session) -> Sequence[q.WaitingRequest]:
        rows = q.open_request_rows(db_session, self._provinces)
        domains = self.region_map.domains_of(
            [(r.id, r.lat, r.lon, r.province_adcode) for r in rows]
        )
        mine = [r for r, d in zip(rows, domains, strict=True) if d == self.index]
        self._points = [(r.lat, r.lon) for r in mine]
        return mine

    def replannable_rows(
        self, db_session: Session, *, not_before: dt.datetime
    ) -> Sequence[tuple[m.RescueRequest, m.VanAssignment, m.Van, m.Station]]:
        rm = self.region_map
        places = q.replannable_places(db_session, not_before=not_before, provinces=self._provinces)
        domains = rm.domains_of([p[:4] for p in places])
        # A job is its request's region's when the van is of that region too, else the
        # border's (a border request's, or a van sent across: a dispatcher's override).
        mine = [
            p
            for p, d in zip(places, domains, strict=True)
            if (d if d == rm.region_of_province(p[4]) else BORDER) == self.index
        ]
        if self.index == BORDER:
            if self._points is None:
                self.open_request_rows(db_session)
            assert self._points is not None
            self._points += [(lat, lon) for _, lat, lon, _, _ in mine]
        owned = {p[0] for p in mine}
        rows = (  # read whole: all of them by the same filter, else the few by id
            q.replannable_rows(db_session, not_before=not_before, provinces=self._provinces)
            if len(mine) == len(places)
            else q.replannable_rows(db_session, not_before=not_before, ids=owned)
        )
        return [row for row in rows if row[0].id in owned]

    def _border_stations(self, db_session: Session) -> list[str]:
        if self._points is None:  # read after the requests (load_snapshot's order)
            self.open_request_rows(db_session)
        assert self._points is not None
        return self.region_map.stations_reaching(np.array(self._points, dtype=float))

    def free_van_rows(self, db_session: Session) -> Sequence[tuple[m.Van, m.Station]]:
        """The free vans that serve from the domain's stations: those of its own stations
        not posted elsewhere, and those of other stations a dispatcher moved up to one of
        them (:mod:`api.dispatching.posts`: a van serves from the station it is posted at,
        so that station's domain decides about it)."""
        if self.index != BORDER:
            provinces = self._provinces
            assert provinces is not None
            own = q.free_van_rows(db_session, provinces)
            away = q.free_vans_away(db_session, not_provinces=provinces)

            def serves_here(station: m.Station) -> bool:
                return station.province_adcode in provinces

        else:
            stations = set(self._border_stations(db_session))
            own = q.free_van_rows(db_session, station_ids=stations)
            away = q.free_vans_away(db_session, not_station_ids=stations)

            def serves_here(station: m.Station) -> bool:
                return station.id in stations

        posted = posted_stations(db_session, [*own, *away])
        return [
            *(row for row in own if row[0].id not in posted or serves_here(posted[row[0].id])),
            *(row for row in away if row[0].id in posted and serves_here(posted[row[0].id])),
        ]

    def soon_free_van_rows(
        self, db_session: Session, *, free_by: dt.datetime
    ) -> Sequence[tuple[m.Van, m.Station, m.RescueRequest]]:
        if self.index != BORDER:
            return q.soon_free_van_rows(db_session, free_by=free_by, provinces=self._provinces)
        return q.soon_free_van_rows(
            db_session, free_by=free_by, station_ids=self._border_stations(db_session)
        )

    def replacement_request_rows(self, db_session: Session) -> Sequence[m.RescueRequest]:
        rm = self.region_map
        if self.index == BORDER:
            interior = frozenset().union(
                *(rm.interior_truck_provinces(i) for i in range(len(rm.regions)))
            )
            return q.replacement_request_rows(db_session, exclude_provinces=interior)
        provinces = rm.interior_truck_provinces(self.index)
        return q.replacement_request_rows(db_session, provinces) if provinces else []

    def free_truck_rows(self, db_session: Session) -> Sequence[m.ReplacementTruck]:
        if self.index == BORDER:
            return q.free_truck_rows(db_session)
        return q.free_truck_rows(db_session, self._provinces)


def _nearest_km(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """For each point, the great-circle km to the nearest centre (a k-d tree on the unit
    sphere, as :mod:`routing.snap` does: the nearest by chord is the nearest by arc)."""
    tree = cKDTree(unit_vectors(centres[:, 0], centres[:, 1]))
    chord, _ = tree.query(unit_vectors(points[:, 0], points[:, 1]), k=1)
    return chord_to_km(np.asarray(chord, dtype=float))


def _reached(points: np.ndarray, stations: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
    """Whether each point has a station within that station's ``radius_km`` (great-circle
    km), per distinct radius with a k-d tree (a storm's ten thousand requests against
    thousands of stations: no matrix)."""
    out = np.zeros(len(points), dtype=bool)
    if len(points) == 0 or len(stations) == 0:
        return out
    for radius in np.unique(radius_km).tolist():
        out |= _nearest_km(points, stations[radius_km == radius]) <= radius
    return out


def partition_provinces(vans_by_province: dict[str, tuple[float, int]], count: int) -> list[Region]:
    """``count`` regions of neighbouring provinces with about the same number of vans each:
    provinces in order of their stations' mean longitude (west to east), cut where the
    running van count passes each share. ``vans_by_province``: adcode -> (mean lon, vans)."""
    if count < 1:
        raise ValueError(f"regions must be >= 1, got {count}")
    if count > len(vans_by_province):
        raise ValueError(
            f"regions must be <= the {len(vans_by_province)} provinces with vans, got {count}"
        )
    ordered = sorted(vans_by_province, key=lambda p: (vans_by_province[p][0], p))
    total = sum(v for _, v in vans_by_province.values())
    groups: list[list[str]] = [[]]
    running = 0
    for position, province in enumerate(ordered):
        left_after = len(ordered) - position - 1
        groups[-1].append(province)
        running += vans_by_province[province][1]
        must_cut = left_after == count - len(groups)  # one province left per region to come
        if (
            len(groups) < count
            and left_after
            and (running >= total * len(groups) / count or must_cut)
        ):
            groups.append([])
    return [
        Region(f"r{i + 1}of{count}", frozenset(group)) for i, group in enumerate(groups) if group
    ]


def load_region_map(db_session: Session, count: int) -> RegionMap:
    """Partition the network in the database into ``count`` regions (deterministic: every
    worker computes the same) with the border rule's tables."""
    rows = db_session.execute(
        select(
            m.Station.id,
            m.Station.province_adcode,
            m.Station.lat,
            m.Station.lon,
            func.max(m.Van.service_radius_km),
            func.count(m.Van.id),
        )
        .join(m.Van, m.Van.station_id == m.Station.id)
        .group_by(m.Station.id, m.Station.province_adcode, m.Station.lat, m.Station.lon)
        .order_by(m.Station.id)
    ).all()
    lons: dict[str, list[float]] = defaultdict(list)
    vans: dict[str, int] = defaultdict(int)
    for _, province, _, lon, _, n in rows:
        lons[province].append(lon)
        vans[province] += n
    regions = tuple(
        partition_provinces({p: (float(np.mean(lons[p])), vans[p]) for p in lons}, count)
    )
    region_index = {p: i for i, r in enumerate(regions) for p in r.provinces}
    trucks = db_session.execute(
        select(m.ReplacementTruck.depot_adcode, m.Partner.provinces).join(
            m.Partner, m.ReplacementTruck.partner_id == m.Partner.id
        )
    ).all()
    serving: dict[str, set[int]] = defaultdict(set)
    for depot_adcode, provinces in trucks:
        truck_region = region_index.get(province_of_adcode(depot_adcode), BORDER)
        for province in provinces:
            serving[province].add(truck_region)
    return RegionMap(
        regions=regions,
        station_ids=tuple(r[0] for r in rows),
        station_latlon=np.array([(r[2], r[3]) for r in rows], dtype=float).reshape(-1, 2),
        station_radius_km=np.array([float(r[4]) for r in rows], dtype=float),
        station_region=np.array([region_index.get(r[1], BORDER) for r in rows], dtype=int),
        truck_regions_by_province={p: frozenset(s) for p, s in serving.items()},
    )
