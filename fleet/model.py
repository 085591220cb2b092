"""The after-sales network as plain, immutable values.

Everything here is a frozen dataclass or a string enum: no framework, no I/O. The API layer
maps database rows onto these types; the simulations build them directly. Validation that a
single value can do on its own (a latitude in range, a positive capacity) happens in
``__post_init__`` and raises ``ValueError`` naming the field; validation across values
(a van whose station does not exist) lives in :mod:`fleet.network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DEFAULT_SERVICE_RADIUS_KM = 150.0
"""A rescue van covers breakdowns within this road distance of its home station."""

DEFAULT_REPLACEMENT_THRESHOLD_HOURS = 24.0
"""A repair longer than this means the cargo goes on in a replacement truck."""


class StationGrade(StrEnum):
    """Service station grade: AAA stations are the full-service prefecture hubs."""

    AAA = "AAA"
    AA = "AA"
    A = "A"


class VehicleClass(StrEnum):
    """The customer's vehicle, as it matters for rescue: heavy classes need heavy kit."""

    TRACTOR = "tractor"
    RIGID_TRUCK = "rigid_truck"
    LIGHT_TRUCK = "light_truck"
    VAN = "van"
    CAR = "car"

    @property
    def is_heavy(self) -> bool:
        return self in HEAVY_VEHICLE_CLASSES


HEAVY_VEHICLE_CLASSES = frozenset({VehicleClass.TRACTOR, VehicleClass.RIGID_TRUCK})


class VanCapability(StrEnum):
    """What a rescue van can do."""

    LIGHT_SERVICE = "light_service_van"
    HEAVY_SERVICE = "heavy_service_van"
    WRECKER = "wrecker"
    FLATBED = "flatbed"

    def can_serve(self, vehicle_class: VehicleClass) -> bool:
        """Whether a van of this kind can repair ``vehicle_class`` on site."""
        return vehicle_class in _SERVES[self]

    def can_tow(self, vehicle_class: VehicleClass) -> bool:
        """Whether a van of this kind can tow or carry ``vehicle_class`` away."""
        return vehicle_class in _TOWS[self]

    def can_handle(self, vehicle_class: VehicleClass, *, needs_tow: bool) -> bool:
        if needs_tow:
            return self.can_tow(vehicle_class)
        return self.can_serve(vehicle_class)


_LIGHT = frozenset({VehicleClass.LIGHT_TRUCK, VehicleClass.VAN, VehicleClass.CAR})
_ALL = frozenset(VehicleClass)
_SERVES: dict[VanCapability, frozenset[VehicleClass]] = {
    VanCapability.LIGHT_SERVICE: _LIGHT,
    VanCapability.HEAVY_SERVICE: _ALL,
    VanCapability.WRECKER: _ALL,
    VanCapability.FLATBED: _LIGHT,
}
_TOWS: dict[VanCapability, frozenset[VehicleClass]] = {
    VanCapability.LIGHT_SERVICE: frozenset(),
    VanCapability.HEAVY_SERVICE: frozenset(),
    VanCapability.WRECKER: _ALL,
    VanCapability.FLATBED: _LIGHT,
}


class VanStatus(StrEnum):
    AVAILABLE = "available"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    TOWING = "towing"
    RETURNING = "returning"
    OFF_SHIFT = "off_shift"
    MAINTENANCE = "maintenance"


class TruckType(StrEnum):
    """Replacement truck types offered by partner logistics companies."""

    TRACTOR = "tractor"  # pulls the customer's semi-trailer on
    BOX_TRUCK = "box_truck"  # loose cargo is reloaded into it
    FLATBED = "flatbed"


class TruckStatus(StrEnum):
    AVAILABLE = "available"
    BOOKED = "booked"
    OUT_OF_SERVICE = "out_of_service"


class FaultCategory(StrEnum):
    TYRES = "tyres"
    ELECTRICAL = "electrical"
    ENGINE = "engine"
    FUEL = "fuel"
    BRAKES = "brakes"
    AIR_SYSTEM = "air_system"
    COOLING = "cooling"
    TRANSMISSION = "transmission"
    AFTERTREATMENT = "aftertreatment"
    ACCIDENT_DAMAGE = "accident_damage"
    OTHER = "other"


class FaultGrade(StrEnum):
    """How bad a fault is for the customer: drives priority, not the van choice."""

    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A WGS84 position in decimal degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        check_lat_lon(self.lat, self.lon)


def check_lat_lon(lat: float, lon: float, *, what: str = "") -> None:
    """Raise ``ValueError`` naming the coordinate when it is not a valid WGS84 value."""
    prefix = f"{what}: " if what else ""
    if not isinstance(lat, int | float) or math.isnan(lat) or not -90.0 <= lat <= 90.0:
        raise ValueError(f"{prefix}latitude {lat!r} is outside [-90, 90]")
    if not isinstance(lon, int | float) or math.isnan(lon) or not -180.0 <= lon <= 180.0:
        raise ValueError(f"{prefix}longitude {lon!r} is outside [-180, 180]")


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Daily opening hours in local time; ``open_hour == 0 and close_hour == 24`` is 24/7."""

    open_hour: int = 0
    close_hour: int = 24

    def __post_init__(self) -> None:
        if not 0 <= self.open_hour < self.close_hour <= 24:
            raise ValueError(
                f"opening hours {self.open_hour}-{self.close_hour} must satisfy "
                "0 <= open < close <= 24"
            )

    @property
    def always_open(self) -> bool:
        return self.open_hour == 0 and self.close_hour == 24

    def is_open(self, hour: float) -> bool:
        """Whether the station (and so its vans' shift) is open at local ``hour``."""
        return is_on_shift(self.open_hour, self.close_hour, hour)


@overload
def is_on_shift(open_hour: float, close_hour: float, hour_of_day: float) -> bool: ...
@overload
def is_on_shift(
    open_hour: NDArray[np.float64], close_hour: NDArray[np.float64], hour_of_day: float
) -> NDArray[np.bool_]: ...
def is_on_shift(open_hour: Any, close_hour: Any, hour_of_day: float) -> Any:
    """The van shift rule, in one place: a van works its station's opening hours, on duty
    from ``open_hour`` (inclusive) to ``close_hour`` (exclusive), local time; ``hour_of_day``
    may run past 24 (it is taken modulo 24). Scalars give a bool; numpy arrays of hours (one
    per van) give a boolean array, so the simulation asks for all vans at once."""
    hour = hour_of_day % 24
    return (open_hour <= hour) & (hour < close_hour)


@dataclass(frozen=True, slots=True)
class ServiceStation:
    id: str
    name: str
    grade: StationGrade
    location: GeoPoint
    adcode: str
    """County or prefecture adcode of the station's seat."""
    prefecture_adcode: str
    province_adcode: str
    heavy_duty_bay: bool = True
    towing: bool = False
    opening_hours: OpeningHours = field(default_factory=OpeningHours)
    """Also the shift of the station's vans."""
    parts_in_stock: frozenset[str] = frozenset()
    """Part codes held at the station (see the fault catalogue's parts)."""
    workshop_bays: int | None = None
    """Repair bays for towed-in vehicles; ``None`` = not tracked (the triage assumes no queue)."""

    def __post_init__(self) -> None:
        _require_id(self.id, "station id")
        b = self.workshop_bays
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b < 1):
            raise ValueError(f"station {self.id}: workshop_bays must be an integer >= 1, got {b!r}")


@dataclass(frozen=True, slots=True)
class RescueVan:
    id: str
    station_id: str
    capability: VanCapability
    service_radius_km: float = DEFAULT_SERVICE_RADIUS_KM
    status: VanStatus = VanStatus.AVAILABLE
    position: GeoPoint | None = None
    """Current position; ``None`` means at its home station."""

    def __post_init__(self) -> None:
        _require_id(self.id, "van id")
        r = self.service_radius_km
        if not isinstance(r, int | float) or math.isnan(r) or r <= 0:
            raise ValueError(f"van {self.id}: service_radius_km must be > 0, got {r!r}")


@dataclass(frozen=True, slots=True)
class ContractRates:
    """A partner's contract prices in CNY."""

    callout_fee_cny: float
    per_empty_km_cny: float
    per_loaded_km_cny: float

    def __post_init__(self) -> None:
        for name in ("callout_fee_cny", "per_empty_km_cny", "per_loaded_km_cny"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

    def trip_cost(self, empty_km: float, loaded_km: float) -> float:
        return (
            self.callout_fee_cny
            + self.per_empty_km_cny * empty_km
            + self.per_loaded_km_cny * loaded_km
        )


@dataclass(frozen=True, slots=True)
class PartnerCompany:
    id: str
    name: str
    provinces: frozenset[str]
    """Province adcodes the partner serves."""
    rates: ContractRates
    promised_response_minutes: float = 120.0

    def __post_init__(self) -> None:
        _require_id(self.id, "partner id")
        if not self.provinces:
            raise ValueError(f"partner {self.id}: provinces must not be empty")
        if self.promised_response_minutes <= 0:
            raise ValueError(
                f"partner {self.id}: promised_response_minutes must be > 0, "
                f"got {self.promised_response_minutes!r}"
            )

    def serves(self, province_adcode: str) -> bool:
        return province_adcode in self.provinces


@dataclass(frozen=True, slots=True)
class ReplacementTruck:
    id: str
    partner_id: str
    truck_type: TruckType
    capacity_t: float
    depot: GeoPoint
    depot_adcode: str
    status: TruckStatus = TruckStatus.AVAILABLE

    def __post_init__(self) -> None:
        _require_id(self.id, "truck id")
        c = self.capacity_t
        if not isinstance(c, int | float) or math.isnan(c) or c <= 0:
            raise ValueError(f"truck {self.id}: capacity_t must be > 0, got {c!r}")


@dataclass(frozen=True, slots=True)
class CustomerVehicle:
    """The customer's vehicle. Tractor customers have one designated service station."""

    plate: str
    vehicle_class: VehicleClass
    model: str = ""
    designated_station_id: str | None = None


def _require_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")


class RescueCapability(StrEnum):
    """What a partner rescue / tow provider can do."""

    HEAVY_TOW = "heavy_tow"
    TYRE = "tyre"
    MOBILE_MECHANIC = "mobile_mechanic"


@dataclass(frozen=True, slots=True)
class PartnerRescueProvider:
    """A partner rescue / tow service company: not an owned asset, so it is offered jobs and
    answers them. It covers a breakdown in one of ``provinces`` or within ``radius_km``
    (great-circle) of its base, for the faults its ``capabilities`` handle, up to
    ``capacity_jobs`` accepted jobs at once, at ``callout_fee_cny`` + ``per_km_cny`` per
    km from its base."""

    id: str
    partner_id: str
    name: str
    base: GeoPoint
    capabilities: frozenset[RescueCapability]
    promised_response_minutes: float
    callout_fee_cny: float
    per_km_cny: float
    capacity_jobs: int
    provinces: frozenset[str] = frozenset()
    radius_km: float = 0.0

    def __post_init__(self) -> None:
        _require_id(self.id, "partner provider id")
        _require_id(self.partner_id, f"partner provider {self.id}: partner_id")
        if not self.capabilities:
            raise ValueError(f"partner provider {self.id}: capabilities must not be empty")
        for name in ("promised_response_minutes",):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"partner provider {self.id}: {name} must be > 0, got {v!r}")
        for name in ("callout_fee_cny", "per_km_cny", "radius_km"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"partner provider {self.id}: {name} must be >= 0, got {v!r}")
        if not isinstance(self.capacity_jobs, int) or self.capacity_jobs < 1:
            raise ValueError(
                f"partner provider {self.id}: capacity_jobs must be an integer >= 1, "
                f"got {self.capacity_jobs!r}"
            )
        if not self.provinces and self.radius_km <= 0:
            raise ValueError(
                f"partner provider {self.id}: coverage needs provinces or a radius_km > 0"
            )
