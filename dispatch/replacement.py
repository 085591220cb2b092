"""Replacement-truck matching: partner trucks for requests whose repair exceeds the threshold.

Feasible (request, truck): the truck fits the cargo (:class:`TruckFit`, the one fit rule,
shared with the simulation: available, type by :data:`FITTING_TRUCK_TYPES`: a semi-trailer
needs a tractor; loose cargo a box truck; palletised cargo a box truck or a flatbed; oversize
cargo a flatbed; and ``capacity_t >= cargo_weight_t``), the partner serves the
breakdown's province and has not declined the job (``excluded_partner_ids``), and the truck
reaches the breakdown (profile ``empty_truck``) and the destination (``loaded_truck``).

Times: pickup ETA = free_in + empty leg; delivery ETA = pickup + transfer time + loaded leg.
Deadlines: by default a truck may be late, at ``lateness_penalty_cny_per_minute``; with
``allow_late=False`` late pairs are infeasible and a request with no punctual truck is reported
(``deadline_unreachable``). Objective, lexicographic: serve as many requests as possible, then
minimise contract cost (``ContractRates.trip_cost(empty_km, loaded_km)``) + lateness penalty.
Solved by the same assignment core as the vans.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from dispatch.assignment import max_safe_cost, solve_assignment
from fleet.model import GeoPoint, PartnerCompany, ReplacementTruck, TruckStatus, TruckType
from routing.provider import TravelTimeProvider

EMPTY_PROFILE = "empty_truck"
LOADED_PROFILE = "loaded_truck"


class CargoKind(StrEnum):
    SEMI_TRAILER = "semi_trailer"
    """The customer's trailer is coupled to a replacement tractor."""
    LOOSE = "loose"
    """Loose or boxed goods reloaded by hand/forklift into a box truck."""
    PALLETISED = "palletised"
    """Pallets: a box truck or a flatbed."""
    OVERSIZE = "oversize"
    """Machinery and other out-of-gauge loads: a flatbed."""


FITTING_TRUCK_TYPES: dict[CargoKind, frozenset[TruckType]] = {
    CargoKind.SEMI_TRAILER: frozenset({TruckType.TRACTOR}),
    CargoKind.LOOSE: frozenset({TruckType.BOX_TRUCK}),
    CargoKind.PALLETISED: frozenset({TruckType.BOX_TRUCK, TruckType.FLATBED}),
    CargoKind.OVERSIZE: frozenset({TruckType.FLATBED}),
}
DEFAULT_TRANSFER_MINUTES: dict[CargoKind, float] = {
    CargoKind.SEMI_TRAILER: 30.0,  # couple the trailer, brake and light checks
    CargoKind.LOOSE: 120.0,  # hand/forklift reload
    CargoKind.PALLETISED: 60.0,
    CargoKind.OVERSIZE: 90.0,  # crane or ramp, securing
}


@dataclass(frozen=True)
class ReplacementRequest:
    id: str
    location: GeoPoint
    province_adcode: str
    cargo_weight_t: float
    cargo_kind: CargoKind
    destination: GeoPoint
    deadline_minutes_from_now: float | None = None
    """``None`` = no deadline."""
    transfer_minutes: float | None = None
    """``None`` = :data:`DEFAULT_TRANSFER_MINUTES` of the cargo kind."""
    excluded_partner_ids: frozenset[str] = frozenset()
    """Partners that declined this job or let an offer of it expire: never offered again."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "cargo_kind", CargoKind(self.cargo_kind))
        except ValueError:
            raise ValueError(
                f"replacement request {self.id}: unknown cargo kind {self.cargo_kind!r}; known: "
                f"{', '.join(k.value for k in CargoKind)}"
            ) from None
        w = self.cargo_weight_t
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(
                f"replacement request {self.id}: cargo_weight_t must be >= 0, got {w!r}"
            )
        for name in ("deadline_minutes_from_now", "transfer_minutes"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int | float) or math.isnan(v) or v < 0):
                raise ValueError(f"replacement request {self.id}: {name} must be >= 0, got {v!r}")

    @property
    def transfer(self) -> float:
        if self.transfer_minutes is not None:
            return float(self.transfer_minutes)
        return DEFAULT_TRANSFER_MINUTES[self.cargo_kind]


@dataclass(frozen=True)
class TruckState:
    truck: ReplacementTruck
    partner: PartnerCompany
    position: GeoPoint | None = None
    """``None`` = at its depot."""
    free_in_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.truck.partner_id != self.partner.id:
            raise ValueError(
                f"truck {self.truck.id}: partner {self.partner.id} is not its partner "
                f"{self.truck.partner_id}"
            )
        f = self.free_in_minutes
        if not isinstance(f, int | float) or not math.isfinite(f) or f < 0:
            raise ValueError(f"truck {self.truck.id}: free_in_minutes must be >= 0, got {f!r}")

    @property
    def id(self) -> str:
        return self.truck.id

    @property
    def expected_position(self) -> GeoPoint:
        return self.position if self.position is not None else self.truck.depot


class UnmatchedReason(StrEnum):
    NO_FITTING_TRUCK = "no_fitting_truck"
    """No available truck of a fitting type and capacity."""
    NO_PARTNER_IN_PROVINCE = "no_partner_in_province"
    """Fitting trucks exist, but no partner of theirs serves the province."""
    UNREACHABLE = "unreachable"
    """No candidate truck can reach the breakdown or the destination by road."""
    DEADLINE_UNREACHABLE = "deadline_unreachable"
    """Only late deliveries were possible and lateness is not allowed."""
    ALL_BOOKED = "all_booked"
    """Feasible trucks exist but went to other requests."""


@dataclass(frozen=True)
class ReplacementParams:
    allow_late: bool = True
    lateness_penalty_cny_per_minute: float = 50.0
    cost_resolution: int = 100
    """Cost units per CNY (fen)."""

    def __post_init__(self) -> None:
        v = self.lateness_penalty_cny_per_minute
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"lateness_penalty_cny_per_minute must be >= 0, got {v!r}")
        if not isinstance(self.cost_resolution, int) or self.cost_resolution < 1:
            raise ValueError(
                f"cost_resolution must be an integer >= 1, got {self.cost_resolution!r}"
            )


@dataclass(frozen=True, eq=False)
class ReplacementMatchingProblem:
    """Requests, trucks and the candidate arcs (type, capacity, province already checked)."""

    requests: tuple[ReplacementRequest, ...]
    trucks: tuple[TruckState, ...]
    arc_request: np.ndarray
    arc_truck: np.ndarray
    arc_empty_km: np.ndarray
    arc_empty_minutes: np.ndarray
    loaded_km: np.ndarray
    """Per request: breakdown -> destination (inf = unreachable)."""
    loaded_minutes: np.ndarray
    fitting_count: np.ndarray
    """Per request: available trucks of fitting type and capacity (any province)."""
    serving_count: np.ndarray
    """Per request: of those, whose partner serves the province."""

    @classmethod
    def from_arrays(
        cls,
        requests: Sequence[ReplacementRequest],
        trucks: Sequence[TruckState],
        arc_request: Any,
        arc_truck: Any,
        arc_empty_km: Any,
        arc_empty_minutes: Any,
        loaded_km: Any,
        loaded_minutes: Any,
        fitting_count: Any = None,
        serving_count: Any = None,
    ) -> ReplacementMatchingProblem:
        reqs, ts = tuple(requests), tuple(trucks)
        ar = np.asarray(arc_request, dtype=np.int64).reshape(-1)
        at = np.asarray(arc_truck, dtype=np.int64).reshape(-1)
        ekm = np.asarray(arc_empty_km, dtype=float).reshape(-1)
        emin = np.asarray(arc_empty_minutes, dtype=float).reshape(-1)
        lkm = np.asarray(loaded_km, dtype=float).reshape(-1)
        lmin = np.asarray(loaded_minutes, dtype=float).reshape(-1)
        if not (len(ar) == len(at) == len(ekm) == len(emin)):
            raise ValueError("arc arrays must have the same length")
        if len(lkm) != len(reqs) or len(lmin) != len(reqs):
            raise ValueError(f"loaded_km / loaded_minutes need one entry per request ({len(reqs)})")
        if len(ar) and (
            ar.min() < 0 or ar.max() >= len(reqs) or at.min() < 0 or at.max() >= len(ts)
        ):
            raise ValueError("arc index out of range")
        for name, a in (("empty_km", ekm), ("empty_minutes", emin)):
            bad = np.nonzero(np.isnan(a) | (a < 0))[0]
            if len(bad):
                i = int(bad[0])
                raise ValueError(
                    f"arc {i} (request {reqs[ar[i]].id}, truck {ts[at[i]].id}): {name} must be "
                    f">= 0, got {float(a[i])!r}"
                )
        for name, a in (("loaded_km", lkm), ("loaded_minutes", lmin)):
            bad = np.nonzero(np.isnan(a) | (a < 0))[0]
            if len(bad):
                i = int(bad[0])
                raise ValueError(f"request {reqs[i].id}: {name} must be >= 0, got {float(a[i])!r}")
        counts = np.bincount(ar, minlength=len(reqs))
        fit = counts if fitting_count is None else np.asarray(fitting_count, dtype=np.int64)
        serve = counts if serving_count is None else np.asarray(serving_count, dtype=np.int64)
        return cls(reqs, ts, ar, at, ekm, emin, lkm, lmin, fit, serve)


@dataclass(frozen=True, eq=False)
class TruckFit:
    """The truck-fit rule, in one place, over a whole fleet of trucks at once: a truck fits a
    cargo when it is available, its type fits the cargo kind (:data:`FITTING_TRUCK_TYPES`)
    and ``capacity_t >= cargo_weight_t`` (the partner's province is a separate check).

    Built once per set of trucks (the type test per cargo kind is precomputed), then asked per
    request: the dispatch cycle asks it for its snapshot's trucks, the simulation for every
    replacement request of a year without looping over the trucks in Python.
    """

    type_fits: Mapping[CargoKind, np.ndarray]
    """Per cargo kind: a boolean per truck, the type fits."""
    capacity_t: np.ndarray
    available: np.ndarray

    @classmethod
    def of(cls, trucks: Sequence[ReplacementTruck]) -> TruckFit:
        types = [t.truck_type for t in trucks]
        return cls(
            type_fits={
                kind: np.array([tt in FITTING_TRUCK_TYPES[kind] for tt in types], dtype=bool)
                for kind in CargoKind
            },
            capacity_t=np.array([t.capacity_t for t in trucks], dtype=float),
            available=np.array([t.status is TruckStatus.AVAILABLE for t in trucks], dtype=bool),
        )

    def fitting(self, cargo_kind: CargoKind, cargo_weight_t: float) -> np.ndarray:
        """A boolean per truck: it fits this cargo."""
        return (
            self.available
            & self.type_fits[CargoKind(cargo_kind)]
            & (self.capacity_t >= cargo_weight_t)
        )


def truck_fits(request: ReplacementRequest, state: TruckState) -> bool:
    """Type and capacity fit the cargo and the truck is available (province not checked)."""
    return bool(TruckFit.of([state.truck]).fitting(request.cargo_kind, request.cargo_weight_t)[0])


def build_replacement_problem(
    requests: Sequence[ReplacementRequest],
    trucks: Sequence[TruckState],
    provider: TravelTimeProvider,
) -> ReplacementMatchingProblem:
    """Candidate arcs by type, capacity, availability and province; empty legs by
    ``provider.matrix`` (empty_truck) from the trucks' positions; loaded legs per request."""
    reqs, ts = tuple(requests), tuple(trucks)
    ar: list[int] = []
    at: list[int] = []
    fitting = np.zeros(len(reqs), dtype=np.int64)
    serving = np.zeros(len(reqs), dtype=np.int64)
    fit = TruckFit.of([s.truck for s in ts])
    serves_province: dict[str, np.ndarray] = {}
    for i, r in enumerate(reqs):
        fits = fit.fitting(r.cargo_kind, r.cargo_weight_t)
        if r.province_adcode not in serves_province:
            serves_province[r.province_adcode] = np.array(
                [s.partner.serves(r.province_adcode) for s in ts], dtype=bool
            )
        allowed = serves_province[r.province_adcode]
        if r.excluded_partner_ids:
            allowed = allowed & np.array(
                [s.partner.id not in r.excluded_partner_ids for s in ts], dtype=bool
            )
        candidates = np.nonzero(fits & allowed)[0]
        fitting[i] = int(fits.sum())
        serving[i] = len(candidates)
        ar.extend([i] * len(candidates))
        at.extend(candidates.tolist())
    arc_r = np.array(ar, dtype=np.int64)
    arc_t = np.array(at, dtype=np.int64)
    ekm = np.zeros(len(arc_r))
    emin = np.zeros(len(arc_r))
    lkm = np.zeros(len(reqs))
    lmin = np.zeros(len(reqs))
    if len(arc_r):
        pos = np.array([(s.expected_position.lat, s.expected_position.lon) for s in ts])
        locs = np.array([(r.location.lat, r.location.lon) for r in reqs])
        ut, t_idx = np.unique(arc_t, return_inverse=True)
        ur, r_idx = np.unique(arc_r, return_inverse=True)
        km, minutes = provider.matrix(pos[ut], locs[ur], EMPTY_PROFILE)
        ekm = km[t_idx.reshape(-1), r_idx.reshape(-1)]
        emin = minutes[t_idx.reshape(-1), r_idx.reshape(-1)]
    for i, r in enumerate(reqs):
        leg = provider.leg(r.location, r.destination, LOADED_PROFILE)
        lkm[i], lmin[i] = leg.km, leg.minutes
    return ReplacementMatchingProblem.from_arrays(
        reqs, ts, arc_r, arc_t, ekm, emin, lkm, lmin, fitting, serving
    )


@dataclass(frozen=True)
class ReplacementBooking:
    request_id: str
    truck_id: str
    partner_id: str
    pickup_eta_minutes: float
    delivery_eta_minutes: float
    cost_cny: float
    empty_km: float
    loaded_km: float
    lateness_minutes: float = 0.0


@dataclass(frozen=True)
class UnmatchedReplacement:
    request_id: str
    reason: UnmatchedReason
    detail: str = ""


@dataclass(frozen=True)
class ReplacementMatching:
    bookings: tuple[ReplacementBooking, ...]
    unmatched: tuple[UnmatchedReplacement, ...]
    solve_seconds: float = 0.0

    def total_cost_cny(self) -> float:
        return float(sum(b.cost_cny for b in self.bookings))

    def late_count(self) -> int:
        return sum(1 for b in self.bookings if b.lateness_minutes > 0)

    def summary(self) -> dict[str, Any]:
        return {
            "booked": len(self.bookings),
            "unmatched": len(self.unmatched),
            "total_cost_cny": round(self.total_cost_cny(), 2),
            "late": self.late_count(),
            "solve_seconds": round(self.solve_seconds, 4),
        }


def match_replacements(
    problem: ReplacementMatchingProblem, params: ReplacementParams | None = None
) -> ReplacementMatching:
    """Cheapest feasible set of bookings serving as many requests as possible."""
    params = params or ReplacementParams()
    started = time.perf_counter()
    reqs, ts = problem.requests, problem.trucks
    ar, at = problem.arc_request, problem.arc_truck
    free_in = np.array([s.free_in_minutes for s in ts], dtype=float)
    transfer = np.array([r.transfer for r in reqs], dtype=float)
    deadline = np.array(
        [
            math.inf if r.deadline_minutes_from_now is None else r.deadline_minutes_from_now
            for r in reqs
        ]
    )
    pickup = free_in[at] + problem.arc_empty_minutes if len(ar) else np.zeros(0)
    delivery = pickup + transfer[ar] + problem.loaded_minutes[ar] if len(ar) else np.zeros(0)
    reachable = np.isfinite(delivery) & np.isfinite(problem.arc_empty_km)
    reachable &= np.isfinite(problem.loaded_km[ar]) if len(ar) else reachable
    # Lateness only where both times are finite: an unreachable arc (infinite delivery) of a
    # request without a deadline (infinite) would otherwise compute inf - inf.
    late = np.zeros(len(ar))
    if len(ar):
        due = deadline[ar]
        timed = np.isfinite(delivery) & np.isfinite(due)
        late[timed] = np.maximum(0.0, delivery[timed] - due[timed])
    ok = reachable & ((late <= 0) | params.allow_late)
    sel = np.nonzero(ok)[0]
    cost = np.array(
        [
            ts[at[a]].partner.rates.trip_cost(problem.arc_empty_km[a], problem.loaded_km[ar[a]])
            for a in sel
        ],
        dtype=float,
    )
    total = cost + params.lateness_penalty_cny_per_minute * late[sel]
    units = np.rint(total * params.cost_resolution).astype(np.int64)
    row_max = np.zeros(len(reqs), dtype=np.int64)
    np.maximum.at(row_max, ar[sel], units)
    big = int(row_max.sum()) + 1
    if big > max_safe_cost(len(reqs), len(ts)):
        raise ValueError("replacement costs overflow int64; lower cost_resolution")
    result = solve_assignment(
        len(reqs), len(ts), ar[sel], at[sel], units, unassigned_cost=np.full(len(reqs), big)
    )
    bookings = []
    unmatched = []
    for i, r in enumerate(reqs):
        k = int(result.row_arc[i])
        if k >= 0:
            a = int(sel[k])
            s = ts[at[a]]
            bookings.append(
                ReplacementBooking(
                    request_id=r.id,
                    truck_id=s.id,
                    partner_id=s.partner.id,
                    pickup_eta_minutes=float(pickup[a]),
                    delivery_eta_minutes=float(delivery[a]),
                    cost_cny=float(cost[k]),
                    empty_km=float(problem.arc_empty_km[a]),
                    loaded_km=float(problem.loaded_km[i]),
                    lateness_minutes=float(late[a]),
                )
            )
            continue
        mine = ar == i
        if problem.fitting_count[i] == 0:
            reason, detail = (
                UnmatchedReason.NO_FITTING_TRUCK,
                (
                    f"no available {'/'.join(sorted(FITTING_TRUCK_TYPES[r.cargo_kind]))} with "
                    f">= {r.cargo_weight_t:g} t"
                ),
            )
        elif problem.serving_count[i] == 0 or not mine.any():
            reason, detail = (
                UnmatchedReason.NO_PARTNER_IN_PROVINCE,
                (f"no partner with a fitting truck serves province {r.province_adcode}"),
            )
        elif not (reachable & mine).any():
            reason, detail = UnmatchedReason.UNREACHABLE, "no road route for any candidate truck"
        elif not (ok & mine).any():
            best = float(np.min(late[reachable & mine]))
            reason, detail = (
                UnmatchedReason.DEADLINE_UNREACHABLE,
                (f"the best truck would be {best:.0f} min late"),
            )
        else:
            reason, detail = UnmatchedReason.ALL_BOOKED, "feasible trucks went to other requests"
        unmatched.append(UnmatchedReplacement(r.id, reason, detail))
    return ReplacementMatching(tuple(bookings), tuple(unmatched), time.perf_counter() - started)
