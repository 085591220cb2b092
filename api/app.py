"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from api.db.engine import make_engine, session_factory
from api.routes import health, network
from api.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
Roadside rescue and replacement-vehicle dispatch for a truck maker's after-sales network.

Staff routes need `Authorization: Bearer <token>` (create one with
`rescue token create --role dispatcher`). Errors are `{"detail": ...}`.
"""


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. The engine is created here (not at import) unless one is passed in."""
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Rescue dispatch",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.include_router(health.router)
    app.include_router(network.router)
    return app
