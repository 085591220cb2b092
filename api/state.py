"""Typed access to what the app holds for its routes (``app.state`` itself is untyped).

:func:`install` stores one :class:`AppResources` at start; routes and dependencies read it
through the accessors below, so a typo or a missing resource fails at once, by name."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.dispatching.loop import DispatchLoop
from api.notifications.delivery import OutboxWorker
from api.ratelimit import RateLimiter
from api.requests.intake_writer import IntakeWriter
from api.requests.reference import IntakeReference, ReferenceCache
from api.settings import Settings
from api.tracking import TokenSecret


@dataclass(frozen=True)
class AppResources:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    write_lock: contextlib.AbstractContextManager[Any]
    """Held around write transactions of the intake (SQLite: one writer at a time, and a
    thread waiting here wakes as soon as the writer commits; PostgreSQL: a null context)."""
    dispatch_loop: DispatchLoop
    intake_writer: IntakeWriter
    rate_limiter: RateLimiter
    outbox_worker: OutboxWorker
    intake_reference: ReferenceCache
    """The registry and stations for the intake (loaded once per app)."""
    token_secret: TokenSecret
    """The server secret that tracking tokens are derived from."""


def install(app: FastAPI, resources: AppResources) -> None:
    app.state.resources = resources


def get_resources(app: FastAPI) -> AppResources:
    resources = getattr(app.state, "resources", None)
    if not isinstance(resources, AppResources):
        raise RuntimeError("the app has no resources: build it with api.app.create_app")
    return resources


def get_settings(app: FastAPI) -> Settings:
    return get_resources(app).settings


def get_session_factory(app: FastAPI) -> sessionmaker[Session]:
    return get_resources(app).session_factory


def get_write_lock(app: FastAPI) -> contextlib.AbstractContextManager[Any]:
    return get_resources(app).write_lock


def get_dispatch_loop(app: FastAPI) -> DispatchLoop:
    return get_resources(app).dispatch_loop


def get_intake_writer(app: FastAPI) -> IntakeWriter:
    return get_resources(app).intake_writer


def get_rate_limiter(app: FastAPI) -> RateLimiter:
    return get_resources(app).rate_limiter


def get_outbox_worker(app: FastAPI) -> OutboxWorker:
    return get_resources(app).outbox_worker


def get_intake_reference(app: FastAPI) -> IntakeReference:
    return get_resources(app).intake_reference.get()


def get_token_secret(app: FastAPI) -> bytes:
    return get_resources(app).token_secret.get()
