"""The event log: every state change appends one row (append-only, enforced by a trigger); the
live stream reads it forward by id, so it works across server processes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m
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
