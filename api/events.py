"""Live updates: the append-only event log read forward by id (works across processes)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import models as m


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
