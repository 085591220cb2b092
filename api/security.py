"""Staff bearer tokens: random secrets shown once, stored as SHA-256 only, each with a role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m

TOKEN_PREFIX = "rsk_"


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    PLANNER = "planner"
    ADMIN = "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_staff_token(*, db_session: Session, role: Role, label: str = "") -> str:
    """Store a new token for ``role``; returns the secret (the only time it is visible)."""
    token = new_secret()
    db_session.add(m.StaffToken(role=role.value, token_hash=hash_token(token), label=label))
    db_session.flush()
    return token


def find_staff_token(*, db_session: Session, token: str) -> m.StaffToken | None:
    """The active staff token matching ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(token)
    row = db_session.scalar(select(m.StaffToken).where(m.StaffToken.token_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    # constant-time comparison of the digests (defence in depth over the indexed lookup)
    return row if hmac.compare_digest(row.token_hash, digest) else None
