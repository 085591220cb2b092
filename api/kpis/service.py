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
    """Counts by status; the share within the promise; the mean expected request-to-arrival
    time of the active assignments; jobs at risk; and the fleet's use.

    The share within the promise counts a request once its outcome against the promise is
    known at ``now``: its van arrived (within when arrival - request <= ``promise_minutes``,
    else late), or it is still waiting for a van (received, assigned, en route) and more than
    ``promise_minutes`` have passed since the request (``overdue``: a miss whenever the van
    comes). A request still waiting within its promise can still make it, so it is not
    counted yet; with nothing counted the share is None."""
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
    waiting = (S.RECEIVED, S.ASSIGNED, S.EN_ROUTE)
    waiting_for_van = n(*waiting)
    overdue = int(
        db_session.scalar(
            select(func.count())
            .select_from(m.RescueRequest)
            .where(
                m.RescueRequest.status.in_([s.value for s in waiting]),
                m.RescueRequest.created_at < now - dt.timedelta(minutes=promise_minutes),
            )
        )
        or 0
    )
    counted = len(arrivals) + overdue
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
        within_promise=round(within / counted, 4) if counted else None,
        within_promise_count=within,
        arrived=len(arrivals),
        overdue=overdue,
        waiting_for_van=waiting_for_van,
        at_risk=int(at_risk or 0),
        promise_minutes=promise_minutes,
        mean_eta_minutes=round(sum(etas) / len(etas), 1) if etas else None,
        mean_wait_minutes=round(sum(waits) / len(waits), 1) if waits else None,
        vans_available=int(vans.get("available", 0)),
        vans_busy=int(sum(v for k, v in vans.items() if k not in ("available", "off_shift"))),
        trucks_booked=int(booked or 0),
    )
