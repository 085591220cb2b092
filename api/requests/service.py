"""The dispatcher's (and the customer's) actions on one request: diagnosis, lifecycle
transitions, cancellation and manual (override) assignment.

Keyword-only functions taking ``db_session``; they flush but never commit (the route's unit
of work does). Every state change locks the request row first (``FOR NO KEY UPDATE`` on
PostgreSQL; SQLite serialises writers), then the van or truck rows, so that the dispatch cycle,
overrides and cancellations never interleave half-way; the partial unique indexes are the last
line of defence. Which statuses allow what, and what each transition holds or releases, is
:mod:`dispatch.lifecycle`'s.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math

from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.dispatching import live
from api.dispatching.posts import posted_station
from api.events import add_event
from api.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from api.requests.intake import stored_estimate
from api.requests.queries import (
    active_assignment,
    active_booking,
    get_request,
    lock_truck,
    lock_van,
)
from api.security import hash_token
from dispatch.lifecycle import (
    ASSIGNABLE,
    DIAGNOSABLE,
    VAN_AT_BREAKDOWN,
    InvalidTransition,
    RequestStatus,
    transition,
    transition_effects,
)
from dispatch.triage import apply_diagnosis
from fleet import GeoPoint, VanCapability, VanStatus, VehicleClass
from routing import TravelTimeProvider

S = RequestStatus
OFF_DUTY_VAN = frozenset({VanStatus.OFF_SHIFT, VanStatus.MAINTENANCE})


def check_tracking_token(row: m.RescueRequest, token: str) -> None:
    """:class:`Forbidden` unless ``token`` is this request's tracking token."""
    if not hmac.compare_digest(row.tracking_token_hash, hash_token(token)):
        raise Forbidden("this tracking token does not open this request")


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
    add_event(
        db_session, "van_released", request_id=req.id, van_id=a.van_id, actor=actor, now=now,
        reason=reason,
    )  # fmt: skip
    if a.queued:
        return a.van_id  # the van is still on its current job: nothing else changes
    van = lock_van(db_session, a.van_id)
    if van is not None:
        van.status = VanStatus.AVAILABLE.value
        van.busy_until = None
        if van_at_request:
            van.lat, van.lon, van.position_updated_at = req.lat, req.lon, now
        live.start_queued_job(db_session, van=van, now=now, actor=actor)
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
    truck = lock_truck(db_session, b.truck_id)
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
    """The technician's figure of hours still to go, as :func:`dispatch.triage.apply_diagnosis`
    reads it (lognormal around the figure, counted from the report against the request's
    threshold, the contract's booking probability). When it books (with cargo) the request
    needs a replacement truck: on site / towing it moves to ``awaiting_replacement`` and the
    next dispatch cycle books one. Otherwise any booking is released."""
    now = now or utcnow()
    req = get_request(db_session=db_session, request_id=request_id, lock=True)
    status = RequestStatus(req.status)
    if status not in DIAGNOSABLE:
        raise Conflict(
            f"request {req.id} is {status.value}: a diagnosis is only possible while it is "
            f"{', '.join(sorted(s.value for s in DIAGNOSABLE))}"
        )
    # The figure is hours still to go; the contract counts from the breakdown (the report).
    elapsed_hours = max(0.0, (now - req.created_at).total_seconds() / 3600.0)
    try:
        est = apply_diagnosis(
            stored_estimate(req), hours, req.replacement_threshold_hours,
            elapsed_hours=elapsed_hours,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidInput("estimated_repair_hours", str(exc)) from None
    req.estimated_repair_hours = float(hours)
    req.estimated_repair_p90_hours = est.p90_hours
    req.p_exceeds_threshold = est.p_exceeds_threshold
    req.estimate_source = "diagnosis"
    has_cargo = req.cargo_weight_t is not None
    req.needs_replacement = est.needs_replacement and has_cargo
    req.updated_at = now
    if req.needs_replacement:
        if status in VAN_AT_BREAKDOWN:
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
        p_exceeds_threshold=round(est.p_exceeds_threshold, 4),
        elapsed_hours=round(elapsed_hours, 6),
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
    provider: TravelTimeProvider | None = None,
    now: dt.datetime | None = None,
) -> m.RescueRequest:
    """A lifecycle transition (``dispatch.lifecycle``) with its effects on the van and truck
    (:func:`dispatch.lifecycle.transition_effects`): en route / on site / towing move the van
    (and its expected free time: arrival, the tow leg home timed by ``provider``); leaving the
    van track releases it; delivery, closing and cancelling release the truck.
    :class:`Conflict` names the invalid move, or a van still busy with its previous job."""
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
    effects = transition_effects(source, new)
    if effects.van_follows:
        assignment = active_assignment(db_session, request_id=req.id)
        if assignment is None:
            raise Conflict(f"request {req.id} has no van: it cannot be {new.value}")
        if assignment.queued:
            raise Conflict(
                f"request {req.id}: van {assignment.van_id} is still on its previous job; it "
                f"cannot be {new.value} before that job releases it"
            )
        van = lock_van(db_session, assignment.van_id)
        if van is not None:
            van.status = VanStatus(new.value).value
            if effects.van_arrives:
                van.lat, van.lon, van.position_updated_at = req.lat, req.lon, now
                live.job_reached(
                    db_session, a=assignment, van=van, req=req, provider=provider, now=now
                )
            if new is S.TOWING:
                live.towing_started(db_session, van=van, req=req, provider=provider, now=now)
    if new is S.REPLACEMENT_ASSIGNED and active_booking(db_session, request_id=req.id) is None:
        raise Conflict(
            f"request {req.id}: no replacement truck is booked yet; set awaiting_replacement "
            "and run dispatch"
        )
    if effects.releases_van:
        _release_van(
            db_session, req, reason=f"status {new.value}", actor=actor, now=now,
            van_at_request=effects.van_left_at_breakdown,
        )  # fmt: skip
    if new is S.AWAITING_REPLACEMENT:
        req.needs_replacement = True
    if effects.truck_at_breakdown:
        b = active_booking(db_session, request_id=req.id)
        truck = db_session.get(m.ReplacementTruck, b.truck_id) if b is not None else None
        if truck is not None:
            truck.lat, truck.lon = req.lat, req.lon
    if effects.releases_truck:
        _release_truck(
            db_session, req,
            reason="replacement failed; rebook" if new is S.AWAITING_REPLACEMENT
            else f"status {new.value}",
            actor=actor, now=now, at_destination=effects.truck_left_at_destination,
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
    effects = transition_effects(source, new)
    _release_van(
        db_session, req, reason="cancelled", actor=actor, now=now,
        van_at_request=effects.van_left_at_breakdown,
    )  # fmt: skip
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
    override_reason: str | None = None,
    now: dt.datetime | None = None,
) -> m.VanAssignment:
    """Manual assignment or override: ``van_id`` goes to the request (whatever the optimiser
    chose), the request's previous van is released. :class:`Conflict` when the request is past
    the van stage, the van holds another request, is off duty, or cannot handle the vehicle;
    :class:`InvalidInput` naming ``override_reason`` when the breakdown is beyond the van's
    service radius and no override reason is given (sending it is an escalation)."""
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
    van = {v: lock_van(db_session, v) for v in locked}[van_id]
    _check_van_can_take(db_session, van, van_id, req)
    assert van is not None
    home_km = _check_radius(db_session, van, req, provider, override_reason)
    previous = None
    if current is not None:
        previous = _release_van(
            db_session, req, reason=f"override: {reason}", actor=actor, now=now,
            van_at_request=False,
        )  # fmt: skip
    row, eta_minutes = _manual_assignment(
        db_session, req, van, reason=reason, provider=provider, now=now
    )
    db_session.add(row)
    van.status = VanStatus.ASSIGNED.value
    if row.eta_at is not None:
        van.busy_until = live.plus_minutes(row.eta_at, live.busy_minutes_on_site(req))
    if status is not S.ASSIGNED:
        req.status = _transition(req, S.ASSIGNED).value
    req.updated_at = now
    add_event(
        db_session, "assignment_override" if previous else "van_assigned", request_id=req.id,
        van_id=van_id, actor=actor, now=now, source="manual", reason=reason,
        previous_van_id=previous, override_reason=override_reason,
        home_km=round(home_km, 1) if math.isfinite(home_km) else None,
        eta_minutes=round(eta_minutes, 1) if eta_minutes is not None else None,
        travel_km=round(row.travel_km, 1) if row.travel_km is not None else None,
    )  # fmt: skip
    db_session.flush()
    return row


def _check_van_can_take(
    db_session: Session, van: m.Van | None, van_id: str, req: m.RescueRequest
) -> None:
    """:class:`NotFound` / :class:`Conflict` unless the van exists, is on duty, can handle the
    vehicle and holds no other request."""
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


def _check_radius(
    db_session: Session,
    van: m.Van,
    req: m.RescueRequest,
    provider: TravelTimeProvider,
    override_reason: str | None,
) -> float:
    """Road km to the breakdown from the station the van serves from (what the service radius
    is measured on: its home station, or the station a dispatcher moved it up to,
    :mod:`api.dispatching.posts`; the caller has checked that the van holds no job);
    :class:`InvalidInput` naming ``override_reason`` when it is beyond the radius (or
    unreachable) and no override reason is given."""
    station = posted_station(db_session, van) or db_session.get(m.Station, van.station_id)
    if station is None:
        return math.inf
    leg = provider.leg(GeoPoint(station.lat, station.lon), GeoPoint(req.lat, req.lon), "rescue_van")
    if leg.km <= van.service_radius_km or override_reason:
        return leg.km
    distance = f"{leg.km:.0f} km by road" if math.isfinite(leg.km) else "not reachable by road"
    where = "its home station" if station.id == van.station_id else "the station it was moved to"
    raise InvalidInput(
        "override_reason",
        f"van {van.id} is {distance} from {where} {station.name}, beyond its "
        f"{van.service_radius_km:g} km service radius; give an override reason to send it anyway",
    )


def _manual_assignment(
    db_session: Session,
    req: m.RescueRequest,
    van: m.Van,
    *,
    reason: str,
    provider: TravelTimeProvider,
    now: dt.datetime,
) -> tuple[m.VanAssignment, float | None]:
    """The assignment row and its ETA in minutes, timed from the van's position (else its
    station) once it is free; no ETA when the road graph cannot reach the breakdown."""
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
        van_id=van.id,
        active=True,
        created_at=now,
        eta_at=now + dt.timedelta(minutes=eta_minutes) if eta_minutes is not None else None,
        promised_eta_at=(
            now + dt.timedelta(minutes=eta_minutes) if eta_minutes is not None else None
        ),
        travel_minutes=leg.minutes if eta_minutes is not None else None,
        travel_km=leg.km if leg.km != float("inf") else None,
        source="manual",
        reason=reason,
    )
    return row, eta_minutes
