"""The requests domain's queries: one request (optionally locked), the queue, its history, and
the active assignment / booking that tie a request to a van or a truck."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.exceptions import NotFound
from dispatch.lifecycle import TERMINAL, RequestStatus


def get_request(*, db_session: Session, request_id: str, lock: bool = False) -> m.RescueRequest:
    """The request, locked for update when ``lock``; :class:`NotFound` otherwise."""
    row = db_session.get(
        m.RescueRequest,
        request_id,
        with_for_update={"key_share": True} if lock else None,
        populate_existing=lock,
    )
    if row is None:
        raise NotFound("request not found")
    return row


def list_requests(
    *,
    db_session: Session,
    statuses: Sequence[RequestStatus] | None = None,
    open_only: bool = False,
    limit: int = 500,
    offset: int = 0,
) -> list[m.RescueRequest]:
    """The queue, oldest first (``open_only``: neither closed nor cancelled)."""
    stmt = select(m.RescueRequest).order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    if statuses:
        stmt = stmt.where(m.RescueRequest.status.in_([s.value for s in statuses]))
    if open_only:
        stmt = stmt.where(m.RescueRequest.status.not_in([s.value for s in TERMINAL]))
    return list(db_session.scalars(stmt.limit(limit).offset(offset)))


def request_events(*, db_session: Session, request_id: str) -> list[m.Event]:
    """The request's history, oldest first; :class:`NotFound` for an unknown request."""
    get_request(db_session=db_session, request_id=request_id)
    stmt = select(m.Event).where(m.Event.request_id == request_id).order_by(m.Event.id)
    return list(db_session.scalars(stmt))


def lock_van(db_session: Session, van_id: str) -> m.Van | None:
    return db_session.get(
        m.Van, van_id, with_for_update={"key_share": True}, populate_existing=True
    )


def lock_truck(db_session: Session, truck_id: str) -> m.ReplacementTruck | None:
    return db_session.get(
        m.ReplacementTruck, truck_id, with_for_update={"key_share": True}, populate_existing=True
    )


def active_assignment(
    db_session: Session, *, request_id: str | None = None, van_id: str | None = None
) -> m.VanAssignment | None:
    """The active assignment of a request, or the current job of a van (not its queued next
    one: :func:`queued_assignment`)."""
    stmt = select(m.VanAssignment).where(m.VanAssignment.active.is_(True))
    if request_id is not None:
        stmt = stmt.where(m.VanAssignment.request_id == request_id)
    if van_id is not None:
        stmt = stmt.where(m.VanAssignment.van_id == van_id, m.VanAssignment.queued.is_(False))
    return db_session.scalar(stmt)


def queued_assignment(db_session: Session, *, van_id: str) -> m.VanAssignment | None:
    """The job a van takes once its current one releases it, if any."""
    return db_session.scalar(
        select(m.VanAssignment).where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.queued.is_(True),
            m.VanAssignment.van_id == van_id,
        )
    )


def active_booking(db_session: Session, *, request_id: str) -> m.ReplacementBooking | None:
    return db_session.scalar(
        select(m.ReplacementBooking).where(
            m.ReplacementBooking.active.is_(True), m.ReplacementBooking.request_id == request_id
        )
    )


# -- batched loads for the views (a fixed number of queries however many requests) -----------


def active_assignments_of(
    db_session: Session, request_ids: Collection[str]
) -> dict[str, m.VanAssignment]:
    if not request_ids:
        return {}
    stmt = select(m.VanAssignment).where(
        m.VanAssignment.active.is_(True), m.VanAssignment.request_id.in_(request_ids)
    )
    return {a.request_id: a for a in db_session.scalars(stmt)}


def active_bookings_of(
    db_session: Session, request_ids: Collection[str]
) -> dict[str, m.ReplacementBooking]:
    if not request_ids:
        return {}
    stmt = select(m.ReplacementBooking).where(
        m.ReplacementBooking.active.is_(True), m.ReplacementBooking.request_id.in_(request_ids)
    )
    return {b.request_id: b for b in db_session.scalars(stmt)}


def vans_by_id(db_session: Session, ids: Collection[str]) -> dict[str, m.Van]:
    if not ids:
        return {}
    return {v.id: v for v in db_session.scalars(select(m.Van).where(m.Van.id.in_(ids)))}


def trucks_by_id(db_session: Session, ids: Collection[str]) -> dict[str, m.ReplacementTruck]:
    if not ids:
        return {}
    stmt = select(m.ReplacementTruck).where(m.ReplacementTruck.id.in_(ids))
    return {t.id: t for t in db_session.scalars(stmt)}


def partners_by_id(db_session: Session, ids: Collection[str]) -> dict[str, m.Partner]:
    if not ids:
        return {}
    return {p.id: p for p in db_session.scalars(select(m.Partner).where(m.Partner.id.in_(ids)))}


def partner_offers_of(
    db_session: Session, request_ids: Collection[str]
) -> dict[str, list[m.PartnerOffer]]:
    """Open and accepted partner offers per request (what the customer may be told)."""
    if not request_ids:
        return {}
    stmt = (
        select(m.PartnerOffer)
        .where(
            m.PartnerOffer.request_id.in_(request_ids),
            m.PartnerOffer.status.in_(("offered", "accepted")),
        )
        .order_by(m.PartnerOffer.id)
    )
    out: dict[str, list[m.PartnerOffer]] = {}
    for o in db_session.scalars(stmt):
        out.setdefault(o.request_id, []).append(o)
    return out
