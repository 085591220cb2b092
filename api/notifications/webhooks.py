"""Webhook endpoints: registration rules and Standard Webhooks signing.

A receiver checks ``webhook-signature`` = ``v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">`` with the endpoint's secret (``whsec_<base64>``),
as the Standard Webhooks specification says; the ``standardwebhooks`` package (MIT, standard
library only) signs here and verifies on the receiver's side. Only ``https`` URLs, or ``http``
on a loopback address, are accepted: a signed payload still tells who is waiting where, so it
never crosses a network in clear text.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from api.db import models as m
from api.exceptions import NotFound
from api.notifications.outbox import NOTIFICATION_TYPES

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
LOOPBACK_HOSTS = frozenset({"localhost"})


def new_webhook_secret() -> str:
    """A fresh ``whsec_`` secret of 256 random bits."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` + base64 of 24 to 64 bytes; ValueError saying why."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} followed by base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX!r} followed by valid base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"must decode to 24-64 bytes of key, not {len(key)}")
    return secret


def check_url(url: str) -> str:
    """``url`` if it is ``https://host...`` or ``http://`` on a loopback host; ValueError
    saying why otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an absolute https:// URL (or http:// on a loopback address)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; the signature authenticates the sender")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            "plain http is accepted only on a loopback address (127.0.0.0/8, ::1, localhost); "
            "use https"
        )
    return url


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_event_types(event_types: Sequence[str]) -> list[str]:
    """The known notification types, deduplicated in order; ValueError naming unknown ones."""
    unknown = [t for t in event_types if t not in NOTIFICATION_TYPES]
    if unknown:
        raise ValueError(
            f"unknown type(s) {', '.join(unknown)}; known: {', '.join(NOTIFICATION_TYPES)}"
        )
    return list(dict.fromkeys(event_types))


def signature_headers(
    *, secret: str, message_id: str, body: str, timestamp: dt.datetime
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (the id is the message's, the
    same on every retry; the timestamp is the attempt's)."""
    utc = timestamp.astimezone(dt.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(utc.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, utc, body),
    }


# -- endpoints -------------------------------------------------------------------------------


def create_endpoint(
    *,
    db_session: Session,
    url: str,
    event_types: Sequence[str],
    secret: str | None = None,
    description: str = "",
    now: dt.datetime,
) -> m.NotificationEndpoint:
    """Register a webhook (inputs already validated by the schema); a secret is generated
    when none is given."""
    row = m.NotificationEndpoint(
        channel="webhook",
        url=url,
        secret=secret or new_webhook_secret(),
        event_types=list(event_types),
        description=description,
        active=True,
        created_at=now,
    )
    db_session.add(row)
    db_session.flush()
    return row


def list_endpoints(*, db_session: Session) -> list[m.NotificationEndpoint]:
    """The active webhooks, oldest first."""
    stmt = select(m.NotificationEndpoint).where(
        m.NotificationEndpoint.active.is_(True), m.NotificationEndpoint.channel == "webhook"
    )
    return list(db_session.scalars(stmt.order_by(m.NotificationEndpoint.id)))


def delivery_counts(
    *, db_session: Session, endpoint_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Deliveries per endpoint and status (one query)."""
    counts: dict[int, dict[str, int]] = {i: {} for i in endpoint_ids}
    if endpoint_ids:
        d = m.OutboxDelivery
        rows = db_session.execute(
            select(d.endpoint_id, d.status, func.count())
            .where(d.endpoint_id.in_(endpoint_ids))
            .group_by(d.endpoint_id, d.status)
        )
        for endpoint_id, status, n in rows:
            counts[endpoint_id][status] = int(n)
    return counts


def delete_endpoint(*, db_session: Session, endpoint_id: int, now: dt.datetime) -> None:
    """Deactivate a webhook and cancel its pending deliveries (the history stays);
    :class:`NotFound` for an unknown or already deleted id."""
    row = db_session.get(m.NotificationEndpoint, endpoint_id, with_for_update=True)
    if row is None or not row.active or row.channel != "webhook":
        raise NotFound(f"webhook {endpoint_id} not found")
    row.active = False
    row.deleted_at = now
    db_session.execute(
        update(m.OutboxDelivery)
        .where(m.OutboxDelivery.endpoint_id == endpoint_id, m.OutboxDelivery.status == "pending")
        .values(status="cancelled", last_error="endpoint deleted")
    )
    db_session.flush()
