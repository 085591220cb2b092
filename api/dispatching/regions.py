"""Dispatch per region: groups of provinces, each led through its own lock, so several worker
processes (on one or several machines sharing the database) dispatch in parallel.

The rule at the borders (a van near a border must be able to serve either side):

* a van belongs to the region of its home station's province, a truck to the region of its
  depot's, a request to the region of its province;
* a request is **interior** when no van of another region can reach it: every station of
  another region is farther (great-circle km, never more than the road km) than the largest
  service radius of its vans; for a truck request, when no truck outside the region belongs
  to a partner serving the request's province;
* a region's **main pass** holds that region's lock and decides its interior requests with
  its own vans and trucks: nobody else could serve them, so nothing is lost;
* the **border pass** decides every other open request (border requests, requests outside
  every region) with all free vans and trucks, holding every region's lock; each worker
  tries it after its regions in every pass.

Any cycle that may book a van or a truck holds the lock of its region, so no two cycles ever
decide about the same van, truck or request at once: nothing is booked twice across a border
(and the database's partial unique indexes stay behind that). No cycle ever waits for a
lock (it tries, and skips when another worker leads): no deadlock. The price: while region
cycles run back to back the border pass may be skipped for a few passes (it runs as soon
as one pass finds all regions free).

All workers must use the same partition (same ``--regions`` count on the same network):
each region's lock id is derived from its provinces.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.dispatching import queries as q
from api.dispatching.cycle import Snapshot
from api.dispatching.leadership import NETWORK_SHARED, CycleLock, region_lock_key
from api.dispatching.queries import province_of_adcode
from routing.provider import haversine_km

BORDER_LOCK = CycleLock("border", key=0)


@dataclass(frozen=True)
class Region:
    name: str
    provinces: frozenset[str]

    @property
    def lock(self) -> CycleLock:
        return CycleLock(self.name, key=region_lock_key(self.provinces))


@dataclass(frozen=True)
class RegionMap:
    """The partition and what the border rule needs: every station with the largest service
    radius of its vans, and which regions' trucks can serve each province."""

    regions: tuple[Region, ...]
    station_latlon: np.ndarray  # (n, 2)
    station_radius_km: np.ndarray  # (n,)
    station_region: np.ndarray  # (n,) index into regions, -1 outside all
    truck_regions_by_province: dict[str, frozenset[int]]

    def border_locks(self) -> list[CycleLock]:
        """The border pass's locks (one worker at a time tries the border, then all regions)."""
        return [BORDER_LOCK, NETWORK_SHARED, *(r.lock for r in self.regions)]

    def reachable_from_elsewhere(self, latlon: np.ndarray, region_index: int) -> np.ndarray:
        """For each point (a request of ``region_index``), whether a van of another region may
        reach it."""
        if len(latlon) == 0:
            return np.zeros(0, dtype=bool)
        other = self.station_region != region_index
        if not other.any():
            return np.zeros(len(latlon), dtype=bool)
        km = haversine_km(latlon, self.station_latlon[other])
        reach: np.ndarray = (km <= self.station_radius_km[other][None, :]).any(axis=1)
        return reach

    def _interior_request(self, latlon: np.ndarray, region_index: int) -> np.ndarray:
        return ~self.reachable_from_elsewhere(latlon.reshape(-1, 2), region_index)

    def _interior_truck_request(self, province_adcode: str | None, region_index: int) -> bool:
        serving = self.truck_regions_by_province.get(province_adcode or "", frozenset())
        return serving <= {region_index}

    def interior(self, snapshot: Snapshot, region_index: int) -> Snapshot:
        """The part of a region's snapshot (``load_snapshot(provinces=...)``) that its main
        pass decides (see the module docstring)."""
        latlon = np.array([(r.location.lat, r.location.lon) for r in snapshot.requests])
        keep = self._interior_request(latlon, region_index)
        return dataclasses.replace(
            snapshot,
            requests=tuple(r for r, k in zip(snapshot.requests, keep, strict=True) if k),
            replacement_requests=tuple(
                r
                for r in snapshot.replacement_requests
                if self._interior_truck_request(r.province_adcode, region_index)
            ),
        )

    def interior_ids(self, db_session: Session) -> tuple[frozenset[str], frozenset[str]]:
        """Ids of the van requests and the truck requests that the main passes decide: the
        same queries and the same rule as :meth:`interior`, so that the border pass (which
        decides everything else) misses nothing and takes nothing of theirs."""
        van_ids: set[str] = set()
        truck_ids: set[str] = set()
        for index, region in enumerate(self.regions):
            rows = q.open_request_rows(db_session, region.provinces)
            latlon = np.array([(r.lat, r.lon) for r in rows], dtype=float)
            keep = self._interior_request(latlon, index)
            van_ids.update(r.id for r, k in zip(rows, keep, strict=True) if k)
            truck_ids.update(
                r.id
                for r in q.replacement_request_rows(db_session, region.provinces)
                if self._interior_truck_request(r.province_adcode, index)
            )
        return frozenset(van_ids), frozenset(truck_ids)

    @staticmethod
    def border(snapshot: Snapshot, interior: tuple[frozenset[str], frozenset[str]]) -> Snapshot:
        """What no main pass decides: requests outside every region, or reachable from a van
        (truck) of another region than their own (and any that arrived since ``interior``
        was read: the border pass holds every region's lock, so it may)."""
        van_ids, truck_ids = interior
        return dataclasses.replace(
            snapshot,
            requests=tuple(r for r in snapshot.requests if r.id not in van_ids),
            replacement_requests=tuple(
                r for r in snapshot.replacement_requests if r.id not in truck_ids
            ),
        )


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
        truck_region = region_index.get(province_of_adcode(depot_adcode), -1)
        for province in provinces:
            serving[province].add(truck_region)
    return RegionMap(
        regions=regions,
        station_latlon=np.array([(r[2], r[3]) for r in rows], dtype=float).reshape(-1, 2),
        station_radius_km=np.array([float(r[4]) for r in rows], dtype=float),
        station_region=np.array([region_index.get(r[1], -1) for r in rows], dtype=int),
        truck_regions_by_province={p: frozenset(s) for p, s in serving.items()},
    )
