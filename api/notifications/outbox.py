"""Writing the outbox: which event-log kinds a customer sees, and what they are told.

:func:`record_notification` is called by the event-log helper for every event. A kind the
customer does not see, or one no endpoint subscribes to, costs one lookup (cached per
transaction) and writes nothing. The others are noted on the session and written just
before it commits, **in the same transaction** (a ``before_commit`` hook): one batch per
transaction, with the customer views built by a fixed number of queries, so a dispatch cycle
assigning fifty vans does not hold its write transaction fifty times longer. A rollback drops
the notes with the change.

The body is the customer's own view of the request as the transaction leaves it (what
``GET /v1/requests/{id}`` shows to its tracking token: masked name and phone, no costs, no
tokens), frozen at that moment so that every retry sends the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from api.db import models as m
from api.schemas import RequestRead

DELAY_NOTIFY_MINUTES = 15.0
"""A new van ETA this much later than the last one told to the customer is a delay."""

NOTIFICATION_TYPES = (
    "request.assigned",
    "request.en_route",
    "request.delayed",
    "request.arrived",
    "request.diagnosed",
    "request.towing",
    "replacement.booked",
    "request.delivered",
    "request.cancelled",
)
"""Every notification type, in lifecycle order (the values endpoints subscribe to)."""

_BY_KIND = {
    "van_assigned": "request.assigned",
    "assignment_override": "request.assigned",
    "diagnosis": "request.diagnosed",
    "replacement_booked": "replacement.booked",
    "cancelled": "request.cancelled",
}
_BY_STATUS = {
    "en_route": "request.en_route",
    "on_site": "request.arrived",
    "towing": "request.towing",
    "delivered": "request.delivered",
}


def notification_type(kind: str, data: Mapping[str, object]) -> str | None:
    """The notification an event-log entry of ``kind`` means for the customer (None: the
    customer does not see it). Status changes are told by their target status."""
    if kind == "status_changed":
        return _BY_STATUS.get(str(data.get("to")))
    return _BY_KIND.get(kind)


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


# -- which endpoints listen (cached per transaction) ------------------------------------------

_endpoints_cache: weakref.WeakKeyDictionary[
    SessionTransaction, list[tuple[int, frozenset[str]]]
] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _active_endpoints(db_session: Session) -> list[tuple[int, frozenset[str]]]:
    """(id, subscribed types) of the active endpoints, read once per transaction: a dispatch
    cycle assigning a hundred vans asks once, not a hundred times."""
    txn = db_session.get_transaction()
    with _cache_lock:
        cached = _endpoints_cache.get(txn) if txn is not None else None
    if cached is not None:
        return cached
    rows = db_session.execute(
        select(m.NotificationEndpoint.id, m.NotificationEndpoint.event_types).where(
            m.NotificationEndpoint.active.is_(True)
        )
    ).all()
    found = [(endpoint_id, frozenset(types or ())) for endpoint_id, types in rows]
    if txn is not None:
        with _cache_lock:
            _endpoints_cache[txn] = found
    return found


def subscribers(db_session: Session, notification: str) -> list[int]:
    """Ids of the active endpoints that receive ``notification`` (empty types = all)."""
    return [
        endpoint_id
        for endpoint_id, types in _active_endpoints(db_session)
        if not types or notification in types
    ]


# -- waking the delivery worker after a commit ------------------------------------------------

_wake_listeners: list[Callable[[], None]] = []


def on_outbox_commit(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` after each commit that wrote outbox deliveries (the worker then
    sends at once instead of at its next poll). Returns the function that unregisters it."""
    _wake_listeners.append(listener)
    return lambda: _wake_listeners.remove(listener) if listener in _wake_listeners else None


_WROTE = "outbox_wrote_deliveries"


@event.listens_for(Session, "after_commit")
def _wake_listeners_after_commit(db_session: Session) -> None:
    if db_session.info.pop(_WROTE, False):
        for listener in list(_wake_listeners):
            listener()


# -- writing ---------------------------------------------------------------------------------


def record_notification(
    db_session: Session,
    kind: str,
    *,
    request_id: str | None,
    now: dt.datetime,
    data: Mapping[str, object],
) -> None:
    """Note the customer-visible notification of one event-log entry, if any endpoint wants
    it; events that are no notification but carry ``eta_minutes`` (a re-estimate) are noted
    for the delay check only. Written at commit (:func:`write_notes`)."""
    if request_id is None:
        return
    notification = notification_type(kind, data)
    if notification is None and "eta_minutes" not in data:
        return
    wanted = [t for t in (notification, "request.delayed") if t is not None]
    if not any(subscribers(db_session, t) for t in wanted):
        return
    db_session.info.setdefault(_NOTES, []).append(_Note(notification, request_id, now))


@dataclass(frozen=True)
class _Note:
    notification: str | None
    request_id: str
    now: dt.datetime


_NOTES = "outbox_notes"


@event.listens_for(Session, "before_commit")
def _write_notes_before_commit(db_session: Session) -> None:
    notes = db_session.info.pop(_NOTES, None)
    if notes:
        write_notes(db_session, notes)


@event.listens_for(Session, "after_rollback")
def _forget_notes(db_session: Session) -> None:
    db_session.info.pop(_NOTES, None)
    db_session.info.pop(_WROTE, None)


def write_notes(db_session: Session, notes: Sequence[_Note]) -> None:
    """The outbox rows of one transaction's notes: per note its notification, preceded by a
    ``request.delayed`` when the van ETA now shown is more than :data:`DELAY_NOTIFY_MINUTES`
    later than the last one told to that customer."""
    request_ids = list(dict.fromkeys(n.request_id for n in notes))
    now = max(n.now for n in notes)
    views = {v.id: v for v in customer_views(db_session, request_ids, now)}
    last_told = _last_told_etas(db_session, request_ids)
    rows: list[tuple[m.OutboxMessage, list[int]]] = []
    for note in notes:
        view = views.get(note.request_id)
        if view is None:
            continue
        eta_at = view.van.eta_at if view.van is not None else None
        previous = last_told.get(note.request_id)
        told = []
        if (
            eta_at is not None
            and previous is not None
            and eta_at - previous > dt.timedelta(minutes=DELAY_NOTIFY_MINUTES)
        ):
            extra = {
                "delay_minutes": round((eta_at - previous).total_seconds() / 60.0, 1),
                "previous_eta_at": previous.isoformat(),
            }
            told.append(_message(db_session, "request.delayed", view, note.now, eta_at, extra))
        if note.notification is not None:
            told.append(_message(db_session, note.notification, view, note.now, eta_at))
        told = [(msg, endpoint_ids) for msg, endpoint_ids in told if endpoint_ids]
        if eta_at is not None and told:
            last_told[note.request_id] = eta_at
        rows.extend(told)
    if not rows:
        return
    db_session.add_all(msg for msg, _ in rows)
    db_session.flush()
    db_session.execute(
        insert(m.OutboxDelivery),
        [
            {
                "message_id": msg.id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempts": 0,
                "created_at": msg.created_at,
                "next_attempt_at": msg.created_at,
                "last_error": "",
            }
            for msg, endpoint_ids in rows
            for endpoint_id in endpoint_ids
        ],
    )
    db_session.info[_WROTE] = True


def _message(
    db_session: Session,
    notification: str,
    view: RequestRead,
    now: dt.datetime,
    eta_at: dt.datetime | None,
    extra: Mapping[str, object] | None = None,
) -> tuple[m.OutboxMessage, list[int]]:
    data = view.model_dump(mode="json")
    data["request_id"] = data.pop("id")
    body = json.dumps(
        {
            "type": notification,
            "timestamp": now.astimezone(dt.UTC).isoformat(),
            "data": {**data, **(extra or {})},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    row = m.OutboxMessage(
        message_id=new_message_id(),
        event_type=notification,
        request_id=view.id,
        created_at=now,
        eta_at=eta_at,
        body=body,
    )
    return row, subscribers(db_session, notification)


def _last_told_etas(db_session: Session, request_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """The van ETA of the latest message that told one, per request (one query)."""
    msg = m.OutboxMessage
    latest = (
        select(func.max(msg.id))
        .where(msg.request_id.in_(request_ids), msg.eta_at.is_not(None))
        .group_by(msg.request_id)
    )
    rows = db_session.execute(select(msg.request_id, msg.eta_at).where(msg.id.in_(latest)))
    return {request_id: eta_at for request_id, eta_at in rows if request_id and eta_at}


def customer_views(
    db_session: Session, request_ids: Sequence[str], now: dt.datetime
) -> list[RequestRead]:
    """The requests as their customers see them (status, van and ETA, replacement truck and
    its pickup / delivery ETAs; masked name and phone, no costs), a fixed number of queries."""
    # Imported here: the services import this module through their event-log helper.
    from api.requests.views import request_views

    rows = list(
        db_session.scalars(select(m.RescueRequest).where(m.RescueRequest.id.in_(request_ids)))
    )
    return request_views(db_session=db_session, rows=rows, staff=False, now=now)
