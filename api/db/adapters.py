"""Between database rows and the pure :mod:`fleet` dataclasses (the only place that knows both)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from fleet import (
    ContractRates,
    GeoPoint,
    Network,
    OpeningHours,
    PartnerCompany,
    ReplacementTruck,
    RescueVan,
    ServiceStation,
    StationGrade,
    TruckStatus,
    TruckType,
    VanCapability,
    VanStatus,
    load_fault_catalogue,
)


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
