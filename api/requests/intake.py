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
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.db.adapters import default_cargo_kind
from api.exceptions import Conflict, InvalidInput
from api.requests.reference import EMPTY_REFERENCE, IntakeReference
from api.schemas import EstimateRead, RequestCreate, RequestCreated
from api.security import hash_token
from api.tracking import tracking_token
from dispatch.lifecycle import RequestStatus
from dispatch.triage import (
    RepairEstimate,
    TriageContext,
    estimate_repair,
    priority_for,
    tow_leg_hours,
)
from fleet import GeoPoint, ServiceStation, VehicleClass
from fleet.contracts import DEFAULT_CONTRACT, ServiceContract
from fleet.faults import load_fault_catalogue

logger = logging.getLogger(__name__)

S = RequestStatus


TOW_LEG_STEP_HOURS = 0.1
"""Tow legs are rounded to 6 minutes, so that nearby breakdowns share a cached estimate."""


@lru_cache(maxsize=4096)
def triage(fault_code: str | None, vehicle_class: str, threshold_hours: float) -> RepairEstimate:
    """The estimate without a workshop (parts at hand, no tow leg) under the default contract
    with ``threshold_hours``: the base of a diagnosis, and the intake without a registry."""
    return triage_for(fault_code, vehicle_class, threshold_hours, DEFAULT_CONTRACT, None, 0)


_ESTIMATES: dict[tuple[Any, ...], RepairEstimate] = {}
MAX_CACHED_ESTIMATES = 100_000


def triage_for(
    fault_code: str | None,
    vehicle_class: str,
    threshold_hours: float,
    contract: ServiceContract,
    workshop: ServiceStation | None,
    tow_leg_steps: int,
) -> RepairEstimate:
    """The intake estimate: the contract's booking probability, the parts the workshop lacks,
    a tow leg of ``tow_leg_steps`` x 0.1 h. Cached per process on what the estimate depends
    on (fault, threshold, contract, missing parts, tow leg; the class only sets the
    priority), so a steady stream of breakdowns costs a lookup, not an integration."""
    try:
        klass = VehicleClass(vehicle_class)
        fault = load_fault_catalogue().get(fault_code)
    except (KeyError, ValueError):
        # The catalogue's message quotes the code: input values are never echoed.
        raise InvalidInput(
            "fault.code", "unknown fault code (GET /v1/fault-codes lists the valid ones)"
        ) from None
    missing = (
        frozenset(p for p in fault.parts if p not in workshop.parts_in_stock)
        if workshop is not None
        else None
    )
    key = (fault.code, float(threshold_hours), contract, missing, tow_leg_steps)
    estimate = _ESTIMATES.get(key)
    if estimate is None:
        estimate = estimate_repair(
            fault,
            klass,
            TriageContext(
                workshop_station=workshop,
                tow_leg_hours=tow_leg_steps * TOW_LEG_STEP_HOURS,
                contract=contract,
                threshold_hours=threshold_hours,
            ),
        )
        if len(_ESTIMATES) >= MAX_CACHED_ESTIMATES:
            _ESTIMATES.clear()
        _ESTIMATES[key] = estimate
    if estimate.vehicle_class is klass:
        return estimate
    return replace(estimate, vehicle_class=klass, priority=priority_for(fault.grade, klass))


@dataclass(frozen=True, slots=True)
class IntakeTriage:
    """The estimate of one intake and what it was made with."""

    estimate: RepairEstimate
    designated_station_id: str | None
    workshop_station_id: str | None


def triage_intake(
    body: RequestCreate, reference: IntakeReference, default_threshold_hours: float
) -> IntakeTriage:
    """Look the plate up (designated station, contract; unknown plates get the default
    contract with ``default_threshold_hours``), choose the workshop (designated, else the
    nearest capable station), time the tow to it, and estimate. A designated station typed
    by the customer wins over the registry's; one that does not exist raises
    :class:`InvalidInput` naming ``vehicle.designated_station_id``."""
    terms = reference.registry.terms_for(body.vehicle.plate)
    vehicle_class = body.vehicle.vehicle_class
    designated = body.vehicle.designated_station_id or terms.designated_station_id
    threshold = terms.contract.threshold_hours if terms.registered else default_threshold_hours
    workshop = None
    tow_steps = 0
    if reference.stations:
        location = GeoPoint(body.location.lat, body.location.lon)
        try:
            choice = reference.workshop_for(location, vehicle_class, designated)
        except ValueError as exc:
            raise InvalidInput("vehicle.designated_station_id", str(exc)) from None
        if choice is not None:
            workshop = choice.station
            tow_steps = round(tow_leg_hours(choice.distance_km) / TOW_LEG_STEP_HOURS)
    estimate = triage_for(
        body.fault.code or None, vehicle_class.value, threshold, terms.contract, workshop, tow_steps
    )
    return IntakeTriage(estimate, designated, workshop.id if workshop is not None else None)


class RandomIds:
    """Random (version 4) UUIDs from the operating system's CSPRNG, read 4 KiB at a time.

    ``uuid.uuid4()`` makes one ``getrandom`` system call per id, and the call releases the
    interpreter lock: on the event loop, the intake writer thread takes the lock then and
    the loop waits for it (up to the 5 ms switch interval) in the middle of a request. Here
    one call serves 256 ids. The bytes are the same CSPRNG's, used once each; a forked child
    starts with an empty buffer (never the parent's unused bytes)."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def new(self) -> str:
        with self._lock:
            start = self._offset
            if start + 16 > len(self._buffer):
                self._buffer = os.urandom(self.CHUNK)
                start = 0
            self._offset = start + 16
            raw = bytearray(self._buffer[start : start + 16])
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_request_id = RandomIds().new
"""A new request id (a random UUID, as ``uuid4``)."""


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
    reference: IntakeReference = EMPTY_REFERENCE,
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
        reference=reference,
    )
    station_id = plan.values["designated_station_id"]
    if station_id is not None and db_session.get(m.Station, station_id) is None:
        raise InvalidInput("vehicle.designated_station_id", "no such station")
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
    return Intake(existing, token, stored_estimate(existing), replayed=True)


def stored_estimate(row: m.RescueRequest) -> RepairEstimate:
    """The estimate a stored request carries: the catalogue's for its fault and class, with
    the request's own threshold, contract, risk and figures."""
    base = triage(row.fault_code, row.vehicle_class, row.replacement_threshold_hours)

    def stored(value: float | None, catalogue: float) -> float:
        return catalogue if value is None else value

    return replace(
        base,
        expected_hours=stored(row.estimated_repair_hours, base.expected_hours),
        p90_hours=stored(row.estimated_repair_p90_hours, base.p90_hours),
        needs_replacement=row.needs_replacement,
        p_exceeds_threshold=stored(row.p_exceeds_threshold, base.p_exceeds_threshold),
        booking_probability=stored(row.booking_probability, base.booking_probability),
        contract_id=row.contract_id or base.contract_id,
        source=row.estimate_source or "catalogue",
    )


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
    reference: IntakeReference = EMPTY_REFERENCE,
) -> IntakePlan:
    """The rows of a new request (triage with the plate's registry terms, province, token
    hash, body digest; the token is derived from the request id); raises
    :class:`InvalidInput` naming ``fault.code`` for a fault code not in the catalogue,
    ``vehicle.designated_station_id`` for an unknown station (when ``reference`` holds the
    stations; otherwise the checked path looks it up)."""
    now = now or utcnow()
    vehicle_class = body.vehicle.vehicle_class.value
    triaged = triage_intake(body, reference, threshold_hours)
    estimate = triaged.estimate
    request_id = new_request_id()
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
        "province_adcode": body.location.province_adcode(),
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
        "replacement_threshold_hours": estimate.threshold_hours,
        "needs_replacement": estimate.needs_replacement and cargo is not None,
        "designated_station_id": triaged.designated_station_id,
        "contract_id": estimate.contract_id,
        "booking_probability": estimate.booking_probability,
        "p_exceeds_threshold": estimate.p_exceeds_threshold,
        "workshop_station_id": triaged.workshop_station_id,
        "estimate_source": "catalogue",
        "tracking_token_hash": hash_token(token),
        "idempotency_key": idempotency_key,
        # Only a request under an Idempotency-Key is ever compared with a retry's body.
        "body_sha256": body_digest(body) if idempotency_key is not None else None,
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
            "p_exceeds_threshold": round(estimate.p_exceeds_threshold, 4),
            "contract_id": estimate.contract_id,
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
    """The 201 body of a fresh intake (the customer's: no risk, no contract), built from the
    stored values without re-validation (equal to ``RequestCreated`` with
    :func:`estimate_view` of the stored row)."""
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
