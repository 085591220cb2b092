"""Rescue requests: intake with triage, the customer and staff views, diagnosis, lifecycle
transitions, cancellation and manual (override) assignment.

Keyword-only functions taking ``db_session``; they flush but never commit (the caller's unit
of work does). Every state change locks the request row first (``FOR NO KEY UPDATE`` on
PostgreSQL; SQLite serialises writers), then the van or truck rows, so that the dispatch cycle,
overrides and cancellations never interleave half-way; the partial unique indexes are the last
line of defence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.schemas import (
    CargoRead,
    CustomerRead,
    EstimateRead,
    FaultIn,
    LocationIn,
    ReplacementOnRequest,
    RequestCreate,
    RequestCreated,
    RequestRead,
    VanOnRequest,
    VehicleIn,
)
from api.security import hash_token, new_secret
from api.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from dispatch.lifecycle import InvalidTransition, RequestStatus, transition
from dispatch.replacement import CargoKind
from dispatch.triage import RepairEstimate, TriageContext, apply_diagnosis, estimate_repair
from fleet import GeoPoint, TruckType, VanCapability, VanStatus, VehicleClass
from fleet.province_index import province_at
from routing import TravelTimeProvider

logger = logging.getLogger(__name__)

S = RequestStatus
TRACKING_PREFIX = "trk_"
VAN_ACTIVE_STATUSES = frozenset({S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING})
"""Request statuses during which the request holds its van."""
REPLACEMENT_ELIGIBLE = frozenset(
    {S.RECEIVED, S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING, S.AWAITING_REPLACEMENT}
)
"""Request statuses in which the dispatch cycle books a truck for a request that needs one."""
DIAGNOSABLE = frozenset({S.RECEIVED, S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING})
ASSIGNABLE = frozenset({S.RECEIVED, S.ASSIGNED, S.EN_ROUTE})
CLOSED_STATUSES = frozenset({S.CLOSED, S.CANCELLED})
OFF_DUTY_VAN = frozenset({VanStatus.OFF_SHIFT, VanStatus.MAINTENANCE})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- triage ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def triage(fault_code: str | None, vehicle_class: str, threshold_hours: float) -> RepairEstimate:
    """The intake estimate (cached: it depends on nothing else; parts assumed available)."""
    try:
        return estimate_repair(
            fault_code, VehicleClass(vehicle_class), TriageContext(threshold_hours=threshold_hours)
        )
    except ValueError:
        # The catalogue's message quotes the code: input values are never echoed.
        raise InvalidInput(
            "fault.code", "unknown fault code (GET /v1/fault-codes lists the valid ones)"
        ) from None


def default_cargo_kind(vehicle_class: str) -> CargoKind:
    return CargoKind.SEMI_TRAILER if vehicle_class == VehicleClass.TRACTOR else CargoKind.PALLETISED


def body_digest(body: RequestCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- intake ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intake:
    request: m.RescueRequest
    tracking_token: str
    estimate: RepairEstimate
    replayed: bool


def create_request(
    *,
    db_session: Session,
    body: RequestCreate,
    threshold_hours: float,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> Intake:
    """Store a new request (status ``received``) and its first event, with the triage estimate.

    With ``idempotency_key``: the same key and the same body return the stored request
    (``replayed``; a fresh tracking token replaces the earlier one, which only the lost first
    response carried); the same key with another body raises :class:`Conflict`. A concurrent
    first use of the key surfaces as ``IntegrityError`` at flush (the caller retries)."""
    if idempotency_key is not None:
        existing = db_session.scalar(
            select(m.RescueRequest).where(m.RescueRequest.idempotency_key == idempotency_key)
        )
        if existing is not None:
            if existing.body_sha256 != body_digest(body):
                raise Conflict(
                    "Idempotency-Key was already used with a different request body; "
                    "use a new key for a new request"
                )
            token = new_secret(TRACKING_PREFIX)
            existing.tracking_token_hash = hash_token(token)
            estimate = triage(existing.fault_code, existing.vehicle_class, threshold_hours)
            return Intake(existing, token, estimate, replayed=True)
    plan = plan_intake(
        body=body, threshold_hours=threshold_hours, idempotency_key=idempotency_key, now=now
    )
    station_id = body.vehicle.designated_station_id
    if station_id is not None and db_session.get(m.Station, station_id) is None:
        raise InvalidInput("vehicle.designated_station_id", "no such station")
    store_intake(db_session, [plan])
    log_received([plan])
    return Intake(m.RescueRequest(**plan.values), plan.tracking_token, plan.estimate, False)


@dataclass(frozen=True)
class IntakePlan:
    """Everything an intake stores, computed before the transaction (no database access):
    the request row's values, its first event's values and the tracking token."""

    values: dict[str, Any]
    event: dict[str, Any]
    tracking_token: str
    estimate: RepairEstimate


def plan_intake(
    *,
    body: RequestCreate,
    threshold_hours: float,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> IntakePlan:
    """The rows of a new request (triage, province, token hash, body digest); raises
    :class:`InvalidInput` naming ``fault.code`` for a fault code not in the catalogue."""
    now = now or utcnow()
    vehicle_class = body.vehicle.vehicle_class.value
    estimate = triage(body.fault.code or None, vehicle_class, threshold_hours)
    token = new_secret(TRACKING_PREFIX)
    cargo = body.cargo
    lat, lon = body.location.lat, body.location.lon
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": S.RECEIVED.value,
        "created_at": now,
        "updated_at": now,
        "customer_name": body.customer.name,
        "customer_phone": body.customer.phone,
        "plate": body.vehicle.plate,
        "vehicle_class": vehicle_class,
        "vehicle_model": body.vehicle.model,
        "lat": lat,
        "lon": lon,
        "province_adcode": province_at(lat, lon),
        "fault_code": estimate.fault_code,
        "fault_description": body.fault.description,
        "cargo_weight_t": cargo.weight_t if cargo else None,
        "cargo_destination_lat": cargo.destination.lat if cargo else None,
        "cargo_destination_lon": cargo.destination.lon if cargo else None,
        "cargo_deadline": cargo.deadline if cargo else None,
        "cargo_kind": (cargo.kind or default_cargo_kind(vehicle_class)).value if cargo else None,
        "priority": max(1.0, estimate.priority),
        "needs_tow": estimate.needs_tow,
        "estimated_repair_hours": estimate.expected_hours,
        "estimated_repair_p90_hours": estimate.p90_hours,
        "replacement_threshold_hours": threshold_hours,
        "needs_replacement": estimate.needs_replacement and cargo is not None,
        "designated_station_id": body.vehicle.designated_station_id,
        "tracking_token_hash": hash_token(token),
        "idempotency_key": idempotency_key,
        "body_sha256": body_digest(body),
    }
    event = {
        "created_at": now,
        "kind": "request_received",
        "request_id": values["id"],
        "van_id": None,
        "truck_id": None,
        "actor": "customer",
        "data": {
            "vehicle_class": vehicle_class,
            "fault_code": estimate.fault_code,
            "lat": lat,
            "lon": lon,
            "priority": values["priority"],
            "expected_repair_hours": round(estimate.expected_hours, 2),
            "needs_replacement": values["needs_replacement"],
        },
    }
    return IntakePlan(values, event, token, estimate)


def store_intake(conn: Session | Connection, plans: Sequence[IntakePlan]) -> None:
    """The Core inserts of intakes (requests, then their first events) on ``conn`` (a session
    or a connection in a transaction; no unit-of-work bookkeeping for rows nobody else
    touches). One executemany per table, however many plans (the intake writer's batches)."""
    conn.execute(insert(m.RescueRequest), [p.values for p in plans])
    conn.execute(insert(m.Event), [p.event for p in plans])


def log_received(plans: Sequence[IntakePlan]) -> None:
    """One log line per stored intake (ids and triage only: no names, phones or tokens)."""
    for p in plans:
        logger.info(
            "request %s received (%s, %s)",
            p.values["id"],
            p.values["vehicle_class"],
            p.estimate.fault_code,
        )


def intake_response(plan: IntakePlan) -> RequestCreated:
    """The 201 body of a fresh intake, built from the stored values without re-validation
    (equal to ``RequestCreated`` with :func:`estimate_view` of the stored row)."""
    v, base = plan.values, plan.estimate
    return RequestCreated.model_construct(
        id=v["id"],
        status=S.RECEIVED,
        tracking_token=plan.tracking_token,
        created_at=v["created_at"],
        estimate=EstimateRead.model_construct(
            fault_code=base.fault_code,
            source="catalogue",
            expected_repair_hours=v["estimated_repair_hours"],
            p90_repair_hours=v["estimated_repair_p90_hours"],
            p_on_site_fix=base.p_on_site_fix,
            needs_tow=v["needs_tow"],
            needs_replacement=v["needs_replacement"],
            threshold_hours=v["replacement_threshold_hours"],
            priority=v["priority"],
        ),
    )


# -- reading ---------------------------------------------------------------------------------


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


def check_tracking_token(row: m.RescueRequest, token: str) -> None:
    """:class:`Forbidden` unless ``token`` is this request's tracking token."""
    if not hmac.compare_digest(row.tracking_token_hash, hash_token(token)):
        raise Forbidden("this tracking token does not open this request")


def list_requests(
    *,
    db_session: Session,
    statuses: Sequence[RequestStatus] | None = None,
    open_only: bool = False,
    limit: int = 500,
    offset: int = 0,
) -> list[m.RescueRequest]:
    """The queue, oldest first."""
    stmt = select(m.RescueRequest).order_by(m.RescueRequest.created_at, m.RescueRequest.id)
    if statuses:
        stmt = stmt.where(m.RescueRequest.status.in_([s.value for s in statuses]))
    if open_only:
        stmt = stmt.where(m.RescueRequest.status.not_in([s.value for s in CLOSED_STATUSES]))
    return list(db_session.scalars(stmt.limit(limit).offset(offset)))


def request_events(*, db_session: Session, request_id: str) -> list[m.Event]:
    get_request(db_session=db_session, request_id=request_id)
    stmt = select(m.Event).where(m.Event.request_id == request_id).order_by(m.Event.id)
    return list(db_session.scalars(stmt))


def mask_phone(phone: str) -> str:
    digits = phone.replace(" ", "").replace("-", "")
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def masked_customer_view(customer: CustomerRead) -> CustomerRead:
    """Name initial and masked phone: what a tracking-token holder or a planner sees."""
    return CustomerRead(name=customer.name[:1] + "**", phone=mask_phone(customer.phone))


def estimate_view(row: m.RescueRequest) -> EstimateRead:
    base = triage(row.fault_code, row.vehicle_class, row.replacement_threshold_hours)
    hours = row.estimated_repair_hours
    diagnosed = hours is not None and abs(hours - base.expected_hours) > 1e-9
    return EstimateRead(
        fault_code=base.fault_code,
        source="diagnosis" if diagnosed else "catalogue",
        expected_repair_hours=hours if hours is not None else base.expected_hours,
        p90_repair_hours=row.estimated_repair_p90_hours,
        p_on_site_fix=None if diagnosed else base.p_on_site_fix,
        needs_tow=row.needs_tow,
        needs_replacement=row.needs_replacement,
        threshold_hours=row.replacement_threshold_hours,
        priority=row.priority,
    )


def request_views(
    *,
    db_session: Session,
    rows: Sequence[m.RescueRequest],
    staff: bool,
    now: dt.datetime | None = None,
) -> list[RequestRead]:
    """Views with the active van and truck (batched: a fixed number of queries)."""
    now = now or utcnow()
    ids = [r.id for r in rows]
    assignments: dict[str, m.VanAssignment] = {}
    bookings: dict[str, m.ReplacementBooking] = {}
    vans: dict[str, m.Van] = {}
    trucks: dict[str, m.ReplacementTruck] = {}
    partners: dict[str, m.Partner] = {}
    if ids:
        for arow in db_session.scalars(
            select(m.VanAssignment).where(
                m.VanAssignment.active.is_(True), m.VanAssignment.request_id.in_(ids)
            )
        ):
            assignments[arow.request_id] = arow
        for brow in db_session.scalars(
            select(m.ReplacementBooking).where(
                m.ReplacementBooking.active.is_(True), m.ReplacementBooking.request_id.in_(ids)
            )
        ):
            bookings[brow.request_id] = brow
    if assignments:
        van_ids = {a.van_id for a in assignments.values()}
        vans = {v.id: v for v in db_session.scalars(select(m.Van).where(m.Van.id.in_(van_ids)))}
    if bookings:
        truck_ids = {b.truck_id for b in bookings.values()}
        trucks = {
            t.id: t
            for t in db_session.scalars(
                select(m.ReplacementTruck).where(m.ReplacementTruck.id.in_(truck_ids))
            )
        }
        partner_ids = {t.partner_id for t in trucks.values()}
        partners = {
            p.id: p
            for p in db_session.scalars(select(m.Partner).where(m.Partner.id.in_(partner_ids)))
        }
    out = []
    for r in rows:
        a = assignments.get(r.id)
        van_view = None
        if a is not None and a.van_id in vans:
            v = vans[a.van_id]
            eta_min = (
                max(0.0, (a.eta_at - now).total_seconds() / 60.0) if a.eta_at is not None else None
            )
            van_view = VanOnRequest(
                id=v.id,
                station_id=v.station_id,
                capability=VanCapability(v.capability),
                lat=v.lat,
                lon=v.lon,
                eta_at=a.eta_at,
                eta_minutes=round(eta_min, 1) if eta_min is not None else None,
                travel_km=round(a.travel_km, 1) if a.travel_km is not None else None,
                assigned_at=a.created_at,
                source=a.source,
                reason=a.reason if staff else "",
            )
        b = bookings.get(r.id)
        rep_view = None
        if b is not None and b.truck_id in trucks:
            t = trucks[b.truck_id]
            p = partners.get(t.partner_id)
            rep_view = ReplacementOnRequest(
                truck_id=t.id,
                partner_id=t.partner_id,
                partner_name=p.name if p else "",
                truck_type=TruckType(t.truck_type),
                capacity_t=t.capacity_t,
                pickup_eta_at=b.pickup_eta_at,
                delivery_eta_at=b.delivery_eta_at,
                cost_cny=b.cost_cny if staff else None,
                booked_at=b.created_at,
            )
        cargo = None
        if r.cargo_weight_t is not None and r.cargo_destination_lat is not None:
            cargo = CargoRead(
                weight_t=r.cargo_weight_t,
                destination=LocationIn.model_construct(
                    lat=r.cargo_destination_lat, lon=r.cargo_destination_lon or 0.0
                ),
                deadline=r.cargo_deadline,
                kind=CargoKind(r.cargo_kind or default_cargo_kind(r.vehicle_class)),
            )
        out.append(
            RequestRead(
                id=r.id,
                status=RequestStatus(r.status),
                created_at=r.created_at,
                updated_at=r.updated_at,
                waited_minutes=round(max(0.0, (now - r.created_at).total_seconds() / 60.0), 1),
                customer=CustomerRead(
                    name=r.customer_name if staff else r.customer_name[:1] + "**",
                    phone=r.customer_phone if staff else mask_phone(r.customer_phone),
                ),
                vehicle=VehicleIn.model_construct(
                    plate=r.plate,
                    vehicle_class=VehicleClass(r.vehicle_class),
                    model=r.vehicle_model,
                    designated_station_id=r.designated_station_id,
                ),
                location=LocationIn.model_construct(lat=r.lat, lon=r.lon),
                province_adcode=r.province_adcode,
                fault=FaultIn.model_construct(code=r.fault_code, description=r.fault_description),
                cargo=cargo,
                estimate=estimate_view(r),
                van=van_view,
                replacement=rep_view,
            )
        )
    return out


# -- state changes ---------------------------------------------------------------------------


def add_event(
    db_session: Session,
    kind: str,
    *,
    request_id: str | None = None,
    van_id: str | None = None,
    truck_id: str | None = None,
    actor: str = "system",
    now: dt.datetime,
    **data: object,
) -> None:
    """Append one row to the event log (``data`` is its JSON payload)."""
    db_session.add(
        m.Event(
            created_at=now,
            kind=kind,
            request_id=request_id,
            van_id=van_id,
            truck_id=truck_id,
            actor=actor,
            data=data,
        )
    )


def _lock_van(db_session: Session, van_id: str) -> m.Van | None:
    return db_session.get(
        m.Van, van_id, with_for_update={"key_share": True}, populate_existing=True
    )


def active_assignment(
    db_session: Session, *, request_id: str | None = None, van_id: str | None = None
) -> m.VanAssignment | None:
    stmt = select(m.VanAssignment).where(m.VanAssignment.active.is_(True))
    if request_id is not None:
        stmt = stmt.where(m.VanAssignment.request_id == request_id)
    if van_id is not None:
        stmt = stmt.where(m.VanAssignment.van_id == van_id)
    return db_session.scalar(stmt)


def active_booking(db_session: Session, *, request_id: str) -> m.ReplacementBooking | None:
    return db_session.scalar(
        select(m.ReplacementBooking).where(
            m.ReplacementBooking.active.is_(True), m.ReplacementBooking.request_id == request_id
        )
    )


def _release_van(
    db_session: Session,
    req: m.RescueRequest,
    *,
    reason: str,
    actor: str,
    now: dt.datetime,
    van_at_request: bool,
) -> str | None:
    found = active_assignment(db_session, request_id=req.id)
    if found is None:
        return None
    a = found
    a.active = False
    a.ended_at = now
    a.end_reason = reason
    db_session.flush()  # the partial unique index sees the van free before any new row
    van = _lock_van(db_session, a.van_id)
    if van is not None:
        van.status = VanStatus.AVAILABLE.value
        van.busy_until = None
        if van_at_request:
            van.lat, van.lon, van.position_updated_at = req.lat, req.lon, now
    add_event(
        db_session, "van_released", request_id=req.id, van_id=a.van_id, actor=actor, now=now,
        reason=reason,
    )  # fmt: skip
    return a.van_id


def _release_truck(
    db_session: Session,
    req: m.RescueRequest,
    *,
    reason: str,
    actor: str,
    now: dt.datetime,
    at_destination: bool = False,
) -> str | None:
    found = active_booking(db_session, request_id=req.id)
    if found is None:
        return None
    b = found
    b.active = False
    b.ended_at = now
    b.end_reason = reason
    db_session.flush()
    truck = db_session.get(
        m.ReplacementTruck, b.truck_id, with_for_update={"key_share": True}, populate_existing=True
    )
    if truck is not None:
        truck.status = "available"
        if at_destination and req.cargo_destination_lat is not None:
            truck.lat, truck.lon = req.cargo_destination_lat, req.cargo_destination_lon
    add_event(
        db_session, "truck_released", request_id=req.id, truck_id=b.truck_id, actor=actor,
        now=now, reason=reason,
    )  # fmt: skip
    return b.truck_id


def _transition(req: m.RescueRequest, target: RequestStatus) -> RequestStatus:
    try:
        return transition(req.status, target)
    except InvalidTransition as exc:
        raise Conflict(f"request {req.id}: {exc}") from None


def record_diagnosis(
    *,
    db_session: Session,
    request_id: str,
    hours: float,
    note: str = "",
    actor: str,
    now: dt.datetime | None = None,
) -> m.RescueRequest:
    """The technician's repair estimate. Over the request's threshold (with cargo) the request
    needs a replacement truck: on site / towing it moves to ``awaiting_replacement`` and the
    next dispatch cycle books one. Within the threshold any booking is released."""
    now = now or utcnow()
    req = get_request(db_session=db_session, request_id=request_id, lock=True)
    status = RequestStatus(req.status)
    if status not in DIAGNOSABLE:
        raise Conflict(
            f"request {req.id} is {status.value}: a diagnosis is only possible while it is "
            f"{', '.join(sorted(s.value for s in DIAGNOSABLE))}"
        )
    base = triage(req.fault_code, req.vehicle_class, req.replacement_threshold_hours)
    est = apply_diagnosis(base, hours, req.replacement_threshold_hours)
    req.estimated_repair_hours = float(hours)
    req.estimated_repair_p90_hours = float(hours)
    has_cargo = req.cargo_weight_t is not None
    req.needs_replacement = est.needs_replacement and has_cargo
    req.updated_at = now
    if req.needs_replacement:
        if status in (S.ON_SITE, S.TOWING):
            booked = active_booking(db_session, request_id=req.id) is not None
            target = S.REPLACEMENT_ASSIGNED if booked else S.AWAITING_REPLACEMENT
            req.status = _transition(req, target).value
            _release_van(
                db_session, req, reason=f"diagnosis: {hours:g} h", actor=actor, now=now,
                van_at_request=True,
            )  # fmt: skip
    else:
        _release_truck(
            db_session, req, reason=f"diagnosis {hours:g} h within threshold", actor=actor, now=now
        )
    add_event(
        db_session, "diagnosis", request_id=req.id, actor=actor, now=now, hours=float(hours),
        threshold_hours=req.replacement_threshold_hours,
        needs_replacement=req.needs_replacement, has_cargo=has_cargo, note=note,
        status=req.status,
    )  # fmt: skip
    db_session.flush()
    return req


def change_status(
    *,
    db_session: Session,
    request_id: str,
    target: RequestStatus,
    reason: str = "",
    actor: str,
    now: dt.datetime | None = None,
) -> m.RescueRequest:
    """A lifecycle transition (``dispatch.lifecycle``) with its effects on the van and truck:
    en route / on site / towing move the van; leaving the van track releases it; delivery,
    closing and cancelling release the truck. :class:`Conflict` names the invalid move."""
    now = now or utcnow()
    if target is S.CANCELLED:
        return cancel_request(
            db_session=db_session, request_id=request_id, reason=reason, actor=actor, now=now
        )
    req = get_request(db_session=db_session, request_id=request_id, lock=True)
    if target is S.ASSIGNED:
        raise Conflict(
            f"request {req.id}: assign a van with POST /v1/requests/{req.id}/assignment "
            "(or let the dispatch cycle do it)"
        )
    source = RequestStatus(req.status)
    new = _transition(req, target)
    assignment = active_assignment(db_session, request_id=req.id)
    if new in (S.EN_ROUTE, S.ON_SITE, S.TOWING):
        if assignment is None:
            raise Conflict(f"request {req.id} has no van: it cannot be {new.value}")
        van = _lock_van(db_session, assignment.van_id)
        if van is not None:
            van.status = VanStatus(new.value).value
            if new is S.ON_SITE:
                van.lat, van.lon, van.position_updated_at = req.lat, req.lon, now
    if new is S.REPLACEMENT_ASSIGNED and active_booking(db_session, request_id=req.id) is None:
        raise Conflict(
            f"request {req.id}: no replacement truck is booked yet; set awaiting_replacement "
            "and run dispatch"
        )
    if new not in VAN_ACTIVE_STATUSES:
        _release_van(
            db_session, req, reason=f"status {new.value}", actor=actor, now=now,
            van_at_request=source in (S.ON_SITE, S.TOWING),
        )  # fmt: skip
    if new is S.AWAITING_REPLACEMENT:
        req.needs_replacement = True
        _release_truck(db_session, req, reason="replacement failed; rebook", actor=actor, now=now)
    if new is S.CARGO_TRANSFERRED:
        b = active_booking(db_session, request_id=req.id)
        if b is not None:
            truck = db_session.get(m.ReplacementTruck, b.truck_id)
            if truck is not None:
                truck.lat, truck.lon = req.lat, req.lon
    if new in (S.DELIVERED, S.CLOSED):
        _release_truck(
            db_session, req, reason=f"status {new.value}", actor=actor, now=now,
            at_destination=new is S.DELIVERED,
        )  # fmt: skip
    req.status = new.value
    req.updated_at = now
    add_event(
        db_session, "status_changed", request_id=req.id, actor=actor, now=now,
        **{"from": source.value, "to": new.value, "reason": reason},
    )  # fmt: skip
    db_session.flush()
    return req


def cancel_request(
    *,
    db_session: Session,
    request_id: str,
    reason: str = "",
    actor: str,
    now: dt.datetime | None = None,
) -> m.RescueRequest:
    """Cancel (allowed by the lifecycle until the van is on site, or while a replacement is
    pending); releases the van and the truck."""
    now = now or utcnow()
    req = get_request(db_session=db_session, request_id=request_id, lock=True)
    source = RequestStatus(req.status)
    new = _transition(req, S.CANCELLED)
    _release_van(db_session, req, reason="cancelled", actor=actor, now=now, van_at_request=False)
    _release_truck(db_session, req, reason="cancelled", actor=actor, now=now)
    req.status = new.value
    req.updated_at = now
    add_event(
        db_session, "cancelled", request_id=req.id, actor=actor, now=now, reason=reason,
        **{"from": source.value},
    )  # fmt: skip
    db_session.flush()
    return req


def assign_van(
    *,
    db_session: Session,
    request_id: str,
    van_id: str,
    reason: str,
    actor: str,
    provider: TravelTimeProvider,
    now: dt.datetime | None = None,
) -> m.VanAssignment:
    """Manual assignment or override: ``van_id`` goes to the request (whatever the optimiser
    chose; the radius is not enforced: that is what an escalation is), the request's previous
    van is released. :class:`Conflict` when the request is past the van stage, the van holds
    another request, is off duty, or cannot handle the vehicle."""
    now = now or utcnow()
    req = get_request(db_session=db_session, request_id=request_id, lock=True)
    status = RequestStatus(req.status)
    if status not in ASSIGNABLE:
        raise Conflict(
            f"request {req.id} is {status.value}: a van can be (re)assigned only while it is "
            "received, assigned or en_route"
        )
    current = active_assignment(db_session, request_id=req.id)
    if current is not None and current.van_id == van_id:
        raise Conflict(f"van {van_id} is already assigned to request {req.id}")
    locked = sorted({van_id} | ({current.van_id} if current else set()))
    vans = {v: _lock_van(db_session, v) for v in locked}
    van = vans[van_id]
    if van is None:
        raise NotFound(f"van {van_id} not found")
    if VanStatus(van.status) in OFF_DUTY_VAN:
        raise Conflict(f"van {van_id} is {van.status}")
    capability = VanCapability(van.capability)
    if not capability.can_handle(VehicleClass(req.vehicle_class), needs_tow=req.needs_tow):
        raise Conflict(
            f"van {van_id} ({capability.value}) cannot handle a {req.vehicle_class}"
            + (" that needs a tow" if req.needs_tow else "")
        )
    other = active_assignment(db_session, van_id=van_id)
    if other is not None:
        raise Conflict(f"van {van_id} is already assigned to request {other.request_id}")
    previous = None
    if current is not None:
        previous = _release_van(
            db_session, req, reason=f"override: {reason}", actor=actor, now=now,
            van_at_request=False,
        )  # fmt: skip
    station = db_session.get(m.Station, van.station_id)
    origin = (
        GeoPoint(van.lat, van.lon)
        if van.lat is not None and van.lon is not None
        else GeoPoint(station.lat, station.lon)
        if station is not None
        else GeoPoint(req.lat, req.lon)
    )
    leg = provider.leg(origin, GeoPoint(req.lat, req.lon), "rescue_van")
    free_in = 0.0
    if van.busy_until is not None and van.busy_until > now:
        free_in = (van.busy_until - now).total_seconds() / 60.0
    eta_minutes = free_in + leg.minutes if leg.minutes != float("inf") else None
    row = m.VanAssignment(
        request_id=req.id,
        van_id=van_id,
        active=True,
        created_at=now,
        eta_at=now + dt.timedelta(minutes=eta_minutes) if eta_minutes is not None else None,
        travel_minutes=leg.minutes if eta_minutes is not None else None,
        travel_km=leg.km if leg.km != float("inf") else None,
        source="manual",
        reason=reason,
    )
    db_session.add(row)
    van.status = VanStatus.ASSIGNED.value
    if status is not S.ASSIGNED:
        req.status = _transition(req, S.ASSIGNED).value
    req.updated_at = now
    add_event(
        db_session, "assignment_override" if previous else "van_assigned", request_id=req.id,
        van_id=van_id, actor=actor, now=now, source="manual", reason=reason,
        previous_van_id=previous,
        eta_minutes=round(eta_minutes, 1) if eta_minutes is not None else None,
        travel_km=round(leg.km, 1) if leg.km != float("inf") else None,
    )  # fmt: skip
    db_session.flush()
    return row


def count_requests(*, db_session: Session, statuses: Iterable[RequestStatus]) -> int:
    stmt = select(func.count()).select_from(m.RescueRequest)
    stmt = stmt.where(m.RescueRequest.status.in_([s.value for s in statuses]))
    return int(db_session.scalar(stmt) or 0)
