"""Between database rows and the pure :mod:`fleet` / :mod:`dispatch` dataclasses (the only
place that knows both): the seeding rows, the network, and the dispatch cycle's snapshot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from dispatch import CargoKind, OpenRequest, ReplacementRequest, TruckState, VanState
from dispatch.lifecycle import RequestStatus
from fleet import (
    ContractRates,
    GeoPoint,
    Network,
    OpeningHours,
    PartnerCompany,
    PartnerRescueProvider,
    ReplacementTruck,
    RescueCapability,
    RescueVan,
    ServiceStation,
    StationGrade,
    TruckStatus,
    TruckType,
    VanCapability,
    VanStatus,
    VehicleClass,
    load_fault_catalogue,
)
from fleet.contracts import RegisteredVehicle, ServiceContract, VehicleRegistry
from fleet.geography import nearest_prefecture
from routing import Leg


def station_row(s: ServiceStation) -> m.Station:
    return m.Station(
        id=s.id,
        name=s.name,
        grade=s.grade.value,
        lat=s.location.lat,
        lon=s.location.lon,
        adcode=s.adcode,
        prefecture_adcode=s.prefecture_adcode,
        province_adcode=s.province_adcode,
        heavy_duty_bay=s.heavy_duty_bay,
        towing=s.towing,
        open_hour=s.opening_hours.open_hour,
        close_hour=s.opening_hours.close_hour,
        parts_in_stock=sorted(s.parts_in_stock),
    )


def contract_row(c: ServiceContract, *, is_default: bool) -> m.ServiceContractRow:
    return m.ServiceContractRow(
        id=c.id,
        name=c.name,
        threshold_hours=c.threshold_hours,
        booking_probability=c.booking_probability,
        downtime_cost_per_hour_cny=c.downtime_cost_per_hour_cny,
        is_default=is_default,
    )


def contract_from_row(r: m.ServiceContractRow) -> ServiceContract:
    return ServiceContract(
        id=r.id,
        name=r.name,
        threshold_hours=r.threshold_hours,
        booking_probability=r.booking_probability,
        downtime_cost_per_hour_cny=r.downtime_cost_per_hour_cny,
    )


def registered_vehicle_row(v: RegisteredVehicle) -> m.RegisteredVehicleRow:
    return m.RegisteredVehicleRow(
        plate=v.plate,
        vehicle_class=v.vehicle_class.value,
        designated_station_id=v.designated_station_id,
        contract_id=v.contract_id,
    )


def registry_rows(
    registry: VehicleRegistry,
) -> tuple[list[m.ServiceContractRow], list[m.RegisteredVehicleRow]]:
    """The rows of ``registry``: its contracts (one marked default), then its vehicles."""
    contracts = [
        contract_row(c, is_default=c.id == registry.default_contract_id) for c in registry.contracts
    ]
    return contracts, [registered_vehicle_row(v) for v in registry.vehicles]


def registry_from_rows(
    contracts: Sequence[m.ServiceContractRow],
    vehicles: Sequence[m.RegisteredVehicleRow],
    station_ids: Iterable[str],
) -> VehicleRegistry:
    """The registry the database holds; a database seeded before the registry existed has no
    contract rows and gets the default registry (standard contract, no vehicles)."""
    if not contracts:
        return VehicleRegistry(station_ids=frozenset(station_ids))
    default = next((c.id for c in contracts if c.is_default), contracts[0].id)
    return VehicleRegistry(
        contracts=tuple(contract_from_row(c) for c in contracts),
        vehicles=tuple(
            RegisteredVehicle(
                v.plate, VehicleClass(v.vehicle_class), v.designated_station_id, v.contract_id
            )
            for v in vehicles
        ),
        station_ids=frozenset(station_ids),
        default_contract_id=default,
    )


def van_row(v: RescueVan) -> m.Van:
    return m.Van(
        id=v.id,
        station_id=v.station_id,
        capability=v.capability.value,
        service_radius_km=v.service_radius_km,
        status=v.status.value,
        lat=v.position.lat if v.position else None,
        lon=v.position.lon if v.position else None,
    )


def partner_row(p: PartnerCompany) -> m.Partner:
    return m.Partner(
        id=p.id,
        name=p.name,
        provinces=sorted(p.provinces),
        callout_fee_cny=p.rates.callout_fee_cny,
        per_empty_km_cny=p.rates.per_empty_km_cny,
        per_loaded_km_cny=p.rates.per_loaded_km_cny,
        promised_response_minutes=p.promised_response_minutes,
    )


def truck_row(t: ReplacementTruck) -> m.ReplacementTruck:
    return m.ReplacementTruck(
        id=t.id,
        partner_id=t.partner_id,
        truck_type=t.truck_type.value,
        capacity_t=t.capacity_t,
        depot_lat=t.depot.lat,
        depot_lon=t.depot.lon,
        depot_adcode=t.depot_adcode,
        status=t.status.value,
    )


def station_from_row(r: m.Station) -> ServiceStation:
    return ServiceStation(
        id=r.id,
        name=r.name,
        grade=StationGrade(r.grade),
        location=GeoPoint(r.lat, r.lon),
        adcode=r.adcode,
        prefecture_adcode=r.prefecture_adcode,
        province_adcode=r.province_adcode,
        heavy_duty_bay=r.heavy_duty_bay,
        towing=r.towing,
        opening_hours=OpeningHours(r.open_hour, r.close_hour),
        parts_in_stock=frozenset(r.parts_in_stock),
    )


def van_from_row(r: m.Van) -> RescueVan:
    return RescueVan(
        id=r.id,
        station_id=r.station_id,
        capability=VanCapability(r.capability),
        service_radius_km=r.service_radius_km,
        status=VanStatus(r.status),
        position=GeoPoint(r.lat, r.lon) if r.lat is not None and r.lon is not None else None,
    )


def partner_from_row(r: m.Partner) -> PartnerCompany:
    return PartnerCompany(
        id=r.id,
        name=r.name,
        provinces=frozenset(r.provinces),
        rates=ContractRates(r.callout_fee_cny, r.per_empty_km_cny, r.per_loaded_km_cny),
        promised_response_minutes=r.promised_response_minutes,
    )


def truck_from_row(r: m.ReplacementTruck) -> ReplacementTruck:
    return ReplacementTruck(
        id=r.id,
        partner_id=r.partner_id,
        truck_type=TruckType(r.truck_type),
        capacity_t=r.capacity_t,
        depot=GeoPoint(r.depot_lat, r.depot_lon),
        depot_adcode=r.depot_adcode,
        status=TruckStatus(r.status),
    )


def load_network(session: Session) -> Network:
    """The network stored in the database, as the pure dataclasses dispatch works on."""
    meta = session.scalar(select(m.NetworkMeta))
    return Network(
        name=meta.name if meta else "empty",
        stations=tuple(
            station_from_row(r) for r in session.scalars(select(m.Station).order_by(m.Station.id))
        ),
        vans=tuple(van_from_row(r) for r in session.scalars(select(m.Van).order_by(m.Van.id))),
        partners=tuple(
            partner_from_row(r) for r in session.scalars(select(m.Partner).order_by(m.Partner.id))
        ),
        trucks=tuple(
            truck_from_row(r)
            for r in session.scalars(select(m.ReplacementTruck).order_by(m.ReplacementTruck.id))
        ),
        faults=load_fault_catalogue(),
    )


# -- the dispatch cycle's snapshot ----------------------------------------------------------


def default_cargo_kind(vehicle_class: str) -> CargoKind:
    """The cargo kind of a request that did not name one: a tractor pulls a semi-trailer,
    anything else carries pallets."""
    return CargoKind.SEMI_TRAILER if vehicle_class == VehicleClass.TRACTOR else CargoKind.PALLETISED


def _minutes_until(at: dt.datetime | None, now: dt.datetime) -> float:
    """Minutes from ``now`` until ``at`` (0 when it is past or unknown)."""
    if at is None or at <= now:
        return 0.0
    return (at - now).total_seconds() / 60.0


class WaitingRequestFields(Protocol):
    """What :func:`open_request_from_row` reads of a request: a :class:`models.RescueRequest`,
    or the plain columns the cycle reads for a storm of waiting requests
    (:class:`api.dispatching.queries.WaitingRequest`)."""

    @property
    def id(self) -> str: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def vehicle_class(self) -> str: ...
    @property
    def needs_tow(self) -> bool: ...
    @property
    def priority(self) -> float: ...
    @property
    def designated_station_id(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime: ...


def open_request_from_row(r: WaitingRequestFields, now: dt.datetime) -> OpenRequest:
    """A request waiting for a van, as the van matching sees it."""
    return OpenRequest(
        id=r.id,
        location=GeoPoint(r.lat, r.lon),
        vehicle_class=r.vehicle_class,  # type: ignore[arg-type]  # checked by OpenRequest
        needs_tow=r.needs_tow,
        priority=max(1.0, r.priority),
        designated_station_id=r.designated_station_id,
        waited_minutes=max(0.0, (now - r.created_at).total_seconds() / 60.0),
    )


def van_state_from_rows(
    van: m.Van,
    station: m.Station,
    now: dt.datetime,
    *,
    on_shift: bool,
    posted_at: m.Station | None = None,
) -> VanState:
    """A free van as the van matching sees it: timed from its last position (else its home
    station) once it is free (``busy_until``); its service radius is measured from
    ``posted_at`` (the station a dispatcher moved it up to, :mod:`api.dispatching.posts`),
    else from its home ``station``."""
    rescue_van = van_from_row(van)
    centre = posted_at if posted_at is not None else station
    return VanState(
        van=rescue_van,
        home=GeoPoint(centre.lat, centre.lon),
        position=rescue_van.position,
        free_in_minutes=_minutes_until(van.busy_until, now),
        on_shift=on_shift,
    )


def moving_van_state_from_rows(
    van: m.Van,
    station: m.Station,
    job: m.VanAssignment,
    now: dt.datetime,
    *,
    on_shift: bool,
    redirect_km: float | None,
) -> VanState:
    """A van on its way to its job, as the re-planning sees it: pinned to that job (its leg
    the live ETA, re-timed from its last position report), from its last reported position
    (else its home station), offered other breakdowns within ``redirect_km``."""
    rescue_van = van_from_row(van)
    leg = None
    if job.eta_at is not None and job.travel_km is not None:
        leg = Leg(job.travel_km, _minutes_until(job.eta_at, now))
    return VanState(
        van=rescue_van,
        home=GeoPoint(station.lat, station.lon),
        position=rescue_van.position,
        on_shift=on_shift,
        pinned_request_id=job.request_id,
        redirect_km=redirect_km,
        pinned_leg=leg,
    )


def soon_free_van_state_from_rows(
    van: m.Van, station: m.Station, job: m.RescueRequest, now: dt.datetime, *, on_shift: bool
) -> VanState:
    """A van still at a breakdown, as it will be when free (``busy_until``): at that
    breakdown, or at its home station (the workshop) once it has towed the vehicle there.
    Busy (``VanState.busy``): under the ``promise`` objective it is not given a request it
    would reach late; the request waits for a van free now (the cycle runs again soon)."""
    tows = job.needs_tow or job.status == RequestStatus.TOWING.value
    return VanState(
        van=van_from_row(van),
        home=GeoPoint(station.lat, station.lon),
        position=None if tows else GeoPoint(job.lat, job.lon),
        free_in_minutes=_minutes_until(van.busy_until, now),
        on_shift=on_shift,
        busy=True,
    )


def replacement_request_from_row(r: m.RescueRequest, now: dt.datetime) -> ReplacementRequest:
    """A request whose cargo needs a truck. Offshore requests (no province) take the nearest
    prefecture's province, so that some partner serves them."""
    deadline = None
    if r.cargo_deadline is not None:
        deadline = max(0.0, (r.cargo_deadline - now).total_seconds() / 60.0)
    return ReplacementRequest(
        id=r.id,
        location=GeoPoint(r.lat, r.lon),
        province_adcode=r.province_adcode or nearest_prefecture(r.lat, r.lon).province_adcode,
        cargo_weight_t=float(r.cargo_weight_t or 0.0),
        cargo_kind=r.cargo_kind or default_cargo_kind(r.vehicle_class),  # type: ignore[arg-type]
        destination=GeoPoint(r.cargo_destination_lat or 0.0, r.cargo_destination_lon or 0.0),
        deadline_minutes_from_now=deadline,
    )


def truck_state_from_row(t: m.ReplacementTruck, partner: PartnerCompany) -> TruckState:
    """An available truck with its partner's rates, at its last position (else its depot)."""
    position = GeoPoint(t.lat, t.lon) if t.lat is not None and t.lon is not None else None
    return TruckState(truck_from_row(t), partner, position=position)


def rescue_provider_from_row(r: m.PartnerProvider) -> PartnerRescueProvider:
    return PartnerRescueProvider(
        id=r.id,
        partner_id=r.partner_id,
        name=r.name,
        base=GeoPoint(r.base_lat, r.base_lon),
        capabilities=frozenset(RescueCapability(c) for c in r.capabilities),
        promised_response_minutes=r.promised_response_minutes,
        callout_fee_cny=r.callout_fee_cny,
        per_km_cny=r.per_km_cny,
        capacity_jobs=r.capacity_jobs,
        provinces=frozenset(r.provinces),
        radius_km=r.radius_km,
    )


def rescue_provider_row(p: PartnerRescueProvider) -> m.PartnerProvider:
    return m.PartnerProvider(
        id=p.id,
        partner_id=p.partner_id,
        name=p.name,
        provinces=sorted(p.provinces),
        base_lat=p.base.lat,
        base_lon=p.base.lon,
        radius_km=p.radius_km,
        capabilities=sorted(c.value for c in p.capabilities),
        promised_response_minutes=p.promised_response_minutes,
        callout_fee_cny=p.callout_fee_cny,
        per_km_cny=p.per_km_cny,
        capacity_jobs=p.capacity_jobs,
    )
