"""Why the last automatic cycle left a request waiting, kept in the event log.

The dispatch loop runs every few seconds without anyone watching; its reasons (no van in
radius, none capable, all busy; no partner truck fits) must reach the console without a
manual "Run dispatch". Each reason is one event (``dispatch_unassigned`` for the van,
``replacement_unmatched`` for the truck), written only when it differs from the request's
last one, so a request stuck for a night adds a handful of rows, not one per cycle.

The dispatch cycle works out which reasons changed (:func:`reasons_to_record`, a read) before
it takes the database's write lock, and inserts them under it with one executemany insert
(:func:`insert_reasons`): issue 14 measured the reasons' per-row ORM writes and the read of
every earlier reason as most of the worker's write-lock hold on SQLite in a storm, the time
the intake's group commit waits. Only a cycle writes these events, and cycles over the same
requests never overlap (their leadership locks), so the read cannot go stale meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.bulk import PreparedInsert, prepare_insert
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


def _latest_data(db_session: Session, kind: str, request_ids: Sequence[str]) -> dict[str, Any]:
    """The data of the last event of ``kind`` for each of ``request_ids`` (two columns, no
    ORM objects: a storm has thousands)."""
    if not request_ids:
        return {}
    stmt = (
        select(m.Event.request_id, m.Event.data)
        .where(m.Event.kind == kind, m.Event.request_id.in_(list(request_ids)))
        .order_by(m.Event.id)
    )
    return dict(db_session.execute(stmt).all())


def reasons_to_record(
    db_session: Session, kind: str, reasons: Sequence[UnassignedRead | UnmatchedRead]
) -> dict[str, dict[str, Any]]:
    """Request id -> the ``kind`` event data to append, for each request whose reason
    differs from its last one (the read model's fields but the request id)."""
    by_request = {r.request_id: r.model_dump(mode="json", exclude={"request_id"}) for r in reasons}
    last = _latest_data(db_session, kind, sorted(by_request))
    changed = {}
    for request_id in sorted(by_request):
        data = by_request[request_id]
        previous = last.get(request_id)
        if previous is not None and all(previous.get(k) == data.get(k) for k in _COMPARED):
            continue
        changed[request_id] = data
    return changed


def prepare_reasons(
    dialect: Dialect,
    kind: str,
    changed: dict[str, dict[str, Any]],
    now: dt.datetime,
    cycle_id: str,
    actor: str = "dispatch",
) -> PreparedInsert:
    """The insert of the ``kind`` events of :func:`reasons_to_record` (the rows
    :func:`api.events.add_event` would write; these kinds notify no customer), its values
    converted now, before the write lock (:mod:`api.db.bulk`)."""
    return prepare_insert(
        dialect,
        m.Event,
        [
            {"created_at": now, "kind": kind, "request_id": request_id, "van_id": None,
             "truck_id": None, "actor": actor, "data": {"cycle_id": cycle_id, **data}}
            for request_id, data in changed.items()
        ],
    )  # fmt: skip


def insert_reasons(
    db_session: Session,
    kind: str,
    changed: dict[str, dict[str, Any]],
    now: dt.datetime,
    cycle_id: str,
    actor: str = "dispatch",
) -> int:
    """Append the ``kind`` events of :func:`reasons_to_record` with one executemany insert
    (after the events added before it in the transaction); returns how many."""
    dialect = db_session.get_bind().dialect
    return prepare_reasons(dialect, kind, changed, now, cycle_id, actor).execute(db_session)


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
    changed = reasons_to_record(db_session, kind, reasons)
    return insert_reasons(db_session, kind, changed, now, cycle_id, actor)
