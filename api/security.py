"""Staff bearer tokens and who may see what.

Tokens are random secrets shown once and stored as SHA-256 only, each with a role and an
expiry (``RESCUE_TOKEN_TTL_DAYS``, 90 by default); they can be listed and revoked
(``rescue token list`` / ``rescue token revoke``), and each records when it was last used.
Authentication is decided before existence: a bearer that opens nothing gets the same answer
whatever request id it is tried on, so ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.exceptions import Forbidden, NotFound

TOKEN_PREFIX = "rsk_"
TRACKING_PREFIX = "trk_"
DEFAULT_TOKEN_TTL_DAYS = 90


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    PLANNER = "planner"
    ADMIN = "admin"
    PARTNER = "partner"
    """Bound to one partner company: its own offers, trucks and jobs only."""
    CREW = "crew"
    """Bound to one van: acknowledges its assignments, reports its position."""


SCOPED_ROLES = frozenset({Role.PARTNER.value, Role.CREW.value})
"""Roles bound to one partner or one van: never admitted to the staff routes."""


FULL_CUSTOMER_ROLES = frozenset({Role.DISPATCHER.value, Role.ADMIN.value})
"""Roles whose work needs the customer's full name and phone (calling the customer back);
planners see the same masked customer as a tracking-token holder."""


def sees_full_customer(token: m.StaffToken) -> bool:
    """Dispatchers and admins; never a partner or crew token."""
    return token.role in FULL_CUSTOMER_ROLES


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_staff_token(
    *,
    db_session: Session,
    role: Role,
    label: str = "",
    ttl_days: float = DEFAULT_TOKEN_TTL_DAYS,
    now: dt.datetime | None = None,
    partner_id: str | None = None,
    van_id: str | None = None,
) -> str:
    """Store a new token for ``role`` valid ``ttl_days``; returns the secret (the only time
    it is visible). A ``partner`` token needs an existing ``partner_id``, a ``crew`` token an
    existing ``van_id``; staff tokens take neither."""
    if not ttl_days > 0:
        raise ValueError("the token lifetime (days) must be greater than 0")
    if role is Role.PARTNER:
        if not partner_id or db_session.get(m.Partner, partner_id) is None:
            raise ValueError(
                f"partner_id: a partner token needs an existing partner, got {partner_id!r}"
            )
    elif partner_id is not None:
        raise ValueError(
            f"partner_id: only a partner token is bound to a partner (role {role.value})"
        )
    if role is Role.CREW:
        if not van_id or db_session.get(m.Van, van_id) is None:
            raise ValueError(f"van_id: a crew token needs an existing van, got {van_id!r}")
    elif van_id is not None:
        raise ValueError(f"van_id: only a crew token is bound to a van (role {role.value})")
    now = now or utcnow()
    token = new_secret()
    db_session.add(
        m.StaffToken(
            role=role.value,
            token_hash=hash_token(token),
            label=label,
            created_at=now,
            expires_at=now + dt.timedelta(days=ttl_days),
            partner_id=partner_id if role is Role.PARTNER else None,
            van_id=van_id if role is Role.CREW else None,
        )
    )
    db_session.flush()
    return token


def find_staff_token(
    *, db_session: Session, token: str, now: dt.datetime | None = None
) -> m.StaffToken | None:
    """The valid (not revoked, not expired) staff token matching ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(token)
    row = db_session.scalar(select(m.StaffToken).where(m.StaffToken.token_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return None
    # constant-time comparison of the digests (defence in depth over the indexed lookup)
    return row if hmac.compare_digest(row.token_hash, digest) else None


@dataclass(frozen=True)
class TokenInfo:
    """What ``rescue token list`` shows (never the secret or its hash)."""

    id: int
    role: str
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def list_staff_tokens(*, db_session: Session, include_inactive: bool = False) -> list[TokenInfo]:
    """Every token (oldest first); only the usable ones unless ``include_inactive``."""
    now = utcnow()
    rows = db_session.scalars(select(m.StaffToken).order_by(m.StaffToken.id))
    infos = [
        TokenInfo(
            id=r.id,
            role=r.role,
            label=r.label,
            created_at=r.created_at,
            expires_at=r.expires_at,
            last_used_at=r.last_used_at,
            revoked_at=r.revoked_at,
        )
        for r in rows
    ]
    return [i for i in infos if include_inactive or i.state(now) == "active"]


def revoke_staff_token(*, db_session: Session, token_id: int) -> bool:
    """Revoke token ``token_id``; False if it was already revoked. :class:`NotFound` for an
    unknown id."""
    row = db_session.get(m.StaffToken, token_id)
    if row is None:
        raise NotFound("no staff token with that id")
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    db_session.flush()
    return True


def request_for_tracking_token(
    *, db_session: Session, request_id: str, token: str
) -> m.RescueRequest:
    """The request ``token`` opens. :class:`Forbidden` (the same message) both for an unknown
    id and for another request's token: existence is never told to a caller who cannot see
    the request."""
    row = db_session.get(m.RescueRequest, request_id) if len(request_id) <= 64 else None
    if row is None or not hmac.compare_digest(row.tracking_token_hash, hash_token(token)):
        raise Forbidden("this token does not open this request")
    return row
