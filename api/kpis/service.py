"""Live KPIs for the console strip and GET /v1/kpis."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.schemas import KpiRead
from dispatch import RequestStatus
from dispatch.lifecycle import VAN_ON_ITS_WAY

S = RequestStatus


def live_kpis(
    *, db_session: Session, promise_minutes: float, now: dt.datetime | None = None
) -> KpiRead:
    """Counts by status; the share within the promise: requests whose van actually arrived
    within ``promise_minutes`` of the request, over those arrived plus those still waiting for
    a van (received, assigned, en route: not, or not yet, within it); the mean expected
    request-to-arrival time of the active assignments; jobs at risk; and the fleet's use."""
    now = now or utcnow()
    by_status = dict(
        db_session.execute(
            select(m.RescueRequest.status, func.count()).group_by(m.RescueRequest.status)
        ).all()
    )

    def n(*statuses: RequestStatus) -> int:
        return int(sum(by_status.get(s.value, 0) for s in statuses))

    rows = db_session.execute(
        select(m.RescueRequest.created_at, m.VanAssignment.eta_at)
        .join(m.VanAssignment, m.VanAssignment.request_id == m.RescueRequest.id)
        .where(m.VanAssignment.active.is_(True))
    ).all()
    etas = [(eta - created).total_seconds() / 60.0 for created, eta in rows if eta is not None]
    arrivals = db_session.execute(
        select(m.RescueRequest.created_at, func.min(m.VanAssignment.arrived_at))
        .join(m.VanAssignment, m.VanAssignment.request_id == m.RescueRequest.id)
        .where(m.VanAssignment.arrived_at.is_not(None))
        .group_by(m.RescueRequest.id, m.RescueRequest.created_at)
    ).all()
    within = sum(
        1
        for created, arrived in arrivals
        if arrived is not None and (arrived - created).total_seconds() / 60.0 <= promise_minutes
    )
    waiting_for_van = n(S.RECEIVED, S.ASSIGNED, S.EN_ROUTE)
    measured = len(arrivals) + waiting_for_van
    at_risk = db_session.scalar(
        select(func.count())
        .select_from(m.VanAssignment)
        .join(m.RescueRequest, m.RescueRequest.id == m.VanAssignment.request_id)
        .where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.at_risk_at.is_not(None),
            m.RescueRequest.status.in_([s.value for s in VAN_ON_ITS_WAY]),
        )
    )
    waits = [
        (now - c).total_seconds() / 60.0
        for c in db_session.scalars(
            select(m.RescueRequest.created_at).where(m.RescueRequest.status == S.RECEIVED.value)
        )
    ]
    vans = dict(db_session.execute(select(m.Van.status, func.count()).group_by(m.Van.status)).all())
    booked = db_session.scalar(
        select(func.count())
        .select_from(m.ReplacementBooking)
        .where(m.ReplacementBooking.active.is_(True))
    )
    return KpiRead(
        generated_at=now,
        open=int(sum(by_status.values())) - n(S.CLOSED, S.CANCELLED),
        received=n(S.RECEIVED),
        assigned=n(S.ASSIGNED, S.EN_ROUTE),
        on_site=n(S.ON_SITE, S.TOWING),
        awaiting_replacement=n(S.AWAITING_REPLACEMENT),
        replacement_assigned=n(S.REPLACEMENT_ASSIGNED),
        within_promise=round(within / measured, 4) if measured else None,
        within_promise_count=within,
        arrived=len(arrivals),
        waiting_for_van=waiting_for_van,
        at_risk=int(at_risk or 0),
        promise_minutes=promise_minutes,
        mean_eta_minutes=round(sum(etas) / len(etas), 1) if etas else None,
        mean_wait_minutes=round(sum(waits) / len(waits), 1) if waits else None,
        vans_available=int(vans.get("available", 0)),
        vans_busy=int(sum(v for k, v in vans.items() if k not in ("available", "off_shift"))),
        trucks_booked=int(booked or 0),
    )
