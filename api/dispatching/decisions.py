"""Storing what the solver decided, in the write transaction of a dispatch cycle.

Each decision is re-checked under the row locks (a concurrent override, cancellation or
cycle may have got there first: reported as a conflict, never double-booked). Truck offers
and rescue offers go through one shape: a writer that says why a decision is stale
(``conflict``) or gives its row and its event, stored together with one insert each (the
write holds the SQLite write lock: per-row ORM flushes made it long, issue 14).
A truck the replacement matching chose is offered to its partner, not booked: the booking is
made when the partner accepts (:mod:`api.partners.service`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from api.db import models as m
from api.dispatching import queries as q
from api.dispatching.live import busy_minutes_on_site, minutes_between
from api.dispatching.reasons import (
    UNASSIGNED_KIND,
    UNMATCHED_KIND,
    insert_reasons,
    reasons_to_record,
)
from api.events import NewEvent, add_event, add_events
from api.partners.service import OfferKind, OfferPolicy, OfferStatus, provider_loads
from api.schemas import (
    AssignedRead,
    BookedRead,
    DispatchRunRead,
    OfferMadeRead,
    ReassignedRead,
    UnassignedRead,
    UnmatchedRead,
)
from dispatch import (
    ReplacementBooking,
    ReplacementMatching,
    RequestStatus,
    UnassignedReason,
    VanAssignment,
    VanMatching,
)
from dispatch.lifecycle import REPLACEMENT_ELIGIBLE, VAN_ON_ITS_WAY
from dispatch.partner_rescue import RescueCandidate
from fleet import VanStatus

OFF_DUTY = frozenset({VanStatus.OFF_SHIFT, VanStatus.MAINTENANCE})
_minutes_between = minutes_between

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
    replanned_jobs: int = 0
    reassigned: list[ReassignedRead] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    at_risk: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    region: str | None = None
    """The region a region worker's cycle decided (``border`` for the border cycle)."""

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
            replanned_jobs=self.replanned_jobs,
            reassigned=self.reassigned,
            released=self.released,
            at_risk=self.at_risk,
            escalated=self.escalated,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values (datetimes and enums kept) for the CLI's JSON."""
        return self.as_read().model_dump()

    @property
    def decided(self) -> bool:
        return bool(
            self.assigned or self.booked or self.reassigned or self.released or self.escalated
            or self.offered or self.expired or self.replanned
        )  # fmt: skip


def _minutes(now: dt.datetime, minutes: float) -> dt.datetime:
    return now + dt.timedelta(minutes=minutes)


# -- writing the decisions: the van half and the truck half have one shape --------------------

_Decision = TypeVar("_Decision", contravariant=True)
_D = TypeVar("_D")


class _OfferWriter(Protocol, Generic[_Decision]):
    """One kind of offer: re-check a solver decision under the row locks, then its row and
    its ``offer_made`` event."""

    def conflict(self, decision: _Decision) -> str | None:
        """Why the decision is stale (a concurrent change got there first), or None; a
        decision that still holds takes its truck / slot for the ones after it."""

    def row(self, decision: _Decision) -> dict[str, Any]:
        """Its ``partner_offers`` row (every decision of one writer: the same keys)."""

    def event(self, decision: _Decision, offer_id: int, row: dict[str, Any]) -> NewEvent:
        """Its ``offer_made`` event."""


def _write_offers(
    scope: _WriteScope,
    decisions: Sequence[_D],
    writer: _OfferWriter[_D],
    conflicts: list[str],
) -> list[OfferMadeRead]:
    """Store each decision that still holds (in order: each one's check sees the ones before
    it taken) with one insert of the offers and one of their events; report the others in
    ``conflicts``. The offers' ids come back in the rows' order."""
    kept, rows = [], []
    for decision in decisions:
        conflict = writer.conflict(decision)
        if conflict is not None:
            conflicts.append(conflict)
            continue
        kept.append(decision)
        rows.append(writer.row(decision))
    if not rows:
        return []
    db = scope.db_session
    db.flush()
    stmt = insert(m.PartnerOffer).returning(m.PartnerOffer.id, sort_by_parameter_order=True)
    ids = list(db.scalars(stmt, rows))
    add_events(db, [writer.event(d, i, r) for d, i, r in zip(kept, ids, rows, strict=True)])
    return [_offer_read(i, r) for i, r in zip(ids, rows, strict=True)]


@dataclass(frozen=True)
class _WriteScope:
    db_session: Session
    now: dt.datetime
    actor: str
    cycle_id: str
    requests: dict[str, m.RescueRequest]
    """The decided requests, locked."""
    policy: OfferPolicy


class _VanPlan:
    """The van half: new assignments and re-planned moves, re-checked under the row locks.

    A decision is one (request, van) pair of the matching that differs from what the request
    holds now. It still holds when the request is as the snapshot saw it (waiting, or on its
    way with the same van) and the van is too (free; at the same breakdown with no next job
    queued; or on the way to a job this write takes off it). A van taken off a job is only
    moved when that job is given to another van or released, so the checks run to a fixed
    point. Stale decisions are reported as conflicts; nothing is double-booked.
    """

    def __init__(
        self,
        scope: _WriteScope,
        vans: dict[str, m.Van],
        snapshot: Snapshot,
        matching: VanMatching,
    ) -> None:
        self.scope, self.vans, self.snapshot = scope, vans, snapshot
        current = snapshot.current_van
        self.chosen = {a.request_id: a for a in matching.assignments}
        self.changes = sorted(
            (a for a in matching.assignments if current.get(a.request_id) != a.van_id),
            key=lambda a: a.request_id,
        )
        self.lost = sorted(r for r in current if r not in self.chosen)
        rows = q.active_assignments_touching(
            scope.db_session, request_ids=sorted(scope.requests), van_ids=sorted(vans)
        )
        self.of_request = {a.request_id: a for a in rows}
        self.job_of_van = {a.van_id: a for a in rows if not a.queued}
        self.queued_vans = {a.van_id for a in rows if a.queued}
        self.rows: list[dict[str, Any]] = []
        """The new assignments' rows, inserted together at the end of :meth:`write`."""
        self.events: list[NewEvent] = []

    def _still_pinned(self, request_id: str) -> bool:
        """The request is on its way with the van the snapshot saw."""
        req, a = self.scope.requests.get(request_id), self.of_request.get(request_id)
        return (
            req is not None
            and RequestStatus(req.status) in VAN_ON_ITS_WAY
            and a is not None
            and not a.queued
            and a.van_id == self.snapshot.current_van.get(request_id)
        )

    def conflict(self, a: VanAssignment) -> str | None:
        req, van = self.scope.requests.get(a.request_id), self.vans.get(a.van_id)
        if a.request_id in self.snapshot.current_van:
            request_ok = self._still_pinned(a.request_id)
        else:
            request_ok = (
                req is not None
                and req.status == RequestStatus.RECEIVED.value
                and a.request_id not in self.of_request
            )
        if not request_ok:
            return (
                f"request {a.request_id}: changed meanwhile "
                f"({req.status if req else 'deleted'}); van {a.van_id} not sent"
            )
        if van is None or VanStatus(van.status) in OFF_DUTY:
            return f"van {a.van_id}: off duty meanwhile; request {a.request_id} not changed"
        job = self.job_of_van.get(a.van_id)
        busy_with = self.snapshot.soon_free.get(a.van_id)
        if busy_with is not None:
            ok = (
                job is not None and job.request_id == busy_with and a.van_id not in self.queued_vans
            )
        elif a.van_id in self.snapshot.current_van.values():
            ok = job is not None and self.snapshot.current_van.get(job.request_id) == a.van_id
        else:
            ok = job is None and van.status in q.FREE_VAN_STATUSES
        if not ok:
            return (
                f"van {a.van_id}: taken or off duty meanwhile; request {a.request_id} "
                "stays as it was"
            )
        return None

    def write(self, result: CycleResult) -> None:
        current = self.snapshot.current_van
        ok: dict[str, VanAssignment] = {}
        for a in self.changes:
            why = self.conflict(a)
            if why is None:
                ok[a.request_id] = a
            else:
                result.conflicts.append(why)
        while True:  # a van leaves its job only if that job is re-given or released
            taken = {a.van_id for a in ok.values()}
            released = [r for r in self.lost if current[r] in taken and self._still_pinned(r)]
            vacated = {current[r] for r in ok if r in current} | {current[r] for r in released}
            drop = [
                r
                for r, a in ok.items()
                if a.van_id in current.values()
                and a.van_id not in self.snapshot.soon_free
                and a.van_id not in vacated
            ]
            if not drop:
                break
            for r in drop:
                result.conflicts.append(
                    f"request {r}: van {ok[r].van_id} could not leave its job; not changed"
                )
                del ok[r]
        s = self.scope
        ended: dict[str, m.VanAssignment] = {}
        for r in sorted({r for r in ok if r in current} | set(released)):
            old = self.of_request[r]
            old.active, old.ended_at = False, s.now
            old.end_reason = "re-planned" if r in ok else "re-planned: van taken for another job"
            ended[r] = old
        s.db_session.flush()  # the unique indexes see the old jobs ended before the new rows
        for r in released:
            req, old = s.requests[r], ended[r]
            req.status = RequestStatus.RECEIVED.value
            req.updated_at = s.now
            reason = (
                f"re-planned: van {old.van_id} went to a job it serves better; back in the "
                "queue for the next cycle"
            )
            add_event(
                s.db_session, "van_released", request_id=r, van_id=old.van_id, actor=s.actor,
                now=s.now, cycle_id=s.cycle_id, reason=reason,
            )  # fmt: skip
            result.released.append(r)
        new_vans = {a.van_id for a in ok.values()}
        for old in ended.values():
            van = self.vans.get(old.van_id)
            if van is not None and old.van_id not in new_vans:
                van.status = VanStatus.AVAILABLE.value
                van.busy_until = None
        for r in sorted(ok):
            self._store(ok[r], ended.get(r), result)
        if self.rows:
            # The new jobs with one insert and their events with another (after the ended
            # jobs and the statuses are flushed: the unique indexes see the old jobs ended
            # first); per-row ORM objects made this write long under the SQLite write lock.
            s.db_session.flush()
            s.db_session.execute(insert(m.VanAssignment), self.rows)
            add_events(s.db_session, self.events)

    def _store(
        self, a: VanAssignment, previous: m.VanAssignment | None, result: CycleResult
    ) -> None:
        s, req, van = self.scope, self.scope.requests[a.request_id], self.vans[a.van_id]
        queued = a.van_id in self.snapshot.soon_free
        eta_at = _minutes(s.now, a.eta_minutes)
        promised = eta_at
        if previous is not None and previous.promised_eta_at is not None:
            promised = previous.promised_eta_at  # lateness stays measured against the promise
        self.rows.append(
            {
                "request_id": a.request_id, "van_id": a.van_id, "active": True,
                "created_at": s.now, "eta_at": eta_at, "promised_eta_at": promised,
                "travel_minutes": a.travel_minutes, "travel_km": a.travel_km,
                "source": "optimizer", "queued": queued,
                "reason": "designated station" if a.designated else "", "end_reason": "",
            }
        )  # fmt: skip
        if not queued:
            van.status = VanStatus.ASSIGNED.value
            van.busy_until = _minutes(eta_at, busy_minutes_on_site(req))
        req.status = RequestStatus.ASSIGNED.value
        req.updated_at = s.now
        req.escalated_at, req.escalation_reason = None, ""
        if previous is None:
            self.events.append(
                NewEvent(
                    "van_assigned", s.now, request_id=a.request_id, van_id=a.van_id,
                    actor=s.actor,
                    data={
                        "cycle_id": s.cycle_id, "source": "optimizer",
                        "eta_minutes": round(a.eta_minutes, 1),
                        "travel_km": round(a.travel_km, 1), "designated": a.designated,
                        "queued": queued,
                    },
                )
            )  # fmt: skip
            result.assigned.append(
                AssignedRead(
                    request_id=a.request_id, van_id=a.van_id,
                    eta_minutes=round(a.eta_minutes, 1), eta_at=eta_at,
                    travel_km=round(a.travel_km, 1), designated=a.designated, queued=queued,
                )
            )  # fmt: skip
            return
        old_eta = _minutes_between(s.now, previous.eta_at) if previous.eta_at else None
        reason = f"re-planned: van {a.van_id} arrives in {a.eta_minutes:.0f} min"
        if old_eta is not None:
            reason += (
                f" instead of {old_eta:.0f} min with van {previous.van_id} (gain at least "
                f"{self.snapshot.match_params.reassignment_penalty_minutes:g} min, "
                f"priority {a.priority:g})"
            )
        else:
            reason += f" (van {previous.van_id} gave it up)"
        self.events.append(
            NewEvent(
                "assignment_override", s.now, request_id=a.request_id, van_id=a.van_id,
                actor=s.actor,
                data={
                    "cycle_id": s.cycle_id, "source": "replan", "reason": reason,
                    "previous_van_id": previous.van_id, "eta_minutes": round(a.eta_minutes, 1),
                    "travel_km": round(a.travel_km, 1), "queued": queued,
                },
            )
        )  # fmt: skip
        result.reassigned.append(
            ReassignedRead(
                request_id=a.request_id, van_id=a.van_id, eta_minutes=round(a.eta_minutes, 1),
                eta_at=eta_at, travel_km=round(a.travel_km, 1), designated=a.designated,
                queued=queued, previous_van_id=previous.van_id, reason=reason,
            )
        )  # fmt: skip


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

    def row(self, b: ReplacementBooking) -> dict[str, Any]:
        s = self.scope
        self.taken.add(b.truck_id)
        return {
            "request_id": b.request_id, "kind": OfferKind.TRUCK.value,
            "partner_id": b.partner_id, "truck_id": b.truck_id,
            "status": OfferStatus.OFFERED.value, "created_at": s.now,
            "expires_at": s.policy.expiry(s.now, self.promised.get(b.partner_id, 120.0)),
            "proposed_eta_minutes": b.pickup_eta_minutes,
            "delivery_eta_minutes": b.delivery_eta_minutes, "cost_cny": b.cost_cny,
            "decline_reason": "",
        }  # fmt: skip

    def event(self, b: ReplacementBooking, offer_id: int, row: dict[str, Any]) -> NewEvent:
        s = self.scope
        return NewEvent(
            "offer_made", s.now, request_id=b.request_id, truck_id=b.truck_id, actor=s.actor,
            data={
                "cycle_id": s.cycle_id, "offer_id": offer_id,
                "offer_kind": OfferKind.TRUCK.value, "partner_id": b.partner_id,
                "expires_at": row["expires_at"].isoformat(),
                "pickup_eta_minutes": round(b.pickup_eta_minutes, 1),
                "delivery_eta_minutes": round(b.delivery_eta_minutes, 1),
                "cost_cny": round(b.cost_cny, 2),
                "lateness_minutes": round(b.lateness_minutes, 1),
            },
        )  # fmt: skip


class _RescueOffers:
    """A breakdown no own van can take is offered to the best partner rescue providers."""

    def __init__(
        self,
        scope: _WriteScope,
        promised_minutes: dict[str, float],
        rescues: Sequence[RescueCandidate] = (),
    ) -> None:
        self.scope, self.promised = scope, promised_minutes
        ids = sorted(scope.requests)
        va, po = m.VanAssignment, m.PartnerOffer
        self.vanned = q.active_values(scope.db_session, va.request_id, va.active, ids)
        self.held = q.open_offer_values(
            scope.db_session, po.request_id, ids, kind=OfferKind.RESCUE, accepted=True
        )
        # The providers' slots, re-counted under their row locks (after the requests', vans'
        # and trucks'): cycles of other dispatch domains may have offered them jobs since the
        # snapshot, and the second writer waits for the first one's offers to commit.
        providers = q.lock_rows(
            scope.db_session, m.PartnerProvider, sorted({c.provider_id for c in rescues})
        )
        self.capacity = {pid: p.capacity_jobs for pid, p in providers.items()}
        self.loads = provider_loads(scope.db_session) if providers else {}

    def conflict(self, c: RescueCandidate) -> str | None:
        req = self.scope.requests.get(c.request_id)
        if (
            req is None
            or req.status != RequestStatus.RECEIVED.value
            or c.request_id in self.vanned
            or c.request_id in self.held
        ):
            return f"request {c.request_id}: changed meanwhile; provider {c.provider_id} not asked"
        load, capacity = self.loads.get(c.provider_id, 0), self.capacity.get(c.provider_id, 0)
        if load >= capacity:
            return (
                f"request {c.request_id}: provider {c.provider_id} has no free slot left "
                f"({load} of {capacity} taken meanwhile); not asked"
            )
        return None

    def row(self, c: RescueCandidate) -> dict[str, Any]:
        s = self.scope
        self.loads[c.provider_id] = self.loads.get(c.provider_id, 0) + 1  # the next check sees it
        return {
            "request_id": c.request_id, "kind": OfferKind.RESCUE.value,
            "partner_id": c.partner_id, "provider_id": c.provider_id,
            "status": OfferStatus.OFFERED.value, "created_at": s.now,
            "expires_at": s.policy.expiry(s.now, self.promised.get(c.provider_id, 60.0)),
            "proposed_eta_minutes": c.eta_minutes, "cost_cny": c.cost_cny,
            "decline_reason": "",
        }  # fmt: skip

    def event(self, c: RescueCandidate, offer_id: int, row: dict[str, Any]) -> NewEvent:
        s = self.scope
        return NewEvent(
            "offer_made", s.now, request_id=c.request_id, actor=s.actor,
            data={
                "cycle_id": s.cycle_id, "offer_id": offer_id,
                "offer_kind": OfferKind.RESCUE.value, "partner_id": c.partner_id,
                "provider_id": c.provider_id, "expires_at": row["expires_at"].isoformat(),
                "eta_minutes": round(c.eta_minutes, 1), "cost_cny": round(c.cost_cny, 2),
                "score_minutes": round(c.score_minutes, 1),
            },
        )  # fmt: skip


def _offer_read(offer_id: int, row: dict[str, Any]) -> OfferMadeRead:
    eta, cost = row.get("proposed_eta_minutes"), row.get("cost_cny")
    return OfferMadeRead(
        offer_id=offer_id,
        request_id=row["request_id"],
        kind=OfferKind(row["kind"]).value,
        partner_id=row["partner_id"],
        truck_id=row.get("truck_id"),
        provider_id=row.get("provider_id"),
        expires_at=row["expires_at"],
        proposed_eta_minutes=round(eta, 1) if eta is not None else None,
        cost_cny=round(cost, 2) if cost is not None else None,
    )


def _escalate(scope: _WriteScope, matching: VanMatching, result: CycleResult) -> None:
    """Requests that no own van's radius covers are escalated at once (the customer sees it,
    not an endless ``received``); a partner takes them from there. One UPDATE of the waiting
    ones not escalated yet (re-checked under its row locks) and one insert of their events:
    in a storm they are thousands."""
    ids = sorted(
        u.request_id for u in matching.unassigned if u.reason is UnassignedReason.NO_VAN_IN_RADIUS
    )
    if not ids:
        return
    db = scope.db_session
    r = m.RescueRequest
    reason = UnassignedReason.NO_VAN_IN_RADIUS.value
    escalated = sorted(
        db.scalars(
            update(r)
            .where(
                r.id.in_(ids),
                r.escalated_at.is_(None),
                r.status == RequestStatus.RECEIVED.value,
            )
            .values(escalated_at=scope.now, escalation_reason=reason)
            .returning(r.id)
            .execution_options(synchronize_session=False)
        )
    )
    add_events(
        db,
        [
            NewEvent(
                "escalated",
                scope.now,
                request_id=i,
                actor=scope.actor,
                data={"cycle_id": scope.cycle_id, "reason": reason},
            )
            for i in escalated
        ],
    )
    result.escalated.extend(escalated)


def _unassigned_reads(van_matching: VanMatching) -> list[UnassignedRead]:
    return [
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


def _unmatched_reads(replacements: ReplacementMatching) -> list[UnmatchedRead]:
    return [
        UnmatchedRead(request_id=u.request_id, reason=u.reason, detail=u.detail)
        for u in replacements.unmatched
    ]


PendingReasons = dict[str, dict[str, dict[str, Any]]]
"""Event kind -> request id -> the reason event's data (:func:`pending_reasons`)."""


def pending_reasons(
    db_session: Session,
    van_matching: VanMatching | None,
    replacements: ReplacementMatching | None,
) -> PendingReasons:
    """The waiting reasons the write will append (those that changed since the request's last
    one), read before the write lock is taken (:mod:`api.dispatching.reasons`)."""
    pending: PendingReasons = {}
    if van_matching:
        pending[UNASSIGNED_KIND] = reasons_to_record(
            db_session, UNASSIGNED_KIND, _unassigned_reads(van_matching)
        )
    if replacements:
        pending[UNMATCHED_KIND] = reasons_to_record(
            db_session, UNMATCHED_KIND, _unmatched_reads(replacements)
        )
    return pending


VANS = "vans"
OFFERS = "offers"
DECISION_PARTS = (VANS, OFFERS)
"""The parts of a write (:func:`write_decisions`): the van half (assignments, re-planned moves,
escalations, waiting reasons) and the partner half (truck and rescue offers, unmatched
reasons). Each is whole on its own: they touch different vans / trucks and re-check the
requests they decide under their own row locks, so a cycle may commit them one after the
other (the intake's commits get in between on SQLite) as well as together."""


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
    reasons: PendingReasons | None = None,
    parts: Sequence[str] = DECISION_PARTS,
) -> None:
    """Store what the solver decided, re-checking each decision under row locks (requests,
    then vans, then trucks, each in id order): van assignments and re-planned moves, truck
    offers, rescue offers, and the waiting reasons that changed (``reasons``, from
    :func:`pending_reasons` before the write lock; read here when None). ``parts`` (of
    :data:`DECISION_PARTS`) says which halves this transaction writes."""
    if reasons is None:
        reasons = pending_reasons(db_session, van_matching, replacements)
    vans_part, offers_part = VANS in parts, OFFERS in parts
    current = snapshot.current_van
    changed = [
        a for a in (van_matching.assignments if van_matching and vans_part else ())
        if current.get(a.request_id) != a.van_id
    ]  # fmt: skip
    chosen = {a.request_id for a in van_matching.assignments} if van_matching else set()
    lost = [r for r in current if r not in chosen] if vans_part else []
    bookings = (
        sorted(replacements.bookings, key=lambda b: b.request_id)
        if replacements and offers_part
        else []
    )
    rescues = (
        sorted(rescue_offers, key=lambda c: (c.request_id, c.score_minutes, c.provider_id))
        if offers_part
        else []
    )
    request_ids = sorted(
        {a.request_id for a in changed}
        | set(lost)
        | {b.request_id for b in bookings}
        | {c.request_id for c in rescues}
    )
    van_ids = {a.van_id for a in changed} | {current[r] for r in lost}
    van_ids |= {current[a.request_id] for a in changed if a.request_id in current}
    requests = q.lock_rows(db_session, m.RescueRequest, request_ids)
    vans = q.lock_rows(db_session, m.Van, sorted(van_ids))
    trucks = q.lock_rows(db_session, m.ReplacementTruck, sorted({b.truck_id for b in bookings}))
    scope = _WriteScope(
        db_session, snapshot.now, actor, result.cycle_id, requests, policy or OfferPolicy()
    )
    if van_matching and (changed or lost):
        _VanPlan(scope, vans, snapshot, van_matching).write(result)
    if van_matching and vans_part:
        _escalate(scope, van_matching, result)
        result.unassigned = _unassigned_reads(van_matching)
        insert_reasons(
            db_session, UNASSIGNED_KIND, reasons.get(UNASSIGNED_KIND, {}), scope.now,
            result.cycle_id,
        )  # fmt: skip
    if bookings:
        promised = {t.partner.id: t.partner.promised_response_minutes for t in snapshot.trucks}
        result.offered = _write_offers(
            scope, bookings, _TruckOffers(scope, trucks, bookings, promised), result.conflicts
        )
    if rescues:
        promised = {
            p.provider.id: p.provider.promised_response_minutes for p in snapshot.rescue_providers
        }
        result.offered += _write_offers(
            scope, rescues, _RescueOffers(scope, promised, rescues), result.conflicts
        )
    if replacements and offers_part:
        result.unmatched = _unmatched_reads(replacements)
        insert_reasons(
            db_session, UNMATCHED_KIND, reasons.get(UNMATCHED_KIND, {}), scope.now,
            result.cycle_id,
        )  # fmt: skip
    db_session.flush()
