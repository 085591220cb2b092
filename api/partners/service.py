"""Partner offers: partners are asked, not booked.

A dispatch cycle offers a job (a replacement truck, or a rescue that no own van can take) to
the best partner; the offer expires after the partner's promised response time (or
``RESCUE_OFFER_EXPIRY_MINUTES``). The partner accepts with its own ETA or declines with a
reason; silence past the expiry is a decline. Only an accepted offer holds the truck or the
job. The next cycle offers a declined or lapsed job to the next best partner and never again
to one that declined it (:func:`excluded_partners`, :func:`excluded_providers`).

Concurrent accepts of offers for the same job: the request row is locked first (PostgreSQL;
SQLite takes its write lock at BEGIN), and partial unique indexes back that up (one accepted
rescue offer per request on ``partner_offers``; one active booking per request and per truck
on ``replacement_bookings``): exactly one wins, the others get :class:`Conflict` (409).

Crews: an own van's assignment not acknowledged within ``RESCUE_CREW_ACK_TIMEOUT_MINUTES`` is
ended and the request re-planned by the same cycle (:func:`sweep`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db import models as m
from api.events import add_event
from api.exceptions import Conflict, Forbidden, NotFound
from api.settings import Settings
from dispatch.lifecycle import REPLACEMENT_ELIGIBLE, TERMINAL, RequestStatus
from dispatch.partner_rescue import DEFAULT_CNY_PER_MINUTE
from fleet import VanStatus


class OfferKind(StrEnum):
    TRUCK = "truck"
    RESCUE = "rescue"


class OfferStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


REFUSED = (OfferStatus.DECLINED.value, OfferStatus.EXPIRED.value)
"""An offer that ended in one of these excludes its partner from the job for good."""
HOLDING = (OfferStatus.OFFERED.value, OfferStatus.ACCEPTED.value)
"""An offer in one of these keeps the job out of the next cycle's matching."""


@dataclass(frozen=True)
class OfferPolicy:
    """The knobs of offers and crew acknowledgement (from the settings)."""

    expiry_minutes: float | None = None
    """``None``: each partner's promised response time."""
    fanout: int = 1
    """How many partners are offered the same rescue job at once (the first to accept wins)."""
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE
    """The exchange between partner cost and the customer's waiting when ranking providers."""
    crew_ack_timeout_minutes: float = 0.0
    """Unacknowledged van assignments older than this are re-planned; 0 = never."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OfferPolicy:
        return cls(
            expiry_minutes=settings.offer_expiry_minutes,
            fanout=settings.offer_fanout,
            cny_per_minute=settings.offer_cny_per_minute,
            crew_ack_timeout_minutes=settings.crew_ack_timeout_minutes,
        )

    def expiry(self, now: dt.datetime, promised_minutes: float) -> dt.datetime:
        minutes = self.expiry_minutes if self.expiry_minutes is not None else promised_minutes
        return now + dt.timedelta(minutes=minutes)


@dataclass
class SweepResult:
    expired: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    replanned: list[str] = field(default_factory=list)


# -- the cycle's side: expiry, withdrawal, exclusions ------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep would change, found by a read (:func:`sweep_plan`): the open offers to
    lapse or withdraw and the unacknowledged assignments to end."""

    offer_ids: tuple[int, ...] = ()
    assignment_ids: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.offer_ids or self.assignment_ids)


def sweep_plan(*, db_session: Session, now: dt.datetime, policy: OfferPolicy) -> SweepPlan:
    """The offers and assignments :func:`sweep` would change now, without changing them (the
    cycle reads this in a read-only transaction and takes the write lock only when it is not
    empty: most cycles have nothing to sweep, and the read of every open offer need not hold
    up the intake)."""
    offers = _open_offers(db_session, locked=False)
    reasons = _offer_changes(db_session, offers, now)
    assignments = (
        _unacknowledged(db_session, now=now, timeout_minutes=policy.crew_ack_timeout_minutes)
        if policy.crew_ack_timeout_minutes > 0
        else []
    )
    return SweepPlan(
        tuple(o.id for o in offers if o.id in reasons), tuple(a.id for a, _ in assignments)
    )


def _open_offers(
    db_session: Session, *, locked: bool, ids: Sequence[int] | None = None
) -> Sequence[m.PartnerOffer]:
    stmt = (
        select(m.PartnerOffer)
        .where(m.PartnerOffer.status == OfferStatus.OFFERED.value)
        .order_by(m.PartnerOffer.id)
    )
    if ids is not None:
        stmt = stmt.where(m.PartnerOffer.id.in_(list(ids)))
    if locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return db_session.scalars(stmt).all()


def _offer_changes(
    db_session: Session, open_offers: Sequence[m.PartnerOffer], now: dt.datetime
) -> dict[int, tuple[OfferStatus, str | None]]:
    """Offer id -> (withdrawn, why) or (expired, None), for the open offers that change."""
    changes: dict[int, tuple[OfferStatus, str | None]] = {}
    if open_offers:
        reqs = {
            r.id: r
            for r in db_session.scalars(
                select(m.RescueRequest).where(
                    m.RescueRequest.id.in_({o.request_id for o in open_offers})
                )
            )
        }
        vanned = set(
            db_session.scalars(
                select(m.VanAssignment.request_id).where(
                    m.VanAssignment.active.is_(True),
                    m.VanAssignment.request_id.in_(list(reqs)),
                )
            )
        )
        booked = set(
            db_session.scalars(
                select(m.ReplacementBooking.request_id).where(
                    m.ReplacementBooking.active.is_(True),
                    m.ReplacementBooking.request_id.in_(list(reqs)),
                )
            )
        )
        for o in open_offers:
            req = reqs[o.request_id]
            reason = _withdraw_reason(o, req, vanned=vanned, booked=booked)
            if reason is not None:
                changes[o.id] = (OfferStatus.WITHDRAWN, reason)
            elif o.expires_at <= now:
                changes[o.id] = (OfferStatus.EXPIRED, None)
    return changes


def sweep(
    *,
    db_session: Session,
    now: dt.datetime,
    policy: OfferPolicy,
    actor: str = "dispatch",
    only: SweepPlan | None = None,
) -> SweepResult:
    """Before a cycle's snapshot: lapse offers past their expiry (a decline), withdraw offers
    whose job went elsewhere or ended, and end van assignments the crew did not acknowledge
    in time (the request goes back to the queue). Each change writes its event. ``only``
    (a :func:`sweep_plan` read before) limits it to those offers and assignments, each
    checked again here: one that changed meanwhile is left alone."""
    out = SweepResult()
    open_offers = _open_offers(
        db_session, locked=True, ids=None if only is None else only.offer_ids
    )
    changes = _offer_changes(db_session, open_offers, now)
    for o in open_offers:
        status, reason = changes.get(o.id, (None, None))
        if status is OfferStatus.WITHDRAWN:
            o.status, o.answered_at = OfferStatus.WITHDRAWN.value, now
            out.withdrawn.append(o.id)
            add_event(
                db_session, "offer_withdrawn", request_id=o.request_id, truck_id=o.truck_id,
                actor=actor, now=now, offer_id=o.id, partner_id=o.partner_id,
                provider_id=o.provider_id, offer_kind=o.kind, reason=reason,
            )  # fmt: skip
        elif status is OfferStatus.EXPIRED:
            o.status, o.answered_at = OfferStatus.EXPIRED.value, now
            out.expired.append(o.id)
            add_event(
                db_session, "offer_expired", request_id=o.request_id, truck_id=o.truck_id,
                actor=actor, now=now, offer_id=o.id, partner_id=o.partner_id,
                provider_id=o.provider_id, offer_kind=o.kind,
            )  # fmt: skip
    if policy.crew_ack_timeout_minutes > 0 and (only is None or only.assignment_ids):
        out.replanned = _replan_unacknowledged(
            db_session, now=now, timeout_minutes=policy.crew_ack_timeout_minutes, actor=actor,
            ids=None if only is None else only.assignment_ids,
        )  # fmt: skip
    db_session.flush()
    return out


def _withdraw_reason(
    o: m.PartnerOffer, req: m.RescueRequest, *, vanned: set[str], booked: set[str]
) -> str | None:
    status = RequestStatus(req.status)
    if status in TERMINAL:
        return f"request {status.value}"
    if o.kind == OfferKind.TRUCK.value:
        if not req.needs_replacement or status not in REPLACEMENT_ELIGIBLE:
            return "no replacement needed any more"
        if req.id in booked:
            return "a truck is booked"
    elif req.id in vanned or status is not RequestStatus.RECEIVED:
        return "an own van took the job"
    return None


def _unacknowledged(
    db_session: Session,
    *,
    now: dt.datetime,
    timeout_minutes: float,
    ids: Sequence[int] | None = None,
) -> Sequence[tuple[m.VanAssignment, m.RescueRequest]]:
    """Assignments still unacknowledged ``timeout_minutes`` after they were made, while the
    van has not moved on them (request still ``assigned``), with their requests."""
    deadline = now - dt.timedelta(minutes=timeout_minutes)
    stmt = (
        select(m.VanAssignment, m.RescueRequest)
        .join(m.RescueRequest, m.RescueRequest.id == m.VanAssignment.request_id)
        .where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.acknowledged_at.is_(None),
            m.VanAssignment.created_at <= deadline,
            m.RescueRequest.status == RequestStatus.ASSIGNED.value,
        )
        .order_by(m.VanAssignment.request_id)
    )
    if ids is not None:
        stmt = stmt.where(m.VanAssignment.id.in_(list(ids)))
    return [(a, req) for a, req in db_session.execute(stmt)]


def _replan_unacknowledged(
    db_session: Session,
    *,
    now: dt.datetime,
    timeout_minutes: float,
    actor: str,
    ids: Sequence[int] | None = None,
) -> list[str]:
    """End the :func:`_unacknowledged` assignments (of ``ids`` only, when given); the van is
    set off shift (its crew is not answering) and the request waits for the next match."""
    rows = _unacknowledged(db_session, now=now, timeout_minutes=timeout_minutes, ids=ids)
    replanned = []
    for a, req in rows:
        a.active, a.ended_at, a.end_reason = False, now, "crew did not acknowledge"
        db_session.flush()
        van = db_session.get(m.Van, a.van_id, with_for_update={"key_share": True})
        if van is not None:
            van.status = VanStatus.OFF_SHIFT.value
        req.status, req.updated_at = RequestStatus.RECEIVED.value, now
        add_event(
            db_session, "assignment_ack_timeout", request_id=req.id, van_id=a.van_id,
            actor=actor, now=now, assignment_id=a.id, timeout_minutes=timeout_minutes,
        )  # fmt: skip
        replanned.append(req.id)
    return replanned


def refused_by(db_session: Session, kind: OfferKind) -> dict[str, frozenset[str]]:
    """Per request: the partners (truck) or providers (rescue) that declined or let lapse an
    offer of its ``kind`` job."""
    column = m.PartnerOffer.partner_id if kind is OfferKind.TRUCK else m.PartnerOffer.provider_id
    rows = db_session.execute(
        select(m.PartnerOffer.request_id, column).where(
            m.PartnerOffer.kind == kind.value, m.PartnerOffer.status.in_(REFUSED)
        )
    ).all()
    out: dict[str, set[str]] = defaultdict(set)
    for request_id, who in rows:
        if who is not None:
            out[request_id].add(who)
    return {k: frozenset(v) for k, v in out.items()}


def held_requests(kind: OfferKind) -> Select[str]:
    """Requests kept out of the next match by a ``kind`` offer (a sub-select): an open offer
    of either kind, or an accepted rescue (an accepted truck offer is its booking, which ends
    on its own when the replacement fails and must be booked again)."""
    statuses = HOLDING if kind is OfferKind.RESCUE else (OfferStatus.OFFERED.value,)
    return select(m.PartnerOffer.request_id).where(
        m.PartnerOffer.kind == kind.value, m.PartnerOffer.status.in_(statuses)
    )


def trucks_on_offer() -> Select[str | None]:
    """Trucks with an open offer (a sub-select): not offered twice at once."""
    return select(m.PartnerOffer.truck_id).where(
        m.PartnerOffer.kind == OfferKind.TRUCK.value,
        m.PartnerOffer.status == OfferStatus.OFFERED.value,
        m.PartnerOffer.truck_id.is_not(None),
    )


def provider_loads(db_session: Session) -> dict[str, int]:
    """Per provider: open offers and accepted jobs of requests still open (each a slot)."""
    rows = db_session.execute(
        select(m.PartnerOffer.provider_id, func.count())
        .join(m.RescueRequest, m.RescueRequest.id == m.PartnerOffer.request_id)
        .where(
            m.PartnerOffer.kind == OfferKind.RESCUE.value,
            m.PartnerOffer.status.in_(HOLDING),
            m.RescueRequest.status.not_in([s.value for s in TERMINAL]),
        )
        .group_by(m.PartnerOffer.provider_id)
    ).all()
    return {pid: int(n) for pid, n in rows if pid is not None}


# -- the partner's side: list, accept, decline -------------------------------------------------


def list_offers(
    *,
    db_session: Session,
    partner_id: str | None = None,
    status: Sequence[str] | None = None,
) -> list[m.PartnerOffer]:
    """Offers, newest first; only ``partner_id``'s when given (a partner token)."""
    stmt = select(m.PartnerOffer).order_by(m.PartnerOffer.id.desc())
    if partner_id is not None:
        stmt = stmt.where(m.PartnerOffer.partner_id == partner_id)
    if status:
        stmt = stmt.where(m.PartnerOffer.status.in_(list(status)))
    return list(db_session.scalars(stmt))


def _own_offer(db_session: Session, offer_id: int, partner_id: str) -> m.PartnerOffer:
    """The partner's own offer; another partner's offer is as unknown as a missing one."""
    offer = db_session.get(m.PartnerOffer, offer_id)
    if offer is None or offer.partner_id != partner_id:
        raise NotFound(f"no offer {offer_id} for partner {partner_id}")
    return offer


def _lock_for_answer(
    db_session: Session, offer_id: int, partner_id: str, now: dt.datetime, verb: str
) -> tuple[m.PartnerOffer, m.RescueRequest]:
    offer = _own_offer(db_session, offer_id, partner_id)
    # The request first (the order every writer uses), then the offer, fresh.
    req = db_session.get(
        m.RescueRequest,
        offer.request_id,
        with_for_update={"key_share": True},
        populate_existing=True,
    )
    offer = (
        db_session.get(m.PartnerOffer, offer_id, with_for_update=True, populate_existing=True)
        or offer
    )
    if req is None:
        raise NotFound(f"no offer {offer_id} for partner {partner_id}")
    if offer.status != OfferStatus.OFFERED.value:
        raise Conflict(f"offer {offer_id} is {offer.status}: only an open offer can be {verb}")
    if offer.expires_at <= now:
        raise Conflict(
            f"offer {offer_id} expired at {offer.expires_at.isoformat()}: it counts as declined"
        )
    return offer, req


def accept_offer(
    *,
    db_session: Session,
    offer_id: int,
    partner_id: str,
    eta_minutes: float,
    actor: str,
    now: dt.datetime,
) -> m.PartnerOffer:
    """Accept with the partner's ETA: the truck is booked (or the rescue job taken) now.
    :class:`Conflict` when the offer is no longer open or another partner took the job."""
    offer, req = _lock_for_answer(db_session, offer_id, partner_id, now, "accepted")
    # every read and check before the first write: a write is flushed by the next query
    truck = _check_truck(db_session, offer, req) if offer.kind == OfferKind.TRUCK.value else None
    if truck is None:
        _check_rescue(db_session, offer, req)
    offer.status, offer.answered_at = OfferStatus.ACCEPTED.value, now
    offer.eta_minutes, offer.eta_at = eta_minutes, now + dt.timedelta(minutes=eta_minutes)
    if truck is not None:
        _book_truck(db_session, offer, req, truck, now=now, actor=actor)
    else:
        req.status, req.updated_at = RequestStatus.ASSIGNED.value, now
    try:
        db_session.flush()
    except IntegrityError:
        # The partial unique indexes: a concurrent accept got there first.
        raise Conflict(f"offer {offer_id}: another partner has already accepted this job") from None
    add_event(
        db_session, "offer_accepted", request_id=offer.request_id, truck_id=offer.truck_id,
        actor=actor, now=now, offer_id=offer.id, partner_id=offer.partner_id,
        provider_id=offer.provider_id, offer_kind=offer.kind, eta_minutes=eta_minutes,
    )  # fmt: skip
    return offer


def _check_truck(
    db_session: Session, offer: m.PartnerOffer, req: m.RescueRequest
) -> m.ReplacementTruck:
    status = RequestStatus(req.status)
    if not req.needs_replacement or status not in REPLACEMENT_ELIGIBLE:
        raise Conflict(f"offer {offer.id}: request {req.id} no longer needs a truck")
    booked = db_session.scalar(
        select(m.ReplacementBooking.id).where(
            m.ReplacementBooking.request_id == req.id, m.ReplacementBooking.active.is_(True)
        )
    )
    if booked is not None:
        raise Conflict(f"offer {offer.id}: another partner has already accepted this job")
    truck = db_session.get(
        m.ReplacementTruck,
        offer.truck_id or "",
        with_for_update={"key_share": True},
        populate_existing=True,
    )
    if truck is None or truck.status != "available":
        raise Conflict(f"offer {offer.id}: truck {offer.truck_id} is no longer available")
    return truck


def _check_rescue(db_session: Session, offer: m.PartnerOffer, req: m.RescueRequest) -> None:
    other = db_session.scalar(
        select(m.PartnerOffer.id).where(
            m.PartnerOffer.request_id == req.id,
            m.PartnerOffer.kind == OfferKind.RESCUE.value,
            m.PartnerOffer.status == OfferStatus.ACCEPTED.value,
        )
    )
    if other is not None:
        raise Conflict(f"offer {offer.id}: another partner has already accepted this job")
    if req.status != RequestStatus.RECEIVED.value:
        raise Conflict(f"offer {offer.id}: request {req.id} is {req.status}; the job is gone")
    provider = db_session.get(m.PartnerProvider, offer.provider_id or "")
    taken = db_session.scalar(
        select(func.count())
        .select_from(m.PartnerOffer)
        .join(m.RescueRequest, m.RescueRequest.id == m.PartnerOffer.request_id)
        .where(
            m.PartnerOffer.provider_id == offer.provider_id,
            m.PartnerOffer.status == OfferStatus.ACCEPTED.value,
            m.RescueRequest.status.not_in([s.value for s in TERMINAL]),
        )
    )
    if provider is not None and (taken or 0) >= provider.capacity_jobs:
        raise Conflict(
            f"offer {offer.id}: provider {provider.id} already has "
            f"{provider.capacity_jobs} jobs (its capacity)"
        )


def _book_truck(
    db_session: Session,
    offer: m.PartnerOffer,
    req: m.RescueRequest,
    truck: m.ReplacementTruck,
    *,
    now: dt.datetime,
    actor: str,
) -> None:
    proposed = offer.proposed_eta_minutes or 0.0
    eta = offer.eta_minutes or 0.0
    delivery = (offer.delivery_eta_minutes or proposed) - proposed + eta
    pickup_at = now + dt.timedelta(minutes=eta)
    delivery_at = now + dt.timedelta(minutes=delivery)
    db_session.add(
        m.ReplacementBooking(
            request_id=req.id, truck_id=truck.id, active=True, created_at=now,
            pickup_eta_at=pickup_at, delivery_eta_at=delivery_at, cost_cny=offer.cost_cny,
            source="offer", reason=f"offer {offer.id} accepted",
        )
    )  # fmt: skip
    truck.status = "booked"
    if req.status == RequestStatus.AWAITING_REPLACEMENT.value:
        req.status = RequestStatus.REPLACEMENT_ASSIGNED.value
    req.updated_at = now
    add_event(
        db_session, "replacement_booked", request_id=req.id, truck_id=truck.id, actor=actor,
        now=now, partner_id=offer.partner_id, offer_id=offer.id,
        pickup_eta_minutes=round(eta, 1), delivery_eta_minutes=round(delivery, 1),
        cost_cny=round(offer.cost_cny or 0.0, 2),
    )  # fmt: skip


def decline_offer(
    *,
    db_session: Session,
    offer_id: int,
    partner_id: str,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> m.PartnerOffer:
    """Decline with a reason: the next cycle offers the job to the next best partner."""
    offer, _req = _lock_for_answer(db_session, offer_id, partner_id, now, "declined")
    offer.status, offer.answered_at, offer.decline_reason = (
        OfferStatus.DECLINED.value,
        now,
        reason,
    )
    add_event(
        db_session, "offer_declined", request_id=offer.request_id, truck_id=offer.truck_id,
        actor=actor, now=now, offer_id=offer.id, partner_id=offer.partner_id,
        provider_id=offer.provider_id, offer_kind=offer.kind, reason=reason,
    )  # fmt: skip
    db_session.flush()
    return offer


# -- crews --------------------------------------------------------------------------------------


def acknowledge_assignment(
    *, db_session: Session, van_id: str, assignment_id: int, actor: str, now: dt.datetime
) -> m.VanAssignment:
    """The crew confirms it has the job. 404 for another van's or an unknown assignment;
    409 once it has ended (re-planned or released)."""
    a = db_session.get(
        m.VanAssignment, assignment_id, with_for_update={"key_share": True}, populate_existing=True
    )
    if a is None or a.van_id != van_id:
        raise NotFound(f"van {van_id} has no assignment {assignment_id}")
    if not a.active:
        raise Conflict(
            f"assignment {assignment_id} has ended ({a.end_reason or 'released'}); "
            "nothing to acknowledge"
        )
    if a.acknowledged_at is None:
        a.acknowledged_at = now
        add_event(
            db_session, "assignment_acknowledged", request_id=a.request_id, van_id=van_id,
            actor=actor, now=now, assignment_id=a.id,
        )  # fmt: skip
        db_session.flush()
    return a


def check_van_scope(token: m.StaffToken, van_id: str) -> None:
    """A crew token acts for its own van only (403 for any other)."""
    if token.role == "crew" and token.van_id != van_id:
        raise Forbidden(f"this crew token is bound to van {token.van_id}, not {van_id}")
