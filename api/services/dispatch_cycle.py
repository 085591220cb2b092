"""One dispatch cycle: load open requests and free vans (and trucks), call the pure dispatch
core, store the decisions in one transaction.

Phases (so that the solver never holds the database's write lock):

1. leadership: on PostgreSQL a session advisory lock (``pg_try_advisory_lock``) lets exactly
   one cycle run at a time across all server processes; on SQLite a per-process lock;
2. read a snapshot (one short transaction) as :mod:`fleet` / :mod:`dispatch` dataclasses;
3. solve: :func:`dispatch.match_vans` on :func:`dispatch.build_van_matching_problem`, and
   :func:`dispatch.match_replacements` for requests that need a truck;
4. write (one transaction): lock the chosen requests, then the vans / trucks (always in that
   order, sorted by id: no deadlock with overrides or cancellations, which lock the request
   first), re-check that each is still free (a concurrent override or cancellation may have
   got there first: reported as a conflict, never double-booked), insert assignments,
   bookings and events, update statuses. Any error rolls the whole write back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from api.db import models as m
from api.db.adapters import partner_from_row, truck_from_row
from api.db.engine import transaction
from api.services.requests import (
    REPLACEMENT_ELIGIBLE,
    add_event,
    default_cargo_kind,
    utcnow,
)
from dispatch import (
    OpenRequest,
    ReplacementMatching,
    ReplacementRequest,
    RequestStatus,
    TruckState,
    VanMatching,
    VanState,
    build_replacement_problem,
    build_van_matching_problem,
    match_replacements,
    match_vans,
)
from fleet import GeoPoint, RescueVan, VanCapability, VanStatus, is_on_shift
from fleet.geography import nearest_prefecture
from routing import TravelTimeProvider

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x52455343  # "RESC"
LOCAL_TZ = dt.timezone(dt.timedelta(hours=8))  # China Standard Time (shift hours)
FREE_VAN_STATUSES = frozenset({VanStatus.AVAILABLE.value, VanStatus.RETURNING.value})
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@dataclass
class CycleResult:
    cycle_id: str
    started_at: dt.datetime
    provider: str
    ran: bool = True
    skipped_reason: str | None = None
    seconds: float = 0.0
    open_requests: int = 0
    free_vans: int = 0
    assigned: list[dict[str, Any]] = field(default_factory=list)
    unassigned: list[dict[str, Any]] = field(default_factory=list)
    booked: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id,
            "ran": self.ran,
            "skipped_reason": self.skipped_reason,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 4),
            "provider": self.provider,
            "open_requests": self.open_requests,
            "free_vans": self.free_vans,
            "assigned": self.assigned,
            "unassigned": self.unassigned,
            "booked": self.booked,
            "unmatched": self.unmatched,
            "conflicts": self.conflicts,
        }

    @property
    def decided(self) -> bool:
        return bool(self.assigned or self.booked)


@dataclass(frozen=True)
class Snapshot:
    now: dt.datetime
    requests: tuple[OpenRequest, ...]
    vans: tuple[VanState, ...]
    replacement_requests: tuple[ReplacementRequest, ...]
    trucks: tuple[TruckState, ...]


@contextmanager
def cycle_leadership(engine: Engine) -> Iterator[bool]:
    """Yields True when this caller may run a cycle now (and holds the lock until exit)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
                ).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    conn.commit()
        return
    key = str(engine.url)
    with _local_locks_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    got = lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            lock.release()


def load_snapshot(
    *, db_session: Session, now: dt.datetime, respect_shifts: bool = True
) -> Snapshot:
    """Open requests (received, no van), free vans (no active assignment, available or
    returning, on shift), requests that need a truck and have none, and available trucks."""
    busy_vans = select(m.VanAssignment.van_id).where(m.VanAssignment.active.is_(True))
    with_van = select(m.VanAssignment.request_id).where(m.VanAssignment.active.is_(True))
    req_rows = db_session.scalars(
        select(m.RescueRequest)
        .where(
            m.RescueRequest.status == RequestStatus.RECEIVED.value,
            m.RescueRequest.id.not_in(with_van),
        )
        .order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    ).all()
    requests = tuple(
        OpenRequest(
            id=r.id,
            location=GeoPoint(r.lat, r.lon),
            vehicle_class=r.vehicle_class,  # type: ignore[arg-type]
            needs_tow=r.needs_tow,
            priority=max(1.0, r.priority),
            designated_station_id=r.designated_station_id,
            waited_minutes=max(0.0, (now - r.created_at).total_seconds() / 60.0),
        )
        for r in req_rows
    )
    vans: list[VanState] = []
    if requests:
        local_hour = now.astimezone(LOCAL_TZ).hour + now.astimezone(LOCAL_TZ).minute / 60.0
        rows = db_session.execute(
            select(m.Van, m.Station)
            .join(m.Station, m.Van.station_id == m.Station.id)
            .where(m.Van.status.in_(FREE_VAN_STATUSES), m.Van.id.not_in(busy_vans))
            .order_by(m.Van.id)
        ).all()
        for van, station in rows:
            on_shift = (not respect_shifts) or is_on_shift(
                station.open_hour, station.close_hour, local_hour
            )
            free_in = 0.0
            if van.busy_until is not None and van.busy_until > now:
                free_in = (van.busy_until - now).total_seconds() / 60.0
            position = (
                GeoPoint(van.lat, van.lon) if van.lat is not None and van.lon is not None else None
            )
            vans.append(
                VanState(
                    van=RescueVan(
                        id=van.id,
                        station_id=van.station_id,
                        capability=VanCapability(van.capability),
                        service_radius_km=van.service_radius_km,
                        status=VanStatus(van.status),
                        position=position,
                    ),
                    home=GeoPoint(station.lat, station.lon),
                    position=position,
                    free_in_minutes=free_in,
                    on_shift=on_shift,
                )
            )

    booked = select(m.ReplacementBooking.request_id).where(m.ReplacementBooking.active.is_(True))
    rep_rows = db_session.scalars(
        select(m.RescueRequest)
        .where(
            m.RescueRequest.needs_replacement.is_(True),
            m.RescueRequest.status.in_([s.value for s in REPLACEMENT_ELIGIBLE]),
            m.RescueRequest.cargo_weight_t.is_not(None),
            m.RescueRequest.cargo_destination_lat.is_not(None),
            m.RescueRequest.id.not_in(booked),
        )
        .order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    ).all()
    rep_requests = []
    for r in rep_rows:
        deadline = None
        if r.cargo_deadline is not None:
            deadline = max(0.0, (r.cargo_deadline - now).total_seconds() / 60.0)
        province = r.province_adcode or nearest_prefecture(r.lat, r.lon).province_adcode
        rep_requests.append(
            ReplacementRequest(
                id=r.id,
                location=GeoPoint(r.lat, r.lon),
                province_adcode=province,
                cargo_weight_t=float(r.cargo_weight_t or 0.0),
                cargo_kind=r.cargo_kind or default_cargo_kind(r.vehicle_class),  # type: ignore[arg-type]
                destination=GeoPoint(
                    r.cargo_destination_lat or 0.0, r.cargo_destination_lon or 0.0
                ),
                deadline_minutes_from_now=deadline,
            )
        )
    trucks: list[TruckState] = []
    if rep_requests:
        busy_trucks = select(m.ReplacementBooking.truck_id).where(
            m.ReplacementBooking.active.is_(True)
        )
        partners = {p.id: partner_from_row(p) for p in db_session.scalars(select(m.Partner))}
        for t in db_session.scalars(
            select(m.ReplacementTruck)
            .where(
                m.ReplacementTruck.status == "available",
                m.ReplacementTruck.id.not_in(busy_trucks),
            )
            .order_by(m.ReplacementTruck.id)
        ):
            pos = GeoPoint(t.lat, t.lon) if t.lat is not None and t.lon is not None else None
            trucks.append(TruckState(truck_from_row(t), partners[t.partner_id], position=pos))
    return Snapshot(now, requests, tuple(vans), tuple(rep_requests), tuple(trucks))


def solve(
    snapshot: Snapshot, provider: TravelTimeProvider
) -> tuple[VanMatching | None, ReplacementMatching | None]:
    """The pure part: no database."""
    van_matching = None
    if snapshot.requests:
        problem = build_van_matching_problem(snapshot.requests, snapshot.vans, provider)
        van_matching = match_vans(problem, provider=provider)
    rep = None
    if snapshot.replacement_requests:
        rproblem = build_replacement_problem(
            snapshot.replacement_requests, snapshot.trucks, provider
        )
        rep = match_replacements(rproblem)
    return van_matching, rep


def _minutes(now: dt.datetime, minutes: float) -> dt.datetime:
    return now + dt.timedelta(minutes=minutes)


def write_decisions(
    *,
    db_session: Session,
    snapshot: Snapshot,
    van_matching: VanMatching | None,
    replacements: ReplacementMatching | None,
    result: CycleResult,
    actor: str = "dispatch",
) -> None:
    """Store what the solver decided, re-checking each decision under row locks."""
    now = snapshot.now
    assignments = (
        sorted(van_matching.assignments, key=lambda a: a.request_id) if van_matching else []
    )
    bookings = sorted(replacements.bookings, key=lambda b: b.request_id) if replacements else []
    request_ids = sorted({a.request_id for a in assignments} | {b.request_id for b in bookings})
    requests = _lock_rows(db_session, m.RescueRequest, request_ids)
    van_ids = sorted({a.van_id for a in assignments})
    vans = _lock_rows(db_session, m.Van, van_ids)
    truck_ids = sorted({b.truck_id for b in bookings})
    trucks = _lock_rows(db_session, m.ReplacementTruck, truck_ids)

    if assignments:
        va = m.VanAssignment
        taken_vans = _active_values(db_session, va.van_id, va.active, van_ids)
        served = _active_values(
            db_session, va.request_id, va.active, [a.request_id for a in assignments]
        )
        for a in assignments:
            req = requests.get(a.request_id)
            van = vans.get(a.van_id)
            if req is None or req.status != RequestStatus.RECEIVED.value or a.request_id in served:
                result.conflicts.append(
                    f"request {a.request_id}: changed meanwhile "
                    f"({req.status if req else 'deleted'}); van {a.van_id} not sent"
                )
                continue
            if van is None or a.van_id in taken_vans or van.status not in FREE_VAN_STATUSES:
                result.conflicts.append(
                    f"van {a.van_id}: taken or off duty meanwhile; request {a.request_id} "
                    "stays in the queue"
                )
                continue
            taken_vans.add(a.van_id)
            eta_at = _minutes(now, a.eta_minutes)
            db_session.add(
                m.VanAssignment(
                    request_id=a.request_id,
                    van_id=a.van_id,
                    active=True,
                    created_at=now,
                    eta_at=eta_at,
                    travel_minutes=a.travel_minutes,
                    travel_km=a.travel_km,
                    source="optimizer",
                    reason="designated station" if a.designated else "",
                )
            )
            van.status = VanStatus.ASSIGNED.value
            req.status = RequestStatus.ASSIGNED.value
            req.updated_at = now
            add_event(
                db_session,
                "van_assigned",
                request_id=a.request_id,
                van_id=a.van_id,
                actor=actor,
                now=now,
                cycle_id=result.cycle_id,
                source="optimizer",
                eta_minutes=round(a.eta_minutes, 1),
                travel_km=round(a.travel_km, 1),
                designated=a.designated,
            )
            result.assigned.append(
                {
                    "request_id": a.request_id,
                    "van_id": a.van_id,
                    "eta_minutes": round(a.eta_minutes, 1),
                    "eta_at": eta_at,
                    "travel_km": round(a.travel_km, 1),
                    "designated": a.designated,
                }
            )
    if van_matching:
        result.unassigned = [
            {
                "request_id": u.request_id,
                "reason": u.reason.value,
                "suggestion": u.suggestion,
                "nearest_van_id": u.nearest_van_id,
                "nearest_eta_minutes": (
                    round(u.nearest_eta_minutes, 1) if u.nearest_eta_minutes is not None else None
                ),
            }
            for u in van_matching.unassigned
        ]

    if bookings:
        rb = m.ReplacementBooking
        taken_trucks = _active_values(db_session, rb.truck_id, rb.active, truck_ids)
        has_booking = _active_values(
            db_session, rb.request_id, rb.active, [b.request_id for b in bookings]
        )
        for b in bookings:
            req = requests.get(b.request_id)
            truck = trucks.get(b.truck_id)
            if (
                req is None
                or RequestStatus(req.status) not in REPLACEMENT_ELIGIBLE
                or not req.needs_replacement
                or b.request_id in has_booking
            ):
                result.conflicts.append(
                    f"request {b.request_id}: changed meanwhile; truck {b.truck_id} not booked"
                )
                continue
            if truck is None or b.truck_id in taken_trucks or truck.status != "available":
                result.conflicts.append(
                    f"truck {b.truck_id}: booked meanwhile; request {b.request_id} waits"
                )
                continue
            taken_trucks.add(b.truck_id)
            pickup_at = _minutes(now, b.pickup_eta_minutes)
            delivery_at = _minutes(now, b.delivery_eta_minutes)
            db_session.add(
                m.ReplacementBooking(
                    request_id=b.request_id,
                    truck_id=b.truck_id,
                    active=True,
                    created_at=now,
                    pickup_eta_at=pickup_at,
                    delivery_eta_at=delivery_at,
                    cost_cny=b.cost_cny,
                    source="optimizer",
                )
            )
            truck.status = "booked"
            if req.status == RequestStatus.AWAITING_REPLACEMENT.value:
                req.status = RequestStatus.REPLACEMENT_ASSIGNED.value
            req.updated_at = now
            add_event(
                db_session,
                "replacement_booked",
                request_id=b.request_id,
                truck_id=b.truck_id,
                actor=actor,
                now=now,
                cycle_id=result.cycle_id,
                partner_id=b.partner_id,
                pickup_eta_minutes=round(b.pickup_eta_minutes, 1),
                delivery_eta_minutes=round(b.delivery_eta_minutes, 1),
                cost_cny=round(b.cost_cny, 2),
                lateness_minutes=round(b.lateness_minutes, 1),
            )
            result.booked.append(
                {
                    "request_id": b.request_id,
                    "truck_id": b.truck_id,
                    "partner_id": b.partner_id,
                    "pickup_eta_at": pickup_at,
                    "delivery_eta_at": delivery_at,
                    "cost_cny": round(b.cost_cny, 2),
                    "lateness_minutes": round(b.lateness_minutes, 1),
                }
            )
    if replacements:
        result.unmatched = [
            {"request_id": u.request_id, "reason": u.reason.value, "detail": u.detail}
            for u in replacements.unmatched
        ]
    db_session.flush()


def run_cycle(
    *,
    factory: sessionmaker[Session],
    provider: TravelTimeProvider,
    provider_name: str = "",
    respect_shifts: bool = True,
    actor: str = "dispatch",
    record: bool = False,
) -> CycleResult:
    """Run one cycle (or skip it when another one holds the lock). ``record`` writes a
    ``dispatch_cycle`` event even when nothing was decided (manual runs)."""
    engine = factory.kw["bind"]
    started = time.perf_counter()
    now = utcnow()
    result = CycleResult(cycle_id=uuid.uuid4().hex[:12], started_at=now, provider=provider_name)
    with cycle_leadership(engine) as leader:
        if not leader:
            result.ran = False
            result.skipped_reason = "another dispatch cycle is running"
            result.seconds = time.perf_counter() - started
            return result
        with transaction(factory) as db:
            snapshot = load_snapshot(db_session=db, now=now, respect_shifts=respect_shifts)
        result.open_requests = len(snapshot.requests)
        result.free_vans = sum(1 for v in snapshot.vans if v.on_shift)
        van_matching, replacements = solve(snapshot, provider)
        with transaction(factory) as db:
            write_decisions(
                db_session=db,
                snapshot=snapshot,
                van_matching=van_matching,
                replacements=replacements,
                result=result,
                actor=actor,
            )
            result.seconds = time.perf_counter() - started
            if record or result.decided:
                add_event(
                    db,
                    "dispatch_cycle",
                    actor=actor,
                    now=now,
                    cycle_id=result.cycle_id,
                    open_requests=result.open_requests,
                    assigned=len(result.assigned),
                    unassigned=len(result.unassigned),
                    booked=len(result.booked),
                    unmatched=len(result.unmatched),
                    conflicts=len(result.conflicts),
                    seconds=round(result.seconds, 3),
                )
    if result.decided or result.conflicts:
        logger.info(
            "dispatch cycle %s: %d assigned, %d unassigned, %d booked, %d conflicts (%.3f s)",
            result.cycle_id, len(result.assigned), len(result.unassigned), len(result.booked),
            len(result.conflicts), result.seconds,
        )  # fmt: skip
    return result


_Row = TypeVar("_Row", m.RescueRequest, m.Van, m.ReplacementTruck)


def _lock_rows(db_session: Session, model: type[_Row], ids: list[str]) -> dict[str, _Row]:
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


def _active_values(db_session: Session, column: Any, active: Any, values: list[str]) -> set[str]:
    """Which of ``values`` appear in ``column`` on an active assignment/booking row."""
    stmt = select(column).where(active.is_(True), column.in_(values))
    return set(db_session.scalars(stmt))
