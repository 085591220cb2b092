"""Intake of a breakdown report: triage, the rows to store, the idempotency rules, the 201 body.

Two paths store an intake, each in one unit of work: the hot path (no ``Idempotency-Key``, no
designated station) plans everything here without the database and hands the plan to the
intake writer (:mod:`api.requests.intake_writer`, group commit); the checked path
(:func:`create_request`) reads first, in the caller's session. Both insert through
:func:`store_intake`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.db.adapters import default_cargo_kind
from api.exceptions import Conflict, InvalidInput
from api.schemas import EstimateRead, RequestCreate, RequestCreated
from api.security import hash_token
from api.tracking import tracking_token
from dispatch.lifecycle import RequestStatus
from dispatch.triage import RepairEstimate, TriageContext, estimate_repair
from fleet import VehicleClass
from fleet.province_index import province_at

logger = logging.getLogger(__name__)

S = RequestStatus


@lru_cache(maxsize=4096)
def triage(fault_code: str | None, vehicle_class: str, threshold_hours: float) -> RepairEstimate:
    """The intake estimate (cached: it depends on nothing else; parts assumed available)."""
    try:
        return estimate_repair(
            fault_code, VehicleClass(vehicle_class), TriageContext(threshold_hours=threshold_hours)
        )
    except ValueError as exc:
        raise InvalidInput("fault.code", str(exc)) from None


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
    token_secret: bytes,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> Intake:
    """Store a new request (status ``received``) and its first event, with the triage estimate,
    in the caller's unit of work.

    With ``idempotency_key``: the same key and the same body return the stored request
    (``replayed``, with the same tracking token: it is derived from the request id with the
    server secret, :mod:`api.tracking`); the same key with another body raises
    :class:`Conflict`. A concurrent
    first use of the key (PostgreSQL: the other transaction commits first) fails the insert
    inside a savepoint, and the request is then answered as a replay of the winner."""
    if idempotency_key is not None:
        replay = _replay(db_session, body, idempotency_key, threshold_hours, token_secret)
        if replay is not None:
            return replay
    plan = plan_intake(
        body=body,
        threshold_hours=threshold_hours,
        token_secret=token_secret,
        idempotency_key=idempotency_key,
        now=now,
    )
    station_id = body.vehicle.designated_station_id
    if station_id is not None and db_session.get(m.Station, station_id) is None:
        raise InvalidInput("vehicle.designated_station_id", f"no station {station_id!r}")
    try:
        with db_session.begin_nested():
            store_intake(db_session, [plan])
    except IntegrityError:
        replay = None
        if idempotency_key is not None:
            replay = _replay(db_session, body, idempotency_key, threshold_hours, token_secret)
        if replay is None:
            raise
        return replay
    log_received([plan])
    return Intake(m.RescueRequest(**plan.values), plan.tracking_token, plan.estimate, False)


def _replay(
    db_session: Session,
    body: RequestCreate,
    idempotency_key: str,
    threshold_hours: float,
    token_secret: bytes,
) -> Intake | None:
    """The request stored under ``idempotency_key`` with its tracking token (the same as the
    first answer's: nothing is rewritten), or None; :class:`Conflict` when it was stored with
    another body."""
    existing = db_session.scalar(
        select(m.RescueRequest).where(m.RescueRequest.idempotency_key == idempotency_key)
    )
    if existing is None:
        return None
    if existing.body_sha256 != body_digest(body):
        raise Conflict(
            "Idempotency-Key was already used with a different request body; "
            "use a new key for a new request"
        )
    token = tracking_token(token_secret, existing.id)
    estimate = triage(existing.fault_code, existing.vehicle_class, threshold_hours)
    return Intake(existing, token, estimate, replayed=True)


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
    token_secret: bytes,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> IntakePlan:
    """The rows of a new request (triage, province, token and its hash, body digest); raises
    :class:`InvalidInput` naming ``fault.code`` for a fault code not in the catalogue."""
    now = now or utcnow()
    vehicle_class = body.vehicle.vehicle_class.value
    estimate = triage(body.fault.code or None, vehicle_class, threshold_hours)
    request_id = str(uuid.uuid4())
    token = tracking_token(token_secret, request_id)
    cargo = body.cargo
    lat, lon = body.location.lat, body.location.lon
    values: dict[str, Any] = {
        "id": request_id,
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
