"""What needs a human now: the console's attention panel (GET /v1/attention).

A night-shift dispatcher with 200 open requests must see, without clicking anything, the few
that the automatic cycle could not handle and why, and the jobs going wrong. Each item says
what to do about it (``action``): choose a van, call a partner, check with the crew.
Reasons come from the events the dispatch cycle records (:mod:`api.dispatching.reasons`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.deps import SessionDep, SettingsDep, StaffUser
from api.dispatching.reasons import UNASSIGNED_KIND, UNMATCHED_KIND, latest_reasons
from api.requests import queries as q
from api.responses import E401, E403
from dispatch import RequestStatus

S = RequestStatus
OVERDUE_GRACE_MINUTES = 10.0
"""A van not on site this long after its ETA is reported (GPS and ETAs are not exact)."""

AttentionKind = Literal[
    "no_van",
    "late",
    "overdue",
    "no_truck",
    "deadline",
    "offer_expiring",
    "offer_refused",
]
Action = Literal["choose_van", "call_crew", "call_partner"]
OFFER_EXPIRING_MINUTES = 10.0
"""An offer this close to its expiry with no answer is shown (the partner may need a call)."""


class AttentionItemRead(BaseModel):
    kind: AttentionKind = Field(
        description="no_van, late, overdue, no_truck, deadline, offer_expiring, offer_refused"
    )
    urgent: bool = Field(description="A customer is waiting with nobody on the way")
    request_id: str
    plate: str
    vehicle_class: str
    priority: float
    waited_minutes: float
    title: str = Field(examples=["No van: no_van_in_radius"])
    detail: str = Field(examples=["escalate: send van V-370100-001 beyond its service radius"])
    since: dt.datetime | None = Field(description="When the reason was recorded")
    action: Action
    action_label: str = Field(examples=["Choose a van"])


class AttentionRead(BaseModel):
    generated_at: dt.datetime
    promise_minutes: float
    items: list[AttentionItemRead] = Field(description="Urgent first, then by priority and wait")


_ACTION_LABEL: dict[Action, str] = {
    "choose_van": "Choose a van",
    "call_crew": "Call the crew / reassign",
    "call_partner": "Call a partner",
}


def attention_items(
    *, db_session: Session, promise_minutes: float, now: dt.datetime | None = None
) -> AttentionRead:
    """Open requests with no van (and the cycle's reason), late or overdue vans, requests
    needing a truck that none fits, and bookings that will miss the cargo deadline."""
    now = now or utcnow()
    rows = q.list_requests(db_session=db_session, open_only=True, limit=5000)
    ids = [r.id for r in rows]
    assignments = q.active_assignments_of(db_session, ids)
    bookings = q.active_bookings_of(db_session, ids)
    received = [r.id for r in rows if r.status == S.RECEIVED.value]
    waiting_truck = [
        r.id for r in rows if r.status == S.AWAITING_REPLACEMENT.value and r.id not in bookings
    ]
    unassigned = latest_reasons(db_session, UNASSIGNED_KIND, received)
    unmatched = latest_reasons(db_session, UNMATCHED_KIND, waiting_truck)
    offers = _offers_by_request(db_session, ids)
    items: list[AttentionItemRead] = []

    def add(
        r: m.RescueRequest,
        kind: AttentionKind,
        title: str,
        detail: str,
        action: Action,
        since: dt.datetime | None = None,
    ) -> None:
        items.append(
            AttentionItemRead(
                kind=kind, urgent=kind in ("no_van", "overdue"), request_id=r.id, plate=r.plate,
                vehicle_class=r.vehicle_class, priority=r.priority,
                waited_minutes=round(max(0.0, (now - r.created_at).total_seconds() / 60.0), 1),
                title=title, detail=detail, since=since, action=action,
                action_label=_ACTION_LABEL[action],
            )
        )  # fmt: skip

    for r in rows:
        status = RequestStatus(r.status)
        a, b = assignments.get(r.id), bookings.get(r.id)
        if status is S.RECEIVED:
            e = unassigned.get(r.id)
            if e is None:
                add(r, "no_van", "No van yet", "waiting for the next dispatch cycle", "choose_van")
            else:
                reason = str(e.data.get("reason", "")).replace("_", " ")
                add(r, "no_van", f"No van: {reason}", str(e.data.get("suggestion", "")),
                    "choose_van", e.created_at)  # fmt: skip
        elif status in (S.ASSIGNED, S.EN_ROUTE) and a is not None:
            if a.eta_at is None:
                add(r, "late", "No ETA", f"van {a.van_id} cannot reach it by road", "call_crew")
                continue
            overdue = (now - a.eta_at).total_seconds() / 60.0
            late_by = (a.eta_at - r.created_at).total_seconds() / 60.0 - promise_minutes
            if overdue > OVERDUE_GRACE_MINUTES:
                add(r, "overdue", f"Van {a.van_id} overdue",
                    f"ETA passed {overdue:.0f} min ago and the van is not on site", "call_crew",
                    a.eta_at)  # fmt: skip
            elif late_by > 0:
                add(r, "late", f"Late by {late_by:.0f} min",
                    f"van {a.van_id} arrives {late_by:.0f} min after the {promise_minutes:g} min "
                    "promise", "choose_van", a.created_at)  # fmt: skip
        elif status is S.AWAITING_REPLACEMENT and b is None:
            e = unmatched.get(r.id)
            title = "No replacement truck"
            if e is None:
                add(r, "no_truck", title, "waiting for the next dispatch cycle", "call_partner")
            else:
                reason = str(e.data.get("reason", "")).replace("_", " ")
                add(r, "no_truck", f"{title}: {reason}", str(e.data.get("detail", "")),
                    "call_partner", e.created_at)  # fmt: skip
        _offer_items(r, offers.get(r.id, []), now, add)
        if (
            b is not None
            and b.delivery_eta_at is not None
            and r.cargo_deadline is not None
            and b.delivery_eta_at > r.cargo_deadline
        ):
            hours = (b.delivery_eta_at - r.cargo_deadline).total_seconds() / 3600.0
            add(r, "deadline", f"Cargo {hours:.1f} h late",
                f"truck {b.truck_id} delivers after the cargo deadline", "call_partner",
                b.created_at)  # fmt: skip
    items.sort(key=lambda i: (not i.urgent, -i.priority, -i.waited_minutes, i.request_id))
    return AttentionRead(generated_at=now, promise_minutes=promise_minutes, items=items)


def _offers_by_request(
    db_session: Session, request_ids: list[str]
) -> dict[str, list[m.PartnerOffer]]:
    """Each request's partner offers, newest first."""
    out: dict[str, list[m.PartnerOffer]] = {}
    if not request_ids:
        return out
    rows = db_session.scalars(
        select(m.PartnerOffer)
        .where(m.PartnerOffer.request_id.in_(request_ids))
        .order_by(m.PartnerOffer.created_at.desc(), m.PartnerOffer.id.desc())
    ).all()
    for o in rows:
        out.setdefault(o.request_id, []).append(o)
    return out


def _offer_items(
    r: m.RescueRequest, offers: list[m.PartnerOffer], now: dt.datetime, add: Any
) -> None:
    """An open offer about to lapse, or a job whose last offer was refused (declined or
    expired) with nothing offered since: the partner side needs a human."""
    if not offers:
        return
    latest = offers[0]
    kind = f"{latest.kind} offer"
    if latest.status == "offered":
        left = (_aware(latest.expires_at) - now).total_seconds() / 60.0
        if left <= OFFER_EXPIRING_MINUTES:
            add(r, "offer_expiring", f"The {kind} expires in {max(left, 0.0):.0f} min",
                f"partner {latest.partner_id} has not answered", "call_partner",
                latest.created_at)  # fmt: skip
    elif latest.status in ("declined", "expired"):
        why = latest.decline_reason if latest.status == "declined" else "no answer in time"
        add(r, "offer_refused", f"The {kind} was {latest.status}",
            f"partner {latest.partner_id}: {why or 'no reason given'}; the next cycle asks the "
            "next partner", "call_partner", latest.answered_at or latest.expires_at)  # fmt: skip


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


router = APIRouter(prefix="/v1", tags=["console"])


@router.get(
    "/attention",
    response_model=AttentionRead,
    summary="What needs a dispatcher now (staff)",
    responses={**E401, **E403},
)
def attention(db: SessionDep, _staff: StaffUser, settings: SettingsDep) -> AttentionRead:
    """Requests with no van and the last automatic cycle's reason, vans late against the
    promise or overdue against their ETA, requests that need a truck none fits, bookings that
    miss the cargo deadline; each with the action that resolves it."""
    return attention_items(db_session=db, promise_minutes=settings.promise_minutes)
