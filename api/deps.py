"""FastAPI dependencies, defined once and used as type aliases in the routes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api import state
from api.db import models as m
from api.security import TOKEN_PREFIX, TRACKING_PREFIX, Role, find_staff_token
from api.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Staff token from `rescue token create`")


# The trivial dependencies are ``async def``: FastAPI runs a sync dependency in the
# threadpool, one thread hop per dependency per request (measurable on the intake path).


async def get_settings_dep(request: Request) -> Settings:
    return state.get_settings(request.app)


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return state.get_session_factory(request.app)


def get_db(
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
) -> Iterator[Session]:
    """Request-scoped session: one transaction, committed at the end, rolled back on error."""
    with factory() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]

RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A row id (integer primary key)")]
"""An integer id in a path: out of the columns' range is a 422 naming the parameter, never a
database overflow (500)."""
"""Committed before the response is sent: a 2xx means the change is stored."""
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def require_roles(*roles: Role) -> Callable[..., m.StaffToken]:
    """A dependency that admits a staff token with one of ``roles`` (admin always passes):
    401 without a valid token, 403 with the wrong role."""
    allowed = {r.value for r in roles} | {Role.ADMIN.value}

    def dependency(
        factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> m.StaffToken:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a staff bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # Its own short transaction: routes that run their own units of work (the dispatch
        # cycle) must not wait behind a session held open by the dependency (SQLite).
        with factory() as db, db.begin():
            token = find_staff_token(db_session=db, token=credentials.credentials)
            if token is not None:
                token.last_used_at = dt.datetime.now(dt.UTC)
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid, expired or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if token.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {token.role!r} may not do this; needs one of {', '.join(sorted(allowed))}",
            )
        return token

    return dependency


StaffUser = Annotated[m.StaffToken, Depends(require_roles(Role.DISPATCHER, Role.PLANNER))]
Dispatcher = Annotated[m.StaffToken, Depends(require_roles(Role.DISPATCHER))]
Admin = Annotated[m.StaffToken, Depends(require_roles())]
PartnerUser = Annotated[m.StaffToken, Depends(require_roles(Role.PARTNER))]
"""A partner token (or admin, who must name the partner: see the partner routes)."""
CrewUser = Annotated[m.StaffToken, Depends(require_roles(Role.CREW))]
CrewOrDispatcher = Annotated[m.StaffToken, Depends(require_roles(Role.CREW, Role.DISPATCHER))]


def actor_of(token: m.StaffToken) -> str:
    """How a staff member appears in the event log (never the secret)."""
    return f"{token.role}:{token.id}"


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The bearer secret (staff or tracking token); 401 without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required (the tracking token or a staff token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not credentials.credentials.startswith((TOKEN_PREFIX, TRACKING_PREFIX)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not a tracking token or a staff token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


BearerDep = Annotated[str, Depends(bearer_token)]


async def rate_limit(request: Request) -> None:
    """Per client address (``RESCUE_RATE_LIMIT_PER_MINUTE``; 0 = off): ``api/ratelimit.py``."""
    await state.get_rate_limiter(request.app).check(request)


RateLimited = Depends(rate_limit)
