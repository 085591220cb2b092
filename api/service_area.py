"""Where service is available: a breakdown or a cargo destination outside it is refused at
intake (422) instead of being stored as a request nobody can ever serve.

The default network covers mainland China, so the area is the mainland province outlines
(``fleet/data/china_provinces.geojson``; Taiwan, Hong Kong and Macau are outside it). The test
goes through :func:`fleet.province_index.province_at` (about 10 us, one latitude band of
outline edges), so it costs little on the intake hot path. The outlines are simplified: a
point on a coastal road or an island can fall just outside them, so a point outside every
outline is still accepted when it is within :data:`NEAR_SEAT_KM` of a mainland county or
prefecture seat (a vectorised distance to some 2,900 seats, only on that rare path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from fleet.geography import county_seats, mainland_provinces, prefecture_seats
from fleet.province_index import province_at

NEAR_SEAT_KM = 25.0
"""A point outside the outlines but this close to a mainland seat is inside the area."""

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class ServiceArea:
    """The provinces served and how to tell a customer where service is available."""

    province_adcodes: frozenset[str]
    description: str
    seat_lat_rad: np.ndarray
    seat_lon_rad: np.ndarray

    def contains(self, lat: float, lon: float) -> bool:
        """True for a point inside a served province (or near one of its seats)."""
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return False
        adcode = province_at(lat, lon)
        if adcode is not None:
            return adcode in self.province_adcodes
        return self.near_seat_km(lat, lon) <= NEAR_SEAT_KM

    def near_seat_km(self, lat: float, lon: float) -> float:
        """Great-circle km to the nearest seat of the area."""
        la, lo = math.radians(lat), math.radians(lon)
        h = (
            np.sin((self.seat_lat_rad - la) / 2) ** 2
            + math.cos(la) * np.cos(self.seat_lat_rad) * np.sin((self.seat_lon_rad - lo) / 2) ** 2
        )
        return float(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.min(h))))

    @property
    def refusal(self) -> str:
        """The 422 message for a point outside (no coordinates echoed)."""
        return f"outside the service area: service is available in {self.description}"


@cache
def default_service_area() -> ServiceArea:
    """Mainland China (the default network's area; built once, about 10 ms)."""
    seats = [s for s in (*prefecture_seats(), *county_seats()) if s.lat is not None]
    return ServiceArea(
        province_adcodes=frozenset(p.adcode for p in mainland_provinces()),
        description="mainland China",
        seat_lat_rad=np.radians(np.array([s.lat for s in seats], dtype=float)),
        seat_lon_rad=np.radians(np.array([s.lon for s in seats], dtype=float)),
    )


def check_in_service_area(lat: float, lon: float) -> str | None:
    """Raise ``ValueError`` (pydantic turns it into a 422 naming the field) for a point
    outside the service area; else the adcode of its province (``None`` for a point outside
    the outlines that counts through a nearby seat), the same as ``province_at``, so that
    the intake need not look it up twice."""
    area = default_service_area()
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(area.refusal)
    adcode = province_at(lat, lon)
    if adcode is not None:
        if adcode not in area.province_adcodes:
            raise ValueError(area.refusal)
        return adcode
    if area.near_seat_km(lat, lon) > NEAR_SEAT_KM:
        raise ValueError(area.refusal)
    return None
