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
indexing the precomputed tables, never a router) and ``dispatch.match_vans``. The
``nearest-idle`` policy dispatches on arrival (``dispatch.match_vans_naive`` on the idle vans)
and, when a van gets home, gives it the longest-waiting request it can serve (FIFO).

Free vans: at home and on shift (``fleet.is_on_shift``, the API's rule too), or driving home
empty (``free_in`` = minutes to home; the next trip starts from home: a conservative
simplification). A van on site is busy. A request that no capable van covers at all is
escalated at once; one still waiting after ``escalate_after_minutes`` is escalated then (a
partner service). The run's output is a :class:`~simulations.results.RunRecord`.

The simulation does not walk requests through ``dispatch.lifecycle``: a trip's whole timeline
is known at dispatch, so there are no status changes to validate; the API owns the lifecycle.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from enum import IntEnum

import numpy as np

from dispatch.vans import OpenRequest, VanMatchingProblem, match_vans, match_vans_naive
from simulations.demand import Breakdowns, draw_breakdowns, replication_streams
from simulations.replacement_model import BookingDecisions, ReplacementModel
from simulations.results import Escalation, RunRecord, RunResult, summarise_run
from simulations.scenario import Scenario
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
    """nearest-idle: a queued request's escalation time (payload: request)."""
    RELEASE = 5
    """A diagnosis found an intake booking unneeded (payload: breakdown)."""


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
    sim = Simulation(scenario, tables, breakdowns)
    sim.run(on_day)
    return summarise_run(
        scenario, tables, breakdowns, sim.record(), replication=replication,
        wall_seconds=time.perf_counter() - started,
    )  # fmt: skip


class Simulation:
    """One run: the models, the queue of requests waiting for a van, and the event loop."""

    def __init__(self, scenario: Scenario, tables: TravelTables, breakdowns: Breakdowns) -> None:
        self.scenario = scenario
        self.breakdowns = breakdowns
        self.end_minute = scenario.total_minutes
        self.fleet = VanFleet.build(scenario, tables)
        self.requests = RescueRequests(breakdowns, tables)
        self.schedule = VanSchedule(
            len(self.fleet.vans), scenario.warmup_days * 1440.0, self.end_minute
        )
        self.replacements = ReplacementModel(scenario, tables, breakdowns)
        self.booking = BookingDecisions.compute(scenario, breakdowns)
        self.waiting: dict[int, OpenRequest] = {}
        """Requests waiting for a van, oldest first."""
        self._events: list[tuple[float, int, int, int]] = []
        """Heap of (minute, kind, sequence, payload)."""
        self._sequence = 0
        self._van_mark = np.zeros(len(self.fleet.vans), dtype=bool)
        self._van_column = np.zeros(len(self.fleet.vans), dtype=np.int64)
        """Scratch arrays of the batch (reset after use)."""
        self.event_count = 0
        self.dispatch_batches = 0
        self.match_seconds = 0.0

    @property
    def nearest_idle(self) -> bool:
        return self.scenario.dispatch.policy == "nearest-idle"

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
            reqs.escalate(request, Escalation.NO_CAPABLE_VAN)
            return
        open_request = reqs.open_request(request)
        if self.nearest_idle:
            if self._dispatch_nearest(request, open_request, now):
                return
            self.schedule_event(
                now + self.scenario.dispatch.escalate_after_minutes, EventKind.ESCALATE, request
            )
        self.waiting[request] = open_request

    def dispatch_van(self, request: int, van: int, arc: int, now: float, eta: float) -> None:
        """Send ``van`` (over ``arc``) to ``request``: plan the trip, book the van, schedule
        what follows from it."""
        fleet, reqs = self.fleet, self.requests
        trip: VanTrip = plan_van_trip(
            reqs, fleet, self.scenario.repairs, request=request, van=van, now=now, eta_minutes=eta,
            drive_minutes=float(fleet.arc_minutes[arc]),
            tow_minutes=float(fleet.arc_tow_minutes[arc]),
        )  # fmt: skip
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

    def decide_at_diagnosis(self, breakdown: int, diagnosed_at: float) -> None:
        """The booking policy's second look, at ``diagnosed_at``: ask for a truck, or release
        the one asked for at intake."""
        booking = self.booking
        if booking.at_intake[breakdown]:
            if not booking.after_diagnosis[breakdown]:
                self.schedule_event(diagnosed_at, EventKind.RELEASE, breakdown)
        elif booking.after_diagnosis[breakdown]:
            self.schedule_event(diagnosed_at, EventKind.REPLACEMENT, breakdown)

    def escalate_overdue(self, now: float) -> None:
        limit = self.scenario.dispatch.escalate_after_minutes
        reported = self.requests.reported_at
        for request in [r for r in self.waiting if now - reported[r] > limit]:
            del self.waiting[request]
            self.requests.escalate(request, Escalation.TIMEOUT)

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
        fleet, reqs, schedule = self.fleet, self.requests, self.schedule
        waiting_requests = np.fromiter(self.waiting, dtype=np.int64, count=len(self.waiting))
        points = reqs.point_array[waiting_requests]
        arc_start = fleet.point_arc_start[points]
        arc_count = fleet.point_arc_start[points + 1] - arc_start
        total = int(arc_count.sum())
        if not total:
            return
        # every waiting request's arc range, concatenated in waiting order
        row_of_arc = np.repeat(np.arange(len(waiting_requests)), arc_count)
        first_of_row = np.cumsum(arc_count) - arc_count
        arc = np.arange(total, dtype=np.int64) + np.repeat(arc_start - first_of_row, arc_count)
        vans = fleet.arc_van[arc]
        free = (
            (schedule.leaves_site_at[vans] <= now)
            & fleet.can_handle[reqs.capability_key_array[waiting_requests][row_of_arc], vans]
            & fleet.on_shift(vans, now)
        )
        if not free.any():
            return
        arc, arc_row, vans = arc[free], row_of_arc[free], vans[free]
        # the batch's vans in index order and each arc's column (np.unique, without a sort)
        in_batch = self._van_mark
        in_batch[vans] = True
        vans_in_batch = np.flatnonzero(in_batch)
        in_batch[vans_in_batch] = False
        column = self._van_column
        column[vans_in_batch] = np.arange(len(vans_in_batch))
        arc_column = column[vans]
        home_at = schedule.home_at
        states = [fleet.state_when_free(j, float(home_at[j]) - now) for j in vans_in_batch.tolist()]
        km = fleet.arc_km[arc]
        started = time.perf_counter()
        problem = VanMatchingProblem.from_arrays(
            list(self.waiting.values()), states, arc_row, arc_column, km, km,
            fleet.arc_minutes[arc],
        )  # fmt: skip
        matching = match_vans(problem)
        self.match_seconds += time.perf_counter() - started
        self.dispatch_batches += 1
        for a in matching.assignments:
            request = int(a.request_id)  # the request index (RescueRequests.open_request)
            van = fleet.index_of[a.van_id]
            del self.waiting[request]
            self.dispatch_van(
                request, van, fleet.arc_of(reqs.point(request), van), now, a.eta_minutes
            )

    # -- nearest idle ------------------------------------------------------------------------
    def _dispatch_nearest(self, request: int, open_request: OpenRequest, now: float) -> bool:
        """nearest-idle on arrival: the best idle, on-shift capable van (match_vans_naive)."""
        fleet, reqs = self.fleet, self.requests
        start, stop = fleet.arcs(reqs.point(request))
        vans = fleet.arc_van[start:stop]
        idle = (
            (self.schedule.home_at[vans] <= now)
            & fleet.can_handle[reqs.capability_key(request), vans]
            & fleet.on_shift(vans, now)
        )
        arcs = np.nonzero(idle)[0] + start
        if not len(arcs):
            return False
        arc_vans = fleet.arc_van[arcs]
        km = fleet.arc_km[arcs]
        problem = VanMatchingProblem.from_arrays(
            [open_request], [fleet.at_home[j] for j in arc_vans.tolist()],
            np.zeros(len(arcs), dtype=np.int64), np.arange(len(arcs)), km, km,
            fleet.arc_minutes[arcs],
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

    def van_free(self, van: int, now: float) -> None:
        """nearest-idle: a van idle at home (and on shift) takes the longest-waiting request
        it can serve."""
        fleet, reqs = self.fleet, self.requests
        if not self.waiting or self.schedule.home_at[van] > now:
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
            problem = VanMatchingProblem.from_arrays(
                [waited], [fleet.at_home[van]], [0], [0], km, km, fleet.arc_minutes[arc : arc + 1]
            )
            matching = match_vans_naive(problem)
            self.dispatch_batches += 1
            if matching.assignments:
                del self.waiting[request]
                self.dispatch_van(request, van, arc, now, matching.assignments[0].eta_minutes)
                return

    def shift_start(self, hour: int, now: float) -> None:
        """nearest-idle: the vans of stations opening now look for waiting requests."""
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
        batching = dispatch.policy == "batch-optimal"
        batch_step = dispatch.batch_minutes
        replacement_step = self.scenario.replacement.batch_minutes
        reported = self.breakdowns.t
        n = len(self.breakdowns)
        next_breakdown = 0
        next_batch = math.inf
        next_replacement_batch = math.inf
        inf = math.inf
        if not batching:
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
                    self.van_free(payload, now)
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
                        self.requests.escalate(payload, Escalation.TIMEOUT)
                elif kind == EventKind.SHIFT_START:
                    self.shift_start(payload, now)
                elif kind == EventKind.RELEASE:
                    self.replacements.release(payload, now)
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
            replacement_pending=np.array(sorted(repl.waiting), dtype=np.int64),
            van_busy_minutes=self.schedule.busy_minutes.copy(),
            van_covers_demand=self.fleet.covers_any_demand(),
            van_station=self.fleet.station_index.copy(),
            events=self.event_count,
            dispatch_batches=self.dispatch_batches,
            match_seconds=self.match_seconds,
            replacement_batches=self.replacements.batches,
        )
