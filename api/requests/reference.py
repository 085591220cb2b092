"""What the intake needs from the network, held in memory: the vehicle registry and the
stations (for the workshop a vehicle would go to).

Both change only when a network is seeded, and the intake's hot path must not touch the
database, so each app loads them once (at start-up) into an :class:`IntakeReference`; a
re-seed by another process needs a restart of the server to be seen (``rescue seed``
refuses over an existing network unless ``--reset``, which is a maintenance step anyway).
The candidate workshops come from a grid per vehicle class: each 0.5-degree cell keeps the
capable stations that can be the nearest one to some point of the cell (a proven bound, see
:class:`_WorkshopGrid`), usually a handful, so a query is a lookup and a few scalar
distances (a KD-tree search per intake cost several times more); then
:func:`dispatch.triage.choose_workshop` decides among them, so the rule stays the pure one
and the answer is the one a full great-circle pass over all stations gives. Points beyond
the grid take the nearest few from a KD-tree on unit-sphere points.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from geopy.distance import EARTH_RADIUS
from scipy.spatial import cKDTree
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.adapters import registry_from_rows, station_from_row
from dispatch.triage import WorkshopChoice, choose_workshop, station_can_repair
from fleet import GeoPoint, ServiceStation, VehicleClass
from fleet.contracts import VehicleRegistry

NEAREST_WORKSHOP_CANDIDATES = 8
"""Stations handed to ``choose_workshop`` after the vectorised pre-selection (ties and the
designated station are decided there)."""


def great_circle_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle km (the formula and radius of :func:`routing.haversine_km`, in scalar
    arithmetic: a numpy call per pair costs more than the sums)."""
    la1, la2 = math.radians(a.lat), math.radians(b.lat)
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1)
        * math.cos(la2)
        * math.sin((math.radians(b.lon) - math.radians(a.lon)) / 2) ** 2
    )
    return 2 * EARTH_RADIUS * math.asin(math.sqrt(min(max(h, 0.0), 1.0)))


GRID_CELL_DEG = 0.5
"""Cell size of the workshop grid (degrees of latitude and longitude)."""

GRID_MARGIN_DEG = 2.0
"""The grid covers the stations' bounding box widened by this; points beyond it (outside
the service area anyway) take the KD-tree."""


@dataclass(frozen=True)
class _WorkshopGrid:
    """For each cell of a lat/lon grid, the capable stations that can be the nearest one to
    some point of the cell: every station within ``d + 2 rho`` of the cell's centre, where
    ``d`` is the centre's nearest station and ``rho`` the farthest a point of the cell lies
    from the centre (for a point P in the cell and its nearest station S:
    dist(P, S) <= dist(P, nearest of the centre) <= rho + d, so dist(centre, S) <= d + 2 rho).
    A query is then a cell lookup and a few scalar distances instead of a KD-tree search."""

    lat0: float
    lon0: float
    rows: int
    cols: int
    cells: tuple[tuple[int, ...], ...]
    """Per cell (row-major), the candidates: positions in the stations' lat/lon rows."""

    def candidates(self, lat: float, lon: float) -> tuple[int, ...] | None:
        row = math.floor((lat - self.lat0) / GRID_CELL_DEG)
        col = math.floor((lon - self.lon0) / GRID_CELL_DEG)
        if 0 <= row < self.rows and 0 <= col < self.cols:
            return self.cells[row * self.cols + col]
        return None


@lru_cache(maxsize=8)
def _workshop_grid(latlon_bytes: bytes) -> _WorkshopGrid:
    """The grid over the stations at ``latlon_bytes`` (their lat/lon rows as float64 bytes;
    cached, so apps over the same network share it)."""
    latlon = np.frombuffer(latlon_bytes, dtype=float).reshape(-1, 2)
    tree = cKDTree(_unit(latlon))
    lat0 = math.floor((latlon[:, 0].min() - GRID_MARGIN_DEG) / GRID_CELL_DEG) * GRID_CELL_DEG
    lon0 = math.floor((latlon[:, 1].min() - GRID_MARGIN_DEG) / GRID_CELL_DEG) * GRID_CELL_DEG
    rows = math.ceil((latlon[:, 0].max() + GRID_MARGIN_DEG - lat0) / GRID_CELL_DEG)
    cols = math.ceil((latlon[:, 1].max() + GRID_MARGIN_DEG - lon0) / GRID_CELL_DEG)
    row, col = np.divmod(np.arange(rows * cols), cols)
    south = lat0 + row * GRID_CELL_DEG
    west = lon0 + col * GRID_CELL_DEG
    centre = np.column_stack((south + GRID_CELL_DEG / 2, west + GRID_CELL_DEG / 2))
    corners = [
        np.column_stack((south + dlat, west + dlon))
        for dlat in (0.0, GRID_CELL_DEG)
        for dlon in (0.0, GRID_CELL_DEG)
    ]
    rho = np.max([_pairwise_km(centre, c) for c in corners], axis=0)
    chord, _ = tree.query(_unit(centre), k=1)
    d = 2 * EARTH_RADIUS * np.arcsin(np.clip(np.asarray(chord) / 2, 0.0, 1.0))
    # A kilometre of slack over the bound only adds candidates (float safety).
    reach = np.minimum((d + 2 * rho + 1.0) / EARTH_RADIUS, math.pi)
    found = tree.query_ball_point(_unit(centre), r=2 * np.sin(reach / 2))
    cells = tuple(tuple(sorted(f)) for f in found)
    return _WorkshopGrid(lat0, lon0, rows, cols, cells)


def _pairwise_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle km between row i of ``a`` and row i of ``b``."""
    la1, lo1, la2, lo2 = (np.radians(v) for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    result: np.ndarray = 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result


@dataclass(frozen=True)
class IntakeReference:
    """The registry and the stations of the seeded network, with lookup arrays."""

    registry: VehicleRegistry
    stations: tuple[ServiceStation, ...]
    station_by_id: dict[str, ServiceStation] = field(init=False, repr=False)
    _latlon: np.ndarray = field(init=False, repr=False)
    _capable: dict[VehicleClass, tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False)
    """Per class: the indices of the stations that can repair it and their lat/lon rows."""
    _trees: dict[VehicleClass, cKDTree] = field(init=False, repr=False)
    """Per class: a KD-tree of those stations as unit-sphere points."""
    _capable_stations: dict[VehicleClass, list[ServiceStation]] = field(init=False, repr=False)
    """Per class: those stations, in the order of their lat/lon rows."""
    _grids: dict[VehicleClass, _WorkshopGrid] = field(init=False, repr=False)
    """Per class: the workshop grid, built on the class's first query (or by :meth:`warm`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "station_by_id", {s.id: s for s in self.stations})
        latlon = np.array([[s.location.lat, s.location.lon] for s in self.stations], dtype=float)
        object.__setattr__(self, "_latlon", latlon.reshape(-1, 2))
        capable = {}
        for c in VehicleClass:
            idx = np.flatnonzero([station_can_repair(s, c) for s in self.stations])
            capable[c] = (idx, latlon.reshape(-1, 2)[idx])
        object.__setattr__(self, "_capable", capable)
        trees = {c: cKDTree(_unit(rows)) for c, (idx, rows) in capable.items() if len(idx)}
        object.__setattr__(self, "_trees", trees)
        object.__setattr__(self, "_grids", {})
        capable_stations = {c: [self.stations[i] for i in idx] for c, (idx, _) in capable.items()}
        object.__setattr__(self, "_capable_stations", capable_stations)

    def warm(self) -> None:
        """Build every class's workshop grid now (the app does it at start-up)."""
        for vehicle_class in self._trees:
            self._grid(vehicle_class)

    def _grid(self, vehicle_class: VehicleClass) -> _WorkshopGrid:
        grid = self._grids.get(vehicle_class)
        if grid is None:  # two threads may both build it: the same grid, the last one kept
            latlon = self._capable[vehicle_class][1]
            grid = _workshop_grid(np.ascontiguousarray(latlon, dtype=float).tobytes())
            self._grids[vehicle_class] = grid
        return grid

    def workshop_for(
        self,
        location: GeoPoint,
        vehicle_class: VehicleClass,
        designated_station_id: str | None,
        distance_km: Callable[[GeoPoint, GeoPoint], float] = great_circle_km,
    ) -> WorkshopChoice | None:
        """The designated station when it can repair the class, else the nearest capable one
        (great-circle km); ``None`` without capable stations. ``ValueError`` for a designated
        station that does not exist."""
        idx = self._capable[vehicle_class][0]
        pool: list[ServiceStation] = []
        if designated_station_id is not None:
            station = self.station_by_id.get(designated_station_id)
            if station is None:
                raise ValueError(f"no station {designated_station_id!r}")
            pool.append(station)
        if len(idx):
            cell = self._grid(vehicle_class).candidates(location.lat, location.lon)
            if cell is not None:
                capable = self._capable_stations[vehicle_class]
                pool.extend([capable[i] for i in cell])
            else:  # beyond the grid: the nearest few by the KD-tree
                here = _unit(np.array([[location.lat, location.lon]]))[0]
                k = min(NEAREST_WORKSHOP_CANDIDATES, len(idx))
                _, found = self._trees[vehicle_class].query(here, k=k)
                pool.extend(self.stations[int(i)] for i in idx[np.atleast_1d(found)])
        if not pool:
            return None
        return choose_workshop(
            pool, location, vehicle_class, distance_km, designated_station_id=designated_station_id
        )


def _unit(latlon: np.ndarray) -> np.ndarray:
    """Lat/lon rows (degrees) as points on the unit sphere."""
    lat, lon = np.radians(latlon[:, 0]), np.radians(latlon[:, 1])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


EMPTY_REFERENCE = IntakeReference(VehicleRegistry(), ())
"""No registry, no stations: every plate gets the default contract, parts are at hand."""


def load_reference(*, db_session: Session) -> IntakeReference:
    """The registry and stations as the database holds them (one read of three tables)."""
    stations = tuple(
        station_from_row(r) for r in db_session.scalars(select(m.Station).order_by(m.Station.id))
    )
    contracts = list(
        db_session.scalars(select(m.ServiceContractRow).order_by(m.ServiceContractRow.id))
    )
    vehicles = list(
        db_session.scalars(select(m.RegisteredVehicleRow).order_by(m.RegisteredVehicleRow.plate))
    )
    registry = registry_from_rows(contracts, vehicles, (s.id for s in stations))
    return IntakeReference(registry, stations)


class ReferenceCache:
    """One :class:`IntakeReference` per app, loaded on first use (the app warms it at start)."""

    def __init__(self, load: Callable[[], IntakeReference]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: IntakeReference | None = None

    def get(self) -> IntakeReference:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = self._load()
            return self._value

    def invalidate(self) -> None:
        """Forget the loaded reference (after a seed in this process)."""
        with self._lock:
            self._value = None
