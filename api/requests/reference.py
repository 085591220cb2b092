"""What the intake needs from the network, held in memory: the vehicle registry and the
stations (for the workshop a vehicle would go to).

Both change only when a network is seeded, and the intake's hot path must not touch the
database, so each app loads them once (at start-up) into an :class:`IntakeReference`; a
re-seed by another process needs a restart of the server to be seen (``rescue seed``
refuses over an existing network unless ``--reset``, which is a maintenance step anyway).
The few nearest capable stations come from a KD-tree on unit-sphere points per vehicle class
(chord order is great-circle order, so they are the same stations a full great-circle pass
would give, at a fraction of its cost on the intake's hot path); then
:func:`dispatch.triage.choose_workshop` decides among them, so the rule stays the pure one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.adapters import registry_from_rows, station_from_row
from dispatch.triage import WorkshopChoice, choose_workshop, station_can_repair
from fleet import GeoPoint, ServiceStation, VehicleClass
from fleet.contracts import VehicleRegistry
from routing import haversine_km

NEAREST_WORKSHOP_CANDIDATES = 8
"""Stations handed to ``choose_workshop`` after the vectorised pre-selection (ties and the
designated station are decided there)."""


def great_circle_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle km (the same formula and radius as :func:`routing.haversine_km`)."""
    return float(haversine_km(np.array([[a.lat, a.lon]]), np.array([[b.lat, b.lon]]))[0, 0])


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
        idx, latlon = self._capable[vehicle_class]
        pool: list[ServiceStation] = []
        km_to: dict[GeoPoint, float] = {}
        if designated_station_id is not None:
            station = self.station_by_id.get(designated_station_id)
            if station is None:
                raise ValueError(f"no station {designated_station_id!r}")
            pool.append(station)
        if len(idx):
            here = np.array([[location.lat, location.lon]])
            k = min(NEAREST_WORKSHOP_CANDIDATES, len(idx))
            _, found = self._trees[vehicle_class].query(_unit(here)[0], k=k)
            pick = np.atleast_1d(found)
            km = haversine_km(here, latlon[pick])[0]
            nearest = [self.stations[int(i)] for i in idx[pick]]
            pool.extend(nearest)
            if distance_km is great_circle_km:  # reuse the vectorised figures
                km_to = {s.location: float(d) for s, d in zip(nearest, km, strict=True)}
        if not pool:
            return None

        def measured_km(a: GeoPoint, b: GeoPoint) -> float:
            known = km_to.get(b)
            return known if known is not None else distance_km(a, b)

        return choose_workshop(
            pool, location, vehicle_class, measured_km, designated_station_id=designated_station_id
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
