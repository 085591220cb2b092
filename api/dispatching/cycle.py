"""One dispatch cycle: load open requests and free vans (and trucks), call the pure dispatch
core, store the decisions in short transactions.

Phases (so that the solver never holds the database's write lock):

1. leadership (:mod:`api.dispatching.leadership`): on PostgreSQL session advisory locks,
   on SQLite ``flock`` files beside the database, let exactly one cycle run at a time for
   the whole network, or one per region (:mod:`api.dispatching.regions`), across processes;
2. read a snapshot (one short transaction) as :mod:`fleet` / :mod:`dispatch` dataclasses:
   waiting requests; free vans (a van a dispatcher moved up is posted at that station, which
   its service radius is then measured from: :mod:`api.dispatching.posts`); with
   re-planning, the jobs whose van has not arrived and is not about to (pinned to their
   van, which the matching may move when the gain is worth it) and the vans at a breakdown
   that expect to be free soon (timed from when and where they will be free: the breakdown,
   or their home station after a tow);
   Before the snapshot, partner offers and crew acknowledgements are swept
   (:func:`api.partners.service.sweep`: lapse unanswered offers, withdraw stale ones, re-plan
   assignments no crew acknowledged), under the write lock only when a read found something
   to sweep (:func:`api.partners.service.sweep_plan`);
3. solve: :func:`dispatch.match_vans` on :func:`dispatch.build_van_matching_problem` (with
   ``allow_reassignment`` and the priority-weighted hysteresis of
   ``MatchParams.reassignment_penalty_minutes``), and :func:`dispatch.match_replacements`
   for requests that need a truck (its choices become offers to the partners). Partner rescue
   providers are extra columns of the same van matching
   (:func:`dispatch.partner_rescue.build_partner_columns`, priced with
   ``RESCUE_OFFER_CNY_PER_MINUTE``; docs/dispatch.md): a request whose partner column wins
   (no own van covers or can handle it, or the own vans would be late by more than the
   partner's cost in minutes) is offered to that provider in the same cycle, plus the next
   best ones up to ``RESCUE_OFFER_FANOUT`` (the matching's other partner columns for it,
   by the matching's price);
4. write, each transaction under the database's write lock (on SQLite the intake's group
   commits wait for it: each is kept short, what it writes read or prepared before it, and
   on the worker process run by a thread at the server's priority, :func:`run_writes_in`):
   the van half, then the partner half (:data:`api.dispatching.decisions.DECISION_PARTS`,
   each whole on its own): lock the chosen requests, then the vans / trucks (always in that
   order, sorted by id: no deadlock with overrides or cancellations, which lock the request
   first), re-check that each is still free (a concurrent override or cancellation may have
   got there first: reported as a conflict, never double-booked), insert assignments,
   offers and events, update statuses (:mod:`api.dispatching.decisions`); then the flags of
   late jobs, the waiting reasons that changed (read before the lock,
   :mod:`api.dispatching.reasons`) and the summary event. Any error rolls that transaction
   back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.clock import utcnow
from api.db import models as m
from api.db.adapters import (
    moving_van_state_from_rows,
    open_request_from_row,
    partner_from_row,
    replacement_request_from_row,
    rescue_provider_from_row,
    soon_free_van_state_from_rows,
    truck_state_from_row,
    van_state_from_rows,
)
from api.db.engine import read_only, transaction
from api.db.write_lock import held, write_lock_for
from api.dispatching import queries as q
from api.dispatching.decisions import (
    OFFERS,
    VANS,
    CycleResult,
    pending_reasons,
    write_decisions,
)
from api.dispatching.leadership import NETWORK_LOCK, NETWORK_LOCK_KEY, CycleLock, hold_locks
from api.dispatching.live import flag_late_jobs, plus_minutes
from api.dispatching.posts import posted_stations
from api.dispatching.reasons import UNASSIGNED_KIND, UNMATCHED_KIND, prepare_reasons
from api.events import add_event
from api.partners.service import (
    OfferKind,
    OfferPolicy,
    provider_loads,
    refused_by,
    sweep,
    sweep_plan,
)
from dispatch import (
    BusyCover,
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
from dispatch.partner_rescue import (
    DEFAULT_CNY_PER_MINUTE,
    ProviderState,
    RescueCandidate,
    RescueJob,
    build_partner_columns,
    more_offers,
    required_capability,
)
from fleet import GeoPoint, VanCapability, is_on_shift
from routing import TravelTimeProvider

if TYPE_CHECKING:
    from api.settings import Settings

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = NETWORK_LOCK_KEY
LOCAL_TZ = dt.timezone(dt.timedelta(hours=8))  # China Standard Time (shift hours)


@dataclass(frozen=True)
class CyclePolicy:
    """The live-operation settings of a cycle (``RESCUE_REPLAN``, ``..._GAIN_MINUTES``, ...)."""

    respect_shifts: bool = True
    replan: bool = True
    replan_gain_minutes: float = 15.0
    replan_freeze_minutes: float = 15.0
    replan_redirect_km: float = 25.0
    soon_free_minutes: float = 60.0
    eta_grace_minutes: float = 10.0
    objective: str = "eta"
    """The van matching's objective (``RESCUE_DISPATCH_OBJECTIVE``: ``eta`` or ``promise``)."""
    promise_minutes: float = 120.0
    """The promise the ``promise`` objective counts against (``RESCUE_PROMISE_MINUTES``)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> CyclePolicy:
        return cls(
            respect_shifts=settings.respect_shifts,
            replan=settings.replan,
            replan_gain_minutes=settings.replan_gain_minutes,
            replan_freeze_minutes=settings.replan_freeze_minutes,
            replan_redirect_km=settings.replan_redirect_km,
            soon_free_minutes=settings.soon_free_minutes,
            eta_grace_minutes=settings.eta_grace_minutes,
            objective=settings.dispatch_objective,
            promise_minutes=settings.promise_minutes,
        )

    def match_params(self) -> MatchParams:
        return MatchParams(
            reassignment_penalty_minutes=self.replan_gain_minutes,
            objective=self.objective,
            promise_minutes=self.promise_minutes,
        )


@dataclass(frozen=True)
class Snapshot:
    now: dt.datetime
    requests: tuple[OpenRequest, ...]
    vans: tuple[VanState, ...]
    replacement_requests: tuple[ReplacementRequest, ...]
    trucks: tuple[TruckState, ...]
    current_van: Mapping[str, str] = field(default_factory=dict)
    """Re-planned jobs: request id -> the van that holds it (pinned in the batch)."""
    soon_free: Mapping[str, str] = field(default_factory=dict)
    """Vans at a breakdown offered for a next job: van id -> the request it is on."""
    match_params: MatchParams = field(default_factory=MatchParams)
    rescue_jobs: tuple[RescueJob, ...] = ()
    """The open requests as partner rescue jobs (only when there are providers)."""
    rescue_providers: tuple[ProviderState, ...] = ()
    busy_cover: tuple[BusyCover, ...] = ()
    """The vans at work by station and capability: a request only they cover waits for them
    (``all_busy``) instead of being escalated as one no van covers."""


def cycle_leadership(engine: Engine) -> contextlib.AbstractContextManager[bool]:
    """Yields True when this caller may run a whole-network cycle now (and holds the lock
    until exit); region cycles are in :mod:`api.dispatching.regions`."""
    return hold_locks(engine, [NETWORK_LOCK])


def load_snapshot(
    *,
    db_session: Session,
    now: dt.datetime,
    respect_shifts: bool = True,
    policy: CyclePolicy | None = None,
    scope: q.SnapshotScope | None = None,
) -> Snapshot:
    """Open requests (received, no van), free vans (no active assignment, available or
    returning, on shift), requests that need a truck and have none, and available trucks.
    With ``policy.replan``: also the jobs not yet reached (and not due within the freeze)
    with their vans pinned, and the vans expected free within ``soon_free_minutes``.
    Vans and trucks are only read when something waits for them. ``scope`` (a dispatch
    domain, :mod:`api.dispatching.regions`) reads its own share of each instead of the whole
    network's."""
    policy = policy or CyclePolicy(respect_shifts=respect_shifts, replan=False,
                                   soon_free_minutes=0.0)  # fmt: skip
    local = now.astimezone(LOCAL_TZ)
    local_hour = local.hour + local.minute / 60.0

    def on_shift(station: m.Station) -> bool:
        return (not policy.respect_shifts) or is_on_shift(
            station.open_hour, station.close_hour, local_hour
        )

    request_rows = (
        q.open_request_rows(db_session) if scope is None else scope.open_request_rows(db_session)
    )
    requests = tuple(open_request_from_row(r, now) for r in request_rows)
    rescue_jobs, rescue_providers = _rescue_side(db_session, request_rows)
    current_van: dict[str, str] = {}
    moving: list[VanState] = []
    if policy.replan:
        not_before = plus_minutes(now, policy.replan_freeze_minutes)
        jobs = (
            scope.replannable_rows(db_session, not_before=not_before)
            if scope is not None
            else q.replannable_rows(db_session, not_before=not_before)
        )
        for req, job, van, station in jobs:
            current_van[req.id] = van.id
            moving.append(
                moving_van_state_from_rows(
                    van, station, job, now, on_shift=on_shift(station),
                    redirect_km=policy.replan_redirect_km,
                )
            )  # fmt: skip
            requests += (open_request_from_row(req, now),)
    vans: tuple[VanState, ...] = ()
    soon_free: dict[str, str] = {}
    busy_cover: tuple[BusyCover, ...] = ()
    if requests:
        busy_cover = tuple(
            BusyCover(GeoPoint(lat, lon), VanCapability(cap), radius)
            for lat, lon, cap, radius in q.busy_cover_rows(db_session)
        )
        free_rows = (
            scope.free_van_rows(db_session) if scope is not None else q.free_van_rows(db_session)
        )
        posted = posted_stations(db_session, free_rows)  # moved up: serving from there
        vans = tuple(
            van_state_from_rows(
                van, station, now, on_shift=on_shift(station), posted_at=posted.get(van.id)
            )
            for van, station in free_rows
        )
        vans += tuple(moving)
        if policy.soon_free_minutes > 0:
            free_by = plus_minutes(now, policy.soon_free_minutes)
            soon = (
                scope.soon_free_van_rows(db_session, free_by=free_by)
                if scope is not None
                else q.soon_free_van_rows(db_session, free_by=free_by)
            )
            for van, station, req in soon:
                soon_free[van.id] = req.id
                vans += (
                    soon_free_van_state_from_rows(van, station, req, now,
                                                  on_shift=on_shift(station)),
                )  # fmt: skip
    declined = refused_by(db_session, OfferKind.TRUCK)
    rep_requests = tuple(
        dataclasses.replace(rep, excluded_partner_ids=declined.get(rep.id, frozenset()))
        for rep in (
            replacement_request_from_row(r, now)
            for r in (
                scope.replacement_request_rows(db_session)
                if scope is not None
                else q.replacement_request_rows(db_session)
            )
        )
    )
    trucks: tuple[TruckState, ...] = ()
    if rep_requests:
        partners = {p.id: partner_from_row(p) for p in q.partner_rows(db_session)}
        trucks = tuple(
            truck_state_from_row(t, partners[t.partner_id])
            for t in (
                scope.free_truck_rows(db_session)
                if scope is not None
                else q.free_truck_rows(db_session)
            )
        )
    return Snapshot(
        now,
        requests,
        vans,
        rep_requests,
        trucks,
        current_van=current_van,
        soon_free=soon_free,
        match_params=policy.match_params(),
        rescue_jobs=rescue_jobs,
        rescue_providers=rescue_providers,
        busy_cover=busy_cover,
    )


def _rescue_side(
    db_session: Session, request_rows: Sequence[q.WaitingRequest]
) -> tuple[tuple[RescueJob, ...], tuple[ProviderState, ...]]:
    """The waiting requests as partner rescue jobs and the providers with their loads (none
    when no provider is registered)."""
    provider_rows = q.rescue_provider_rows(db_session) if request_rows else ()
    if not provider_rows:
        return (), ()
    loads = provider_loads(db_session)
    providers = tuple(
        ProviderState(rescue_provider_from_row(p), loads.get(p.id, 0)) for p in provider_rows
    )
    refused = refused_by(db_session, OfferKind.RESCUE)
    jobs = tuple(
        RescueJob(
            request_id=r.id,
            location=GeoPoint(r.lat, r.lon),
            province_adcode=r.province_adcode,
            capability=required_capability(needs_tow=r.needs_tow, fault_code=r.fault_code),
            excluded_provider_ids=refused.get(r.id, frozenset()),
        )
        for r in request_rows
    )
    return jobs, providers


def match_params(settings: Settings) -> MatchParams:
    """The van matching's parameters from the settings (objective, promise, re-planning
    gain); the cycle takes them from its :class:`CyclePolicy`."""
    return CyclePolicy.from_settings(settings).match_params()


def solve(
    snapshot: Snapshot,
    provider: TravelTimeProvider,
    match_params: MatchParams | None = None,
    *,
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE,
) -> tuple[VanMatching | None, ReplacementMatching | None]:
    """The pure part: no database. ``match_params`` (default: the snapshot's, from the cycle's
    policy) chooses the van matching's objective; the snapshot's partner rescue providers
    are columns of the van matching, their cost turned into minutes at ``cny_per_minute``."""
    van_matching = None
    if snapshot.requests:
        problem = build_van_matching_problem(
            snapshot.requests, snapshot.vans, provider, busy_cover=snapshot.busy_cover
        )
        partners = None
        if snapshot.rescue_providers and snapshot.rescue_jobs:
            jobs = [j for j in snapshot.rescue_jobs if j.request_id not in snapshot.current_van]
            partners = build_partner_columns(
                jobs, snapshot.rescue_providers, provider, cny_per_minute=cny_per_minute
            )
        van_matching = match_vans(
            problem,
            allow_reassignment=bool(snapshot.current_van),
            params=match_params or snapshot.match_params,
            provider=provider,
            partners=partners,
        )
    rep = None
    if snapshot.replacement_requests:
        rproblem = build_replacement_problem(
            snapshot.replacement_requests, snapshot.trucks, provider
        )
        rep = match_replacements(rproblem)
    return van_matching, rep


def escalate_to_partners(
    snapshot: Snapshot,
    van_matching: VanMatching | None,
    offer_policy: OfferPolicy,
) -> list[RescueCandidate]:
    """The partner rescue offers (pure): each request whose partner column won the van
    matching, to that provider, and with ``offer_policy.fanout`` > 1 to the next best
    providers with a slot left, as the matching ranked its partner columns (the same
    candidates, the same price)."""
    if van_matching is None or not van_matching.partner_assignments:
        return []
    return more_offers(
        van_matching.partner_assignments,
        van_matching.partner_alternatives,
        snapshot.rescue_providers,
        fanout=offer_policy.fanout,
    )


_write_runner: Executor | None = None


def run_writes_in(executor: Executor | None) -> None:
    """Run every cycle's write-lock holding writes (sweep, decisions, reasons) of this
    process on ``executor`` (None: in the calling thread, the default).

    Why: the dispatch worker process runs niced (``RESCUE_DISPATCH_WORKER_NICE``) so that
    on a busy machine the intake's answers come first and the solve a little later. But
    while a cycle holds the SQLite write lock the intake waits for it: a niced holder is a
    priority inversion (issue 14 measured the decision write holding the lock 0.5-1.2 s at
    load 9-11, most of it waiting for the CPU). On Linux the nice value is per thread and a
    new thread inherits its creator's: the worker process starts one thread for these
    writes before it nices its main thread (:mod:`api.dispatching.loop`), so the solve runs
    niced and the writes do not. The cycle's thread waits for each write: they never run
    at the same time, so they do not compete for the interpreter lock either."""
    global _write_runner
    _write_runner = executor


def _locked_write(write: Callable[[], None]) -> None:
    runner = _write_runner
    if runner is None:
        write()
    else:
        runner.submit(write).result()


def run_cycle(
    *,
    factory: sessionmaker[Session],
    provider: TravelTimeProvider,
    provider_name: str = "",
    respect_shifts: bool = True,
    policy: CyclePolicy | None = None,
    actor: str = "dispatch",
    record: bool = False,
    now: dt.datetime | None = None,
    locks: Sequence[CycleLock] = (NETWORK_LOCK,),
    wait_for_locks: bool = False,
    region: str | None = None,
    offers: OfferPolicy | None = None,
    scope: q.SnapshotScope | None = None,
    housekeeping: bool = True,
) -> CycleResult:
    """Run one cycle (or skip it when another one holds the lock). ``record`` writes a
    ``dispatch_cycle`` event even when nothing was decided (manual runs). ``policy`` (default:
    the settings' defaults) turns re-planning and soon-free vans on and sets the matching
    objective; the write also flags the jobs that became late. ``now`` replaces the clock
    (replays and tests). ``offers`` sets the partner offer and crew acknowledgement policy.
    A dispatch domain's cycle (:mod:`api.dispatching.regions`) passes its ``locks``, its
    ``scope`` (what its snapshot reads: its requests, jobs and vans; it re-plans and offers
    soon-free vans within them like the whole-network cycle), ``region`` (its name in the
    event) and, unless it is the one domain that does them, ``housekeeping=False``: the
    network-wide sweep of offers and acknowledgements and the late-job flags are skipped."""
    policy = policy or CyclePolicy(respect_shifts=respect_shifts)
    offer_policy = offers or OfferPolicy()
    engine = factory.kw["bind"]
    started = time.perf_counter()
    now = now or utcnow()
    result = CycleResult(
        cycle_id=uuid.uuid4().hex[:12], started_at=now, provider=provider_name, region=region
    )
    with hold_locks(engine, locks, wait=wait_for_locks) as leader:
        if not leader:
            result.ran = False
            result.skipped_reason = "another dispatch cycle is running" + (
                f" (region {region})" if region else ""
            )
            result.seconds = time.perf_counter() - started
            return result
        # The writes take the database's write lock (SQLite: queued with the intake's group
        # commits, api/db/write_lock.py), each as briefly as it can: what they will write is
        # read or prepared before; the snapshot and the solve hold no lock.
        write_lock = write_lock_for(engine)
        if housekeeping:
            with transaction(factory) as db:
                read_only(db)  # most cycles have nothing to sweep: then no write at all
                plan = sweep_plan(db_session=db, now=now, policy=offer_policy)
            if plan:

                def write_sweep() -> None:
                    with held(write_lock, "cycle.sweep"), transaction(factory) as db:
                        swept = sweep(
                            db_session=db, now=now, policy=offer_policy, actor=actor, only=plan
                        )
                    result.expired, result.replanned = swept.expired, swept.replanned

                _locked_write(write_sweep)
        with transaction(factory) as db:
            read_only(db)  # SQLite: the snapshot never holds the intake's write lock
            snapshot = load_snapshot(db_session=db, now=now, policy=policy, scope=scope)
        result.open_requests = len(snapshot.requests) - len(snapshot.current_van)
        result.replanned_jobs = len(snapshot.current_van)
        result.free_vans = sum(1 for v in snapshot.vans if v.on_shift)
        van_matching, replacements = solve(
            snapshot, provider, cny_per_minute=offer_policy.cny_per_minute
        )
        rescue_offers = escalate_to_partners(snapshot, van_matching, offer_policy)
        with transaction(factory) as db:
            read_only(db)  # which waiting reasons changed: read before the write lock
            reasons = pending_reasons(db, van_matching, replacements)
        prepared = [
            prepare_reasons(engine.dialect, kind, reasons[kind], now, result.cycle_id, actor)
            for kind in (UNASSIGNED_KIND, UNMATCHED_KIND)
            if reasons.get(kind)
        ]
        times: dict[str, float] = {}

        def write_part(part: str) -> None:
            asked = time.perf_counter()
            with held(write_lock, f"cycle.{part}"), transaction(factory) as db:
                locked = time.perf_counter()
                write_decisions(
                    db_session=db,
                    snapshot=snapshot,
                    van_matching=van_matching,
                    replacements=replacements,
                    result=result,
                    actor=actor,
                    rescue_offers=rescue_offers,
                    policy=offer_policy,
                    reasons={},
                    parts=(part,),
                )
            times[f"{part} waited"] = locked - asked
            times[f"{part} held"] = time.perf_counter() - locked

        # The van half and the partner half each in a transaction of its own (each whole:
        # decisions.DECISION_PARTS), then the flags of late jobs, the waiting reasons (events
        # only: no booking depends on them) and the cycle's summary event: several short
        # holds of the write lock instead of one long one, the intake's commits in between.
        if van_matching is not None:
            _locked_write(lambda: write_part(VANS))
        if replacements is not None or rescue_offers:
            _locked_write(lambda: write_part(OFFERS))

        def write_reasons() -> None:
            with held(write_lock, "cycle.reasons"), transaction(factory) as db:
                if housekeeping:
                    result.at_risk = flag_late_jobs(
                        db, now=now, grace_minutes=policy.eta_grace_minutes, actor=actor,
                        cycle_id=result.cycle_id,
                    )  # fmt: skip
                for insert_ in prepared:
                    insert_.execute(db)
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
                        offered=len(result.offered),
                        expired=len(result.expired),
                        replanned=len(result.replanned),
                        unmatched=len(result.unmatched),
                        conflicts=len(result.conflicts),
                        seconds=round(result.seconds, 3),
                        **({"region": region} if region else {}),
                    )

        _locked_write(write_reasons)
        # How long the intake's group commit may have waited behind the decisions (SQLite).
        logger.debug(
            "dispatch cycle %s: write lock %s (%d open requests)", result.cycle_id,
            ", ".join(f"{k} {v:.3f} s" for k, v in times.items()), result.open_requests,
        )  # fmt: skip
    if result.decided or result.conflicts:
        logger.info(
            "dispatch cycle %s: %d assigned, %d unassigned, %d booked, %d conflicts (%.3f s)",
            result.cycle_id, len(result.assigned), len(result.unassigned), len(result.booked),
            len(result.conflicts), result.seconds,
        )  # fmt: skip
    return result
