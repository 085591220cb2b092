"""Service contracts and the vehicle registry: who gets a replacement truck, and when.

A customer's contract sets how long the vehicle may be off the road before the cargo goes on
in a replacement truck (``threshold_hours``: 8 h, 24 h, 48 h ...) and how sure the triage must
be that the repair overruns it before a truck is booked at intake (``booking_probability``).
The registry maps a plate to its vehicle class, designated service station and contract, so a
request from a registered plate needs none of them typed in; unknown plates get the default
contract.

Both are validated when built, all or nothing: an entry with an unknown station or contract,
a threshold <= 0 or a probability outside (0, 1] raises a ``RegistryError`` naming the entry,
and no registry exists afterwards (a merge returns a new registry or raises, leaving the old
one as it was).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fleet.model import DEFAULT_REPLACEMENT_THRESHOLD_HOURS, VehicleClass

DEFAULT_BOOKING_PROBABILITY = 0.5
"""Book a replacement at intake when an overrun is at least as likely as not.

Why 0.5: a truck booked at intake and not needed is released at the diagnosis (its cost is
the partner's wasted call-out, F); a truck not booked at intake although needed is booked at
the diagnosis, hours later (its cost is that delay for the cargo, D). Booking pays when
p * D >= (1 - p) * F, i.e. p >= F / (F + D); with no data on either, F = D gives 0.5. It is
also the value at which the decision after a diagnosis reduces to "the technician's figure
reaches the threshold". Contracts whose cargo is dearer to delay set a lower value."""

DEFAULT_CONTRACT_ID = "standard"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


class RegistryError(ValueError):
    """A contract or registered vehicle that cannot be accepted; the message names it."""


@dataclass(frozen=True, slots=True)
class ServiceContract:
    """What a customer has bought: the replacement threshold and the booking policy."""

    id: str
    name: str
    threshold_hours: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS
    """The vehicle must be back on the road within this many hours of the breakdown."""
    booking_probability: float = DEFAULT_BOOKING_PROBABILITY
    """Book at intake when P(not back within ``threshold_hours``) reaches this, in (0, 1]."""
    downtime_cost_per_hour_cny: float | None = None
    """What an hour off the road costs the customer, when known (for planners' reports)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise RegistryError(f"contract id must be a non-empty string, got {self.id!r}")
        t = self.threshold_hours
        if not _is_number(t) or not math.isfinite(t) or t <= 0:
            raise RegistryError(
                f"contract {self.id}: threshold_hours must be a finite number > 0, got {t!r}"
            )
        p = self.booking_probability
        if not _is_number(p) or not 0.0 < p <= 1.0:
            raise RegistryError(
                f"contract {self.id}: booking_probability must be in (0, 1], got {p!r}"
            )
        c = self.downtime_cost_per_hour_cny
        if c is not None and (not _is_number(c) or not math.isfinite(c) or c < 0):
            raise RegistryError(
                f"contract {self.id}: downtime_cost_per_hour_cny must be >= 0, got {c!r}"
            )


DEFAULT_CONTRACT = ServiceContract(id=DEFAULT_CONTRACT_ID, name="standard 24 h")
"""The contract of unknown plates when no registry says otherwise."""


def normalise_plate(plate: str) -> str:
    """The registry key of a plate: NFKC (full-width to ASCII), upper case, without spaces,
    hyphens and the middle dot, so that "鲁A·12345", "鲁a 12345" and "鲁Ａ12345" match."""
    if not isinstance(plate, str):
        raise RegistryError(f"plate must be a string, got {plate!r}")
    text = unicodedata.normalize("NFKC", plate).upper()
    return "".join(ch for ch in text if ch not in _PLATE_SEPARATORS and not ch.isspace())


_PLATE_SEPARATORS = frozenset("-·・.")


@dataclass(frozen=True, slots=True)
class RegisteredVehicle:
    """A customer vehicle known to the network. ``plate`` is stored normalised."""

    plate: str
    vehicle_class: VehicleClass
    designated_station_id: str | None = None
    contract_id: str | None = None
    """``None`` = the registry's default contract."""

    def __post_init__(self) -> None:
        key = normalise_plate(self.plate)
        if not key:
            raise RegistryError(f"vehicle plate must not be empty, got {self.plate!r}")
        object.__setattr__(self, "plate", key)
        try:
            object.__setattr__(self, "vehicle_class", VehicleClass(self.vehicle_class))
        except ValueError:
            raise RegistryError(
                f"vehicle {key}: unknown vehicle_class {self.vehicle_class!r}; known: "
                f"{', '.join(c.value for c in VehicleClass)}"
            ) from None


@dataclass(frozen=True, slots=True)
class VehicleTerms:
    """What a request from ``plate`` gets: the registry's entry or the defaults."""

    plate: str
    registered: bool
    vehicle_class: VehicleClass | None
    designated_station_id: str | None
    contract: ServiceContract


@dataclass(frozen=True)
class VehicleRegistry:
    """Contracts and registered vehicles, checked against the network's station ids."""

    contracts: tuple[ServiceContract, ...] = (DEFAULT_CONTRACT,)
    vehicles: tuple[RegisteredVehicle, ...] = ()
    station_ids: frozenset[str] = field(default_factory=frozenset)
    """Ids of the network's stations; a designated station must be one of them."""
    default_contract_id: str = DEFAULT_CONTRACT_ID

    def __post_init__(self) -> None:
        object.__setattr__(self, "contracts", tuple(self.contracts))
        object.__setattr__(self, "vehicles", tuple(self.vehicles))
        object.__setattr__(self, "station_ids", frozenset(self.station_ids))
        _check_unique("contract", (c.id for c in self.contracts))
        _check_unique("vehicle plate", (v.plate for v in self.vehicles))
        contract_ids = {c.id for c in self.contracts}
        if self.default_contract_id not in contract_ids:
            raise RegistryError(
                f"default contract {self.default_contract_id!r} is not one of the contracts "
                f"({', '.join(sorted(contract_ids)) or 'none'})"
            )
        for v in self.vehicles:
            s = v.designated_station_id
            if s is not None and s not in self.station_ids:
                raise RegistryError(f"vehicle {v.plate}: designated station {s!r} does not exist")
            if v.contract_id is not None and v.contract_id not in contract_ids:
                raise RegistryError(f"vehicle {v.plate}: contract {v.contract_id!r} does not exist")

    @cached_property
    def contract_by_id(self) -> dict[str, ServiceContract]:
        return {c.id: c for c in self.contracts}

    @cached_property
    def vehicle_by_plate(self) -> dict[str, RegisteredVehicle]:
        return {v.plate: v for v in self.vehicles}

    @property
    def default_contract(self) -> ServiceContract:
        return self.contract_by_id[self.default_contract_id]

    def __len__(self) -> int:
        return len(self.vehicles)

    def lookup(self, plate: str) -> RegisteredVehicle | None:
        """The registered vehicle with this plate (any spelling that normalises the same)."""
        return self.vehicle_by_plate.get(normalise_plate(plate))

    def terms_for(self, plate: str) -> VehicleTerms:
        """Designated station and contract of ``plate``; unknown plates get the defaults."""
        key = normalise_plate(plate)
        v = self.vehicle_by_plate.get(key)
        if v is None:
            return VehicleTerms(key, False, None, None, self.default_contract)
        contract = self.contract_by_id[v.contract_id or self.default_contract_id]
        return VehicleTerms(key, True, v.vehicle_class, v.designated_station_id, contract)

    def merged(
        self,
        *,
        contracts: Iterable[ServiceContract] = (),
        vehicles: Iterable[RegisteredVehicle] = (),
    ) -> VehicleRegistry:
        """A new registry with these entries added or replaced (same id / plate); raises
        ``RegistryError`` for any bad entry, in which case ``self`` is unchanged."""
        new_contracts = {c.id: c for c in self.contracts}
        new_contracts.update((c.id, c) for c in contracts)
        new_vehicles = {v.plate: v for v in self.vehicles}
        new_vehicles.update((v.plate, v) for v in vehicles)
        return VehicleRegistry(
            contracts=tuple(new_contracts.values()),
            vehicles=tuple(new_vehicles.values()),
            station_ids=self.station_ids,
            default_contract_id=self.default_contract_id,
        )

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        station_ids: Iterable[str],
        source: str = "registry",
    ) -> VehicleRegistry:
        """Build from a data-file shape: ``{"default_contract": id, "contracts": [{id, name,
        threshold_hours, booking_probability, downtime_cost_per_hour_cny?}], "vehicles":
        [{plate, vehicle_class, designated_station_id?, contract_id?}]}``. Errors name the
        ``source``, the list position and the entry."""
        known = {"default_contract", "contracts", "vehicles"}
        unknown = set(data) - known
        if unknown:
            raise RegistryError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        contracts = [
            _entry(source, "contracts", i, raw, _contract_from_mapping)
            for i, raw in enumerate(data.get("contracts", [DEFAULT_CONTRACT_MAPPING]))
        ]
        vehicles = [
            _entry(source, "vehicles", i, raw, _vehicle_from_mapping)
            for i, raw in enumerate(data.get("vehicles", []))
        ]
        try:
            return cls(
                contracts=tuple(contracts),
                vehicles=tuple(vehicles),
                station_ids=frozenset(station_ids),
                default_contract_id=str(data.get("default_contract", DEFAULT_CONTRACT_ID)),
            )
        except RegistryError as exc:
            raise RegistryError(f"{source}: {exc}") from None


DEFAULT_CONTRACT_MAPPING: Mapping[str, Any] = {
    "id": DEFAULT_CONTRACT.id,
    "name": DEFAULT_CONTRACT.name,
    "threshold_hours": DEFAULT_CONTRACT.threshold_hours,
    "booking_probability": DEFAULT_CONTRACT.booking_probability,
}


def _entry(source: str, what: str, i: int, raw: Any, build: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{source}: {what}[{i}] must be a table, got {raw!r}")
    label = raw.get("id") if what == "contracts" else raw.get("plate")
    try:
        return build(raw)
    except KeyError as exc:
        raise RegistryError(f"{source}: {what}[{i}] ({label}): missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{source}: {what}[{i}] ({label}): {exc}") from None


def _contract_from_mapping(raw: Mapping[str, Any]) -> ServiceContract:
    _no_unknown_keys(
        raw, {"id", "name", "threshold_hours", "booking_probability", "downtime_cost_per_hour_cny"}
    )
    return ServiceContract(
        id=raw["id"],
        name=str(raw.get("name", raw["id"])),
        threshold_hours=raw.get("threshold_hours", DEFAULT_REPLACEMENT_THRESHOLD_HOURS),
        booking_probability=raw.get("booking_probability", DEFAULT_BOOKING_PROBABILITY),
        downtime_cost_per_hour_cny=raw.get("downtime_cost_per_hour_cny"),
    )


def _vehicle_from_mapping(raw: Mapping[str, Any]) -> RegisteredVehicle:
    _no_unknown_keys(raw, {"plate", "vehicle_class", "designated_station_id", "contract_id"})
    return RegisteredVehicle(
        plate=raw["plate"],
        vehicle_class=raw["vehicle_class"],
        designated_station_id=raw.get("designated_station_id"),
        contract_id=raw.get("contract_id"),
    )


def _no_unknown_keys(raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(raw) - known
    if unknown:
        raise RegistryError(f"unknown key(s) {', '.join(sorted(unknown))}")


def _check_unique(what: str, ids: Iterable[str]) -> None:
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise RegistryError(f"duplicate {what}(s): {', '.join(sorted(dupes)[:10])}")
