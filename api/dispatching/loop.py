"""The background dispatch loop of a server process: a cycle every ``dispatch_interval_s``
seconds and soon after each new request (debounced), in a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from api.dispatching.cycle import CycleResult, match_params, run_cycle
from api.dispatching.travel import travel_provider
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

    def run_once(self, *, actor: str = "dispatch", record: bool = False) -> CycleResult:
        provider, name = travel_provider(self.settings)
        result = run_cycle(
            factory=self.factory,
            provider=provider,
            provider_name=name,
            respect_shifts=self.settings.respect_shifts,
            actor=actor,
            match_params=match_params(self.settings),
            record=record,
        )
        self.cycles += 1
        self.last = result
        return result

    def poke(self) -> None:
        """Ask for a cycle soon (thread-safe; a no-op when the loop is not running)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def start(self) -> None:
        if self.settings.dispatch_interval_s <= 0:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="dispatch-loop")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._loop = None

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
