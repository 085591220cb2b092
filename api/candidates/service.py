"""The vans a dispatcher may send to one request, with road km, ETA and free-in, and for each
van the cycle would not send, the reason (busy, off shift, not capable, beyond its radius).

Only the ``limit`` vans nearest the breakdown (straight line, from where each van is and from
its home) are timed on the road graph: one bounded search for all of them, not a national
matrix. The rules are the dispatch cycle's: a van is *feasible* when it is free or returning,
on shift, can handle the vehicle (and the tow) and the station it serves from (its home, or
the station a dispatcher moved it up to: :mod:`api.dispatching.posts`) is within its service
radius by road; a van that fails only the radius is still *assignable*, with an override
reason (``POST /v1/requests/{id}/assignment``).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.candidates.schemas import CandidatesRead, VanCandidateRead
from api.clock import utcnow
from api.db import models as m
from api.dispatching.cycle import LOCAL_TZ
from api.dispatching.posts import posted_stations
from api.requests.queries import get_request
from fleet import VanCapability, VanStatus, VehicleClass, is_on_shift
from routing import TravelTimeProvider
from routing.provider import haversine_km

VAN_PROFILE = "rescue_van"
FREE_STATUSES = frozenset({VanStatus.AVAILABLE, VanStatus.RETURNING})
SEARCH_CIRCUITY = 2.0
"""Budget of the bounded road search: this times the farthest listed van's straight-line km,
plus 20 km (road km / straight km is ~1.2-1.4 on the national graph)."""


def road_legs(
    provider: TravelTimeProvider, origins: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(km, minutes) from each origin to ``target`` (inf: unreachable): a bounded ``within``
    first, the full matrix column only for origins it did not reach."""
    km = np.full(len(origins), np.inf)
    minutes = np.full(len(origins), np.inf)
    if not len(origins):
        return km, minutes
    straight = haversine_km(origins, target)[:, 0]
    budget = SEARCH_CIRCUITY * float(straight.max()) + 20.0
    found = provider.within(origins, target, budget, VAN_PROFILE)
    km[found.source] = found.km
    minutes[found.source] = found.minutes
    missing = np.nonzero(~np.isfinite(km))[0]
    if len(missing):
        mkm, mmin = provider.matrix(origins[missing], target, VAN_PROFILE)
        km[missing], minutes[missing] = mkm[:, 0], mmin[:, 0]
    return km, minutes


def _finite(x: float) -> float | None:
    return round(float(x), 1) if math.isfinite(x) else None


def van_candidates(
    *,
    db_session: Session,
    request_id: str,
    provider: TravelTimeProvider,
    respect_shifts: bool = True,
    limit: int = 25,
    now: dt.datetime | None = None,
) -> CandidatesRead:
    """The ``limit`` nearest vans (and the one already assigned), ordered: feasible by ETA,
    then assignable beyond their radius by ETA, then the excluded ones by road km."""
    now = now or utcnow()
    req = get_request(db_session=db_session, request_id=request_id)
    rows = db_session.execute(
        select(m.Van, m.Station).join(m.Station, m.Station.id == m.Van.station_id)
    ).all()
    busy_with = dict(
        db_session.execute(
            select(m.VanAssignment.van_id, m.VanAssignment.request_id).where(
                m.VanAssignment.active.is_(True)
            )
        ).all()
    )
    target = np.array([[req.lat, req.lon]])
    if not rows:
        return CandidatesRead(
            request_id=req.id, vehicle_class=req.vehicle_class, needs_tow=req.needs_tow,
            vans=[], not_listed=0,
        )  # fmt: skip
    posted = posted_stations(
        db_session,
        ((v, s) for v, s in rows if v.id not in busy_with and VanStatus(v.status) in FREE_STATUSES),
    )
    centres = [posted.get(v.id, s) for v, s in rows]
    homes = np.array([[c.lat, c.lon] for c in centres])
    positions = np.array(
        [[v.lat, v.lon] if v.lat is not None and v.lon is not None else [s.lat, s.lon]
         for v, s in rows]
    )  # fmt: skip
    nearness = np.minimum(haversine_km(homes, target)[:, 0], haversine_km(positions, target)[:, 0])
    chosen = list(np.argsort(nearness, kind="stable")[:limit])
    current = [i for i, (v, _) in enumerate(rows) if busy_with.get(v.id) == req.id]
    chosen += [i for i in current if i not in chosen]
    idx = np.array(chosen, dtype=np.int64)
    km, minutes = road_legs(provider, np.concatenate([positions[idx], homes[idx]]), target)
    pos_km, pos_min, home_km = km[: len(idx)], minutes[: len(idx)], km[len(idx) :]
    local = now.astimezone(LOCAL_TZ)
    local_hour = local.hour + local.minute / 60.0
    vehicle = VehicleClass(req.vehicle_class)
    out = []
    for k, i in enumerate(chosen):
        van, station = rows[i]
        centre = centres[i]
        status = VanStatus(van.status)
        capability = VanCapability(van.capability)
        free_in = 0.0
        if van.busy_until is not None and van.busy_until > now:
            free_in = (van.busy_until - now).total_seconds() / 60.0
        within = bool(home_km[k] <= van.service_radius_km)
        other = busy_with.get(van.id)
        reason: str | None = None
        if other is not None and other != req.id:
            reason = f"busy with request {other}"
        elif other is None and status not in FREE_STATUSES:
            reason = f"van is {status.value}"
        elif respect_shifts and not is_on_shift(station.open_hour, station.close_hour, local_hour):
            reason = f"off shift (station open {station.open_hour:02d}-{station.close_hour:02d} h)"
        elif not capability.can_handle(vehicle, needs_tow=req.needs_tow):
            reason = f"{capability.value} cannot handle a {vehicle.value}" + (
                " that needs a tow" if req.needs_tow else ""
            )
        elif not math.isfinite(pos_min[k]):
            reason = "no road to the breakdown"
        hard = reason is not None
        if not hard and not within:
            reason = (
                f"beyond its {van.service_radius_km:g} km service radius "
                f"({_finite(home_km[k]) or 'unreachable'} km by road from {centre.name})"
            )
        eta = free_in + pos_min[k]
        out.append(
            VanCandidateRead(
                van_id=van.id, station_id=station.id, station_name=station.name,
                capability=capability, status=status, road_km=_finite(pos_km[k]),
                home_km=_finite(home_km[k]), service_radius_km=van.service_radius_km,
                posted_station_id=centre.id if centre.id != station.id else None,
                free_in_minutes=round(free_in, 1), eta_minutes=_finite(eta),
                within_radius=within, feasible=not hard and within, assignable=not hard,
                excluded_reason=reason, current=other == req.id,
            )
        )  # fmt: skip
    inf = float("inf")
    out.sort(
        key=lambda c: (
            0 if c.feasible else 1 if c.assignable else 2,
            (c.eta_minutes if c.assignable else c.road_km)
            if (c.eta_minutes if c.assignable else c.road_km) is not None
            else inf,
            c.van_id,
        )
    )
    return CandidatesRead(
        request_id=req.id, vehicle_class=req.vehicle_class, needs_tow=req.needs_tow,
        vans=out, not_listed=len(rows) - len(chosen),
    )  # fmt: skip
