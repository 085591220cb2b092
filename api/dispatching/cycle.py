"""One dispatch cycle: load open requests and free vans (and trucks), call the pure dispatch
core, store the decisions in one transaction.

Phases (so that the solver never holds the database's write lock):

1. leadership: on PostgreSQL a session advisory lock (``pg_try_advisory_lock``) lets exactly
   one cycle run at a time across all server processes; on SQLite a per-process lock;
2. read a snapshot (one short transaction) as :mod:`fleet` / :mod:`dispatch` dataclasses;
3. solve: :func:`dispatch.match_vans` on :func:`dispatch.build_van_matching_problem`, and
   :func:`dispatch.match_replacements` for requests that need a truck;
4. write (one transaction): lock the chosen requests, then the vans / trucks (always in that
   order, sorted by id: no deadlock with overrides or cancellations, which lock the request
   first), re-check that each is still free (a concurrent override or cancellation may have
   got there first: reported as a conflict, never double-booked), insert assignments,
   bookings and events, update statuses (:mod:`api.dispatching.decisions`). Any error rolls
   the whole write back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.clock import utcnow
from api.db.adapters import (
    open_request_from_row,
    partner_from_row,
    replacement_request_from_row,
    truck_state_from_row,
    van_state_from_rows,
)
from api.db.engine import transaction
from api.dispatching import queries as q
from api.dispatching.decisions import CycleResult, write_decisions
from api.events import add_event
from api.settings import Settings
from dispatch import (
    MatchParams,
    OpenRequest,
    ReplacementMatching,
    ReplacementRequest,
    TruckState,
    VanMatching,
    VanState,
    build_replacement_problem,
    build_van_matching_problem,
    match_replacements,
    match_vans,
)
from fleet import is_on_shift
from routing import TravelTimeProvider

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x52455343  # "RESC"
LOCAL_TZ = dt.timezone(dt.timedelta(hours=8))  # China Standard Time (shift hours)
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    now: dt.datetime
    requests: tuple[OpenRequest, ...]
    vans: tuple[VanState, ...]
    replacement_requests: tuple[ReplacementRequest, ...]
    trucks: tuple[TruckState, ...]


@contextmanager
def cycle_leadership(engine: Engine) -> Iterator[bool]:
    """Yields True when this caller may run a cycle now (and holds the lock until exit)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
                ).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    conn.commit()
        return
    key = str(engine.url)
    with _local_locks_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    got = lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            lock.release()


def load_snapshot(
    *, db_session: Session, now: dt.datetime, respect_shifts: bool = True
) -> Snapshot:
    """Open requests (received, no van), free vans (no active assignment, available or
    returning, on shift), requests that need a truck and have none, and available trucks.
    Vans and trucks are only read when something waits for them."""
    requests = tuple(open_request_from_row(r, now) for r in q.open_request_rows(db_session))
    vans: tuple[VanState, ...] = ()
    if requests:
        local = now.astimezone(LOCAL_TZ)
        local_hour = local.hour + local.minute / 60.0
        vans = tuple(
            van_state_from_rows(
                van,
                station,
                now,
                on_shift=(not respect_shifts)
                or is_on_shift(station.open_hour, station.close_hour, local_hour),
            )
            for van, station in q.free_van_rows(db_session)
        )
    rep_requests = tuple(
        replacement_request_from_row(r, now) for r in q.replacement_request_rows(db_session)
    )
    trucks: tuple[TruckState, ...] = ()
    if rep_requests:
        partners = {p.id: partner_from_row(p) for p in q.partner_rows(db_session)}
        trucks = tuple(
            truck_state_from_row(t, partners[t.partner_id]) for t in q.free_truck_rows(db_session)
        )
    return Snapshot(now, requests, vans, rep_requests, trucks)


def match_params(settings: Settings) -> MatchParams:
    """The van matching's parameters from the settings (objective and promise)."""
    return MatchParams(
        objective=settings.dispatch_objective, promise_minutes=settings.promise_minutes
    )


def solve(
    snapshot: Snapshot, provider: TravelTimeProvider, match_params: MatchParams | None = None
) -> tuple[VanMatching | None, ReplacementMatching | None]:
    """The pure part: no database. ``match_params`` chooses the van matching's objective."""
    van_matching = None
    if snapshot.requests:
        problem = build_van_matching_problem(snapshot.requests, snapshot.vans, provider)
        van_matching = match_vans(problem, provider=provider, params=match_params)
    rep = None
    if snapshot.replacement_requests:
        rproblem = build_replacement_problem(
            snapshot.replacement_requests, snapshot.trucks, provider
        )
        rep = match_replacements(rproblem)
    return van_matching, rep


def run_cycle(
    *,
    factory: sessionmaker[Session],
    provider: TravelTimeProvider,
    provider_name: str = "",
    respect_shifts: bool = True,
    actor: str = "dispatch",
    record: bool = False,
    match_params: MatchParams | None = None,
) -> CycleResult:
    """Run one cycle (or skip it when another one holds the lock). ``record`` writes a
    ``dispatch_cycle`` event even when nothing was decided (manual runs)."""
    engine = factory.kw["bind"]
    started = time.perf_counter()
    now = utcnow()
    result = CycleResult(cycle_id=uuid.uuid4().hex[:12], started_at=now, provider=provider_name)
    with cycle_leadership(engine) as leader:
        if not leader:
            result.ran = False
            result.skipped_reason = "another dispatch cycle is running"
            result.seconds = time.perf_counter() - started
            return result
        with transaction(factory) as db:
            snapshot = load_snapshot(db_session=db, now=now, respect_shifts=respect_shifts)
        result.open_requests = len(snapshot.requests)
        result.free_vans = sum(1 for v in snapshot.vans if v.on_shift)
        van_matching, replacements = solve(snapshot, provider, match_params)
        with transaction(factory) as db:
            write_decisions(
                db_session=db,
                snapshot=snapshot,
                van_matching=van_matching,
                replacements=replacements,
                result=result,
                actor=actor,
            )
            result.seconds = time.perf_counter() - started
            if record or result.decided:
                add_event(
                    db,
                    "dispatch_cycle",
                    actor=actor,
                    now=now,
                    cycle_id=result.cycle_id,
                    open_requests=result.open_requests,
                    assigned=len(result.assigned),
                    unassigned=len(result.unassigned),
                    booked=len(result.booked),
                    unmatched=len(result.unmatched),
                    conflicts=len(result.conflicts),
                    seconds=round(result.seconds, 3),
                )
    if result.decided or result.conflicts:
        logger.info(
            "dispatch cycle %s: %d assigned, %d unassigned, %d booked, %d conflicts (%.3f s)",
            result.cycle_id, len(result.assigned), len(result.unassigned), len(result.booked),
            len(result.conflicts), result.seconds,
        )  # fmt: skip
    return result
