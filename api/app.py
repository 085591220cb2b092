"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.candidates import routes as candidates
from api.db.engine import make_engine, session_factory, transaction
from api.db.write_lock import write_lock_for, write_stats_file
from api.dispatching import routes as dispatch
from api.dispatching.loop import DispatchLoop
from api.errors import BodyGuard, install_error_handlers
from api.kpis import routes as kpis
from api.logging_setup import RequestIdMiddleware
from api.network import routes as network
from api.notifications import routes as webhooks
from api.notifications.delivery import OutboxWorker
from api.openapi import AllowHeaderFix, install_openapi, refuse_unknown_query_parameters
from api.partners import routes as partners
from api.ratelimit import make_rate_limiter
from api.requests import routes as requests
from api.requests.fast_lane import IntakeFastLane
from api.requests.intake_writer import IntakeWriter
from api.requests.reference import IntakeReference, ReferenceCache, load_reference
from api.settings import Settings, get_settings
from api.site import attention, console, health, live
from api.site.redoc import STATIC_URL as REDOC_STATIC_URL
from api.site.redoc import install_redoc
from api.state import AppResources, install
from api.tracking import TokenSecret
from api.vehicles import routes as vehicles
from fleet import VehicleClass

logger = logging.getLogger(__name__)

DESCRIPTION = """
Roadside rescue and replacement-vehicle dispatch for a truck maker's after-sales network.

* **Customers** report a breakdown with `POST /v1/requests` (no account; rate-limited;
  `Idempotency-Key` makes retries safe) and follow it with `GET /v1/requests/{id}` and the
  tracking token returned once.
* **Staff** routes need `Authorization: Bearer <token>` (create one with
  `rescue token create --role dispatcher`); 401 without a valid token, 403 for the wrong role.
* Errors are `{"detail": "..."}`; validation errors (422) name the field and the reason.
* The dispatcher console is at [/console](/console/).
"""

TAGS = [
    {"name": "requests", "description": "Breakdowns: intake, tracking, queue, actions"},
    {"name": "dispatch", "description": "Dispatch batches (van and replacement matching)"},
    {"name": "network", "description": "Stations, vans, partners, replacement trucks"},
    {"name": "kpis", "description": "Live indicators"},
    {"name": "live", "description": "Server-sent events for the console"},
    {"name": "console", "description": "Data for the dispatcher console"},
    {"name": "health", "description": "Liveness"},
    {"name": "webhooks", "description": "Customer notifications: signed webhooks (admin)"},
]


def _load_reference(factory: sessionmaker[Session]) -> IntakeReference:
    with transaction(factory) as db:
        return load_reference(db_session=db)


def warm_caches(settings: Settings) -> None:
    """Load the province outlines and the fault catalogue before the first request (otherwise
    the first burst of requests loads them once per worker thread)."""
    from api.requests.intake import triage
    from fleet.province_index import province_at

    province_at(36.65, 117.12)
    for vehicle_class in VehicleClass:
        triage(None, vehicle_class.value, settings.replacement_threshold_hours)


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Move everything loaded so far (modules, the province outlines, the catalogue, the
    settings) out of the garbage collector's sight, once per process. Without this, every
    full collection walks these long-lived containers (some 200,000): about 100 ms with the
    interpreter lock held, every few hundred requests under load, which was most of the
    intake's p99 latency. Objects created later are collected as usual."""
    global _heap_frozen
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. The engine is created here (not at import) unless one is passed in.
    The background dispatch loop runs while the app is served (``dispatch_interval_s`` > 0)."""
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    factory = session_factory(engine)
    loop = DispatchLoop(factory, settings)
    token_secret = TokenSecret(factory, settings.token_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(warm_caches, settings)
        await asyncio.to_thread(lambda: reference.get().warm())
        await asyncio.to_thread(token_secret.get)
        freeze_startup_heap()
        loop.start()
        writer.start()
        outbox.start()
        try:
            yield
        finally:
            await asyncio.to_thread(writer.stop)
            await loop.stop()
            await asyncio.to_thread(outbox.stop)
            if settings.write_lock_stats_dir:
                write_stats_file(settings.write_lock_stats_dir, "server")

    # Swagger UI and ReDoc assets are served by the app from the fastapi-offline package, so
    # /docs and /redoc work on a machine without internet (FastAPI's default uses a CDN);
    # ReDoc's page is ours (api/site/redoc.py): its script without the CDN logo.
    app = FastAPIOffline(
        redoc_url=None,
        static_url=REDOC_STATIC_URL,
        title="Rescue dispatch",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=TAGS,
        dependencies=[Depends(refuse_unknown_query_parameters)],
    )
    # SQLite takes one writer at a time anyway; a writer waiting on this lock (a thread of
    # this process, or the dispatch worker process) wakes as soon as the holder commits,
    # where SQLite's busy handler polls with growing sleeps. PostgreSQL: no lock.
    write_lock = write_lock_for(engine)
    writer = IntakeWriter(engine, write_lock)
    reference = ReferenceCache(partial(_load_reference, factory))
    outbox = OutboxWorker(factory, settings, write_lock=write_lock)
    install(
        app,
        AppResources(
            settings=settings,
            engine=engine,
            session_factory=factory,
            write_lock=write_lock,
            dispatch_loop=loop,
            intake_writer=writer,
            outbox_worker=outbox,
            rate_limiter=make_rate_limiter(
                per_minute=settings.rate_limit_per_minute,
                engine=engine,
                redis_url=settings.redis_url,
                redis_key_prefix=settings.redis_key_prefix,
                trusted_proxies=settings.trusted_proxies,
            ),
            intake_reference=reference,
            token_secret=token_secret,
        ),
    )
    install_redoc(app)
    install_error_handlers(app)
    install_openapi(app)
    # Innermost first: the fast lane answers valid hot-path intakes inside the body guard.
    app.add_middleware(IntakeFastLane)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(AllowHeaderFix)
    app.add_middleware(RequestIdMiddleware)  # outermost: even a 413 carries its request id
    routers = (health, network, vehicles, requests, candidates, dispatch, kpis, live, attention)
    for module in (*routers, console, webhooks, partners):
        app.include_router(module.router)
    static = resources.files("api").joinpath("console")
    app.mount("/console", StaticFiles(directory=str(static), html=True), name="console")
    return app
