"""Why the last automatic cycle left a request waiting, kept in the event log.

The dispatch loop runs every few seconds without anyone watching; its reasons (no van in
radius, none capable, all busy; no partner truck fits) must reach the console without a
manual "Run dispatch". Each reason is one event (``dispatch_unassigned`` for the van,
``replacement_unmatched`` for the truck), written only when it differs from the request's
last one, so a request stuck for a night adds a handful of rows, not one per cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.events import add_event
from api.schemas import UnassignedRead, UnmatchedRead

UNASSIGNED_KIND = "dispatch_unassigned"
UNMATCHED_KIND = "replacement_unmatched"

_COMPARED = ("reason", "suggestion", "detail", "nearest_van_id")
"""The fields whose change makes a new event (the nearest van's ETA drifts every cycle)."""


def latest_reasons(
    db_session: Session, kind: str, request_ids: Sequence[str]
) -> dict[str, m.Event]:
    """The last event of ``kind`` for each of ``request_ids`` (one query)."""
    if not request_ids:
        return {}
    stmt = (
        select(m.Event)
        .where(m.Event.kind == kind, m.Event.request_id.in_(list(request_ids)))
        .order_by(m.Event.id)
    )
    return {e.request_id: e for e in db_session.scalars(stmt) if e.request_id is not None}


def record_reasons(
    db_session: Session,
    kind: str,
    reasons: Sequence[UnassignedRead | UnmatchedRead],
    now: dt.datetime,
    cycle_id: str,
    actor: str = "dispatch",
) -> int:
    """Append one ``kind`` event per request whose reason changed (the read model's fields
    but the request id as its data); returns how many."""
    by_request = {r.request_id: r.model_dump(mode="json", exclude={"request_id"}) for r in reasons}
    last = latest_reasons(db_session, kind, sorted(by_request))
    written = 0
    for request_id in sorted(by_request):
        data = by_request[request_id]
        previous = last.get(request_id)
        if previous is not None and all(previous.data.get(k) == data.get(k) for k in _COMPARED):
            continue
        add_event(
            db_session, kind, request_id=request_id, actor=actor, now=now, cycle_id=cycle_id,
            **data,
        )  # fmt: skip
        written += 1
    return written
