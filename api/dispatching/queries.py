"""The dispatch cycle's queries: what is waiting, what is free, and the row locks of the write.

Every query orders by id (or by age, then id) so that snapshots are deterministic and locks
are always taken in the same order (no deadlocks between concurrent cycles, overrides and
cancellations, which lock the request first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.partners.service import OfferKind, OfferStatus, held_requests, trucks_on_offer
from dispatch.lifecycle import REPLACEMENT_ELIGIBLE, RequestStatus
from fleet import VanStatus

FREE_VAN_STATUSES = frozenset({VanStatus.AVAILABLE.value, VanStatus.RETURNING.value})
"""Van statuses the cycle may send (a returning van is free to take the next job)."""


def open_request_rows(db_session: Session) -> Sequence[m.RescueRequest]:
    """Requests waiting for a van (received, no active assignment, no partner rescue offered
    or accepted), oldest first."""
    with_van = select(m.VanAssignment.request_id).where(m.VanAssignment.active.is_(True))
    return db_session.scalars(
        select(m.RescueRequest)
        .where(
            m.RescueRequest.status == RequestStatus.RECEIVED.value,
            m.RescueRequest.id.not_in(with_van),
            m.RescueRequest.id.not_in(held_requests(OfferKind.RESCUE)),
        )
        .order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    ).all()


def free_van_rows(db_session: Session) -> Sequence[tuple[m.Van, m.Station]]:
    """Vans without an active assignment, available or returning, with their home station."""
    busy_vans = select(m.VanAssignment.van_id).where(m.VanAssignment.active.is_(True))
    rows = db_session.execute(
        select(m.Van, m.Station)
        .join(m.Station, m.Van.station_id == m.Station.id)
        .where(m.Van.status.in_(FREE_VAN_STATUSES), m.Van.id.not_in(busy_vans))
        .order_by(m.Van.id)
    ).all()
    return [(van, station) for van, station in rows]


def replacement_request_rows(db_session: Session) -> Sequence[m.RescueRequest]:
    """Requests that need a truck, carry cargo, are still eligible and have no booking and no
    truck offer waiting for an answer."""
    booked = select(m.ReplacementBooking.request_id).where(m.ReplacementBooking.active.is_(True))
    return db_session.scalars(
        select(m.RescueRequest)
        .where(
            m.RescueRequest.needs_replacement.is_(True),
            m.RescueRequest.status.in_([s.value for s in REPLACEMENT_ELIGIBLE]),
            m.RescueRequest.cargo_weight_t.is_not(None),
            m.RescueRequest.cargo_destination_lat.is_not(None),
            m.RescueRequest.id.not_in(booked),
            m.RescueRequest.id.not_in(held_requests(OfferKind.TRUCK)),
        )
        .order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    ).all()


def free_truck_rows(db_session: Session) -> Sequence[m.ReplacementTruck]:
    """Available trucks without an active booking or an open offer."""
    busy_trucks = select(m.ReplacementBooking.truck_id).where(m.ReplacementBooking.active.is_(True))
    return db_session.scalars(
        select(m.ReplacementTruck)
        .where(
            m.ReplacementTruck.status == "available",
            m.ReplacementTruck.id.not_in(busy_trucks),
            m.ReplacementTruck.id.not_in(trucks_on_offer()),
        )
        .order_by(m.ReplacementTruck.id)
    ).all()


def partner_rows(db_session: Session) -> Sequence[m.Partner]:
    return db_session.scalars(select(m.Partner)).all()


def rescue_provider_rows(db_session: Session) -> Sequence[m.PartnerProvider]:
    return db_session.scalars(select(m.PartnerProvider).order_by(m.PartnerProvider.id)).all()


_Row = TypeVar("_Row", m.RescueRequest, m.Van, m.ReplacementTruck)


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
