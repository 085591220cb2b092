"""The dispatch worker: the cycle run over and over, outside the serving process if asked.

Why a process: the solve (candidates, min-cost flow) is CPU-bound Python and numpy that
holds the interpreter lock for hundreds of milliseconds on a storm batch; in a thread of the
server it stalls the event loop that answers ``POST /v1/requests`` (issue 14: intake p99
172 ms -> 1,072 ms with a cycle every 2 s). In its own process, at a lower scheduling
priority, it only shares the database and the cores.

``rescue serve`` starts one as a child process (``RESCUE_DISPATCH_MODE=process``, the
default), woken by the intake through a :class:`multiprocessing.Event` (a semaphore: setting
it costs the event loop a few microseconds) and every ``dispatch_interval_s`` otherwise;
``rescue dispatch --loop`` runs one in the foreground, on any machine that reaches the
database (then woken by the interval). With ``regions`` > 1 each pass runs every dispatch
domain it can lead, the N regions and the border domain (:mod:`api.dispatching.regions`),
so several workers share the work.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Event as EventType

from sqlalchemy.orm import Session, sessionmaker

from api.clock import utcnow
from api.db.engine import make_engine, session_factory, transaction
from api.dispatching.cycle import CyclePolicy, CycleResult, run_cycle
from api.dispatching.leadership import hold_locks, is_held
from api.dispatching.regions import (
    BORDER_LOCK,
    BORDER_WAIT_S,
    Domain,
    RegionMap,
    load_region_map,
)
from api.dispatching.travel import travel_provider
from api.settings import Settings

logger = logging.getLogger(__name__)

DEBOUNCE_S = 0.5
"""A burst of new requests is dispatched together."""
REGION_MAP_CHECK_S = 30.0
"""How often a worker with regions reads the partition again (see
:meth:`DispatchWorker._read_region_map`)."""
IDLE_RETRY_S = 0.05
"""``until_idle``: pause before another pass when a region was led by another worker."""


class DispatchWorker:
    """Runs dispatch passes on one database: the whole network, or each dispatch domain (the
    regions and the border) it can lead."""

    def __init__(
        self,
        settings: Settings,
        *,
        factory: sessionmaker[Session] | None = None,
        actor: str = "dispatch",
    ) -> None:
        self.settings = settings
        self.factory = factory or session_factory(make_engine(settings.database_url))
        self.actor = actor
        self.region_map: RegionMap | None = None
        self._map_read_at = 0.0
        if settings.dispatch_regions > 1:
            self._read_region_map()
        self.passes = 0
        self._start = os.getpid()

    def run_pass(self) -> list[CycleResult]:
        """One pass: a whole-network cycle, or each region (starting at a different one each
        pass and in each worker, so that workers spread over them; skipping those another
        worker leads) and then the border cycle."""
        provider, name = travel_provider(self.settings)
        common: dict[str, object] = {
            "factory": self.factory,
            "provider": provider,
            "provider_name": name,
            "actor": self.actor,
        }
        policy = CyclePolicy.from_settings(self.settings)
        self.passes += 1
        if self.region_map is not None and (
            time.monotonic() - self._map_read_at >= REGION_MAP_CHECK_S
        ):
            self._read_region_map()
        region_map = self.region_map
        if region_map is None:
            return [run_cycle(**common, policy=policy)]  # type: ignore[arg-type]
        # Each domain re-plans its own jobs and offers its own soon-free vans
        # (regions.DomainScope): the policy is the whole network's.
        common["policy"] = policy
        results = []
        *regions, border = region_map.domains
        n = len(regions)
        engine = self.factory.kw["bind"]
        for domain in [*(regions[(self._start + self.passes + k) % n] for k in range(n)), border]:
            if domain.wait:
                results.append(self._border_cycle(region_map, domain, common))
            elif is_held(engine, BORDER_LOCK):
                # A border cycle waits for the region locks: a region cycle started now would
                # only hold it back (the border's requests wait; this region's are decided
                # in the next pass).
                results.append(_skipped(domain, common, "the border cycle is waiting for it"))
            else:
                results.append(
                    run_cycle(
                        **common,  # type: ignore[arg-type]
                        locks=domain.locks,
                        scope=region_map.scope(domain.index),
                        housekeeping=False,
                        region=domain.name,
                    )
                )
        return results

    def _read_region_map(self) -> None:
        """(Re-)read the partition: every worker must use the same one (their locks are keyed
        by it), and stations, vans and their radii may change while workers run (added
        vans move the cut, a radius moves the border), so each worker reads it again every
        :data:`REGION_MAP_CHECK_S` and all agree again within that time. An unchanged
        partition is kept (with what it remembers of the requests' domains)."""
        with transaction(self.factory) as db:
            fresh = load_region_map(db, self.settings.dispatch_regions)
        self._map_read_at = time.monotonic()
        if self.region_map is not None and fresh.same_partition(self.region_map):
            return
        if self.region_map is not None:
            logger.info(
                "dispatch regions changed: %s",
                "; ".join(f"{r.name} {len(r.provinces)} provinces" for r in fresh.regions),
            )
        self.region_map = fresh

    def _border_cycle(
        self, region_map: RegionMap, domain: Domain, common: dict[str, object]
    ) -> CycleResult:
        """The border cycle: the border lock tried, then the region locks waited for (in
        their fixed order, at most ``BORDER_WAIT_S``), so it runs between region cycles."""
        engine = self.factory.kw["bind"]
        with hold_locks(engine, domain.locks, wait_s=BORDER_WAIT_S, first_try=1) as got:
            if not got:
                return _skipped(domain, common, "another dispatch cycle is running")
            return run_cycle(
                **common,  # type: ignore[arg-type]
                locks=(),
                scope=region_map.scope(domain.index),
                region=domain.name,
            )

    def run(
        self,
        *,
        stop: EventType | None = None,
        wake: EventType | None = None,
        until_idle: bool = False,
        on_pass: Callable[[list[CycleResult]], None] | None = None,
    ) -> None:
        """Pass after pass until ``stop`` is set (or, with ``until_idle``, until a pass led
        every region and decided nothing): one every ``dispatch_interval_s`` and soon after
        ``wake`` is set. A failed pass is logged and stored nothing."""
        stop = stop or multiprocessing.Event()
        interval = self.settings.dispatch_interval_s or 1.0
        first = True
        while not stop.is_set():
            if not (first or until_idle):
                if wake is not None:
                    if wake.wait(timeout=interval):
                        time.sleep(DEBOUNCE_S)
                    wake.clear()
                else:
                    stop.wait(timeout=interval)
                if stop.is_set() or _orphaned():
                    return
            first = False
            try:
                results = self.run_pass()
            except Exception:
                logger.exception("dispatch pass failed (nothing of it was stored)")
                if until_idle:
                    raise
                continue
            if on_pass is not None:
                on_pass(results)
            if until_idle:
                if all(r.ran for r in results) and not any(
                    r.decided or r.conflicts for r in results
                ):
                    return
                if not all(r.ran for r in results):
                    time.sleep(IDLE_RETRY_S)


def _skipped(domain: Domain, common: dict[str, object], why: str) -> CycleResult:
    return CycleResult(
        cycle_id=uuid.uuid4().hex[:12],
        started_at=utcnow(),
        provider=str(common["provider_name"]),
        ran=False,
        skipped_reason=f"{why} (region {domain.name})",
        region=domain.name,
    )


def _orphaned() -> bool:
    """A child worker whose server died (killed, no clean shutdown) stops too."""
    parent = multiprocessing.parent_process()
    return parent is not None and not parent.is_alive()


def worker_process_main(settings: Settings, stop: EventType, wake: EventType) -> None:
    """Entry point of the child process that ``rescue serve`` starts."""
    logging.basicConfig(level=settings.log_level)
    if settings.dispatch_worker_nice:
        os.nice(settings.dispatch_worker_nice)
    with contextlib.suppress(KeyboardInterrupt):
        DispatchWorker(settings).run(stop=stop, wake=wake)
