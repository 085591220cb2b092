"""Storing what the solver decided, in the write transaction of a dispatch cycle.

Each decision is re-checked under the row locks (a concurrent override, cancellation or
cycle may have got there first: reported as a conflict, never double-booked). Van
assignments, truck offers and rescue offers go through one shape: a writer that says why a
decision is stale (``conflict``) or stores it (``store``: row, statuses, event, read model).
A truck the replacement matching chose is offered to its partner, not booked: the booking is
made when the partner accepts (:mod:`api.partners.service`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from api.db import models as m
from api.dispatching import queries as q
from api.events import add_event
from api.partners.service import OfferKind, OfferPolicy, OfferStatus
from api.schemas import (
    AssignedRead,
    BookedRead,
    DispatchRunRead,
    OfferMadeRead,
    UnassignedRead,
    UnmatchedRead,
)
from dispatch import (
    ReplacementBooking,
    ReplacementMatching,
    RequestStatus,
    VanAssignment,
    VanMatching,
)
from dispatch.lifecycle import REPLACEMENT_ELIGIBLE
from dispatch.partner_rescue import RescueCandidate
from fleet import VanStatus

if TYPE_CHECKING:
    from api.dispatching.cycle import Snapshot


@dataclass
class CycleResult:
    """What one cycle decided, as the read models the route returns (filled in as it runs)."""

    cycle_id: str
    started_at: dt.datetime
    provider: str
    ran: bool = True
    skipped_reason: str | None = None
    seconds: float = 0.0
    open_requests: int = 0
    free_vans: int = 0
    assigned: list[AssignedRead] = field(default_factory=list)
    unassigned: list[UnassignedRead] = field(default_factory=list)
    booked: list[BookedRead] = field(default_factory=list)
    offered: list[OfferMadeRead] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    replanned: list[str] = field(default_factory=list)
    unmatched: list[UnmatchedRead] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def as_read(self) -> DispatchRunRead:
        return DispatchRunRead(
            cycle_id=self.cycle_id,
            ran=self.ran,
            skipped_reason=self.skipped_reason,
            started_at=self.started_at,
            seconds=round(self.seconds, 4),
            provider=self.provider,
            open_requests=self.open_requests,
            free_vans=self.free_vans,
            assigned=self.assigned,
            unassigned=self.unassigned,
            booked=self.booked,
            offered=self.offered,
            expired=self.expired,
            replanned=self.replanned,
            unmatched=self.unmatched,
            conflicts=self.conflicts,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values (datetimes and enums kept) for the CLI's JSON."""
        return self.as_read().model_dump()

    @property
    def decided(self) -> bool:
        return bool(self.assigned or self.booked or self.offered or self.expired or self.replanned)


def _minutes(now: dt.datetime, minutes: float) -> dt.datetime:
    return now + dt.timedelta(minutes=minutes)


# -- writing the decisions: the van half and the truck half have one shape --------------------

_Decision = TypeVar("_Decision", contravariant=True)
_Read = TypeVar("_Read", covariant=True)
_D = TypeVar("_D")
_R = TypeVar("_R")


class _DecisionWriter(Protocol, Generic[_Decision, _Read]):
    """One half of the write: re-check a solver decision under the row locks, then store it."""

    def conflict(self, decision: _Decision) -> str | None:
        """Why the decision is stale (a concurrent change got there first), or None."""

    def store(self, decision: _Decision) -> _Read:
        """Insert its row, update the statuses, log its event; its read model."""


def _write_each(
    decisions: Sequence[_D], writer: _DecisionWriter[_D, _R], conflicts: list[str]
) -> list[_R]:
    """Store each decision that still holds; report the others in ``conflicts``."""
    stored = []
    for decision in decisions:
        conflict = writer.conflict(decision)
        if conflict is not None:
            conflicts.append(conflict)
            continue
        stored.append(writer.store(decision))
    return stored


@dataclass(frozen=True)
class _WriteScope:
    db_session: Session
    now: dt.datetime
    actor: str
    cycle_id: str
    requests: dict[str, m.RescueRequest]
    """The decided requests, locked."""
    policy: OfferPolicy


class _VanAssignments:
    def __init__(
        self, scope: _WriteScope, vans: dict[str, m.Van], decisions: Sequence[VanAssignment]
    ) -> None:
        va = m.VanAssignment
        self.scope, self.vans = scope, vans
        self.taken = q.active_values(scope.db_session, va.van_id, va.active, sorted(vans))
        self.served = q.active_values(
            scope.db_session, va.request_id, va.active, [a.request_id for a in decisions]
        )

    def conflict(self, a: VanAssignment) -> str | None:
        req, van = self.scope.requests.get(a.request_id), self.vans.get(a.van_id)
        if req is None or req.status != RequestStatus.RECEIVED.value or a.request_id in self.served:
            return (
                f"request {a.request_id}: changed meanwhile "
                f"({req.status if req else 'deleted'}); van {a.van_id} not sent"
            )
        if van is None or a.van_id in self.taken or van.status not in q.FREE_VAN_STATUSES:
            return (
                f"van {a.van_id}: taken or off duty meanwhile; request {a.request_id} "
                "stays in the queue"
            )
        return None

    def store(self, a: VanAssignment) -> AssignedRead:
        s, req, van = self.scope, self.scope.requests[a.request_id], self.vans[a.van_id]
        self.taken.add(a.van_id)
        eta_at = _minutes(s.now, a.eta_minutes)
        s.db_session.add(
            m.VanAssignment(
                request_id=a.request_id, van_id=a.van_id, active=True, created_at=s.now,
                eta_at=eta_at, travel_minutes=a.travel_minutes, travel_km=a.travel_km,
                source="optimizer", reason="designated station" if a.designated else "",
            )
        )  # fmt: skip
        van.status = VanStatus.ASSIGNED.value
        req.status = RequestStatus.ASSIGNED.value
        req.updated_at = s.now
        add_event(
            s.db_session, "van_assigned", request_id=a.request_id, van_id=a.van_id,
            actor=s.actor, now=s.now, cycle_id=s.cycle_id, source="optimizer",
            eta_minutes=round(a.eta_minutes, 1), travel_km=round(a.travel_km, 1),
            designated=a.designated,
        )  # fmt: skip
        return AssignedRead(
            request_id=a.request_id,
            van_id=a.van_id,
            eta_minutes=round(a.eta_minutes, 1),
            eta_at=eta_at,
            travel_km=round(a.travel_km, 1),
            designated=a.designated,
        )


class _TruckOffers:
    """The replacement matching's choice becomes an offer to the truck's partner."""

    def __init__(
        self,
        scope: _WriteScope,
        trucks: dict[str, m.ReplacementTruck],
        decisions: Sequence[ReplacementBooking],
        promised_minutes: dict[str, float],
    ) -> None:
        rb, po = m.ReplacementBooking, m.PartnerOffer
        self.scope, self.trucks, self.promised = scope, trucks, promised_minutes
        self.taken = q.active_values(scope.db_session, rb.truck_id, rb.active, sorted(trucks))
        self.taken |= q.open_offer_values(scope.db_session, po.truck_id, sorted(trucks))
        ids = [b.request_id for b in decisions]
        self.served = q.active_values(scope.db_session, rb.request_id, rb.active, ids)
        self.served |= q.open_offer_values(
            scope.db_session, po.request_id, ids, kind=OfferKind.TRUCK
        )

    def conflict(self, b: ReplacementBooking) -> str | None:
        req, truck = self.scope.requests.get(b.request_id), self.trucks.get(b.truck_id)
        if (
            req is None
            or RequestStatus(req.status) not in REPLACEMENT_ELIGIBLE
            or not req.needs_replacement
            or b.request_id in self.served
        ):
            return f"request {b.request_id}: changed meanwhile; truck {b.truck_id} not offered"
        if truck is None or b.truck_id in self.taken or truck.status != "available":
            return f"truck {b.truck_id}: booked or offered meanwhile; request {b.request_id} waits"
        return None

    def store(self, b: ReplacementBooking) -> OfferMadeRead:
        s = self.scope
        self.taken.add(b.truck_id)
        expires_at = s.policy.expiry(s.now, self.promised.get(b.partner_id, 120.0))
        offer = m.PartnerOffer(
            request_id=b.request_id, kind=OfferKind.TRUCK.value, partner_id=b.partner_id,
            truck_id=b.truck_id, status=OfferStatus.OFFERED.value, created_at=s.now,
            expires_at=expires_at, proposed_eta_minutes=b.pickup_eta_minutes,
            delivery_eta_minutes=b.delivery_eta_minutes, cost_cny=b.cost_cny, decline_reason="",
        )  # fmt: skip
        s.db_session.add(offer)
        s.db_session.flush()
        add_event(
            s.db_session, "offer_made", request_id=b.request_id, truck_id=b.truck_id,
            actor=s.actor, now=s.now, cycle_id=s.cycle_id, offer_id=offer.id,
            offer_kind=OfferKind.TRUCK.value, partner_id=b.partner_id,
            expires_at=expires_at.isoformat(),
            pickup_eta_minutes=round(b.pickup_eta_minutes, 1),
            delivery_eta_minutes=round(b.delivery_eta_minutes, 1),
            cost_cny=round(b.cost_cny, 2), lateness_minutes=round(b.lateness_minutes, 1),
        )  # fmt: skip
        return _offer_read(offer)


class _RescueOffers:
    """A breakdown no own van can take is offered to the best partner rescue providers."""

    def __init__(self, scope: _WriteScope, promised_minutes: dict[str, float]) -> None:
        self.scope, self.promised = scope, promised_minutes
        ids = sorted(scope.requests)
        va, po = m.VanAssignment, m.PartnerOffer
        self.vanned = q.active_values(scope.db_session, va.request_id, va.active, ids)
        self.held = q.open_offer_values(
            scope.db_session, po.request_id, ids, kind=OfferKind.RESCUE, accepted=True
        )

    def conflict(self, c: RescueCandidate) -> str | None:
        req = self.scope.requests.get(c.request_id)
        if (
            req is None
            or req.status != RequestStatus.RECEIVED.value
            or c.request_id in self.vanned
            or c.request_id in self.held
        ):
            return f"request {c.request_id}: changed meanwhile; provider {c.provider_id} not asked"
        return None

    def store(self, c: RescueCandidate) -> OfferMadeRead:
        s = self.scope
        expires_at = s.policy.expiry(s.now, self.promised.get(c.provider_id, 60.0))
        offer = m.PartnerOffer(
            request_id=c.request_id, kind=OfferKind.RESCUE.value, partner_id=c.partner_id,
            provider_id=c.provider_id, status=OfferStatus.OFFERED.value, created_at=s.now,
            expires_at=expires_at, proposed_eta_minutes=c.eta_minutes, cost_cny=c.cost_cny,
            decline_reason="",
        )  # fmt: skip
        s.db_session.add(offer)
        s.db_session.flush()
        add_event(
            s.db_session, "offer_made", request_id=c.request_id, actor=s.actor, now=s.now,
            cycle_id=s.cycle_id, offer_id=offer.id, offer_kind=OfferKind.RESCUE.value,
            partner_id=c.partner_id, provider_id=c.provider_id,
            expires_at=expires_at.isoformat(), eta_minutes=round(c.eta_minutes, 1),
            cost_cny=round(c.cost_cny, 2), score_minutes=round(c.score_minutes, 1),
        )  # fmt: skip
        return _offer_read(offer)


def _offer_read(o: m.PartnerOffer) -> OfferMadeRead:
    return OfferMadeRead(
        offer_id=o.id,
        request_id=o.request_id,
        kind=OfferKind(o.kind).value,
        partner_id=o.partner_id,
        truck_id=o.truck_id,
        provider_id=o.provider_id,
        expires_at=o.expires_at,
        proposed_eta_minutes=(
            round(o.proposed_eta_minutes, 1) if o.proposed_eta_minutes is not None else None
        ),
        cost_cny=round(o.cost_cny, 2) if o.cost_cny is not None else None,
    )


def write_decisions(
    *,
    db_session: Session,
    snapshot: Snapshot,
    van_matching: VanMatching | None,
    replacements: ReplacementMatching | None,
    result: CycleResult,
    actor: str = "dispatch",
    rescue_offers: Sequence[RescueCandidate] = (),
    policy: OfferPolicy | None = None,
) -> None:
    """Store what the solver decided, re-checking each decision under row locks (requests,
    then vans, then trucks, each in id order): van assignments, truck offers, rescue offers."""
    assignments = (
        sorted(van_matching.assignments, key=lambda a: a.request_id) if van_matching else []
    )
    bookings = sorted(replacements.bookings, key=lambda b: b.request_id) if replacements else []
    rescues = sorted(rescue_offers, key=lambda c: (c.request_id, c.score_minutes, c.provider_id))
    request_ids = sorted(
        {a.request_id for a in assignments}
        | {b.request_id for b in bookings}
        | {c.request_id for c in rescues}
    )
    requests = q.lock_rows(db_session, m.RescueRequest, request_ids)
    vans = q.lock_rows(db_session, m.Van, sorted({a.van_id for a in assignments}))
    trucks = q.lock_rows(db_session, m.ReplacementTruck, sorted({b.truck_id for b in bookings}))
    scope = _WriteScope(
        db_session, snapshot.now, actor, result.cycle_id, requests, policy or OfferPolicy()
    )
    if assignments:
        writer = _VanAssignments(scope, vans, assignments)
        result.assigned = _write_each(assignments, writer, result.conflicts)
    if van_matching:
        result.unassigned = [
            UnassignedRead(
                request_id=u.request_id,
                reason=u.reason,
                suggestion=u.suggestion,
                nearest_van_id=u.nearest_van_id,
                nearest_eta_minutes=(
                    round(u.nearest_eta_minutes, 1) if u.nearest_eta_minutes is not None else None
                ),
            )
            for u in van_matching.unassigned
        ]
    if bookings:
        promised = {t.partner.id: t.partner.promised_response_minutes for t in snapshot.trucks}
        result.offered = _write_each(
            bookings, _TruckOffers(scope, trucks, bookings, promised), result.conflicts
        )
    if rescues:
        promised = {
            p.provider.id: p.provider.promised_response_minutes for p in snapshot.rescue_providers
        }
        result.offered += _write_each(rescues, _RescueOffers(scope, promised), result.conflicts)
    if replacements:
        result.unmatched = [
            UnmatchedRead(request_id=u.request_id, reason=u.reason, detail=u.detail)
            for u in replacements.unmatched
        ]
    db_session.flush()
