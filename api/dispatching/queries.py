"""The dispatch cycle's queries: what is waiting, what is free, and the row locks of the write.

Every query orders by id (or by age, then id) so that snapshots are deterministic and locks
are always taken in the same order (no deadlocks between concurrent cycles, overrides and
cancellations, which lock the request first)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.partners.service import OfferKind, OfferStatus, held_requests, trucks_on_offer
from dispatch.lifecycle import (
    REPLACEMENT_ELIGIBLE,
    VAN_AT_BREAKDOWN,
    VAN_ON_ITS_WAY,
    RequestStatus,
)
from fleet import VanStatus

FREE_VAN_STATUSES = frozenset({VanStatus.AVAILABLE.value, VanStatus.RETURNING.value})
"""Van statuses the cycle may send (a returning van is free to take the next job)."""


class SnapshotScope(Protocol):
    """The part of the network one cycle decides (a dispatch domain of
    :mod:`api.dispatching.regions`): its waiting requests, the jobs it may re-plan, the vans
    it may send (free, and soon free at a breakdown), its truck requests and the trucks it may
    book, each read by a query filtered to the domain."""

    def open_request_rows(self, db_session: Session) -> Sequence[WaitingRequest]: ...

    def replannable_rows(
        self, db_session: Session, *, not_before: dt.datetime
    ) -> Sequence[tuple[m.RescueRequest, m.VanAssignment, m.Van, m.Station]]: ...

    def free_van_rows(self, db_session: Session) -> Sequence[tuple[m.Van, m.Station]]: ...

    def soon_free_van_rows(
        self, db_session: Session, *, free_by: dt.datetime
    ) -> Sequence[tuple[m.Van, m.Station, m.RescueRequest]]: ...

    def replacement_request_rows(self, db_session: Session) -> Sequence[m.RescueRequest]: ...

    def free_truck_rows(self, db_session: Session) -> Sequence[m.ReplacementTruck]: ...


def _waiting_for_a_van() -> list[Any]:
    with_van = select(m.VanAssignment.request_id).where(m.VanAssignment.active.is_(True))
    return [
        m.RescueRequest.status == RequestStatus.RECEIVED.value,
        m.RescueRequest.id.not_in(with_van),
        m.RescueRequest.id.not_in(held_requests(OfferKind.RESCUE)),
    ]


class WaitingRequest(NamedTuple):
    """The columns of a waiting request that a cycle uses (the van matching's
    :class:`dispatch.OpenRequest` and the partner rescue job), read as plain columns: building
    ORM objects for a storm's ten thousand waiting requests cost more than the query."""

    id: str
    lat: float
    lon: float
    province_adcode: str | None
    vehicle_class: str
    needs_tow: bool
    priority: float
    designated_station_id: str | None
    created_at: dt.datetime
    fault_code: str | None


def open_request_rows(
    db_session: Session, provinces: frozenset[str] | None = None
) -> list[WaitingRequest]:
    """Requests waiting for a van (received, no active assignment, no partner rescue offered
    or accepted), oldest first; only those in ``provinces`` (adcodes) when given."""
    r = m.RescueRequest
    stmt = select(*(getattr(r, name) for name in WaitingRequest._fields)).where(
        *_waiting_for_a_van()
    )
    if provinces is not None:
        stmt = stmt.where(r.province_adcode.in_(sorted(provinces)))
    rows = db_session.execute(stmt.order_by(r.created_at, r.id))
    return [WaitingRequest._make(row) for row in rows]


def _replannable(not_before: dt.datetime) -> list[Any]:
    va = m.VanAssignment
    return [
        va.active.is_(True),
        va.queued.is_(False),
        va.eta_at > not_before,
        m.RescueRequest.status.in_([s.value for s in VAN_ON_ITS_WAY]),
    ]


def replannable_rows(
    db_session: Session,
    *,
    not_before: dt.datetime,
    provinces: frozenset[str] | None = None,
    ids: Collection[str] | None = None,
) -> Sequence[tuple[m.RescueRequest, m.VanAssignment, m.Van, m.Station]]:
    """Jobs the re-planning may still move: the van holds the request (current job, not
    queued), has not reached it, and is not due before ``not_before`` (a van close to arrival
    is never moved). With the van and its home station (in ``provinces`` when given), by
    request id (of ``ids`` when given)."""
    if ids is not None and not ids:
        return []
    va = m.VanAssignment
    stmt = (
        select(m.RescueRequest, va, m.Van, m.Station)
        .join(va, va.request_id == m.RescueRequest.id)
        .join(m.Van, m.Van.id == va.van_id)
        .join(m.Station, m.Station.id == m.Van.station_id)
        .where(*_replannable(not_before), *_of_stations(provinces, None))
    )
    if ids is not None:
        stmt = stmt.where(m.RescueRequest.id.in_(sorted(ids)))
    rows = db_session.execute(stmt.order_by(m.RescueRequest.id)).all()
    return [(r, a, v, s) for r, a, v, s in rows]


def replannable_places(
    db_session: Session, *, not_before: dt.datetime, provinces: frozenset[str] | None = None
) -> list[tuple[str, float, float, str | None, str]]:
    """``(request id, lat, lon, province, van's home province)`` of the jobs
    :func:`replannable_rows` returns, as plain columns (to choose which to read whole)."""
    r, va = m.RescueRequest, m.VanAssignment
    stmt = (
        select(r.id, r.lat, r.lon, r.province_adcode, m.Station.province_adcode)
        .join(va, va.request_id == r.id)
        .join(m.Van, m.Van.id == va.van_id)
        .join(m.Station, m.Station.id == m.Van.station_id)
        .where(*_replannable(not_before), *_of_stations(provinces, None))
        .order_by(r.id)
    )
    return [(i, lat, lon, p, sp) for i, lat, lon, p, sp in db_session.execute(stmt)]


def soon_free_van_rows(
    db_session: Session,
    *,
    free_by: dt.datetime,
    provinces: frozenset[str] | None = None,
    station_ids: Collection[str] | None = None,
) -> Sequence[tuple[m.Van, m.Station, m.RescueRequest]]:
    """Vans at a breakdown (on site or towing) expected free by ``free_by`` and without a
    queued next job, with their home station (in ``provinces`` and of ``station_ids`` when
    given) and their current request."""
    if station_ids is not None and not station_ids:
        return []
    va = m.VanAssignment
    queued = select(va.van_id).where(va.active.is_(True), va.queued.is_(True))
    rows = db_session.execute(
        select(m.Van, m.Station, m.RescueRequest)
        .join(va, va.van_id == m.Van.id)
        .join(m.RescueRequest, m.RescueRequest.id == va.request_id)
        .join(m.Station, m.Station.id == m.Van.station_id)
        .where(
            va.active.is_(True),
            va.queued.is_(False),
            m.RescueRequest.status.in_([s.value for s in VAN_AT_BREAKDOWN]),
            m.Van.busy_until.is_not(None),
            m.Van.busy_until <= free_by,
            m.Van.id.not_in(queued),
            *_of_stations(provinces, station_ids),
        )
        .order_by(m.Van.id)
    ).all()
    return [(v, s, r) for v, s, r in rows]


def free_van_rows(
    db_session: Session,
    provinces: frozenset[str] | None = None,
    *,
    station_ids: Collection[str] | None = None,
) -> Sequence[tuple[m.Van, m.Station]]:
    """Vans without an active assignment, available or returning, with their home station
    (in ``provinces`` and of ``station_ids`` when given)."""
    if station_ids is not None and not station_ids:
        return []
    return _free_vans(db_session, *_of_stations(provinces, station_ids))


def _free_vans(db_session: Session, *where: Any) -> list[tuple[m.Van, m.Station]]:
    """Free vans (no active assignment, available or returning) with their home station,
    joined as ``m.Station``, meeting ``where``; by van id."""
    busy_vans = select(m.VanAssignment.van_id).where(m.VanAssignment.active.is_(True))
    stmt = (
        select(m.Van, m.Station)
        .join(m.Station, m.Van.station_id == m.Station.id)
        .where(m.Van.status.in_(FREE_VAN_STATUSES), m.Van.id.not_in(busy_vans), *where)
        .order_by(m.Van.id)
    )
    return [(van, station) for van, station in db_session.execute(stmt).all()]


def busy_cover_rows(db_session: Session) -> Sequence[tuple[float, float, str, float]]:
    """``(lat, lon, capability, largest radius)`` of the stations' vans at work (an active
    assignment), one row per station and capability (:class:`dispatch.BusyCover`)."""
    working = select(m.VanAssignment.van_id).where(m.VanAssignment.active.is_(True))
    s, v = m.Station, m.Van
    stmt = (
        select(s.lat, s.lon, v.capability, func.max(v.service_radius_km))
        .join(s, v.station_id == s.id)
        .where(v.id.in_(working))
        .group_by(s.id, s.lat, s.lon, v.capability)
        .order_by(s.id, v.capability)
    )
    return [(lat, lon, cap, radius) for lat, lon, cap, radius in db_session.execute(stmt)]


def free_vans_away(
    db_session: Session,
    *,
    not_provinces: frozenset[str] | None = None,
    not_station_ids: Collection[str] | None = None,
) -> Sequence[tuple[m.Van, m.Station]]:
    """Free vans (as :func:`free_van_rows`) whose last position is away from their home
    station (by more than ~0.45 km in latitude or longitude: a superset of the vans
    :mod:`api.dispatching.posts` may find posted elsewhere), whose home is not in
    ``not_provinces`` / ``not_station_ids``: the vans another domain may have to read."""
    v, s = m.Van, m.Station
    where = [
        v.lat.is_not(None),
        v.lon.is_not(None),
        (func.abs(v.lat - s.lat) > AWAY_DEG) | (func.abs(v.lon - s.lon) > AWAY_DEG),
    ]
    if not_provinces is not None:
        where.append(s.province_adcode.not_in(sorted(not_provinces)))
    if not_station_ids is not None:
        where.append(v.station_id.not_in(sorted(not_station_ids)))
    return _free_vans(db_session, *where)


AWAY_DEG = 0.004
"""Degrees of latitude or longitude a van's position must be off its home station's before
:func:`free_vans_away` returns it (0.5 km is >= 0.0045 degrees of either)."""


def _of_stations(
    provinces: frozenset[str] | None, station_ids: Collection[str] | None
) -> list[Any]:
    """Conditions on a van's home station (joined as ``m.Station``): in ``provinces``, one of
    ``station_ids``."""
    where = []
    if provinces is not None:
        where.append(m.Station.province_adcode.in_(sorted(provinces)))
    if station_ids is not None:
        where.append(m.Van.station_id.in_(sorted(station_ids)))
    return where


def replacement_request_rows(
    db_session: Session,
    provinces: frozenset[str] | None = None,
    *,
    exclude_provinces: frozenset[str] | None = None,
) -> Sequence[m.RescueRequest]:
    """Requests that need a truck, carry cargo, are still eligible and have no booking and no
    truck offer waiting for an answer (in ``provinces`` and not in ``exclude_provinces``
    when given; a request without a province is in no province)."""
    booked = select(m.ReplacementBooking.request_id).where(m.ReplacementBooking.active.is_(True))
    stmt = select(m.RescueRequest).where(
        m.RescueRequest.needs_replacement.is_(True),
        m.RescueRequest.status.in_([s.value for s in REPLACEMENT_ELIGIBLE]),
        m.RescueRequest.cargo_weight_t.is_not(None),
        m.RescueRequest.cargo_destination_lat.is_not(None),
        m.RescueRequest.id.not_in(booked),
        m.RescueRequest.id.not_in(held_requests(OfferKind.TRUCK)),
    )
    if provinces is not None:
        stmt = stmt.where(m.RescueRequest.province_adcode.in_(sorted(provinces)))
    if exclude_provinces:
        stmt = stmt.where(
            m.RescueRequest.province_adcode.is_(None)
            | m.RescueRequest.province_adcode.not_in(sorted(exclude_provinces))
        )
    return db_session.scalars(stmt.order_by(m.RescueRequest.created_at, m.RescueRequest.id)).all()


def free_truck_rows(
    db_session: Session,
    provinces: frozenset[str] | None = None,
    *,
    ids: Collection[str] | None = None,
) -> Sequence[m.ReplacementTruck]:
    """Available trucks without an active booking or an open offer (whose depot is in
    ``provinces`` when given: a county adcode's first two digits are its province's; with
    ``ids`` when given)."""
    busy_trucks = select(m.ReplacementBooking.truck_id).where(m.ReplacementBooking.active.is_(True))
    stmt = select(m.ReplacementTruck).where(
        m.ReplacementTruck.status == "available",
        m.ReplacementTruck.id.not_in(busy_trucks),
        m.ReplacementTruck.id.not_in(trucks_on_offer()),
    )
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(m.ReplacementTruck.id.in_(sorted(ids)))
    rows = db_session.scalars(stmt.order_by(m.ReplacementTruck.id)).all()
    if provinces is None:
        return rows
    return [t for t in rows if province_of_adcode(t.depot_adcode) in provinces]


def province_of_adcode(adcode: str) -> str:
    """The province adcode of any mainland adcode (``370102`` -> ``370000``)."""
    return adcode[:2] + "0000"


def partner_rows(db_session: Session) -> Sequence[m.Partner]:
    return db_session.scalars(select(m.Partner)).all()


def rescue_provider_rows(db_session: Session) -> Sequence[m.PartnerProvider]:
    return db_session.scalars(select(m.PartnerProvider).order_by(m.PartnerProvider.id)).all()


_Row = TypeVar("_Row", m.RescueRequest, m.Van, m.ReplacementTruck, m.PartnerProvider)


def lock_rows(db_session: Session, model: type[_Row], ids: Sequence[str]) -> dict[str, _Row]:
    """Fresh copies of the rows with ``ids``, locked in id order (a fixed order everywhere
    avoids deadlocks between concurrent cycles, overrides and cancellations)."""
    if not ids:
        return {}
    stmt = (
        select(model)
        .where(model.id.in_(ids))
        .order_by(model.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in db_session.scalars(stmt)}


def active_assignments_touching(
    db_session: Session, *, request_ids: Sequence[str], van_ids: Sequence[str]
) -> list[m.VanAssignment]:
    """Active assignments (current and queued) of these requests or these vans."""
    va = m.VanAssignment
    stmt = select(va).where(
        va.active.is_(True), va.request_id.in_(request_ids) | va.van_id.in_(van_ids)
    )
    return list(db_session.scalars(stmt.order_by(va.id)))


def active_values(db_session: Session, column: Any, active: Any, values: Sequence[str]) -> set[str]:
    """Which of ``values`` appear in ``column`` on an active assignment/booking row."""
    stmt = select(column).where(active.is_(True), column.in_(values))
    return set(db_session.scalars(stmt))


def open_offer_values(
    db_session: Session,
    column: Any,
    values: Sequence[str],
    *,
    kind: OfferKind | None = None,
    accepted: bool = False,
) -> set[str]:
    """Which of ``values`` appear in ``column`` on an open (or, with ``accepted``, an
    accepted) partner offer, of ``kind`` when given."""
    statuses = [OfferStatus.OFFERED.value] + ([OfferStatus.ACCEPTED.value] if accepted else [])
    stmt = select(column).where(m.PartnerOffer.status.in_(statuses), column.in_(values))
    if kind is not None:
        stmt = stmt.where(m.PartnerOffer.kind == kind.value)
    return {v for v in db_session.scalars(stmt) if v is not None}
