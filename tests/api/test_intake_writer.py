"""The intake writer (group commit of new requests): a 201 is sent only once the request and its
first event are committed, waiting requests share a transaction, one bad row fails only itself,
a database failure fails a batch at once, and stopping stores what is queued. On SQLite and
(when available) PostgreSQL. Every wait has a timeout, so a broken writer fails a test instead
of hanging the run."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.exc import IntegrityError

from api.app import create_app
from api.db import models as m
from api.db.engine import session_factory, transaction
from api.exceptions import IntakeNotStored, InvalidInput
from api.requests.intake import IntakePlan, plan_intake
from api.requests.intake_writer import IntakeWriter
from api.schemas import RequestCreate
from api.state import get_intake_writer, get_write_lock
from tests.api.conftest import app_settings, request_body

T = TypeVar("T")
WAIT_S = 20.0


def plans(n: int) -> list[IntakePlan]:
    body = RequestCreate.model_validate(request_body())
    return [
        plan_intake(body=body, threshold_hours=24.0, token_secret=b"test-secret") for _ in range(n)
    ]


def stored(engine: Engine) -> tuple[int, int]:
    with transaction(session_factory(engine)) as db:
        requests = db.scalar(select(func.count()).select_from(m.RescueRequest))
        events = db.scalar(
            select(func.count()).where(m.Event.kind == "request_received").select_from(m.Event)
        )
    return int(requests or 0), int(events or 0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with a timeout."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, WAIT_S)

    return asyncio.run(bounded())


def in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(WAIT_S)
    assert not thread.is_alive(), "timed out"


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
        runner = in_thread(lambda: outcomes.extend(run(store_all(writer, batch, queued))))
        assert queued.wait(WAIT_S)
    joined(runner)
    return outcomes


def test_waiting_requests_share_one_commit(seeded: Engine) -> None:
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    outcomes = store_while_locked(writer, lock, plans(60))
    assert outcomes == [None] * 60
    assert stored(seeded) == (60, 60)  # answered means stored: checked before stop()
    writer.stop()
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


def test_an_unreachable_database_fails_the_batch_at_once(tmp_path: Path) -> None:
    """Not a row's fault: one attempt for the whole batch, every request gets its own 503."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    attempts: list[int] = []
    event.listen(engine, "do_connect", lambda *_: attempts.append(1))
    lock = threading.Lock()
    writer = IntakeWriter(engine, lock)
    outcomes = store_while_locked(writer, lock, plans(8))
    writer.stop()
    assert all(isinstance(o, IntakeNotStored) and o.retryable for o in outcomes)
    assert len({id(o) for o in outcomes}) == 8  # one exception per request
    assert len(attempts) <= 2  # the first batch and the rest, never one per request


def test_row_by_row_retry_stops_at_a_database_failure(seeded: Engine) -> None:
    """A bad row splits the batch; when the database then fails (here: the event table is
    gone), the requests not yet retried fail at once instead of one attempt each."""
    good = plans(6)
    duplicate = dataclasses.replace(good[0], values={**good[0].values}, event={**good[0].event})
    with seeded.begin() as conn:  # good[0] is already stored: the batch hits its primary key
        conn.execute(m.RescueRequest.__table__.insert(), [good[0].values])
        conn.execute(text("DROP TABLE events"))
    begins: list[int] = []
    event.listen(seeded, "begin", lambda *_: begins.append(1))
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    outcomes = store_while_locked(writer, lock, [duplicate, *good[1:]])
    writer.stop()
    assert isinstance(outcomes[0], IntegrityError)  # the bad row, retried alone
    assert all(isinstance(o, IntakeNotStored) for o in outcomes[1:])
    assert len(begins) <= 4  # batch(es) before the lock, the split batch, 2 rows: not 1 + 6


def test_stop_stores_everything_queued(seeded: Engine) -> None:
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    loop = asyncio.new_event_loop()
    try:
        tasks = []
        with lock:
            for p in plans(20):
                tasks.append(loop.create_task(writer.store(p)))
            loop.run_until_complete(asyncio.sleep(0))  # each task queues its plan
            stopper = in_thread(writer.stop)
        joined(stopper)
        # stop() returned: everything queued before it is committed, answered or not
        assert stored(seeded) == (20, 20)
        loop.run_until_complete(asyncio.wait_for(asyncio.gather(*tasks), WAIT_S))
    finally:
        loop.close()


def test_a_request_after_stop_starts_the_writer_again(seeded: Engine) -> None:
    writer = IntakeWriter(seeded, threading.Lock())
    first, second = plans(2)
    run(writer.store(first))
    writer.stop()
    run(writer.store(second))  # times out without a running writer
    writer.stop()
    assert stored(seeded) == (2, 2)
    assert writer.batches == 2


def post_all(app: Any, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/v1/requests", json=b) for b in bodies))

    return run(go())


def test_the_201_waits_for_the_commit(seeded: Engine, db_url: str) -> None:
    """While the writer cannot commit, the POST gets no answer and nothing is stored."""
    app = create_app(app_settings(db_url), engine=seeded)
    responses: list[httpx.Response] = []
    # SQLite: the writer waits for the app's writer lock; PostgreSQL: for the table lock.
    with get_write_lock(app), seeded.connect() as blocker:
        if seeded.dialect.name == "postgresql":
            blocker.execute(text("LOCK TABLE requests IN EXCLUSIVE MODE"))
        poster = in_thread(lambda: responses.extend(post_all(app, [request_body()])))
        poster.join(1.0)
        assert poster.is_alive() and responses == []  # no answer before the commit
        blocker.rollback()
    joined(poster)
    get_intake_writer(app).stop()
    assert [r.status_code for r in responses] == [201]
    assert stored(seeded) == (1, 1)


def test_concurrent_posts_are_all_stored_once(seeded: Engine, db_url: str) -> None:
    """Through the real route: 80 concurrent POSTs, 80 distinct 201s, 80 rows and events."""
    app = create_app(app_settings(db_url), engine=seeded)
    writer: IntakeWriter = get_intake_writer(app)
    vehicle = request_body()["vehicle"]
    bodies = [request_body(vehicle={**vehicle, "plate": f"鲁A{i:05d}"}) for i in range(80)]
    try:
        responses = post_all(app, bodies)
        assert [r.status_code for r in responses] == [201] * 80
        assert stored(seeded) == (80, 80)  # answered means stored: checked before stop()
    finally:
        writer.stop()
    assert len({r.json()["id"] for r in responses}) == 80
    with transaction(session_factory(seeded)) as db:
        plates = set(db.scalars(select(m.RescueRequest.plate)))
    assert plates == {f"鲁A{i:05d}" for i in range(80)}
    assert writer.batches < 80


def test_a_value_the_database_refuses_fails_only_its_request(seeded: Engine) -> None:
    """Finding 1 of the hardening issue: a deadline of 9999-12-31T23:59:59-12:00 overflows
    when converted to UTC at the insert (not an IntegrityError or DataError). The batch is
    retried row by row: the good requests are stored, the poisoned one alone gets a 422
    naming the body, none an IntakeNotStored."""
    lock = threading.Lock()
    writer = IntakeWriter(seeded, lock)
    good = plans(6)
    far = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-12)))
    poisoned = plans(1)[0]
    poisoned = dataclasses.replace(poisoned, values={**poisoned.values, "cargo_deadline": far})
    outcomes = store_while_locked(writer, lock, [*good[:3], poisoned, *good[3:]])
    writer.stop()
    assert outcomes[:3] == outcomes[4:] == [None] * 3
    assert isinstance(outcomes[3], InvalidInput) and outcomes[3].field == "body"
    assert "could not be stored" in str(outcomes[3])
    assert stored(seeded) == (6, 6)
