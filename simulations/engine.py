"""The discrete-event simulation: breakdowns, batch dispatch, vans, tows and replacement trucks.

Three parts, each in its own module:

- the van model (:mod:`simulations.van_model`): the requests, the fleet's static tables and
  each van's trip, planned whole at dispatch (:func:`~simulations.van_model.plan_van_trip`);
- the replacement model (:mod:`simulations.replacement_model`): partner trucks booked in
  batches for cargo whose repair exceeds the threshold;
- the event loop (:class:`Simulation`, here): a plain heap of timed events plus a pointer into
  the pre-drawn, time-sorted breakdowns (no SimPy: the events are few and simple, and a heap
  measured several times faster), and the two dispatch policies.

Dispatch drives the production code: every ``batch_minutes`` the open requests and the free
vans whose radius covers them go into ``dispatch.VanMatchingProblem.from_arrays`` (arcs by
indexing the precomputed tables, never a router) and ``dispatch.match_vans``, or, by default,
as arrays into :func:`simulations.batch_match.match_batch`, which returns the same assignment
without the per-batch objects (``Simulation.array_matching``). The
``nearest-idle`` policy dispatches on arrival (``dispatch.match_vans_naive`` on the idle vans)
and, when a van gets home, gives it the longest-waiting request it can serve (FIFO). Both
policies honour the crews (``simulations.crews``) and ``after_job`` (with ``next-from-site``
nearest-idle also considers the vans driving home empty, and a van leaving a site empty takes
the longest-waiting request it can serve), so the baseline is compared on equal terms.

Free vans: at home and on shift (``fleet.is_on_shift``, the API's rule too), or driving home
empty (``free_in`` = minutes to home; the next trip starts from home: a conservative
simplification). A van on site is busy. A request that no capable van covers at all is
escalated at once; one still waiting after ``escalate_after_minutes`` is escalated then (a
partner service): with ``[partner_offers] rescue_providers = true`` it is offered to the
network's partner rescue providers (:mod:`simulations.partner_model`). The run's output is a
:class:`~simulations.results.RunRecord`.

The simulation does not walk requests through ``dispatch.lifecycle``: a trip's whole timeline
is known at dispatch, so there are no status changes to validate; the API owns the lifecycle.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Callable
from enum import IntEnum

import numpy as np

from dispatch.vans import (
    MatchParams,
    OpenRequest,
    VanMatchingProblem,
    VanState,
    capability_breadth,
    match_vans,
    match_vans_naive,
)
from simulations.after_job import SiteLegs, next_from_site_minutes
from simulations.batch_match import match_batch, one_request_arc
from simulations.crews import Crews
from simulations.demand import Breakdowns, draw_breakdowns, replication_streams
from simulations.move_up import MoveUpModel, build_move_up_model, plan_move_ups
from simulations.partner_model import OfferDraws, PartnerArrival, RescueOffers
from simulations.replacement_model import BookingDecisions, ReplacementModel
from simulations.results import Escalation, RunRecord, RunResult, summarise_run
from simulations.scenario import CrewSpec, Scenario
from simulations.tables import TravelTables
from simulations.van_model import (
    RescueRequests,
    VanFleet,
    VanSchedule,
    VanTrip,
    plan_van_trip,
)


class EventKind(IntEnum):
    """Timed events on the heap; at the same minute the lower kind goes first."""

    VAN_HOME = 0
    """nearest-idle: a van is home and may take a waiting request (payload: van)."""
    FOLLOWUP_TOW = 1
    """A van gave up on site: the tow request arrives (payload: its request)."""
    REPLACEMENT = 2
    """The booking policy asks for a truck, at intake or at the diagnosis (payload: breakdown)."""
    SHIFT_START = 3
    """nearest-idle: stations opening at this hour (payload: hour); repeats daily."""
    ESCALATE = 4
    """nearest-idle, and batch-optimal on events: a queued request's escalation time (payload:
    request)."""
    RELEASE = 5
    """A diagnosis found an intake booking unneeded (payload: breakdown)."""
    VAN_FREE = 6
    """batch-optimal on events, and nearest-idle with next-from-site: a van left its site and
    may take a job (payload: van)."""
    MOVE_UP = 7
    """batch-optimal with move-up: check the coverage and move idle vans (payload: 0)."""
    RESCUE_ANSWER = 8
    """A partner rescue provider's answer to an offer, or its expiry (payload: request)."""
    PROVIDER_FREE = 9
    """A partner rescue provider's job ended: a slot is free (payload: provider)."""
    TRUCK_ANSWER = 10
    """A partner company's answer to a truck offer, or its expiry (payload: breakdown)."""


def simulate(
    scenario: Scenario,
    tables: TravelTables,
    replication: int = 0,
    *,
    on_day: Callable[[float], None] | None = None,
) -> RunResult:
    """One run of the scenario (its seed, this replication's streams). ``on_day`` is called
    with the simulated fraction once per simulated day (progress bars)."""
    started = time.perf_counter()
    streams = replication_streams(scenario.seed, replication)
    breakdowns = draw_breakdowns(scenario, tables, streams)
    sim = Simulation(scenario, tables, breakdowns, OfferDraws(scenario.seed, replication))
    sim.run(on_day)
    return summarise_run(
        scenario, tables, breakdowns, sim.record(), replication=replication,
        wall_seconds=time.perf_counter() - started,
    )  # fmt: skip


class Simulation:
    """One run: the models, the queue of requests waiting for a van, and the event loop."""

    def __init__(
        self,
        scenario: Scenario,
        tables: TravelTables,
        breakdowns: Breakdowns,
        offer_draws: OfferDraws | None = None,
    ) -> None:
        self.scenario = scenario
        self.breakdowns = breakdowns
        self.end_minute = scenario.total_minutes
        self.fleet = VanFleet.build(scenario, tables)
        self.crews: Crews | None = None
        if scenario.crews != CrewSpec():
            self.crews = Crews(scenario.crews, self.fleet)
            self.fleet = self.crews.fleet_with_crews(self.fleet)
        self.requests = RescueRequests(breakdowns, tables)
        self.schedule = VanSchedule(
            len(self.fleet.vans), scenario.warmup_days * 1440.0, self.end_minute
        )
        draws = offer_draws or OfferDraws(scenario.seed, 0)  # simulate() passes its replication
        self.replacements = ReplacementModel(
            scenario, tables, breakdowns, draws,
            schedule_answer=lambda at, b: self.schedule_event(at, EventKind.TRUCK_ANSWER, b),
        )  # fmt: skip
        self.partner_rescue: RescueOffers | None = None
        """Partner rescue providers (None unless ``[partner_offers] rescue_providers = true``
        and the network has some: escalations end there, as before)."""
        if scenario.partner_rescue_providers:
            self.partner_rescue = RescueOffers(
                scenario, tables, breakdowns, draws,
                schedule_answer=lambda at, r: self.schedule_event(at, EventKind.RESCUE_ANSWER, r),
                schedule_free=lambda at, k: self.schedule_event(at, EventKind.PROVIDER_FREE, k),
                on_accepted=self.partner_accepted,
            )  # fmt: skip
        self.booking = BookingDecisions.compute(scenario, breakdowns)
        self.waiting: dict[int, OpenRequest | None] = {}
        """Requests waiting for a van, oldest first (as the dispatch core sees them; ``None``
        with :attr:`array_matching`, whose batch step needs only the index)."""
        self._events: list[tuple[float, int, int, int]] = []
        """Heap of (minute, kind, sequence, payload)."""
        self._sequence = 0
        self._van_mark = np.zeros(len(self.fleet.vans), dtype=bool)
        self._van_column = np.zeros(len(self.fleet.vans), dtype=np.int64)
        """Scratch arrays of the batch (reset after use)."""
        self.event_count = 0
        self.dispatch_batches = 0
        self.match_seconds = 0.0
        self._request_priority = np.concatenate([breakdowns.priority, breakdowns.priority])
        """Per request (first calls, then follow-up tows): its breakdown's priority."""
        self._all_vans = np.arange(len(self.fleet.vans))
        self._shift_hours = sorted(
            {float(h) for h in (*self.fleet.shift_open_hour, *self.fleet.shift_close_hour)}
        )
        self._shift_window: tuple[float, float, np.ndarray] = (0.0, 0.0, np.zeros(0, dtype=bool))
        """The hours of day [low, high) between two shift hours and every van's shift then
        (:meth:`_on_shift`; empty at first)."""
        self.array_matching = True
        """batch-optimal: match through :mod:`simulations.batch_match` (the same assignments as
        ``match_vans``, without its per-batch objects); ``False``: through ``match_vans``."""
        spec = scenario.dispatch
        self.match_params = MatchParams(
            objective=spec.objective, promise_minutes=scenario.promise.arrival_minutes
        )
        self.on_events = spec.policy == "batch-optimal" and spec.trigger == "arrival"
        """Batch on each event that can change a decision (production), not on a clock."""
        self.next_from_site = spec.after_job == "next-from-site"
        """Both policies: a van driving home empty may take the next job from where it is."""
        self.site_point = np.full(len(self.fleet.vans), -1, dtype=np.int64)
        """next-from-site: per van, the demand point it left empty (-1: home or towing)."""
        self.tables = tables
        self.move_up: MoveUpModel | None = None
        self.relocated = np.full(len(self.fleet.vans), -1, dtype=np.int64)
        """move-up: per van, the station it was moved to (-1: at its own station or busy)."""
        if spec.policy == "batch-optimal" and spec.move_up:
            self.move_up = build_move_up_model(scenario, tables)
        self._one_request_shortcut = (
            self.move_up is None
            and self.crews is None
            and not self.next_from_site
            and spec.objective == "eta"
        )
        """A batch of one waiting request may take :meth:`_dispatch_one_request` (with
        :attr:`array_matching`): none of the moved vans, crews' turnout, vans on the road or
        promise tiers that the general step handles."""
        self._batch_when_home = spec.objective == "promise"
        """Triggered batches (``on_events``) also run when a van gets home: under the promise
        objective a late request is not given a van still driving home (``VanState.busy``)."""
        self._van_breadth = np.array(
            [capability_breadth(v.capability) for v in self.fleet.vans], dtype=np.int64
        ).reshape(-1)
        """Per van: how many kinds of job it can take (of tied vans the narrowest goes)."""
        self._request_weight = np.rint(
            self._request_priority * self.match_params.priority_resolution
        ).astype(np.int64)
        """Per request: its integer priority weight, as ``match_batch`` rounds it."""
        self.tow_kmh = scenario.travel.profile("towing").speed_kmh
        self.site_legs: SiteLegs | None = None
        if self.next_from_site:
            stations = scenario.network.station_by_id
            ll = np.array(
                [
                    (stations[sid].location.lat, stations[sid].location.lon)
                    for sid in tables.station_ids
                ]
            ).reshape(-1, 2)
            self.site_legs = SiteLegs.measure(tables, ll[:, 0], ll[:, 1])

    @property
    def nearest_idle(self) -> bool:
        return self.scenario.dispatch.policy == "nearest-idle"

    def idle_state(self, van: int, now: float) -> VanState:
        """The van idle at home, as the dispatch core sees it (with its crew's turnout)."""
        if self.crews is not None:
            return self.crews.idle_state(van, now)
        return self.fleet.at_home[van]

    def _on_shift(self, now: float) -> np.ndarray:
        """Every van's ``fleet.on_shift`` at ``now``. The rule only compares the hour of day
        with the vans' shift hours, so the answer holds until the hour reaches the next of
        them: computed once per such interval, not per batch."""
        hour = now / 60.0 % 24  # as fleet.model.is_on_shift reduces it
        low, high, on = self._shift_window
        if not low <= hour < high:
            on = self.fleet.on_shift(self._all_vans, now)
            hours = self._shift_hours
            i = bisect.bisect_right(hours, hour)
            low = hours[i - 1] if i > 0 else -math.inf
            high = hours[i] if i < len(hours) else math.inf
            self._shift_window = (low, high, on)
        return on

    def schedule_event(self, minute: float, kind: EventKind, payload: int) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (minute, kind, self._sequence, payload))

    # -- requests and trips ------------------------------------------------------------------
    def arrive(self, request: int, now: float) -> None:
        """A request comes in: escalated if no capable van covers it at all; under
        nearest-idle dispatched at once if a van is idle; otherwise it waits."""
        reqs = self.requests
        if request < reqs.breakdown_count and self.booking.at_intake[request]:
            self.schedule_event(now, EventKind.REPLACEMENT, request)
        if not self.fleet.covers_point[reqs.capability_key(request), reqs.point(request)]:
            self.escalate(request, Escalation.NO_CAPABLE_VAN, now)
            return
        open_request: OpenRequest | None = None  # the array batch step does without it
        if self.nearest_idle:
            open_request = reqs.open_request(request)
            if self._dispatch_nearest(request, open_request, now):
                return
        elif not self.array_matching:
            open_request = reqs.open_request(request)
        if self.nearest_idle or self.on_events:
            self.schedule_event(
                now + self.scenario.dispatch.escalate_after_minutes, EventKind.ESCALATE, request
            )
        self.waiting[request] = open_request
        if self.on_events:
            self.dispatch_batch(now)

    def dispatch_van(
        self,
        request: int,
        van: int,
        arc: int,
        now: float,
        eta: float,
        *,
        drive_minutes: float | None = None,
        tow_minutes: float | None = None,
    ) -> None:
        """Send ``van`` (over fleet ``arc``, or with the given drive and tow minutes between
        the site and home) to ``request``: plan the trip, book the van, schedule what follows
        from it."""
        fleet, reqs = self.fleet, self.requests
        trip: VanTrip = plan_van_trip(
            reqs, fleet, self.scenario.repairs, request=request, van=van, now=now, eta_minutes=eta,
            drive_minutes=float(fleet.arc_minutes[arc]) if drive_minutes is None else drive_minutes,
            tow_minutes=float(fleet.arc_tow_minutes[arc]) if tow_minutes is None else tow_minutes,
        )  # fmt: skip
        if self.move_up is not None:
            self.relocated[van] = -1  # after this job it drives to its own home
        breakdown = reqs.breakdown_of(request)
        if trip.tows:
            reqs.towed[breakdown] = True
        if trip.needs_followup_tow:
            reqs.followup_tow[breakdown] = True
            self.schedule_event(
                trip.leaves_site_at, EventKind.FOLLOWUP_TOW, reqs.followup_tow_of(breakdown)
            )
        if trip.diagnosed_at is not None:
            self.decide_at_diagnosis(breakdown, trip.diagnosed_at)
        self.schedule.book(van, trip, now)
        reqs.assigned_at[request] = now
        reqs.on_site_at[request] = trip.on_site_at
        reqs.van[request] = van
        if self.nearest_idle:
            self.schedule_event(trip.home_at, EventKind.VAN_HOME, van)
            if self.next_from_site and not trip.tows and trip.leaves_site_at < trip.home_at:
                # it may take the longest-waiting request on its way home
                self.schedule_event(trip.leaves_site_at, EventKind.VAN_FREE, van)
        elif self.on_events:
            self.schedule_event(trip.leaves_site_at, EventKind.VAN_FREE, van)
            if self._batch_when_home and trip.home_at > trip.leaves_site_at:
                # the promise objective holds late requests back from vans driving home:
                # they are matched again when one gets home
                self.schedule_event(trip.home_at, EventKind.VAN_HOME, van)
        if self.next_from_site:
            self.site_point[van] = -1 if trip.tows else reqs.point(request)

    def decide_at_diagnosis(self, breakdown: int, diagnosed_at: float) -> None:
        """The booking policy's second look, at ``diagnosed_at``: ask for a truck, or release
        the one asked for at intake."""
        booking = self.booking
        if booking.at_intake[breakdown]:
            if not booking.after_diagnosis[breakdown]:
                self.schedule_event(diagnosed_at, EventKind.RELEASE, breakdown)
        elif booking.after_diagnosis[breakdown]:
            self.schedule_event(diagnosed_at, EventKind.REPLACEMENT, breakdown)

    def escalate(self, request: int, reason: Escalation, now: float) -> None:
        """No own van: the request goes to a partner service (offered to the partner rescue
        providers, when the scenario has them)."""
        self.requests.escalate(request, reason)
        if self.partner_rescue is not None:
            self.partner_rescue.offer(request, now)

    def partner_accepted(self, request: int, arrival: PartnerArrival) -> None:
        """A partner rescue provider took ``request``: its arrival is the request's help on
        site; a first call is diagnosed there (the booking policy's second look)."""
        reqs = self.requests
        reqs.assigned_at[request] = arrival.accepted_at
        reqs.on_site_at[request] = arrival.on_site_at
        if arrival.diagnosed_at is not None:
            self.decide_at_diagnosis(reqs.breakdown_of(request), arrival.diagnosed_at)

    def escalate_overdue(self, now: float) -> None:
        limit = self.scenario.dispatch.escalate_after_minutes
        reported = self.requests.reported_at
        for request in [r for r in self.waiting if now - reported[r] > limit]:
            del self.waiting[request]
            self.escalate(request, Escalation.TIMEOUT, now)

    # -- batch-optimal -----------------------------------------------------------------------
    def dispatch_batch(self, now: float) -> None:
        """Match all waiting requests to the free capable vans covering them (match_vans).

        The problem is built with whole-array operations over every waiting request's arcs at
        once (a batch is a few requests and a few dozen vans, so per-request numpy calls were
        most of its cost); the rows, columns and arcs are exactly those of a per-request loop:
        requests in waiting order, each request's arcs in table order, vans by index."""
        self.escalate_overdue(now)
        if not self.waiting:
            return
        if len(self.waiting) == 1 and self.array_matching and self._one_request_shortcut:
            self._dispatch_one_request(next(iter(self.waiting)), now)
            return
        fleet, reqs, schedule = self.fleet, self.requests, self.schedule
        waiting_requests = np.fromiter(self.waiting, dtype=np.int64, count=len(self.waiting))
        moved_any = self.move_up is not None and bool((self.relocated >= 0).any())
        if len(waiting_requests) == 1:  # the common batch: one request's arc range
            request = int(waiting_requests[0])
            start, stop = fleet.arcs(reqs.point(request))
            if start == stop and not moved_any:
                return
            arc = np.arange(start, stop, dtype=np.int64)
            row_of_arc = np.zeros(stop - start, dtype=np.int64)
            key_of_arc: int | np.ndarray = reqs.capability_key(request)
        else:
            points = reqs.point_array[waiting_requests]
            arc_start = fleet.point_arc_start[points]
            arc_count = fleet.point_arc_start[points + 1] - arc_start
            total = int(arc_count.sum())
            if not total and not moved_any:
                return
            # every waiting request's arc range, concatenated in waiting order
            row_of_arc = np.repeat(np.arange(len(waiting_requests)), arc_count)
            first_of_row = np.cumsum(arc_count) - arc_count
            arc = np.arange(total, dtype=np.int64) + np.repeat(arc_start - first_of_row, arc_count)
            key_of_arc = reqs.capability_key_array[waiting_requests][row_of_arc]
        vans = fleet.arc_van[arc]
        free = (
            (schedule.leaves_site_at[vans] <= now)
            & fleet.can_handle[key_of_arc, vans]
            & self._on_shift(now)[vans]
        )
        if self.move_up is not None:
            free &= self.relocated[vans] < 0  # moved away: dispatched from there
        if not free.any() and not moved_any:
            return
        arc, arc_row, vans = arc[free], row_of_arc[free], vans[free]
        km = fleet.arc_km[arc]
        arc_minutes = fleet.arc_minutes[arc]
        # move-up: the moved vans' arcs from their new station (drive and tow home in [4], [5])
        extra = self._relocated_arcs(waiting_requests.tolist(), now) if moved_any else None
        if extra is not None:
            arc_row = np.concatenate([arc_row, extra[0]])
            vans = np.concatenate([vans, extra[1]])
            km = np.concatenate([km, extra[2]])
            arc_minutes = np.concatenate([arc_minutes, extra[3]])
        if not len(arc_row):
            return
        # the batch's vans in index order and each arc's column (np.unique, without a sort)
        in_batch = self._van_mark
        in_batch[vans] = True
        vans_in_batch = np.flatnonzero(in_batch)
        in_batch[vans_in_batch] = False
        column = self._van_column
        column[vans_in_batch] = np.arange(len(vans_in_batch))
        arc_column = column[vans]
        if self.array_matching:
            self._match_arrays(
                waiting_requests, arc, arc_row, arc_column, vans, vans_in_batch, km,
                arc_minutes, extra, now,
            )  # fmt: skip
            return
        home_at = schedule.home_at
        if self.crews is None:
            states = [
                fleet.state_when_free(j, float(home_at[j]) - now) for j in vans_in_batch.tolist()
            ]
        else:  # idle vans with their crew's turnout
            states = [
                fleet.state_when_free(j, float(home_at[j]) - now)
                if home_at[j] > now
                else self.idle_state(j, now)
                for j in vans_in_batch.tolist()
            ]
        if self.next_from_site:
            arc_minutes = self._from_site(
                arc_minutes,
                arc_row,
                arc_column,
                vans_in_batch,
                states,
                reqs.point_array[waiting_requests],
                now,
            )
        batch = [o or reqs.open_request(r) for r, o in self.waiting.items()]
        if self.match_params.objective == "promise":
            reported = reqs.reported_at
            batch = [
                reqs.open_request(r, waited_minutes=max(now - float(reported[r]), 0.0))
                for r in waiting_requests.tolist()
            ]
        started = time.perf_counter()
        problem = VanMatchingProblem.from_arrays(
            batch, states, arc_row, arc_column, km, km, arc_minutes
        )
        matching = match_vans(problem, params=self.match_params)
        self.match_seconds += time.perf_counter() - started
        self.dispatch_batches += 1
        extra_of: dict[tuple[int, int], int] = {}
        row_of: dict[int, int] = {}
        if extra is not None:
            extra_of = {
                (int(r), int(j)): k for k, (r, j) in enumerate(zip(extra[0], extra[1], strict=True))
            }
            row_of = {int(r): k for k, r in enumerate(waiting_requests.tolist())}
        for a in matching.assignments:
            request = int(a.request_id)  # the request index (RescueRequests.open_request)
            van = fleet.index_of[a.van_id]
            del self.waiting[request]
            if extra is not None and self.relocated[van] >= 0:  # moved: from its new station
                k = extra_of[(row_of[request], van)]
                self.dispatch_van(
                    request, van, -1, now, a.eta_minutes,
                    drive_minutes=float(extra[4][k]), tow_minutes=float(extra[5][k]),
                )  # fmt: skip
            else:
                self.dispatch_van(
                    request, van, fleet.arc_of(reqs.point(request), van), now, a.eta_minutes
                )

    def _dispatch_one_request(self, request: int, now: float) -> str:
        """The commonest batch (production triggers: one request waiting, ``eta`` objective,
        no moved vans, crews or vans on the road) with a dozen numpy calls instead of the
        general step's fifty: the same free vans, ETAs, costs and decision
        (:func:`simulations.batch_match.one_request_arc`, as ``match_batch`` decides one
        request). A request's arcs hold each van once, so the batch's columns are the free
        vans' ranks; they are computed only when the solver breaks a tie. Returns how it
        decided: ``"no-van"`` (none free: no batch), ``"empty"``, ``"argmin"``, ``"tie"`` or
        ``"flow"``."""
        fleet, schedule = self.fleet, self.schedule
        start, stop = fleet.arcs(self.requests.point(request))
        vans = fleet.arc_van[start:stop]
        free = np.flatnonzero(
            (schedule.leaves_site_at[vans] <= now)
            & fleet.can_handle[self.requests.capability_key(request), vans]
            & self._on_shift(now)[vans]
        )
        if not len(free):
            return "no-van"  # as the general step: no batch
        arc = free + start
        vans = vans[free]
        started = time.perf_counter()
        home_at = schedule.home_at[vans]
        minutes = fleet.arc_minutes[arc]
        eta = np.where(home_at > now, home_at - now, 0.0) + minutes
        keep = np.isfinite(minutes) & (fleet.arc_km[arc] <= fleet.service_radius_km[vans])
        k, method = -1, "empty"  # match_batch's: a batch, nobody dispatched
        if keep.all():
            k, method = one_request_arc(
                eta, lambda: _ranks(vans), self._request_weight[request], len(vans),
                self.match_params, lambda: self._van_breadth[np.sort(vans)],
            )  # fmt: skip
        elif keep.any():
            kept = np.flatnonzero(keep)
            k, method = one_request_arc(
                eta[kept], lambda: _ranks(vans)[kept], self._request_weight[request],
                len(vans), self.match_params, lambda: self._van_breadth[np.sort(vans)],
            )  # fmt: skip
            k = int(kept[k]) if k >= 0 else -1
        self.match_seconds += time.perf_counter() - started
        self.dispatch_batches += 1
        if k >= 0:
            del self.waiting[request]
            self.dispatch_van(request, int(vans[k]), int(arc[k]), now, float(eta[k]))
        return method

    def _match_arrays(
        self,
        waiting_requests: np.ndarray,
        arc: np.ndarray,
        arc_row: np.ndarray,
        arc_column: np.ndarray,
        vans: np.ndarray,
        vans_in_batch: np.ndarray,
        km: np.ndarray,
        arc_minutes: np.ndarray,
        extra: tuple[np.ndarray, ...] | None,
        now: float,
    ) -> None:
        """The batch through :func:`simulations.batch_match.match_batch` (the assignment
        ``match_vans`` would return, from the arrays), then dispatch as the general path does:
        rows in waiting order, fleet arcs by index, moved vans from their new station."""
        fleet, reqs, schedule = self.fleet, self.requests, self.schedule
        home_at = schedule.home_at[vans_in_batch]
        free_in = np.where(home_at > now, home_at - now, 0.0)
        if self.crews is not None:  # idle vans with their crew's turnout
            for column in np.flatnonzero(home_at <= now).tolist():
                j = int(vans_in_batch[column])
                free_in[column] = self.idle_state(j, now).free_in_minutes
        if self.next_from_site:
            points = reqs.point_array[waiting_requests]
            arc_minutes = self._from_site(
                arc_minutes, arc_row, arc_column, vans_in_batch, None, points, now
            )
            free_in[(self.site_point[vans_in_batch] >= 0) & (home_at > now)] = 0.0
        waited = np.zeros(len(waiting_requests))
        if self.match_params.objective == "promise":
            waited = np.maximum(now - reqs.reported_at[waiting_requests], 0.0)
        started = time.perf_counter()
        matched = match_batch(
            arc_row=arc_row,
            arc_column=arc_column,
            arc_km=km,
            arc_minutes=arc_minutes,
            row_priority=self._request_priority[waiting_requests],
            row_waited_minutes=waited,
            column_free_in_minutes=free_in,
            column_radius_km=fleet.service_radius_km[vans_in_batch],
            column_breadth=self._van_breadth[vans_in_batch],
            params=self.match_params,
            column_busy=home_at > now,  # driving home: busy (idle vans' turnout is not)
        )
        self.match_seconds += time.perf_counter() - started
        self.dispatch_batches += 1
        fleet_arcs = len(arc)
        eta = matched.arc_eta
        for row in np.flatnonzero(matched.row_arc >= 0).tolist():
            a = int(matched.row_arc[row])
            request = int(waiting_requests[row])
            van = int(vans[a])
            del self.waiting[request]
            if a >= fleet_arcs:  # a moved van, from its new station
                assert extra is not None
                k = a - fleet_arcs
                self.dispatch_van(
                    request, van, -1, now, float(eta[a]),
                    drive_minutes=float(extra[4][k]), tow_minutes=float(extra[5][k]),
                )  # fmt: skip
            else:
                self.dispatch_van(request, van, int(arc[a]), now, float(eta[a]))

    # -- move-up -----------------------------------------------------------------------------
    def move_up_check(self, now: float) -> None:
        """Send moved vans home whose hole has closed, then, if the expected coverage dropped,
        move idle vans into the holes (:func:`simulations.move_up.plan_move_ups`), within the
        moves-per-hour and distance limits."""
        mu, fleet, schedule = self.move_up, self.fleet, self.schedule
        assert mu is not None
        self.schedule_event(now + mu.check_minutes, EventKind.MOVE_UP, 0)
        n_st = len(self.tables.station_ids)
        on = fleet.on_shift(np.arange(len(fleet.vans)), now)
        idle = on & (schedule.home_at <= now)
        based = np.bincount(fleet.station_index[on], minlength=n_st)
        own_idle = np.bincount(fleet.station_index[idle & (self.relocated < 0)], minlength=n_st)
        for j in np.nonzero(idle & (self.relocated >= 0))[0].tolist():
            b = int(self.relocated[j])
            if own_idle[b] >= based[b] and mu.moves_allowed(now) > 0:
                self._move(j, int(fleet.station_index[j]), now)
                self.relocated[j] = -1
                idle[j] = False
        allowed = mu.moves_allowed(now)
        if allowed <= 0:
            return
        where = np.where(self.relocated >= 0, self.relocated, fleet.station_index)
        counts = np.bincount(where[idle], minlength=n_st)
        q = float(np.clip(1.0 - idle.sum() / max(int(on.sum()), 1), 0.05, 0.95))
        if not mu.should_check(counts, based, q):
            return
        moves = plan_move_ups(
            covers=mu.coverage, demand=mu.demand, idle=counts, based=based,
            station_km=mu.station_km, busy_probability=q, max_moves=allowed,
            max_move_km=mu.max_move_km, min_gain=mu.min_gain,
            movable=np.bincount(fleet.station_index[idle & (self.relocated < 0)], minlength=n_st),
        )  # fmt: skip
        for m in moves:
            at_home = idle & (self.relocated < 0) & (fleet.station_index == m.from_station)
            j = int(np.nonzero(at_home)[0][0])
            idle[j] = False
            self._move(j, m.to_station, now)
            self.relocated[j] = m.to_station

    def _move(self, van: int, to_station: int, now: float) -> None:
        """The van drives from where it is idle to ``to_station``, busy on the way."""
        mu = self.move_up
        assert mu is not None
        at = self.relocated[van] if self.relocated[van] >= 0 else self.fleet.station_index[van]
        km = float(mu.station_km[at, to_station])
        arrive = now + float(mu.station_minutes[at, to_station])
        self.schedule.book(van, VanTrip(arrive, arrive, arrive, False, False, None), now)
        self.site_point[van] = -1
        if self.on_events:
            self.schedule_event(arrive, EventKind.VAN_FREE, van)
        mu.record_move(now, km)

    def _relocated_arcs(
        self, batch_request: list[int], now: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """move-up: arcs (row, van, km, minutes to the site, drive and tow minutes from the site
        home) of the free vans moved to another station, from that station (travel tables;
        radius measured from there). The way home after the job goes via that station (an
        upper bound)."""
        fleet, tables, schedule = self.fleet, self.tables, self.schedule
        assert self.move_up is not None
        moved = np.nonzero(self.relocated >= 0)[0]
        moved = moved[(schedule.leaves_site_at[moved] <= now) & fleet.on_shift(moved, now)]
        rows: list[int] = []
        vans: list[int] = []
        km: list[float] = []
        minutes: list[float] = []
        drive_home: list[float] = []
        tow_home: list[float] = []
        for row, request in enumerate(batch_request):
            point = self.requests.point(request)
            key = self.requests.capability_key(request)
            start, stop = int(tables.arc_ptr[point]), int(tables.arc_ptr[point + 1])
            stations = tables.arc_station[start:stop]
            for j in moved.tolist():
                if not fleet.can_handle[key, j]:
                    continue
                hit = np.nonzero(stations == self.relocated[j])[0]
                if not len(hit):
                    continue
                a = start + int(hit[0])
                if tables.arc_km[a] > fleet.vans[j].service_radius_km:
                    continue
                back = self.move_up.station_minutes[self.relocated[j], fleet.station_index[j]]
                back_km = self.move_up.station_km[self.relocated[j], fleet.station_index[j]]
                rows.append(row)
                vans.append(j)
                km.append(float(tables.arc_km[a]))
                minutes.append(float(tables.arc_minutes[a]))
                drive_home.append(float(tables.arc_minutes[a] + back))
                tow_home.append(float(tables.arc_tow_minutes[a] + back_km / self.tow_kmh * 60.0))
        return (
            np.array(rows, dtype=np.int64),
            np.array(vans, dtype=np.int64),
            np.array(km),
            np.array(minutes),
            np.array(drive_home),
            np.array(tow_home),
        )

    def _from_site(
        self,
        base_minutes: np.ndarray,
        arc_row: np.ndarray,
        arc_column: np.ndarray,
        vans_in_batch: np.ndarray,
        states: list[VanState] | None,
        row_point: np.ndarray,
        now: float,
    ) -> np.ndarray:
        """next-from-site: the arcs' drive minutes for vans driving home empty (their state
        becomes free now, the drive the better of via home and from the site; see
        :mod:`simulations.after_job`). Changes ``states`` (when given) in place."""
        fleet, schedule = self.fleet, self.schedule
        assert self.site_legs is not None
        minutes = base_minutes.copy()
        for column, j in enumerate(vans_in_batch.tolist()):
            site = int(self.site_point[j])
            home_at = float(schedule.home_at[j])
            if site < 0 or home_at <= now:
                continue
            mine = np.nonzero(arc_column == column)[0]
            targets = row_point[arc_row[mine]]
            minutes[mine] = next_from_site_minutes(
                now=now,
                home_at=home_at,
                left_site_at=float(schedule.leaves_site_at[j]),
                home_leg_minutes=base_minutes[mine],
                site_leg_minutes=self.site_legs.minutes(site, targets),
            )
            if states is not None:
                states[column] = VanState(fleet.vans[j], fleet.at_home[j].home)  # leaves at once
        return minutes

    # -- nearest idle ------------------------------------------------------------------------
    def _dispatch_nearest(self, request: int, open_request: OpenRequest, now: float) -> bool:
        """nearest-idle on arrival: the best idle, on-shift capable van (match_vans_naive); with
        ``after_job = "next-from-site"`` also the vans driving home empty, from where they are
        (as batch-optimal sees them)."""
        fleet, reqs, schedule = self.fleet, self.requests, self.schedule
        start, stop = fleet.arcs(reqs.point(request))
        vans = fleet.arc_van[start:stop]
        capable = fleet.can_handle[reqs.capability_key(request), vans] & fleet.on_shift(vans, now)
        at_home = schedule.home_at[vans] <= now
        candidate = at_home
        if self.next_from_site:
            candidate = at_home | (
                (schedule.leaves_site_at[vans] <= now) & (self.site_point[vans] >= 0)
            )
        arcs = np.nonzero(candidate & capable)[0] + start
        if not len(arcs):
            return False
        arc_vans = fleet.arc_van[arcs]
        km = fleet.arc_km[arcs]
        minutes = fleet.arc_minutes[arcs]
        states = [self.idle_state(j, now) for j in arc_vans.tolist()]
        if self.next_from_site:
            minutes = minutes.copy()
            for k, j in enumerate(arc_vans.tolist()):
                if schedule.home_at[j] > now:
                    minutes[k : k + 1] = self._on_the_road_minutes(
                        j, minutes[k : k + 1], np.array([reqs.point(request)]), now
                    )
                    states[k] = VanState(fleet.vans[j], fleet.at_home[j].home)  # leaves at once
        problem = VanMatchingProblem.from_arrays(
            [open_request], states, np.zeros(len(arcs), dtype=np.int64), np.arange(len(arcs)),
            km, km, minutes,
        )  # fmt: skip
        started = time.perf_counter()
        matching = match_vans_naive(problem)
        self.match_seconds += time.perf_counter() - started
        self.dispatch_batches += 1
        if not matching.assignments:
            return False
        a = matching.assignments[0]
        van = fleet.index_of[a.van_id]
        arc = int(arcs[int(np.nonzero(arc_vans == van)[0][0])])
        self.dispatch_van(request, van, arc, now, a.eta_minutes)
        return True

    def _on_the_road_minutes(
        self, van: int, home_leg_minutes: np.ndarray, targets: np.ndarray, now: float
    ) -> np.ndarray:
        """next-from-site: a van driving home empty, its minutes to ``targets`` (the better of
        via home and turning round; :mod:`simulations.after_job`)."""
        assert self.site_legs is not None
        return next_from_site_minutes(
            now=now,
            home_at=float(self.schedule.home_at[van]),
            left_site_at=float(self.schedule.leaves_site_at[van]),
            home_leg_minutes=home_leg_minutes,
            site_leg_minutes=self.site_legs.minutes(int(self.site_point[van]), targets),
        )

    def van_free(self, van: int, now: float) -> None:
        """nearest-idle: a van idle at home (and on shift) takes the longest-waiting request
        it can serve; with ``after_job = "next-from-site"`` also a van that has just left a
        site empty, from there."""
        fleet, reqs, schedule = self.fleet, self.requests, self.schedule
        if not self.waiting:
            return
        on_the_road = schedule.home_at[van] > now
        if on_the_road and not (
            self.next_from_site
            and self.site_point[van] >= 0
            and schedule.leaves_site_at[van] <= now
        ):
            return
        if not fleet.on_shift(np.array([van]), now)[0]:
            return
        for request in self.waiting:
            if not fleet.can_handle[reqs.capability_key(request), van]:
                continue
            start, stop = fleet.arcs(reqs.point(request))
            hit = np.nonzero(fleet.arc_van[start:stop] == van)[0]
            if not len(hit):
                continue
            arc = start + int(hit[0])
            waited = reqs.open_request(
                request, waited_minutes=now - float(reqs.reported_at[request])
            )
            km = fleet.arc_km[arc : arc + 1]
            minutes = fleet.arc_minutes[arc : arc + 1]
            state = self.idle_state(van, now)
            if on_the_road:
                minutes = self._on_the_road_minutes(
                    van, minutes, np.array([reqs.point(request)]), now
                )
                state = VanState(fleet.vans[van], fleet.at_home[van].home)  # leaves at once
            problem = VanMatchingProblem.from_arrays([waited], [state], [0], [0], km, km, minutes)
            matching = match_vans_naive(problem)
            self.dispatch_batches += 1
            if matching.assignments:
                del self.waiting[request]
                self.dispatch_van(request, van, arc, now, matching.assignments[0].eta_minutes)
                return

    def shift_start(self, hour: int, now: float) -> None:
        """Stations open: under nearest-idle their vans look for waiting requests; batch-optimal
        on events runs a batch."""
        if self.on_events:
            if self.waiting:
                self.dispatch_batch(now)
            self.schedule_event(now + 1440.0, EventKind.SHIFT_START, hour)
            return
        opening = np.nonzero(self.fleet.shift_open_hour == hour)[0]
        for van in opening.tolist():
            self.van_free(van, now)
            if not self.waiting:
                break
        self.schedule_event(now + 1440.0, EventKind.SHIFT_START, hour)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, on_day: Callable[[float], None] | None = None) -> None:
        """Advance to the end of the horizon, always taking the earliest of: the next
        breakdown, the next heap event, the next dispatch batch (while requests wait) and the
        next replacement batch (while cargo waits)."""
        dispatch = self.scenario.dispatch
        next_day = 1440.0 if on_day is not None else math.inf
        end = self.end_minute
        batching = dispatch.policy == "batch-optimal" and not self.on_events
        batch_step = dispatch.batch_minutes
        replacement_step = self.scenario.replacement.batch_minutes
        reported = self.breakdowns.t
        n = len(self.breakdowns)
        next_breakdown = 0
        next_batch = math.inf
        next_replacement_batch = math.inf
        inf = math.inf
        if self.move_up is not None:
            self.schedule_event(self.move_up.check_minutes, EventKind.MOVE_UP, 0)
        if not batching or self.on_events:
            opening_hours = sorted({int(h) for h in self.fleet.shift_open_hour if h > 0})
            for hour in opening_hours:
                self.schedule_event(hour * 60.0, EventKind.SHIFT_START, hour)
        events = self._events
        waiting = self.waiting
        cargo_waiting = self.replacements.waiting
        while True:
            t_breakdown = reported[next_breakdown] if next_breakdown < n else inf
            t_event = events[0][0] if events else inf
            t_batch = next_batch if (batching and waiting) else inf
            t_replacement = next_replacement_batch if cargo_waiting else inf
            now = min(t_breakdown, t_event, t_batch, t_replacement)
            if now >= end:
                break
            if now >= next_day and on_day is not None:
                on_day(now / end)
                next_day = (now // 1440.0 + 1.0) * 1440.0
            self.event_count += 1
            if t_breakdown == now:
                next_breakdown += 1
                self.arrive(next_breakdown - 1, now)
                if batching and waiting and (next_batch < now or next_batch == inf):
                    next_batch = math.ceil(now / batch_step) * batch_step
            elif t_event == now:
                _, kind, _, payload = heapq.heappop(events)
                if kind == EventKind.VAN_HOME:
                    if self.nearest_idle:
                        self.van_free(payload, now)
                    elif waiting and self.schedule.home_at[payload] <= now:
                        self.dispatch_batch(now)
                elif kind == EventKind.MOVE_UP:
                    self.move_up_check(now)
                elif kind == EventKind.VAN_FREE:
                    if waiting and self.schedule.leaves_site_at[payload] <= now:
                        if self.nearest_idle:
                            self.van_free(payload, now)
                        else:
                            self.dispatch_batch(now)
                elif kind == EventKind.FOLLOWUP_TOW:
                    self.requests.reported_at[payload] = now
                    self.arrive(payload, now)
                    if batching and waiting and (next_batch < now or next_batch == inf):
                        next_batch = math.ceil(now / batch_step) * batch_step
                elif kind == EventKind.REPLACEMENT:
                    self.replacements.request(payload, now)
                    if next_replacement_batch < now or next_replacement_batch == inf:
                        next_replacement_batch = (
                            math.ceil(now / replacement_step) * replacement_step
                        )
                elif kind == EventKind.ESCALATE:
                    if payload in waiting:
                        del waiting[payload]
                        self.escalate(payload, Escalation.TIMEOUT, now)
                elif kind == EventKind.SHIFT_START:
                    self.shift_start(payload, now)
                elif kind == EventKind.RELEASE:
                    self.replacements.release(payload, now)
                elif kind == EventKind.RESCUE_ANSWER:
                    assert self.partner_rescue is not None
                    self.partner_rescue.answer(payload, now)
                elif kind == EventKind.PROVIDER_FREE:
                    assert self.partner_rescue is not None
                    self.partner_rescue.free(payload, now)
                elif kind == EventKind.TRUCK_ANSWER:
                    self.replacements.answer(payload, now)
                    if cargo_waiting and (
                        next_replacement_batch < now or next_replacement_batch == inf
                    ):
                        next_replacement_batch = (
                            math.ceil(now / replacement_step) * replacement_step
                        )
            elif t_batch == now:
                self.dispatch_batch(now)
                next_batch = now + batch_step
            else:
                self.replacements.match(now)
                next_replacement_batch = now + replacement_step
        if on_day is not None:
            on_day(1.0)

    def record(self) -> RunRecord:
        """The run's flat, immutable record (arrays are copies: the simulation may go on)."""
        reqs, repl = self.requests, self.replacements
        return RunRecord(
            reported_at=reqs.reported_at.copy(),
            assigned_at=reqs.assigned_at.copy(),
            on_site_at=reqs.on_site_at.copy(),
            van=reqs.van.copy(),
            escalation=reqs.escalation.copy(),
            open_at_end=np.array(sorted(self.waiting), dtype=np.int64),
            towed=reqs.towed.copy(),
            followup_tow=reqs.followup_tow.copy(),
            replacement_requested_at=repl.requested_at.copy(),
            replacement_booked_at=repl.booked_at.copy(),
            replacement_delivered_at=repl.delivered_at.copy(),
            replacement_cost_cny=repl.cost_cny.copy(),
            replacement_lateness_minutes=repl.lateness_minutes.copy(),
            replacement_failed=repl.failed.copy(),
            cargo_delay_minutes=repl.cargo_delay_minutes.copy(),
            replacement_released_at=repl.released_at.copy(),
            replacement_needed=self.booking.needed.copy(),
            replacement_pending=np.array(sorted({*repl.waiting, *repl.in_flight}), dtype=np.int64),
            van_busy_minutes=self.schedule.busy_minutes.copy(),
            van_covers_demand=self.fleet.covers_any_demand(),
            van_station=self.fleet.station_index.copy(),
            events=self.event_count,
            dispatch_batches=self.dispatch_batches,
            match_seconds=self.match_seconds,
            replacement_batches=self.replacements.batches,
            move_up_at=np.array(self.move_up.move_times if self.move_up else [], dtype=float),
            move_up_km=np.array(self.move_up.move_km if self.move_up else [], dtype=float),
            **self._partner_record(),
        )

    def _partner_record(self) -> dict[str, np.ndarray]:
        """The partner fields of the record (offer logs; per request what a provider did)."""
        repl = self.replacements
        truck_log = repl.offers.log.arrays()
        out = {
            "truck_offer_breakdown": truck_log[0],
            "truck_offer_partner": truck_log[1],
            "truck_offer_at": truck_log[2],
            "truck_offer_outcome": truck_log[3],
            "truck_first_offer_at": repl.offers.first_offer_at.copy(),
            "truck_accepted_offer_at": repl.offers.accepted_offer_at.copy(),
        }
        rescue = self.partner_rescue
        if rescue is None:
            return out
        log = rescue.log.arrays()
        out.update(
            partner_provider=rescue.provider.copy(),
            partner_first_offer_at=rescue.first_offer_at.copy(),
            partner_accepted_at=rescue.accepted_at.copy(),
            partner_accepted_offer_at=rescue.accepted_offer_at.copy(),
            partner_job_end_at=rescue.job_end_at.copy(),
            partner_cost_cny=rescue.cost_cny.copy(),
            partner_no_provider=rescue.no_provider.copy(),
            provider_peak_jobs=rescue.peak_active.copy(),
            rescue_offer_request=log[0],
            rescue_offer_provider=log[1],
            rescue_offer_at=log[2],
            rescue_offer_outcome=log[3],
        )
        return out


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each distinct value's rank among them (its column when the columns are the sorted
    values, as the batch numbers its vans)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks
