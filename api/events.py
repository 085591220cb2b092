"""The event log: every state change appends one row (append-only, enforced by a trigger); the
live stream reads it forward by id, so it works across server processes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.bulk import prepare_insert
from api.notifications.outbox import record_notification


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
    """Append one row to the event log (``data`` is its JSON payload), and the customer's
    notification of it to the outbox, in the same transaction."""
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
    record_notification(db_session, kind, request_id=request_id, now=now, data=data)


@dataclass(frozen=True)
class NewEvent:
    """One row for :func:`add_events` (the arguments of :func:`add_event`)."""

    kind: str
    now: dt.datetime
    request_id: str | None = None
    van_id: str | None = None
    truck_id: str | None = None
    actor: str = "system"
    data: dict[str, object] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        return {
            "created_at": self.now, "kind": self.kind, "request_id": self.request_id,
            "van_id": self.van_id, "truck_id": self.truck_id, "actor": self.actor,
            "data": self.data,
        }  # fmt: skip


def add_events(db_session: Session, events: Sequence[NewEvent]) -> None:
    """Append many rows at once, in order and after everything added before (one
    executemany insert of values converted up front, :mod:`api.db.bulk`), each with its
    customer notification noted as :func:`add_event` does: the same rows and outbox."""
    if not events:
        return
    bind = db_session.get_bind()
    prepare_insert(bind.dialect, m.Event, [e.row() for e in events]).execute(db_session)
    for e in events:
        record_notification(db_session, e.kind, request_id=e.request_id, now=e.now, data=e.data)


def latest_event_id(*, db_session: Session) -> int:
    return int(db_session.scalar(select(func.max(m.Event.id))) or 0)


def events_after(*, db_session: Session, after_id: int, limit: int = 500) -> list[m.Event]:
    stmt = select(m.Event).where(m.Event.id > after_id).order_by(m.Event.id).limit(limit)
    return list(db_session.scalars(stmt))


def sse_message(event: m.Event) -> str:
    """One server-sent event: ``id`` (for Last-Event-ID), ``event`` = kind, JSON ``data``."""
    payload: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind,
        "created_at": event.created_at.isoformat(),
        "request_id": event.request_id,
        "van_id": event.van_id,
        "truck_id": event.truck_id,
        "data": event.data,
    }
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(payload)}\n\n"
