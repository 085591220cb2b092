"""The replacement side of the simulation: partner trucks for cargo whose repair is too long.

A breakdown with cargo whose repair exceeds the threshold asks for a replacement truck at
diagnosis (:meth:`ReplacementModel.request`); every ``replacement.batch_minutes`` the waiting
requests go to the production matcher (:func:`dispatch.match_replacements`) with arcs indexed
from the travel tables (:meth:`ReplacementModel.match`). Candidates come from the one fit rule
(:class:`dispatch.replacement.TruckFit`) and the partners' provinces. A booked truck is busy
until it is back at its depot; a request that no truck can ever serve (no fitting truck, no
partner in the province, unreachable) fails at once, one whose trucks are all booked waits
for the next batch.
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.replacement import (
    ReplacementMatchingProblem,
    ReplacementParams,
    ReplacementRequest,
    TruckFit,
    TruckState,
    UnmatchedReason,
    match_replacements,
)
from fleet.model import GeoPoint
from simulations.demand import CARGO_KINDS, Breakdowns
from simulations.scenario import Scenario
from simulations.tables import TravelTables

NEVER_SERVABLE = frozenset(
    {
        UnmatchedReason.NO_FITTING_TRUCK,
        UnmatchedReason.NO_PARTNER_IN_PROVINCE,
        UnmatchedReason.UNREACHABLE,
    }
)
"""Unmatched reasons that another batch cannot change: the request fails."""


class ReplacementModel:
    """Partner trucks and the replacement requests of one run, with their outcome per
    breakdown (``nan`` / 0 / False when it never happened)."""

    def __init__(self, scenario: Scenario, tables: TravelTables, breakdowns: Breakdowns) -> None:
        self.scenario = scenario
        self.tables = tables
        self.breakdowns = breakdowns
        net = scenario.network
        self.trucks = net.trucks
        depot_of = {(float(a), float(o)): k for k, (a, o) in enumerate(tables.depot_latlon)}
        self.truck_depot = np.array(
            [depot_of.get((t.depot.lat, t.depot.lon), -1) for t in self.trucks], dtype=np.int64
        )
        """Per truck: its depot's row in the tables, -1 when no tabled province needs it."""
        self.truck_free_at = np.zeros(len(self.trucks))
        self.truck_fit = TruckFit.of(self.trucks)
        self.truck_partner = [net.partner_by_id[t.partner_id] for t in self.trucks]
        self.truck_index = {t.id: k for k, t in enumerate(self.trucks)}
        tabled = self.truck_depot >= 0
        self.serves_province = {
            province: np.array([p.serves(province) for p in self.truck_partner], dtype=bool)
            & tabled
            for province in set(tables.points.province)
        }
        pts = tables.points
        self._point_location = [
            GeoPoint(float(a), float(o)) for a, o in zip(pts.lat, pts.lon, strict=True)
        ]
        self._destination = [GeoPoint(float(a), float(o)) for a, o in tables.dest_latlon]
        n = len(breakdowns)
        self.waiting: dict[int, float] = {}
        """Breakdown -> cargo deadline (absolute minutes), in request order."""
        self.requested_at = np.full(n, np.nan)
        self.booked_at = np.full(n, np.nan)
        self.delivered_at = np.full(n, np.nan)
        self.cost_cny = np.zeros(n)
        self.lateness_minutes = np.zeros(n)
        self.failed = np.zeros(n, dtype=bool)
        self.cargo_delay_minutes = np.full(n, np.nan)
        self.batches = 0

    def request(self, breakdown: int, now: float) -> None:
        """The cargo of ``breakdown`` needs a truck; deadline = reported + direct loaded drive
        + the scenario's slack."""
        b = self.breakdowns
        point, dest = int(b.point[breakdown]), int(b.destination[breakdown])
        self.requested_at[breakdown] = now
        self.waiting[breakdown] = (
            float(b.t[breakdown])
            + float(self.tables.loaded_minutes[point, dest])
            + self.scenario.replacement.deadline_slack_hours * 60.0
        )

    def match(self, now: float) -> None:
        """One replacement batch: book trucks for the waiting requests."""
        if not self.waiting or not len(self.trucks):
            for breakdown in list(self.waiting):
                self.failed[breakdown] = True
            self.waiting.clear()
            return
        b, t = self.breakdowns, self.tables
        requests: list[ReplacementRequest] = []
        breakdown_ids: list[int] = []
        arc_request_parts: list[np.ndarray] = []
        arc_truck_parts: list[np.ndarray] = []
        fitting: list[int] = []
        serving: list[int] = []
        for breakdown, deadline in self.waiting.items():
            point, dest = int(b.point[breakdown]), int(b.destination[breakdown])
            kind = CARGO_KINDS[int(b.cargo_kind[breakdown])]
            fits = self.truck_fit.fitting(kind, float(b.cargo_t[breakdown]))
            province = t.points.province[point]
            candidates = np.nonzero(fits & self.serves_province[province])[0]
            fitting.append(int(fits.sum()))
            serving.append(len(candidates))
            arc_request_parts.append(np.full(len(candidates), len(requests), dtype=np.int64))
            arc_truck_parts.append(candidates)
            loaded_minutes = float(t.loaded_minutes[point, dest])
            requests.append(
                ReplacementRequest(
                    id=str(breakdown),
                    location=self._point_location[point],
                    province_adcode=province,
                    cargo_weight_t=float(b.cargo_t[breakdown]),
                    cargo_kind=kind,
                    destination=self._destination[dest],
                    deadline_minutes_from_now=max(0.0, deadline - now)
                    if math.isfinite(loaded_minutes)
                    else None,
                )
            )
            breakdown_ids.append(breakdown)
        arc_request = np.concatenate(arc_request_parts)
        arc_truck = np.concatenate(arc_truck_parts)
        trucks_used, arc_local_truck = np.unique(arc_truck, return_inverse=True)
        states = [
            TruckState(
                self.trucks[k],
                self.truck_partner[k],
                free_in_minutes=max(0.0, float(self.truck_free_at[k]) - now),
            )
            for k in trucks_used.tolist()
        ]
        points = np.array([int(b.point[i]) for i in breakdown_ids], dtype=np.int64)
        dests = np.array([int(b.destination[i]) for i in breakdown_ids], dtype=np.int64)
        depots = self.truck_depot[arc_truck]
        problem = ReplacementMatchingProblem.from_arrays(
            requests, states, arc_request, arc_local_truck.reshape(-1),
            t.empty_km[depots, points[arc_request]], t.empty_minutes[depots, points[arc_request]],
            t.loaded_km[points, dests], t.loaded_minutes[points, dests],
            np.array(fitting), np.array(serving),
        )  # fmt: skip
        params = ReplacementParams(allow_late=self.scenario.replacement.allow_late)
        with np.errstate(invalid="ignore"):  # unreachable legs: inf - inf in the lateness
            matching = match_replacements(problem, params)
        self.batches += 1
        for booking in matching.bookings:
            breakdown = int(booking.request_id)
            k = self.truck_index[booking.truck_id]
            dest = int(b.destination[breakdown])
            delivered = now + booking.delivery_eta_minutes
            self.truck_free_at[k] = delivered + float(t.back_minutes[dest, self.truck_depot[k]])
            self.booked_at[breakdown] = now
            self.delivered_at[breakdown] = delivered
            self.cost_cny[breakdown] = booking.cost_cny
            self.lateness_minutes[breakdown] = booking.lateness_minutes
            direct = float(t.loaded_minutes[int(b.point[breakdown]), dest])
            self.cargo_delay_minutes[breakdown] = delivered - (float(b.t[breakdown]) + direct)
            del self.waiting[breakdown]
        for unmatched in matching.unmatched:
            if unmatched.reason in NEVER_SERVABLE:
                breakdown = int(unmatched.request_id)
                self.failed[breakdown] = True
                del self.waiting[breakdown]
