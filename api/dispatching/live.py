"""Jobs in progress fed back into the plan: ETAs re-timed from position reports, lateness
against the promise, the at-risk flag, and when and where each busy van will be free.

- A position report of a van on its way re-times its ETA by road from where it is
  (:func:`retime_from_position`), and logs an ``eta_updated`` event carrying ``eta_minutes``:
  the outbox compares it with the ETA last told to the customer and sends
  ``request.delayed`` when it grew by more than 15 minutes.
- A van not there by its ETA plus the grace, or now expected later than the promised ETA
  (told at assignment) plus the grace, makes its job *at risk*: flagged at once by a position
  report, else by the next dispatch cycle (:func:`flag_late_jobs`), with a ``job_at_risk``
  event; a report bringing the van back within the promise clears it.
- ``busy_until`` follows the job: assignment (ETA + expected time on site), each re-timing,
  arrival (on site), towing (the tow leg home), and a release clears it
  (:mod:`dispatch.van_time` holds the expectations).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.events import add_event
from dispatch.lifecycle import VAN_ON_ITS_WAY, RequestStatus
from dispatch.van_time import on_site_minutes
from fleet import GeoPoint, VanStatus
from routing import TravelTimeProvider

VAN_PROFILE = "rescue_van"
TOW_PROFILE = "towing"


def minutes_between(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 60.0


def plus_minutes(at: dt.datetime, minutes: float) -> dt.datetime:
    return at + dt.timedelta(minutes=minutes)


@dataclass(frozen=True)
class Lateness:
    """A job's arrival measured against its promise (the ETA told at assignment)."""

    expected_at: dt.datetime | None
    """Arrival time if the van is there, else the later of the ETA and now."""
    late_by_minutes: float | None
    """How much later than the promise (>= 0; None without an ETA)."""
    overdue: bool
    """Not there, and past the ETA plus the grace or expected past the promise plus it."""


def lateness(a: m.VanAssignment, *, now: dt.datetime, grace_minutes: float = 0.0) -> Lateness:
    promised = a.promised_eta_at or a.eta_at
    if a.arrived_at is not None:
        late = None if promised is None else max(0.0, minutes_between(promised, a.arrived_at))
        return Lateness(a.arrived_at, late, False)
    if a.eta_at is None or promised is None:
        return Lateness(None, None, False)
    expected = max(a.eta_at, now)
    late_by = max(0.0, minutes_between(promised, expected))
    overdue = minutes_between(a.eta_at, now) > grace_minutes or late_by > grace_minutes
    return Lateness(expected, late_by, overdue)


def busy_minutes_on_site(req: m.RescueRequest) -> float:
    return on_site_minutes(
        expected_repair_hours=req.estimated_repair_hours, needs_tow=req.needs_tow
    )


def van_origin(db_session: Session, van: m.Van) -> GeoPoint | None:
    """Where the van is: its last position, else its home station."""
    if van.lat is not None and van.lon is not None:
        return GeoPoint(van.lat, van.lon)
    station = db_session.get(m.Station, van.station_id)
    return GeoPoint(station.lat, station.lon) if station is not None else None


def _mark_at_risk(
    db_session: Session,
    a: m.VanAssignment,
    late: Lateness,
    *,
    now: dt.datetime,
    actor: str,
    cycle_id: str | None = None,
) -> bool:
    """Set (or clear) the at-risk flag from ``late``; logs ``job_at_risk`` when it is set."""
    if late.overdue and a.at_risk_at is None:
        a.at_risk_at = now
        add_event(
            db_session, "job_at_risk", request_id=a.request_id, van_id=a.van_id, actor=actor,
            now=now, late_by_minutes=round(late.late_by_minutes or 0.0, 1),
            promised_eta_at=(a.promised_eta_at or a.eta_at).isoformat() if a.eta_at else None,
            cycle_id=cycle_id,
        )  # fmt: skip
        return True
    if not late.overdue and a.at_risk_at is not None:
        a.at_risk_at = None
    return False


def retime_from_position(
    db_session: Session,
    *,
    van: m.Van,
    provider: TravelTimeProvider,
    now: dt.datetime,
    grace_minutes: float,
    actor: str,
) -> m.VanAssignment | None:
    """Re-time the van's current job from its reported position (road travel), when the van
    is on its way to it; its ``busy_until`` moves with it. The assignment, or None when
    there is nothing to re-time (no job, already there, or the road cannot reach it)."""
    a = db_session.scalar(
        select(m.VanAssignment).where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.queued.is_(False),
            m.VanAssignment.van_id == van.id,
        )
    )
    if a is None or van.lat is None or van.lon is None:
        return None
    req = db_session.get(m.RescueRequest, a.request_id)
    if req is None or RequestStatus(req.status) not in VAN_ON_ITS_WAY:
        return None
    leg = provider.leg(GeoPoint(van.lat, van.lon), GeoPoint(req.lat, req.lon), VAN_PROFILE)
    if leg.minutes == float("inf"):
        return None
    if a.promised_eta_at is None:
        a.promised_eta_at = a.eta_at
    a.eta_at = plus_minutes(now, leg.minutes)
    a.travel_minutes, a.travel_km = leg.minutes, leg.km
    van.busy_until = plus_minutes(a.eta_at, busy_minutes_on_site(req))
    late = lateness(a, now=now, grace_minutes=grace_minutes)
    add_event(
        db_session, "eta_updated", request_id=a.request_id, van_id=van.id, actor=actor,
        now=now, eta_minutes=round(leg.minutes, 1), travel_km=round(leg.km, 1),
        late_by_minutes=round(late.late_by_minutes or 0.0, 1),
    )  # fmt: skip
    _mark_at_risk(db_session, a, late, now=now, actor=actor)
    return a


def flag_late_jobs(
    db_session: Session, *, now: dt.datetime, grace_minutes: float, actor: str, cycle_id: str
) -> list[str]:
    """The dispatch cycle's check: flag every job on its way that became overdue since the
    last look (no position report needed). The ids of the requests flagged now."""
    rows = db_session.execute(
        select(m.VanAssignment)
        .join(m.RescueRequest, m.RescueRequest.id == m.VanAssignment.request_id)
        .where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.at_risk_at.is_(None),
            m.VanAssignment.eta_at.is_not(None),
            m.RescueRequest.status.in_([s.value for s in VAN_ON_ITS_WAY]),
        )
        .order_by(m.VanAssignment.request_id)
    ).scalars()
    flagged = []
    for a in rows:
        late = lateness(a, now=now, grace_minutes=grace_minutes)
        if late.overdue and _mark_at_risk(db_session, a, late, now=now, actor=actor,
                                          cycle_id=cycle_id):  # fmt: skip
            flagged.append(a.request_id)
    return flagged


def _tow_minutes(
    db_session: Session, van: m.Van, req: m.RescueRequest, provider: TravelTimeProvider | None
) -> float:
    """The tow leg from the breakdown to the van's home station (0 without a provider)."""
    station = db_session.get(m.Station, van.station_id)
    if station is None or provider is None:
        return 0.0
    leg = provider.leg(GeoPoint(req.lat, req.lon), GeoPoint(station.lat, station.lon),
                       TOW_PROFILE)  # fmt: skip
    return leg.minutes if leg.minutes != float("inf") else 0.0


def job_reached(
    db_session: Session,
    *,
    a: m.VanAssignment,
    van: m.Van,
    req: m.RescueRequest,
    provider: TravelTimeProvider | None,
    now: dt.datetime,
) -> None:
    """The van is at the breakdown: arrival time kept, free after the expected work there
    (a tow job: the hook-up and the tow leg home)."""
    if a.arrived_at is None:
        a.arrived_at = now
    a.at_risk_at = None
    minutes = busy_minutes_on_site(req)
    if req.needs_tow:
        minutes += _tow_minutes(db_session, van, req, provider)
    van.busy_until = plus_minutes(now, minutes)


def towing_started(
    db_session: Session,
    *,
    van: m.Van,
    req: m.RescueRequest,
    provider: TravelTimeProvider | None,
    now: dt.datetime,
) -> None:
    """The van tows the vehicle to its home station: free there after the tow leg."""
    van.busy_until = plus_minutes(now, _tow_minutes(db_session, van, req, provider))


def start_queued_job(
    db_session: Session, *, van: m.Van, now: dt.datetime, actor: str
) -> m.VanAssignment | None:
    """The van was released from its current job: its queued next job (if any) becomes the
    current one, timed from now with the leg planned from where the van was to be free."""
    q = db_session.scalar(
        select(m.VanAssignment).where(
            m.VanAssignment.active.is_(True),
            m.VanAssignment.queued.is_(True),
            m.VanAssignment.van_id == van.id,
        )
    )
    if q is None:
        return None
    q.queued = False
    db_session.flush()  # the current-job index sees the van's previous job ended first
    travel = q.travel_minutes or 0.0
    q.eta_at = plus_minutes(now, travel)
    van.status = VanStatus.ASSIGNED.value
    req = db_session.get(m.RescueRequest, q.request_id)
    if req is not None:
        van.busy_until = plus_minutes(q.eta_at, busy_minutes_on_site(req))
    add_event(
        db_session, "queued_job_started", request_id=q.request_id, van_id=van.id, actor=actor,
        now=now, eta_minutes=round(travel, 1),
    )  # fmt: skip
    return q
