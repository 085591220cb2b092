"""Synthetic dispatch batches on a network (seeded, reproducible): the tests' road-dispatch
workload and the input of ``rescue bench dispatch`` (``benchmarks/dispatch.py``, which does
the timing). Nothing here measures anything.

Vans: the network's own vans, topped up to ``n_vans`` with extra vans at random stations (mix:
55% heavy service, 20% light service, 15% wrecker, 10% flatbed). 75% are free at home, 18% are
finishing a job up to 60 km from home (free in 10-120 min), 7% are off shift.
Requests: breakdowns near population-weighted prefecture seats (up to ~80 km away), vehicle
classes 40% tractor, 25% rigid, 15% light truck, 10% van, 10% car; 12% need a tow; priority
from a random fault grade and the class (:func:`dispatch.triage.priority_for`).
"""

from __future__ import annotations

import numpy as np

from dispatch.triage import priority_for
from dispatch.vans import OpenRequest, VanState
from fleet.geography import prefecture_population, prefecture_seats
from fleet.model import FaultGrade, GeoPoint, RescueVan, VanCapability, VehicleClass
from fleet.network import Network

_CAPS = (
    VanCapability.HEAVY_SERVICE,
    VanCapability.LIGHT_SERVICE,
    VanCapability.WRECKER,
    VanCapability.FLATBED,
)
_CAP_P = (0.55, 0.20, 0.15, 0.10)
_CLASSES = tuple(VehicleClass)
_CLASS_P = {
    VehicleClass.TRACTOR: 0.40,
    VehicleClass.RIGID_TRUCK: 0.25,
    VehicleClass.LIGHT_TRUCK: 0.15,
    VehicleClass.VAN: 0.10,
    VehicleClass.CAR: 0.10,
}
_GRADES = (FaultGrade.MINOR, FaultGrade.MAJOR, FaultGrade.CRITICAL)


def _offset(rng: np.random.Generator, lat: float, lon: float, max_km: float) -> GeoPoint:
    d = max_km * np.sqrt(rng.random())
    bearing = rng.random() * 2 * np.pi
    dlat = d * np.cos(bearing) / 111.2
    dlon = d * np.sin(bearing) / (111.2 * max(np.cos(np.radians(lat)), 0.2))
    return GeoPoint(float(np.clip(lat + dlat, -90, 90)), float(np.clip(lon + dlon, -180, 180)))


def synthetic_vans(network: Network, n_vans: int, rng: np.random.Generator) -> list[VanState]:
    """``n_vans`` van states: the network's vans, topped up at random stations, in the mix of
    availability above."""
    vans = list(network.vans)
    stations = network.stations
    k = 0
    while len(vans) < n_vans:
        s = stations[int(rng.integers(len(stations)))]
        cap = _CAPS[int(rng.choice(len(_CAPS), p=_CAP_P))]
        k += 1
        vans.append(RescueVan(id=f"VX-{k:05d}", station_id=s.id, capability=cap))
    vans = vans[:n_vans]
    states = []
    for v in vans:
        home = network.station_by_id[v.station_id].location
        u = rng.random()
        if u < 0.75:
            states.append(VanState(van=v, home=home))
        elif u < 0.93:
            states.append(
                VanState(
                    van=v,
                    home=home,
                    position=_offset(rng, home.lat, home.lon, 60.0),
                    free_in_minutes=float(rng.uniform(10, 120)),
                )
            )
        else:
            states.append(VanState(van=v, home=home, on_shift=False))
    return states


def synthetic_requests(n_requests: int, rng: np.random.Generator) -> list[OpenRequest]:
    """``n_requests`` open requests near population-weighted prefecture seats."""
    seats = prefecture_seats()
    pop = prefecture_population()
    w = np.array([pop.get(s.adcode, 0.0) for s in seats], dtype=float) + 1.0
    w /= w.sum()
    class_p = np.array([_CLASS_P[c] for c in _CLASSES])
    out = []
    for i in range(n_requests):
        seat = seats[int(rng.choice(len(seats), p=w))]
        assert seat.lat is not None
        assert seat.lon is not None
        vc = _CLASSES[int(rng.choice(len(_CLASSES), p=class_p))]
        grade = _GRADES[int(rng.choice(3, p=(0.5, 0.4, 0.1)))]
        out.append(
            OpenRequest(
                id=f"R{i:05d}",
                location=_offset(rng, seat.lat, seat.lon, 80.0),
                vehicle_class=vc,
                needs_tow=bool(rng.random() < 0.12),
                priority=priority_for(grade, vc),
                waited_minutes=float(rng.uniform(0, 30)),
            )
        )
    return out
