"""The background dispatch loop of a server process: a cycle every ``dispatch_interval_s``
seconds and soon after each new request (debounced), in a child worker process
(``dispatch_mode="process"``, the default: :mod:`api.dispatching.worker` says why) or in a
worker thread (``"thread"``); ``"off"`` (or an interval of 0) runs none. Manual runs
(``POST /v1/dispatch/runs``) run in the server process in every mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType

from sqlalchemy.orm import Session, sessionmaker

from api.db.write_lock import write_stats_file
from api.dispatching.cycle import CyclePolicy, CycleResult, run_cycle, run_writes_in
from api.dispatching.travel import travel_provider
from api.dispatching.worker import worker_process_main
from api.partners.service import OfferPolicy
from api.settings import Settings

logger = logging.getLogger(__name__)

DEBOUNCE_S = 0.5
"""A burst of new requests is dispatched together."""


class DispatchLoop:
    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self.cycles = 0
        self.last: CycleResult | None = None
        self._process: SpawnProcess | None = None
        self._process_wake: EventType | None = None
        self._process_stop: EventType | None = None

    @property
    def worker_pid(self) -> int | None:
        """The child worker process's id while it runs (process mode)."""
        proc = self._process
        return proc.pid if proc is not None and proc.is_alive() else None

    def run_once(self, *, actor: str = "dispatch", record: bool = False) -> CycleResult:
        provider, name = travel_provider(self.settings)
        result = run_cycle(
            factory=self.factory,
            provider=provider,
            provider_name=name,
            policy=CyclePolicy.from_settings(self.settings),
            actor=actor,
            record=record,
            offers=OfferPolicy.from_settings(self.settings),
        )
        self.cycles += 1
        self.last = result
        return result

    def poke(self) -> None:
        """Ask for a cycle soon (thread-safe; a no-op when the loop is not running)."""
        if self._process_wake is not None:
            self._process_wake.set()
            return
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def start(self) -> None:
        if self.settings.dispatch_interval_s <= 0 or self.settings.dispatch_mode == "off":
            return
        if self.settings.dispatch_mode == "process":
            # spawn, not fork: the server already runs threads (a forked child could inherit
            # a lock held by one of them)
            context = multiprocessing.get_context("spawn")
            self._process_wake, self._process_stop = context.Event(), context.Event()
            self._process = context.Process(
                target=_worker_process,
                args=(self.settings, self._process_stop, self._process_wake),
                name="rescue-dispatch-worker",
                daemon=True,
            )
            self._process.start()
            logger.info("dispatch worker process %s started", self._process.pid)
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="dispatch-loop")

    async def stop(self) -> None:
        self._stopping.set()
        if self._process is not None:
            await asyncio.to_thread(self._stop_process)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._loop = None

    def _stop_process(self) -> None:
        """Ask the worker to finish its pass and exit; terminate it if it does not in time."""
        proc, stop, wake = self._process, self._process_stop, self._process_wake
        assert proc is not None
        assert stop is not None
        assert wake is not None
        stop.set()
        wake.set()
        proc.join(timeout=30)
        if proc.is_alive():
            logger.warning("dispatch worker %s did not stop in 30 s: terminating it", proc.pid)
            proc.terminate()
            proc.join(timeout=5)
        self._process = self._process_wake = self._process_stop = None

    async def _run(self) -> None:
        assert self._wake is not None
        interval = self.settings.dispatch_interval_s
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
                await asyncio.sleep(DEBOUNCE_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await asyncio.to_thread(self.run_once)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dispatch cycle failed (nothing of it was stored)")


def _worker_process(settings: Settings, stop: EventType, wake: EventType) -> None:
    """The child worker. Its cycles' write-lock holding writes run on a thread started here,
    before :func:`worker_process_main` nices the main thread (on Linux a thread's nice
    value is its own): the solve runs niced, the writes that the intake waits for do not
    (:func:`api.dispatching.cycle.run_writes_in`). On its way out it writes its write-lock
    record when asked (``write_lock_stats_dir``)."""
    writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-writes")
    writes.submit(lambda: None).result()  # the thread exists now, at the server's priority
    run_writes_in(writes)
    try:
        worker_process_main(settings, stop, wake)
    finally:
        run_writes_in(None)
        writes.shutdown()
        if settings.write_lock_stats_dir:
            write_stats_file(settings.write_lock_stats_dir, "worker")
