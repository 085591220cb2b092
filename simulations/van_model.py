"""The van side of the simulation: the requests, the fleet's static tables and each van's trip.

- :class:`RescueRequests`: every request of a run in one index space (request ``k < n`` is
  breakdown ``k``'s call, request ``n + k`` its follow-up tow) and what happened to each;
- :class:`VanFleet`: what never changes during a run: which van can handle which request,
  the vans' shift hours, and for each demand point the vans whose radius covers it (a CSR
  table of "arcs" with road km, driving and towing minutes);
- :class:`VanTrip` / :func:`plan_van_trip`: a van's whole trip, known once it is dispatched;
- :class:`VanSchedule`: when each van leaves its current site and gets home, and its busy
  minutes inside the measured window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dispatch.vans import OpenRequest, VanState
from fleet.model import GeoPoint, RescueVan, is_on_shift
from simulations.demand import VEHICLE_CLASSES, Breakdowns
from simulations.results import Escalation
from simulations.scenario import RepairSpec, Scenario
from simulations.tables import TravelTables


def capability_key(vehicle_class: int, needs_tow: bool) -> int:
    """Row of :attr:`VanFleet.can_handle` for a vehicle class index and whether it needs a
    tow."""
    return vehicle_class * 2 + int(needs_tow)


class RescueRequests:
    """All requests of one run and their van-side outcome.

    Follow-up tows get their own request index (``n + breakdown``) so that the queue, the
    dispatch and the record handle them exactly like first calls; their report time is set
    when the first van gives up on site.
    """

    def __init__(self, breakdowns: Breakdowns, tables: TravelTables) -> None:
        n = len(breakdowns)
        self.breakdowns = breakdowns
        self.breakdown_count = n
        self.reported_at = np.concatenate([breakdowns.t, np.full(n, np.nan)])
        self.assigned_at = np.full(2 * n, np.nan)
        self.on_site_at = np.full(2 * n, np.nan)
        self.van = np.full(2 * n, -1, dtype=np.int64)
        self.escalation = np.zeros(2 * n, dtype=np.int8)
        """:class:`Escalation` codes."""
        self.towed = np.zeros(n, dtype=bool)
        """Per breakdown: a van towed the vehicle away."""
        self.followup_tow = np.zeros(n, dtype=bool)
        """Per breakdown: the first van could neither fix nor tow; a tow was requested."""
        # per request, precomputed: the loop asks for these on every batch
        tow_key = breakdowns.vehicle * 2 + 1
        first_call_key = breakdowns.vehicle * 2 + breakdowns.needs_tow.astype(np.int64)
        self.capability_key_array = np.concatenate([first_call_key, tow_key])
        """Per request: :func:`capability_key` (the batch reads it for all waiting at once)."""
        self.point_array = np.concatenate([breakdowns.point, breakdowns.point]).astype(np.int64)
        """Per request: its demand point."""
        self._capability_key: list[int] = self.capability_key_array.tolist()
        self._point: list[int] = self.point_array.tolist()
        pts = tables.points
        self._point_location = [
            GeoPoint(float(a), float(o)) for a, o in zip(pts.lat, pts.lon, strict=True)
        ]

    def breakdown_of(self, request: int) -> int:
        n = self.breakdown_count
        return request if request < n else request - n

    def is_followup_tow(self, request: int) -> bool:
        return request >= self.breakdown_count

    def followup_tow_of(self, breakdown: int) -> int:
        return self.breakdown_count + breakdown

    def needs_tow(self, request: int) -> bool:
        """A follow-up tow always does; a first call when triage said so at intake."""
        return self.is_followup_tow(request) or bool(
            self.breakdowns.needs_tow[self.breakdown_of(request)]
        )

    def point(self, request: int) -> int:
        """The demand point (index into the travel tables) of the breakdown."""
        return self._point[request]

    def capability_key(self, request: int) -> int:
        """:func:`capability_key` of the request's vehicle class and whether it needs a tow."""
        return self._capability_key[request]

    def open_request(self, request: int, waited_minutes: float = 0.0) -> OpenRequest:
        """The request as the dispatch core sees it (its id is the request index)."""
        b = self.breakdowns
        breakdown = self.breakdown_of(request)
        return OpenRequest(
            id=str(request),
            location=self._point_location[int(b.point[breakdown])],
            vehicle_class=VEHICLE_CLASSES[int(b.vehicle[breakdown])],
            needs_tow=self.needs_tow(request),
            priority=float(b.priority[breakdown]),
            waited_minutes=waited_minutes,
        )

    def escalate(self, request: int, reason: Escalation) -> None:
        self.escalation[request] = reason


@dataclass(frozen=True, eq=False)
class VanFleet:
    """The fleet's tables for one run, indexed by van (the scenario's van order)."""

    vans: tuple[RescueVan, ...]
    station_index: np.ndarray
    """Per van: its station's index in ``tables.station_ids``."""
    can_handle: np.ndarray
    """(vehicle classes x 2, vans) bool; row :func:`capability_key` (class, needs tow)."""
    can_tow: np.ndarray
    """(vehicle classes, vans) bool."""
    shift_open_hour: np.ndarray
    shift_close_hour: np.ndarray
    """Per van: its station's hours (0-24 when the scenario ignores shifts)."""
    point_arc_start: np.ndarray
    """CSR pointer: the arcs of demand point p are ``point_arc_start[p]:point_arc_start[p+1]``."""
    arc_van: np.ndarray
    arc_km: np.ndarray
    arc_minutes: np.ndarray
    arc_tow_minutes: np.ndarray
    covers_point: np.ndarray
    """(capability keys, points) bool: some capable van's radius covers the point at all."""
    at_home: tuple[VanState, ...]
    """Per van: its dispatch state when idle at home."""
    index_of: dict[str, int]
    """Van id -> van index."""

    @classmethod
    def build(cls, scenario: Scenario, tables: TravelTables) -> VanFleet:
        net = scenario.network
        station_of = {sid: i for i, sid in enumerate(tables.station_ids)}
        vans = net.vans
        station_index = np.array([station_of[v.station_id] for v in vans], dtype=np.int64)
        radius_km = np.array([v.service_radius_km for v in vans], dtype=float)
        n_keys = len(VEHICLE_CLASSES) * 2
        can_handle = np.zeros((n_keys, len(vans)), dtype=bool)
        can_tow = np.zeros((len(VEHICLE_CLASSES), len(vans)), dtype=bool)
        for ci, vehicle_class in enumerate(VEHICLE_CLASSES):
            for j, van in enumerate(vans):
                cap = van.capability
                can_handle[capability_key(ci, False), j] = cap.can_handle(
                    vehicle_class, needs_tow=False
                )
                can_handle[capability_key(ci, True), j] = cap.can_handle(
                    vehicle_class, needs_tow=True
                )
                can_tow[ci, j] = cap.can_tow(vehicle_class)
        stations = net.stations
        respect = scenario.dispatch.respect_shifts
        open_hour = np.array(
            [stations[i].opening_hours.open_hour if respect else 0 for i in station_index],
            dtype=float,
        )
        close_hour = np.array(
            [stations[i].opening_hours.close_hour if respect else 24 for i in station_index],
            dtype=float,
        )
        # expand the station -> point arcs to the station's vans (within each van's radius)
        vans_at: list[list[int]] = [[] for _ in tables.station_ids]
        for j, s in enumerate(station_index):
            vans_at[s].append(j)
        n_points = len(tables.points)
        per_station_arc = np.array([len(vans_at[s]) for s in tables.arc_station], dtype=np.int64)
        station_arc = np.repeat(np.arange(len(tables.arc_station)), per_station_arc)
        arc_van = np.array(
            [j for s in tables.arc_station for j in vans_at[s]], dtype=np.int64
        ).reshape(-1)
        within = (
            tables.arc_km[station_arc] <= radius_km[arc_van]
            if len(arc_van)
            else np.zeros(0, dtype=bool)
        )
        station_arc, arc_van = station_arc[within], arc_van[within]
        point_of_station_arc = np.repeat(np.arange(n_points), np.diff(tables.arc_ptr))
        arc_point = point_of_station_arc[station_arc]
        counts = np.zeros(n_points + 1, dtype=np.int64)
        np.add.at(counts, arc_point + 1, 1)
        point_arc_start = np.cumsum(counts)
        covers_point = np.zeros((n_keys, n_points), dtype=bool)
        if len(arc_van):
            arc_point_sorted = np.repeat(np.arange(n_points), np.diff(point_arc_start))
            for key in range(n_keys):
                capable = can_handle[key, arc_van]
                covers_point[key, np.unique(arc_point_sorted[capable])] = True
        at_home = tuple(VanState(v, net.station_by_id[v.station_id].location) for v in vans)
        return cls(
            vans=vans,
            station_index=station_index,
            can_handle=can_handle,
            can_tow=can_tow,
            shift_open_hour=open_hour,
            shift_close_hour=close_hour,
            point_arc_start=point_arc_start,
            arc_van=arc_van,
            arc_km=tables.arc_km[station_arc],
            arc_minutes=tables.arc_minutes[station_arc],
            arc_tow_minutes=tables.arc_tow_minutes[station_arc],
            covers_point=covers_point,
            at_home=at_home,
            index_of={v.id: j for j, v in enumerate(vans)},
        )

    def arcs(self, point: int) -> tuple[int, int]:
        """The arc range ``(start, stop)`` of the vans whose radius covers ``point``."""
        return int(self.point_arc_start[point]), int(self.point_arc_start[point + 1])

    def arc_of(self, point: int, van: int) -> int:
        """The arc of ``van`` to ``point`` (a van has at most one arc per point)."""
        return self._arc_index[(point, van)]

    @cached_property
    def _arc_index(self) -> dict[tuple[int, int], int]:
        arc_point = np.repeat(
            np.arange(len(self.point_arc_start) - 1), np.diff(self.point_arc_start)
        )
        return {
            (p, v): a
            for a, (p, v) in enumerate(zip(arc_point.tolist(), self.arc_van.tolist(), strict=True))
        }

    @cached_property
    def service_radius_km(self) -> np.ndarray:
        """Per van: its service radius (road km from its station)."""
        return np.array([v.service_radius_km for v in self.vans], dtype=float).reshape(-1)

    def on_shift(self, vans: np.ndarray, now: float) -> np.ndarray:
        """Per van in ``vans``: on duty at simulated minute ``now`` (minute 0 = local
        midnight), by the fleet's shift rule."""
        return is_on_shift(self.shift_open_hour[vans], self.shift_close_hour[vans], now / 60.0)

    def covers_any_demand(self) -> np.ndarray:
        """Per van: its radius covers at least one demand point."""
        return np.isin(np.arange(len(self.vans)), self.arc_van)

    def state_when_free(self, van: int, free_in_minutes: float) -> VanState:
        """The van as the dispatch core sees it: idle at home, or free (home) in a while (busy:
        driving home from a job, ``VanState.busy``)."""
        home = self.at_home[van]
        if free_in_minutes <= 0:
            return home
        return VanState(self.vans[van], home.home, free_in_minutes=free_in_minutes, busy=True)


@dataclass(frozen=True, slots=True)
class VanTrip:
    """One van's trip for one request, known the moment it is dispatched."""

    on_site_at: float
    leaves_site_at: float
    home_at: float
    tows: bool
    """The van tows the vehicle to its home station."""
    needs_followup_tow: bool
    """The van can neither fix nor tow: a follow-up tow is requested when it leaves."""
    diagnosed_at: float | None
    """When the technician's figure is known (a first call only): the end of the diagnosis, or
    earlier if the van leaves sooner; the booking policy decides on the cargo then."""


def plan_van_trip(
    requests: RescueRequests,
    fleet: VanFleet,
    repairs: RepairSpec,
    *,
    request: int,
    van: int,
    now: float,
    eta_minutes: float,
    drive_minutes: float,
    tow_minutes: float,
) -> VanTrip:
    """The trip: drive (``eta_minutes``, including a drive home first), then

    - a follow-up tow: hook up, tow home;
    - fixed on site: the on-site hours, drive home;
    - not fixed, the van can tow: hook up (after the diagnosis unless triaged as a tow), tow
      home;
    - not fixed, cannot tow: diagnosis, drive home, and a follow-up tow is requested.

    A first call is diagnosed at the end of the diagnosis, or earlier if the van leaves sooner
    (``diagnosed_at``; the replacement's booking policy acts on it).
    """
    b = requests.breakdowns
    breakdown = requests.breakdown_of(request)
    on_site_at = now + eta_minutes
    diagnosis = repairs.diagnosis_minutes
    hookup = repairs.tow_hookup_minutes
    tows = needs_followup_tow = False
    if requests.is_followup_tow(request):
        leaves_site_at = on_site_at + hookup
        home_at = leaves_site_at + tow_minutes
        tows = True
    elif b.fixed_on_site[breakdown]:
        leaves_site_at = on_site_at + float(b.on_site_hours[breakdown]) * 60.0
        home_at = leaves_site_at + drive_minutes
    elif fleet.can_tow[int(b.vehicle[breakdown]), van]:
        leaves_site_at = on_site_at + (hookup if b.needs_tow[breakdown] else diagnosis + hookup)
        home_at = leaves_site_at + tow_minutes
        tows = True
    else:
        leaves_site_at = on_site_at + diagnosis
        home_at = leaves_site_at + drive_minutes
        needs_followup_tow = True
    diagnosed_at = None
    if not requests.is_followup_tow(request):
        diagnosed_at = on_site_at + min(diagnosis, leaves_site_at - on_site_at)
    return VanTrip(on_site_at, leaves_site_at, home_at, tows, needs_followup_tow, diagnosed_at)


class VanSchedule:
    """Per van: when it leaves its current site (free for a batch from then: it drives home
    empty), when it is home, and its busy minutes inside the measured window."""

    def __init__(self, van_count: int, measured_from: float, measured_until: float) -> None:
        self.leaves_site_at = np.zeros(van_count)
        self.home_at = np.zeros(van_count)
        self.busy_minutes = np.zeros(van_count)
        self._measured_from = measured_from
        self._measured_until = measured_until

    def book(self, van: int, trip: VanTrip, now: float) -> None:
        """The van takes ``trip``; busy from when it is free (now, or home) until home again."""
        self._add_busy(van, max(now, float(self.home_at[van])), trip.home_at)
        self.leaves_site_at[van] = trip.leaves_site_at
        self.home_at[van] = trip.home_at

    def _add_busy(self, van: int, start: float, stop: float) -> None:
        lo = max(start, self._measured_from)
        hi = min(stop, self._measured_until)
        if hi > lo:
            self.busy_minutes[van] += hi - lo
