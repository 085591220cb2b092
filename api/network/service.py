"""Van positions and duty status reported by the vans (or the dispatcher)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.dispatching import live
from api.events import add_event
from api.exceptions import Conflict, InvalidInput, NotFound
from api.requests.queries import active_assignment, queued_assignment
from fleet import VanStatus
from routing import TravelTimeProvider

SETTABLE = frozenset(
    {VanStatus.AVAILABLE, VanStatus.OFF_SHIFT, VanStatus.MAINTENANCE, VanStatus.RETURNING}
)
"""Statuses a position report may set; the others follow the request lifecycle."""


def update_position(
    *,
    db_session: Session,
    van_id: str,
    lat: float,
    lon: float,
    status: VanStatus | None = None,
    actor: str,
    provider: TravelTimeProvider | None = None,
    grace_minutes: float = 10.0,
    now: dt.datetime | None = None,
) -> m.Van:
    """Store the van's position (and optionally its duty status). A van holding a request
    cannot be set available / off shift / in maintenance (:class:`Conflict`). With
    ``provider``, a van on its way to a job has that job's ETA re-timed by road from here
    (:func:`api.dispatching.live.retime_from_position`)."""
    now = now or utcnow()
    van = db_session.get(m.Van, van_id, with_for_update={"key_share": True}, populate_existing=True)
    if van is None:
        raise NotFound(f"van {van_id} not found")
    if status is not None:
        if status not in SETTABLE:
            raise InvalidInput(
                "status",
                f"{status.value} follows the request lifecycle; settable: "
                f"{', '.join(sorted(s.value for s in SETTABLE))}",
            )
        current = active_assignment(db_session, van_id=van_id) or queued_assignment(
            db_session, van_id=van_id
        )
        if current is not None:
            raise Conflict(
                f"van {van_id} is assigned to request {current.request_id}; release it first"
            )
        van.status = status.value
    van.lat, van.lon, van.position_updated_at = lat, lon, now
    add_event(
        db_session, "van_position", van_id=van_id, actor=actor, now=now,
        lat=lat, lon=lon, status=van.status,
    )  # fmt: skip
    if provider is not None:
        live.retime_from_position(
            db_session, van=van, provider=provider, now=now, grace_minutes=grace_minutes,
            actor=actor,
        )  # fmt: skip
    db_session.flush()
    return van
