"""Writing the outbox: which event-log kinds a customer sees, and what they are told.

:func:`record_notification` is called by the event-log helper for every event, inside the
transaction of the change, so a change and its notifications commit or roll back together.
A kind that the customer does not see, or a notification no endpoint subscribes to, costs one
cached lookup and writes nothing. The body is the customer's own view of the request (what
``GET /v1/requests/{id}`` shows to its tracking token: masked name and phone, no costs, no
tokens), frozen at the time of the change so that every retry sends the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping

from sqlalchemy import event, insert, select
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


def _wake_after_commit(db_session: Session) -> None:
    db_session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _wake_listeners_after_commit(db_session: Session) -> None:
    if db_session.info.pop(_WROTE, False):
        for listener in list(_wake_listeners):
            listener()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(db_session: Session) -> None:
    db_session.info.pop(_WROTE, None)


# -- writing ---------------------------------------------------------------------------------


def record_notification(
    db_session: Session,
    kind: str,
    *,
    request_id: str | None,
    now: dt.datetime,
    data: Mapping[str, object],
) -> None:
    """The outbox side of one event-log entry: the customer-visible notification (if any)
    and, when the van ETA now shown to the customer is more than
    :data:`DELAY_NOTIFY_MINUTES` later than the last one told, a ``request.delayed`` first.
    Events that are no notification but carry ``eta_minutes`` (a re-estimate) are checked
    for a delay too. Only subscribed endpoints get delivery rows; with none, nothing is
    written and the view is not even built."""
    if request_id is None:
        return
    notification = notification_type(kind, data)
    if notification is None and "eta_minutes" not in data:
        return
    wanted = [t for t in (notification, "request.delayed") if t is not None]
    if not any(subscribers(db_session, t) for t in wanted):
        return
    view = customer_view(db_session, request_id, now)
    eta_at = view.van.eta_at if view.van is not None else None
    if eta_at is not None:
        last_told = db_session.scalar(
            select(m.OutboxMessage.eta_at)
            .where(m.OutboxMessage.request_id == request_id, m.OutboxMessage.eta_at.is_not(None))
            .order_by(m.OutboxMessage.id.desc())
            .limit(1)
        )
        if last_told is not None and eta_at - last_told > dt.timedelta(
            minutes=DELAY_NOTIFY_MINUTES
        ):
            extra = {
                "delay_minutes": round((eta_at - last_told).total_seconds() / 60.0, 1),
                "previous_eta_at": last_told.isoformat(),
            }
            _write(db_session, "request.delayed", view=view, now=now, eta_at=eta_at, extra=extra)
    if notification is not None:
        _write(db_session, notification, view=view, now=now, eta_at=eta_at)


def _write(
    db_session: Session,
    notification: str,
    *,
    view: RequestRead,
    now: dt.datetime,
    eta_at: dt.datetime | None,
    extra: Mapping[str, object] | None = None,
) -> None:
    endpoint_ids = subscribers(db_session, notification)
    if not endpoint_ids:
        return
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
    db_session.add(row)
    db_session.flush()
    db_session.execute(
        insert(m.OutboxDelivery),
        [
            {
                "message_id": row.id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": "",
            }
            for endpoint_id in endpoint_ids
        ],
    )
    _wake_after_commit(db_session)


def customer_view(db_session: Session, request_id: str, now: dt.datetime) -> RequestRead:
    """The request as its customer sees it (status, van and ETA, replacement truck and its
    pickup / delivery ETAs; masked name and phone, no costs)."""
    # Imported here: the services import this module through their event-log helper.
    from api.services.requests import get_request, request_views

    row = get_request(db_session=db_session, request_id=request_id)
    (view,) = request_views(db_session=db_session, rows=[row], staff=False, now=now)
    return view
