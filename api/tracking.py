"""Tracking tokens derived from the request id with HMAC, so an idempotent replay answers
with the same token as the first response and both copies keep working.

The token is ``trk_`` + base64url(HMAC-SHA256(server secret, request id)): 256 bits that only
the holder of the server secret can compute. The database still stores its SHA-256 only, so
reading the database does not reveal a token. The secret is ``RESCUE_TOKEN_SECRET`` when set
(the same value in every process), otherwise one generated at the first start and kept in the
``server_secrets`` table, so that all processes share it and restarts keep tokens valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.clock import utcnow
from api.db import models as m
from api.db.engine import transaction

TRACKING_PREFIX = "trk_"
SECRET_NAME = "tracking_token"
"""The ``server_secrets`` row of the generated secret."""


def tracking_token(secret: bytes, request_id: str) -> str:
    """The tracking token of ``request_id`` (the same for the same secret, every time)."""
    digest = hmac.new(secret, b"tracking-token:" + request_id.encode("utf-8"), hashlib.sha256)
    return TRACKING_PREFIX + base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def stored_secret(*, db_session: Session) -> bytes:
    """The generated secret of the database, created on first use. Two processes creating it
    at once: the later insert fails inside a savepoint and reads the winner's value."""
    row = db_session.get(m.ServerSecret, SECRET_NAME)
    if row is None:
        try:
            with db_session.begin_nested():
                db_session.add(
                    m.ServerSecret(
                        name=SECRET_NAME, value=secrets.token_urlsafe(32), created_at=utcnow()
                    )
                )
        except IntegrityError:
            pass
        row = db_session.get(m.ServerSecret, SECRET_NAME, populate_existing=True)
        assert row is not None
    return row.value.encode("utf-8")


class TokenSecret:
    """The server secret of one app: the setting, else the stored one (read once, lazily,
    so that building an app needs no migrated database)."""

    def __init__(self, factory: sessionmaker[Session], configured: str | None) -> None:
        self._factory = factory
        self._value = configured.encode("utf-8") if configured else None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    with transaction(self._factory) as db:
                        self._value = stored_secret(db_session=db)
        return self._value
