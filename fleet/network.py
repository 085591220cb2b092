"""A whole after-sales network: stations, vans, partners, trucks, partner rescue providers and
the fault catalogue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from fleet.contracts import VehicleRegistry
from fleet.faults import FaultCatalogue, load_fault_catalogue
from fleet.model import (
    PartnerCompany,
    PartnerRescueProvider,
    ReplacementTruck,
    RescueVan,
    ServiceStation,
)


class NetworkError(ValueError):
    """A network whose parts do not fit together; the message names the offending entry."""


@dataclass(frozen=True)
class Network:
    """An immutable network. Build it with :func:`fleet.demo.build_national_network`, from a
    scenario file (:func:`fleet.scenario.load_network`) or directly; it validates itself."""

    name: str
    stations: tuple[ServiceStation, ...]
    vans: tuple[RescueVan, ...]
    partners: tuple[PartnerCompany, ...] = ()
    trucks: tuple[ReplacementTruck, ...] = ()
    faults: FaultCatalogue = field(default_factory=load_fault_catalogue)
    registry: VehicleRegistry = field(default_factory=VehicleRegistry)
    """Contracts and registered vehicles (default: the standard contract, no vehicles)."""
    rescue_providers: tuple[PartnerRescueProvider, ...] = ()
    """Partner rescue / tow providers, each run by one of ``partners`` (offered jobs)."""

    def __post_init__(self) -> None:
        _check_unique("station", (s.id for s in self.stations))
        _check_unique("van", (v.id for v in self.vans))
        _check_unique("partner", (p.id for p in self.partners))
        _check_unique("truck", (t.id for t in self.trucks))
        station_ids = {s.id for s in self.stations}
        for van in self.vans:
            if van.station_id not in station_ids:
                raise NetworkError(f"van {van.id}: home station {van.station_id!r} does not exist")
        partner_ids = {p.id for p in self.partners}
        for truck in self.trucks:
            if truck.partner_id not in partner_ids:
                raise NetworkError(f"truck {truck.id}: partner {truck.partner_id!r} does not exist")
        _check_unique("rescue provider", (p.id for p in self.rescue_providers))
        for provider in self.rescue_providers:
            if provider.partner_id not in partner_ids:
                raise NetworkError(
                    f"rescue provider {provider.id}: partner {provider.partner_id!r} does not exist"
                )
        for vehicle in self.registry.vehicles:
            s = vehicle.designated_station_id
            if s is not None and s not in station_ids:
                raise NetworkError(
                    f"vehicle {vehicle.plate}: designated station {s!r} does not exist"
                )

    @cached_property
    def station_by_id(self) -> dict[str, ServiceStation]:
        return {s.id: s for s in self.stations}

    @cached_property
    def van_by_id(self) -> dict[str, RescueVan]:
        return {v.id: v for v in self.vans}

    @cached_property
    def partner_by_id(self) -> dict[str, PartnerCompany]:
        return {p.id: p for p in self.partners}

    @cached_property
    def truck_by_id(self) -> dict[str, ReplacementTruck]:
        return {t.id: t for t in self.trucks}

    def vans_at(self, station_id: str) -> list[RescueVan]:
        return [v for v in self.vans if v.station_id == station_id]

    def summary(self) -> dict[str, int]:
        """Counts a person checks first: stations by grade, vans, partners, trucks, rescue
        providers."""
        grades = Counter(s.grade.value for s in self.stations)
        return {
            "stations": len(self.stations),
            **{f"stations_{g}": n for g, n in sorted(grades.items())},
            "vans": len(self.vans),
            "partners": len(self.partners),
            "trucks": len(self.trucks),
            "rescue_providers": len(self.rescue_providers),
            "fault_types": len(self.faults),
        }


def _check_unique(what: str, ids: Iterable[str]) -> None:
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise NetworkError(f"duplicate {what} id(s): {', '.join(sorted(dupes)[:10])}")
