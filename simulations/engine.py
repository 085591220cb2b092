"""The discrete-event simulation: breakdowns, batch dispatch, vans, tows and replacement trucks.

A heap-based engine (no SimPy: the events here are few and simple, and a plain heap with a
pointer into the pre-drawn, time-sorted breakdowns measured several times faster). Each van is
a small state machine whose whole trip is known once it is dispatched:

    assigned -> (free_in: a returning van first reaches home) -> drive -> on site
      fixed on site:           on-site hours, drive home
      not fixed, van can tow:  hook up (diagnosis first unless triaged as a tow), tow home
      not fixed, cannot tow:   diagnosis, drive home; a follow-up tow request is queued

Dispatch drives the production code: every ``batch_minutes`` the open requests and the free
vans whose radius covers them go into ``dispatch.VanMatchingProblem.from_arrays`` (arcs by
indexing the precomputed tables, never a router) and ``dispatch.match_vans``. The
``nearest-idle`` policy dispatches on arrival (``dispatch.match_vans_naive`` on the idle vans)
and, when a van gets home, gives it the longest-waiting request it can serve (FIFO).

Free vans: at home and on shift, or driving home empty (``free_in`` = minutes to home; the next
trip starts from home: a conservative simplification). A van on site is busy.

Long repairs (repair hours > threshold, cargo on board) become replacement requests at
diagnosis time; every ``replacement.batch_minutes`` they are matched to partner trucks by
``dispatch.match_replacements``. A request that no capable van covers at all is escalated at
once; one still waiting after ``escalate_after_minutes`` is escalated then (a partner service).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dispatch.replacement import (
    FITTING_TRUCK_TYPES,
    ReplacementMatchingProblem,
    ReplacementParams,
    ReplacementRequest,
    TruckState,
    UnmatchedReason,
    match_replacements,
)
from dispatch.vans import (
    OpenRequest,
    VanMatchingProblem,
    VanState,
    match_vans,
    match_vans_naive,
)
from fleet.model import GeoPoint, VanCapability
from simulations.demand import (
    CARGO_KINDS,
    VEHICLE_CLASSES,
    Breakdowns,
    draw_breakdowns,
    replication_streams,
)
from simulations.results import RunResult, summarise_run
from simulations.scenario import Scenario
from simulations.tables import TravelTables

# event kinds (ties at the same minute: lower kind first)
_VAN_HOME = 0
_FOLLOWUP_TOW = 1
_REPLACEMENT = 2
_SHIFT_START = 3
_ESCALATE = 4

_CAPS = tuple(VanCapability)


@dataclass
class _Fleet:
    """Van arrays and the demand point -> van CSR (vans whose radius covers the point)."""

    vans: tuple[Any, ...]
    station: np.ndarray
    can: np.ndarray  # (n_keys, n_vans) bool: key = class * 2 + tow
    can_tow_class: np.ndarray  # (n_classes, n_vans)
    open_h: np.ndarray
    close_h: np.ndarray
    ptr: np.ndarray
    van: np.ndarray
    km: np.ndarray
    minutes: np.ndarray
    tow_minutes: np.ndarray


def _fleet(scenario: Scenario, tables: TravelTables) -> _Fleet:
    net = scenario.network
    st_index = {sid: i for i, sid in enumerate(tables.station_ids)}
    vans = net.vans
    station = np.array([st_index[v.station_id] for v in vans], dtype=np.int64)
    radius = np.array([v.service_radius_km for v in vans], dtype=float)
    caps = [v.capability for v in vans]
    n_keys = len(VEHICLE_CLASSES) * 2
    can = np.zeros((n_keys, len(vans)), dtype=bool)
    can_tow = np.zeros((len(VEHICLE_CLASSES), len(vans)), dtype=bool)
    for ci, c in enumerate(VEHICLE_CLASSES):
        for j, cap in enumerate(caps):
            can[ci * 2, j] = cap.can_handle(c, needs_tow=False)
            can[ci * 2 + 1, j] = cap.can_handle(c, needs_tow=True)
            can_tow[ci, j] = cap.can_tow(c)
    stations = net.stations
    respect = scenario.dispatch.respect_shifts
    open_h = np.array(
        [stations[i].opening_hours.open_hour if respect else 0 for i in station], dtype=float
    )
    close_h = np.array(
        [stations[i].opening_hours.close_hour if respect else 24 for i in station], dtype=float
    )
    # expand station arcs to the vans of each station (within each van's own radius)
    by_station: list[list[int]] = [[] for _ in tables.station_ids]
    for j, s in enumerate(station):
        by_station[s].append(j)
    n_pts = len(tables.points)
    counts = np.array([len(by_station[s]) for s in tables.arc_station], dtype=np.int64)
    rep = np.repeat(np.arange(len(tables.arc_station)), counts)
    van = np.array([j for s in tables.arc_station for j in by_station[s]], dtype=np.int64).reshape(
        -1
    )
    keep = tables.arc_km[rep] <= radius[van] if len(van) else np.zeros(0, dtype=bool)
    rep, van = rep[keep], van[keep]
    point_of_arc = np.repeat(np.arange(n_pts), np.diff(tables.arc_ptr))
    pts = point_of_arc[rep]
    ptr = np.zeros(n_pts + 1, dtype=np.int64)
    np.add.at(ptr, pts + 1, 1)
    return _Fleet(
        vans=vans,
        station=station,
        can=can,
        can_tow_class=can_tow,
        open_h=open_h,
        close_h=close_h,
        ptr=np.cumsum(ptr),
        van=van,
        km=tables.arc_km[rep],
        minutes=tables.arc_minutes[rep],
        tow_minutes=tables.arc_tow_minutes[rep],
    )


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
    b = draw_breakdowns(scenario, tables, streams)
    sim = _Simulation(scenario, tables, b)
    sim.run(on_day)
    return summarise_run(
        scenario, tables, b, sim.record(), replication=replication,
        wall_seconds=time.perf_counter() - started,
    )  # fmt: skip


class _Simulation:
    def __init__(self, scenario: Scenario, tables: TravelTables, b: Breakdowns) -> None:
        self.s = scenario
        self.tables = tables
        self.b = b
        self.fleet = _fleet(scenario, tables)
        n = len(b)
        self.n = n
        nv = len(self.fleet.vans)
        self.end = scenario.total_minutes
        self.warm = scenario.warmup_days * 1440.0
        # requests: 0..n-1 breakdowns, n..2n-1 their follow-up tows
        self.t_req = np.concatenate([b.t, np.full(n, np.nan)])
        self.assigned_at = np.full(2 * n, np.nan)
        self.onsite_at = np.full(2 * n, np.nan)
        self.van_of = np.full(2 * n, -1, dtype=np.int64)
        self.escalated = np.zeros(2 * n, dtype=np.int8)  # 1 no capable van covers, 2 timeout
        self.towed = np.zeros(n, dtype=bool)
        self.followup = np.zeros(n, dtype=bool)
        # replacements, per breakdown
        self.repl_at = np.full(n, np.nan)
        self.repl_booked = np.full(n, np.nan)
        self.repl_delivered = np.full(n, np.nan)
        self.repl_cost = np.zeros(n)
        self.repl_late = np.zeros(n)
        self.repl_failed = np.zeros(n, dtype=bool)
        self.repl_delay = np.full(n, np.nan)
        # vans
        self.leave_at = np.zeros(nv)  # when the van leaves its current site (free from then)
        self.home_at = np.zeros(nv)
        self.busy = np.zeros(nv)
        self.idle_state = [
            VanState(v, scenario.network.station_by_id[v.station_id].location)
            for v in self.fleet.vans
        ]
        self.van_index = {v.id: j for j, v in enumerate(self.fleet.vans)}
        # static coverage: does any capable van cover the point at all?
        n_pts = len(tables.points)
        keys = len(VEHICLE_CLASSES) * 2
        self.covered = np.zeros((keys, n_pts), dtype=bool)
        f = self.fleet
        if len(f.van):
            pt_of = np.repeat(np.arange(n_pts), np.diff(f.ptr))
            for k in range(keys):
                ok = f.can[k, f.van]
                self.covered[k, np.unique(pt_of[ok])] = True
        pts = tables.points
        self.point_geo = [
            GeoPoint(float(a), float(o)) for a, o in zip(pts.lat, pts.lon, strict=True)
        ]
        self.queue: dict[int, OpenRequest] = {}
        self.rqueue: dict[int, float] = {}  # breakdown -> deadline (absolute minutes)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.events = 0
        self.batches = 0
        self.match_seconds = 0.0
        self.replacement_batches = 0
        self._trucks_setup()

    # -- helpers --------------------------------------------------------------------------
    def push(self, t: float, kind: int, a: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, a))

    def _key(self, q: int) -> int:
        i = q if q < self.n else q - self.n
        tow = q >= self.n or bool(self.b.needs_tow[i])
        return int(self.b.vehicle[i]) * 2 + int(tow)

    def _request(self, q: int) -> OpenRequest:
        i = q if q < self.n else q - self.n
        b = self.b
        return OpenRequest(
            id=str(q),
            location=self.point_geo[int(b.point[i])],
            vehicle_class=VEHICLE_CLASSES[int(b.vehicle[i])],
            needs_tow=q >= self.n or bool(b.needs_tow[i]),
            priority=float(b.priority[i]),
        )

    def _on_shift(self, vans: np.ndarray, now: float) -> np.ndarray:
        hour = (now / 60.0) % 24.0
        f = self.fleet
        return (f.open_h[vans] <= hour) & (hour < f.close_h[vans])

    def _add_busy(self, j: int, start: float, stop: float) -> None:
        lo = max(start, self.warm)
        hi = min(stop, self.end)
        if hi > lo:
            self.busy[j] += hi - lo

    # -- requests ---------------------------------------------------------------------------
    def _arrive(self, q: int, now: float) -> None:
        i = q if q < self.n else q - self.n
        if not self.covered[self._key(q), int(self.b.point[i])]:
            self.escalated[q] = 1
            return
        req = self._request(q)
        if self.s.dispatch.policy == "nearest-idle":
            if self._dispatch_nearest(q, req, now):
                return
            self.push(now + self.s.dispatch.escalate_after_minutes, _ESCALATE, q)
        self.queue[q] = req

    def _assign(
        self, q: int, j: int, now: float, eta: float, minutes: float, tow_min: float
    ) -> None:
        b, s = self.b, self.s
        n = self.n
        i = q if q < n else q - n
        t1 = now + eta
        diag = s.repairs.diagnosis_minutes
        hook = s.repairs.tow_hookup_minutes
        if q >= n:  # follow-up tow
            t2 = t1 + hook
            t3 = t2 + tow_min
            self.towed[i] = True
        elif b.fixed_on_site[i]:
            t2 = t1 + float(b.on_site_hours[i]) * 60.0
            t3 = t2 + minutes
        elif self.fleet.can_tow_class[int(b.vehicle[i]), j]:
            t2 = t1 + (hook if b.needs_tow[i] else diag + hook)
            t3 = t2 + tow_min
            self.towed[i] = True
        else:
            t2 = t1 + diag
            t3 = t2 + minutes
            self.followup[i] = True
            self.push(t2, _FOLLOWUP_TOW, n + i)
        if q < n and b.has_cargo[i]:
            hours = b.on_site_hours[i] if b.fixed_on_site[i] else b.workshop_hours[i]
            if hours > s.replacement.threshold_hours:
                self.push(t1 + min(diag, t2 - t1), _REPLACEMENT, i)
        self._add_busy(j, max(now, float(self.home_at[j])), t3)
        self.leave_at[j] = t2
        self.home_at[j] = t3
        self.assigned_at[q] = now
        self.onsite_at[q] = t1
        self.van_of[q] = j
        if s.dispatch.policy == "nearest-idle":
            self.push(t3, _VAN_HOME, j)

    # -- batch-optimal -----------------------------------------------------------------------
    def _batch(self, now: float) -> None:
        limit = self.s.dispatch.escalate_after_minutes
        for q in [q for q in self.queue if now - self.t_req[q] > limit]:
            del self.queue[q]
            self.escalated[q] = 2
        if not self.queue:
            return
        f = self.fleet
        b = self.b
        n = self.n
        reqs: list[OpenRequest] = []
        qs: list[int] = []
        parts_r: list[np.ndarray] = []
        parts_a: list[np.ndarray] = []
        for q, req in self.queue.items():
            i = q if q < n else q - n
            p = int(b.point[i])
            lo, hi = int(f.ptr[p]), int(f.ptr[p + 1])
            vs = f.van[lo:hi]
            ok = (self.leave_at[vs] <= now) & f.can[self._key(q), vs] & self._on_shift(vs, now)
            arcs = np.nonzero(ok)[0] + lo
            if len(arcs):
                parts_r.append(np.full(len(arcs), len(reqs), dtype=np.int64))
                parts_a.append(arcs)
            reqs.append(req)
            qs.append(q)
        if not parts_a:
            return
        arc = np.concatenate(parts_a)
        ar = np.concatenate(parts_r)
        vans_g = f.van[arc]
        uniq, av = np.unique(vans_g, return_inverse=True)
        states = []
        for j in uniq.tolist():
            wait = float(self.home_at[j]) - now
            states.append(
                self.idle_state[j]
                if wait <= 0
                else VanState(self.fleet.vans[j], self.idle_state[j].home, free_in_minutes=wait)
            )
        km = f.km[arc]
        minutes = f.minutes[arc]
        started = time.perf_counter()
        problem = VanMatchingProblem.from_arrays(reqs, states, ar, av, km, km, minutes)
        matching = match_vans(problem)
        self.match_seconds += time.perf_counter() - started
        self.batches += 1
        local = {(int(r), int(v)): int(a) for r, v, a in zip(ar, av, arc, strict=True)}
        req_pos = {req.id: k for k, req in enumerate(reqs)}
        van_pos = {int(j): k for k, j in enumerate(uniq.tolist())}
        for a in matching.assignments:
            k = req_pos[a.request_id]
            j = self.van_index[a.van_id]
            g = local[(k, van_pos[j])]
            q = qs[k]
            del self.queue[q]
            self._assign(q, j, now, a.eta_minutes, float(f.minutes[g]), float(f.tow_minutes[g]))

    # -- nearest idle ----------------------------------------------------------------------
    def _dispatch_nearest(self, q: int, req: OpenRequest, now: float) -> bool:
        f = self.fleet
        i = q if q < self.n else q - self.n
        p = int(self.b.point[i])
        lo, hi = int(f.ptr[p]), int(f.ptr[p + 1])
        vs = f.van[lo:hi]
        ok = (self.home_at[vs] <= now) & f.can[self._key(q), vs] & self._on_shift(vs, now)
        arcs = np.nonzero(ok)[0] + lo
        if not len(arcs):
            return False
        vans_g = f.van[arcs]
        states = [self.idle_state[j] for j in vans_g.tolist()]
        km = f.km[arcs]
        problem = VanMatchingProblem.from_arrays(
            [req], states, np.zeros(len(arcs), dtype=np.int64), np.arange(len(arcs)), km, km,
            f.minutes[arcs],
        )  # fmt: skip
        started = time.perf_counter()
        matching = match_vans_naive(problem)
        self.match_seconds += time.perf_counter() - started
        self.batches += 1
        if not matching.assignments:
            return False
        a = matching.assignments[0]
        j = self.van_index[a.van_id]
        g = int(arcs[int(np.nonzero(vans_g == j)[0][0])])
        self._assign(q, j, now, a.eta_minutes, float(f.minutes[g]), float(f.tow_minutes[g]))
        return True

    def _van_free(self, j: int, now: float) -> None:
        """A van is idle at home: it takes the longest-waiting request it can serve."""
        if not self.queue or self.home_at[j] > now:
            return
        f = self.fleet
        if not self._on_shift(np.array([j]), now)[0]:
            return
        for q, req in self.queue.items():
            i = q if q < self.n else q - self.n
            if not f.can[self._key(q), j]:
                continue
            p = int(self.b.point[i])
            lo, hi = int(f.ptr[p]), int(f.ptr[p + 1])
            hit = np.nonzero(f.van[lo:hi] == j)[0]
            if not len(hit):
                continue
            g = lo + int(hit[0])
            waited = OpenRequest(
                req.id, req.location, req.vehicle_class, req.needs_tow, req.priority,
                waited_minutes=now - float(self.t_req[q]),
            )  # fmt: skip
            km = f.km[g : g + 1]
            problem = VanMatchingProblem.from_arrays(
                [waited], [self.idle_state[j]], [0], [0], km, km, f.minutes[g : g + 1]
            )
            matching = match_vans_naive(problem)
            self.batches += 1
            if matching.assignments:
                del self.queue[q]
                a = matching.assignments[0]
                self._assign(q, j, now, a.eta_minutes, float(f.minutes[g]), float(f.tow_minutes[g]))
                return

    # -- replacement trucks ------------------------------------------------------------------
    def _trucks_setup(self) -> None:
        net = self.s.network
        t = self.tables
        trucks = net.trucks
        self.trucks = trucks
        depot_index = {(float(a), float(o)): k for k, (a, o) in enumerate(t.depot_latlon)}
        self.truck_depot = np.array(
            [depot_index.get((tr.depot.lat, tr.depot.lon), -1) for tr in trucks], dtype=np.int64
        )
        self.truck_cap = np.array([tr.capacity_t for tr in trucks], dtype=float)
        self.truck_free = np.zeros(len(trucks))
        self.fits_kind = np.array(
            [[tr.truck_type in FITTING_TRUCK_TYPES[k] for tr in trucks] for k in CARGO_KINDS],
            dtype=bool,
        ).reshape(len(CARGO_KINDS), len(trucks))
        partners = net.partner_by_id
        self.truck_partner = [partners[tr.partner_id] for tr in trucks]
        provinces = set(self.tables.points.province)
        tabled = self.truck_depot >= 0
        self.serves = {
            prov: np.array([p.serves(prov) for p in self.truck_partner], dtype=bool) & tabled
            for prov in provinces
        }
        self.dest_geo = [GeoPoint(float(a), float(o)) for a, o in t.dest_latlon]

    def _replacement_request(self, i: int, now: float) -> None:
        b = self.b
        p, d = int(b.point[i]), int(b.destination[i])
        self.repl_at[i] = now
        deadline = (
            float(b.t[i])
            + float(self.tables.loaded_minutes[p, d])
            + self.s.replacement.deadline_slack_hours * 60.0
        )
        self.rqueue[i] = deadline

    def _replacement_batch(self, now: float) -> None:
        if not self.rqueue or not len(self.trucks):
            for i in list(self.rqueue):
                self.repl_failed[i] = True
            self.rqueue.clear()
            return
        b, t = self.b, self.tables
        reqs: list[ReplacementRequest] = []
        ids: list[int] = []
        ar: list[np.ndarray] = []
        at: list[np.ndarray] = []
        fitting: list[int] = []
        serving: list[int] = []
        for i, deadline in self.rqueue.items():
            p, d = int(b.point[i]), int(b.destination[i])
            kind = int(b.cargo_kind[i])
            fit = self.fits_kind[kind] & (self.truck_cap >= b.cargo_t[i])
            ok = fit & self.serves[t.points.province[p]]
            cand = np.nonzero(ok)[0]
            fitting.append(int(fit.sum()))
            serving.append(len(cand))
            ar.append(np.full(len(cand), len(reqs), dtype=np.int64))
            at.append(cand)
            loaded = float(t.loaded_minutes[p, d])
            reqs.append(
                ReplacementRequest(
                    id=str(i),
                    location=self.point_geo[p],
                    province_adcode=t.points.province[p],
                    cargo_weight_t=float(b.cargo_t[i]),
                    cargo_kind=CARGO_KINDS[kind],
                    destination=self.dest_geo[d],
                    deadline_minutes_from_now=max(0.0, deadline - now)
                    if math.isfinite(loaded)
                    else None,
                )
            )
            ids.append(i)
        arc_r = np.concatenate(ar)
        arc_t = np.concatenate(at)
        uniq, local_t = np.unique(arc_t, return_inverse=True)
        states = [
            TruckState(
                self.trucks[k],
                self.truck_partner[k],
                free_in_minutes=max(0.0, float(self.truck_free[k]) - now),
            )
            for k in uniq.tolist()
        ]
        points = np.array([int(b.point[i]) for i in ids], dtype=np.int64)
        dests = np.array([int(b.destination[i]) for i in ids], dtype=np.int64)
        depots = self.truck_depot[arc_t]
        problem = ReplacementMatchingProblem.from_arrays(
            reqs, states, arc_r, local_t.reshape(-1),
            t.empty_km[depots, points[arc_r]], t.empty_minutes[depots, points[arc_r]],
            t.loaded_km[points, dests], t.loaded_minutes[points, dests],
            np.array(fitting), np.array(serving),
        )  # fmt: skip
        params = ReplacementParams(allow_late=self.s.replacement.allow_late)
        with np.errstate(invalid="ignore"):  # unreachable legs: inf - inf in the lateness
            matching = match_replacements(problem, params)
        self.replacement_batches += 1
        truck_index = {tr.id: k for k, tr in enumerate(self.trucks)}
        for bk in matching.bookings:
            i = int(bk.request_id)
            k = truck_index[bk.truck_id]
            d = int(b.destination[i])
            delivered = now + bk.delivery_eta_minutes
            self.truck_free[k] = delivered + float(t.back_minutes[d, self.truck_depot[k]])
            self.repl_booked[i] = now
            self.repl_delivered[i] = delivered
            self.repl_cost[i] = bk.cost_cny
            self.repl_late[i] = bk.lateness_minutes
            direct = float(t.loaded_minutes[int(b.point[i]), d])
            self.repl_delay[i] = delivered - (float(b.t[i]) + direct)
            del self.rqueue[i]
        structural = {
            UnmatchedReason.NO_FITTING_TRUCK,
            UnmatchedReason.NO_PARTNER_IN_PROVINCE,
            UnmatchedReason.UNREACHABLE,
        }
        for u in matching.unmatched:
            if u.reason in structural:
                i = int(u.request_id)
                self.repl_failed[i] = True
                del self.rqueue[i]

    # -- the loop ----------------------------------------------------------------------------
    def run(self, on_day: Callable[[float], None] | None = None) -> None:
        s = self.s
        next_day = 1440.0 if on_day is not None else math.inf
        end = self.end
        batch = s.dispatch.policy == "batch-optimal"
        step = s.dispatch.batch_minutes
        rstep = s.replacement.batch_minutes
        t_arr = self.b.t
        n = self.n
        ptr = 0
        next_tick = math.inf
        next_rtick = math.inf
        inf = math.inf
        if not batch:
            for h in sorted({int(h) for h in self.fleet.open_h if h > 0}):
                self.push(h * 60.0, _SHIFT_START, h)
        heap = self.heap
        while True:
            ta = t_arr[ptr] if ptr < n else inf
            te = heap[0][0] if heap else inf
            tt = next_tick if (batch and self.queue) else inf
            tr = next_rtick if self.rqueue else inf
            now = min(ta, te, tt, tr)
            if now >= end:
                break
            if now >= next_day and on_day is not None:
                on_day(now / end)
                next_day = (now // 1440.0 + 1.0) * 1440.0
            self.events += 1
            if ta == now:
                ptr += 1
                self._arrive(ptr - 1, now)
                if batch and self.queue and (next_tick < now or next_tick == inf):
                    next_tick = math.ceil(now / step) * step
            elif te == now:
                _, kind, _, a = heapq.heappop(heap)
                if kind == _VAN_HOME:
                    self._van_free(a, now)
                elif kind == _FOLLOWUP_TOW:
                    self.t_req[a] = now
                    self._arrive(a, now)
                    if batch and self.queue and (next_tick < now or next_tick == inf):
                        next_tick = math.ceil(now / step) * step
                elif kind == _REPLACEMENT:
                    self._replacement_request(a, now)
                    if next_rtick < now or next_rtick == inf:
                        next_rtick = math.ceil(now / rstep) * rstep
                elif kind == _ESCALATE:
                    if a in self.queue:
                        del self.queue[a]
                        self.escalated[a] = 2
                elif kind == _SHIFT_START:
                    opening = np.nonzero(self.fleet.open_h == a)[0]
                    for j in opening.tolist():
                        self._van_free(j, now)
                        if not self.queue:
                            break
                    self.push(now + 1440.0, _SHIFT_START, a)
            elif tt == now:
                self._batch(now)
                next_tick = now + step
            else:
                self._replacement_batch(now)
                next_rtick = now + rstep
        if on_day is not None:
            on_day(1.0)

    def record(self) -> dict[str, Any]:
        return {
            "t_req": self.t_req,
            "assigned_at": self.assigned_at,
            "onsite_at": self.onsite_at,
            "van_of": self.van_of,
            "escalated": self.escalated,
            "towed": self.towed,
            "followup": self.followup,
            "repl_at": self.repl_at,
            "repl_booked": self.repl_booked,
            "repl_delivered": self.repl_delivered,
            "repl_cost": self.repl_cost,
            "repl_late": self.repl_late,
            "repl_failed": self.repl_failed,
            "repl_delay": self.repl_delay,
            "repl_pending": np.array(sorted(self.rqueue), dtype=np.int64),
            "open_at_end": np.array(sorted(self.queue), dtype=np.int64),
            "busy": self.busy,
            "van_relevant": np.isin(np.arange(len(self.busy)), self.fleet.van),
            "van_station": self.fleet.station,
            "events": self.events,
            "batches": self.batches,
            "match_seconds": self.match_seconds,
            "replacement_batches": self.replacement_batches,
        }
