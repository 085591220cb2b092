"""Live KPIs for the console strip and GET /v1/kpis."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.schemas import KpiRead
from dispatch import RequestStatus

S = RequestStatus


def live_kpis(
    *, db_session: Session, promise_minutes: float, now: dt.datetime | None = None
) -> KpiRead:
    """Counts by status, the share of active assignments arriving within the promise
    (request created -> van ETA), the mean of that time, and the fleet's use."""
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
    within = sum(1 for e in etas if e <= promise_minutes)
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
        within_promise=round(within / len(etas), 4) if etas else None,
        within_promise_count=within,
        promise_minutes=promise_minutes,
        mean_eta_minutes=round(sum(etas) / len(etas), 1) if etas else None,
        mean_wait_minutes=round(sum(waits) / len(waits), 1) if waits else None,
        vans_available=int(vans.get("available", 0)),
        vans_busy=int(sum(v for k, v in vans.items() if k not in ("available", "off_shift"))),
        trucks_booked=int(booked or 0),
    )
