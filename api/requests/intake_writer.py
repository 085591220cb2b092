"""Group commit for the intake hot path.

Every new request is two inserts (the request, its first event) that nobody else reads or
locks before they are committed. Committing them one transaction per HTTP request makes the
database's one-writer-at-a-time rule (SQLite) or its per-commit flush (PostgreSQL) the
bottleneck, and, in a threadpool, makes dozens of threads queue for the writer and for the
interpreter lock. Here one writer thread takes whatever requests are waiting, stores them in
one transaction and only then answers them all: a 201 still means "committed", a burst costs
one commit instead of hundreds, and the event loop never blocks on the database.

Validation (``api/schemas.py``) refuses every value the database would refuse, but a batch
must never let one request fail the others: if a batch fails for any reason but the database
itself (a constraint, a value out of range, text the driver cannot encode, a bug), each of
its requests is retried in a transaction of its own, so that one bad row fails only its own
request (a constraint: 409; anything else: a 422 saying a value could not be stored). A
failure of the database itself (unreachable, locked or timed out, the schema broken:
``OperationalError``, ``ProgrammingError`` and the like, or a lost connection) fails the
whole batch, or what is left of it, at once, each request with an :class:`IntakeNotStored`
of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)

from api.exceptions import IntakeNotStored, InvalidInput
from api.requests.intake import IntakePlan, log_received, store_intake

logger = logging.getLogger(__name__)

MAX_BATCH = 256
"""Requests stored per transaction at most (a burst larger than this takes several)."""


def is_database_failure(exc: BaseException) -> bool:
    """The database itself failed (unreachable, locked, timed out, a table missing: every
    request would fail the same way), as opposed to a row of the batch: then the batch is
    not retried row by row."""
    if isinstance(exc, OperationalError | ProgrammingError | InternalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def row_error(exc: Exception) -> BaseException:
    """What a request whose own row failed is answered with: a constraint stays an
    ``IntegrityError`` (409); anything else (a value out of the database's range, text it
    cannot encode) is a 422, since the request, not the server, is at fault."""
    if isinstance(exc, IntegrityError):
        return exc
    logger.warning("intake row not stored: %s", type(exc).__name__)
    return InvalidInput("body", "a value could not be stored (out of range or not encodable)")


LOCK_TIMEOUT_MS = 5_000
STATEMENT_TIMEOUT_MS = 15_000
"""PostgreSQL limits for one intake transaction (SQLite's busy timeout is 30 s)."""


_Item = tuple[IntakePlan, asyncio.Future[None]]
_STOP = object()


class IntakeWriter:
    """One writer thread committing queued intakes in batches (see the module docstring).

    ``lock`` is held around each transaction (the app's SQLite writer lock, shared with the
    other write paths of the process; a null context on PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.engine = engine
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False
        # Guards "is the thread running" together with queueing, so that a request queued
        # while the thread is deciding to exit is never left behind.
        self._state = threading.Lock()
        self.batches = 0
        self.stored = 0

    # -- the event-loop side ---------------------------------------------------------------

    async def store(self, plan: IntakePlan) -> None:
        """Queue ``plan`` and wait until it is committed (raises what its insert raised)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._state:
            self._start_locked()
            self._queue.put((plan, future))
        await future

    def start(self) -> None:
        with self._state:
            self._start_locked()

    def _start_locked(self) -> None:
        if not self._running:
            self._running = True
            self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Store everything queued so far, then end the thread (a later request starts it
        again)."""
        with self._state:
            thread = self._thread if self._running else None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while True:
            if stopping:
                with self._state:
                    if self._queue.empty():
                        self._running = False
                        return
            item = self._queue.get()
            if item is _STOP:
                stopping = True
                continue
            batch: list[_Item] = [item]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            try:
                self._commit(batch)
            except BaseException as exc:  # a bug here must not leave a request waiting forever
                logger.exception("intake writer failed on a batch of %d", len(batch))
                self._answer(batch, [exc] * len(batch))

    def _commit(self, batch: Sequence[_Item]) -> None:
        plans = [plan for plan, _ in batch]
        try:
            self._insert(plans)
        except Exception as exc:
            if is_database_failure(exc):
                # Not a bad row (database down or locked, disk full): every request of the
                # batch would fail the same way, one timeout each; fail them all now.
                self._fail(batch, exc)
                return
            if len(batch) == 1:
                self._answer(batch, [row_error(exc)])
                return
            logger.warning(
                "intake batch of %d failed (%s); storing one by one", len(batch), type(exc).__name__
            )
            errors: list[BaseException | None] = []
            for k, plan in enumerate(plans):
                try:
                    self._insert([plan])
                    errors.append(None)
                except Exception as other:
                    if is_database_failure(other):  # the rest fail at once
                        self._answer(batch[:k], errors)
                        self._fail(batch[k:], other)
                        return
                    errors.append(row_error(other))
            self._answer(batch, errors)
            return
        self._answer(batch, [None] * len(batch))

    def _fail(self, batch: Sequence[_Item], exc: BaseException) -> None:
        """Answer every request of ``batch`` with an :class:`IntakeNotStored` of its own (one
        exception object shared by many requests would gather all their tracebacks)."""
        retryable = isinstance(exc, OperationalError)
        logger.error(
            "intake batch of %d not stored: %s: %s",
            len(batch),
            type(exc).__name__,
            str(getattr(exc, "orig", None) or exc).splitlines()[0][:200],
        )
        self._answer(batch, [IntakeNotStored(retryable) for _ in batch])

    def _insert(self, plans: Sequence[IntakePlan]) -> None:
        with self.lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A hung commit or a migration's lock must not hold every intake forever.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            store_intake(conn, plans)
        self.batches += 1
        self.stored += len(plans)
        log_received(plans)

    @staticmethod
    def _answer(batch: Sequence[_Item], errors: Sequence[BaseException | None]) -> None:
        """Resolve the futures, one wake-up per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], Any]]] = {}
        for (_, future), error in zip(batch, errors, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, error))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: Sequence[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, error in pairs:
        if future.done():  # the client went away and the handler was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
