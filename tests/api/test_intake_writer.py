"""The intake writer (group commit of new requests): every answered request is stored with its
first event, waiting requests share a transaction, one bad row fails only itself, and stopping
stores what is queued. On SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from api.app import create_app
from api.db import models as m
from api.db.engine import session_factory, transaction
from api.schemas import RequestCreate
from api.services.intake_writer import IntakeWriter
from api.services.requests import IntakePlan, plan_intake
from tests.api.conftest import app_settings, request_body


def plans(n: int) -> list[IntakePlan]:
    body = RequestCreate.model_validate(request_body())
    return [plan_intake(body=body, threshold_hours=24.0) for _ in range(n)]


def stored(engine: Engine) -> tuple[int, int]:
    with transaction(session_factory(engine)) as db:
        requests = db.scalar(select(func.count()).select_from(m.RescueRequest))
        events = db.scalar(
            select(func.count()).where(m.Event.kind == "request_received").select_from(m.Event)
        )
    return int(requests or 0), int(events or 0)


async def store_all(
    writer: IntakeWriter, batch: list[IntakePlan], queued: threading.Event
) -> list[BaseException | None]:
    """Store ``batch`` concurrently; ``queued`` is set once every plan is in the queue."""
    tasks = [asyncio.ensure_future(writer.store(p)) for p in batch]
    await asyncio.sleep(0)  # each task runs up to its wait: its plan is queued
    queued.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def store_while_locked(
    writer: IntakeWriter, lock: threading.Lock, batch: list[IntakePlan]
) -> list[BaseException | None]:
    """Queue the whole batch while the writer is held at the lock, then let it go."""
    queued = threading.Event()
    outcomes: list[BaseException | None] = []
    with lock:
        runner = threading.Thread(
            target=lambda: outcomes.extend(asyncio.run(store_all(writer, batch, queued)))
        )
        runner.start()
        assert queued.wait(10)
    runner.join(30)
    assert not runner.is_alive()
    return outcomes


def test_waiting_requests_share_one_commit(seeded: Engine) -> None:
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    outcomes = store_while_locked(writer, lock, plans(60))
    writer.stop()
    assert outcomes == [None] * 60
    assert stored(seeded) == (60, 60)
    assert writer.stored == 60
    assert writer.batches <= 2  # what the writer took before the lock, then all that waited


def test_a_bad_row_fails_only_its_own_request(seeded: Engine) -> None:
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    good = plans(5)
    # The same id as a good request: the batch's insert fails on the primary key, the writer
    # retries one by one, and exactly the duplicate fails.
    duplicate = dataclasses.replace(good[0], values={**good[0].values}, event={**good[0].event})
    outcomes = store_while_locked(writer, lock, [*good, duplicate])
    writer.stop()
    assert outcomes[:5] == [None] * 5
    assert isinstance(outcomes[5], IntegrityError)
    assert stored(seeded) == (5, 5)


def test_stop_stores_everything_queued(seeded: Engine) -> None:
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    loop = asyncio.new_event_loop()
    try:
        futures = []
        with lock:
            for p in plans(20):
                futures.append(loop.create_task(writer.store(p)))
            loop.run_until_complete(asyncio.sleep(0))  # each task queues its plan
            stopper = threading.Thread(target=writer.stop)
            stopper.start()
        stopper.join(30)
        loop.run_until_complete(asyncio.gather(*futures))
    finally:
        loop.close()
    assert stored(seeded) == (20, 20)


def test_concurrent_posts_are_all_stored_once(seeded: Engine, db_url: str) -> None:
    """Through the real route: 80 concurrent POSTs, 80 distinct 201s, 80 rows and events."""
    app = create_app(app_settings(db_url), engine=seeded)
    writer: IntakeWriter = app.state.intake_writer

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            vehicle = request_body()["vehicle"]
            bodies = [request_body(vehicle={**vehicle, "plate": f"鲁A{i:05d}"}) for i in range(80)]
            return await asyncio.gather(*(client.post("/v1/requests", json=b) for b in bodies))

    try:
        responses = asyncio.run(run())
    finally:
        writer.stop()
    assert [r.status_code for r in responses] == [201] * 80
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 80
    assert stored(seeded) == (80, 80)
    with transaction(session_factory(seeded)) as db:
        plates = set(db.scalars(select(m.RescueRequest.plate)))
    assert plates == {f"鲁A{i:05d}" for i in range(80)}
    assert writer.batches < 80


def test_an_unreachable_database_fails_the_batch_at_once(tmp_path: Path) -> None:
    """Not a row's fault: one attempt for the whole batch, every request gets the error."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    attempts: list[int] = []
    event.listen(engine, "do_connect", lambda *_: attempts.append(1))
    lock = threading.Lock()
    writer = IntakeWriter(engine, lock)
    outcomes = store_while_locked(writer, lock, plans(8))
    writer.stop()
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert len(outcomes) == 8
    assert len(attempts) <= 2  # the first batch and the rest, never one per request


def test_a_request_after_stop_starts_the_writer_again(seeded: Engine) -> None:
    writer = IntakeWriter(seeded, threading.Lock())
    first, second = plans(2)
    asyncio.run(writer.store(first))
    writer.stop()
    asyncio.run(writer.store(second))  # would wait forever without a running writer
    writer.stop()
    assert stored(seeded) == (2, 2)
    assert writer.batches == 2
