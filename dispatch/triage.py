"""Triage: from a reported fault to a repair estimate, a priority and the replacement decision.

The replacement decision is the product's reason to exist, so it rests on a risk, not a mean:
:func:`estimate_repair` returns ``p_exceeds_threshold``, the probability that the vehicle is not
back on the road within its contract's threshold, computed exactly (closed forms, plus one
numerical integral when a queue wait adds to the workshop repair) from:

- the van's arrival (``van_arrival_hours``, a constant offset; 0 when unknown);
- the fault's two paths: fixed on site with probability ``p_on_site_fix`` (``on_site_hours``),
  else towed (``tow_leg_hours``) to the workshop and repaired there (``workshop_hours``);
- the parts: those of the fault that the workshop station (designated, else the nearest
  capable one: :func:`choose_workshop`) does not stock delay either path by the longest missing
  part's lead time (ordered in parallel; every listed part is assumed needed);
- the workshop's load, when tracked (:class:`WorkshopLoad`): with every bay busy the vehicle
  waits for a bay, an Erlang time of exponential bay releases (FIFO, load as of now).

The contract (:class:`fleet.contracts.ServiceContract`) gives the threshold and the booking
probability; the :class:`ReplacementPolicy` turns the risk into ``needs_replacement``: by default
book when ``p_exceeds_threshold >= booking_probability``. :func:`apply_diagnosis` replaces the
catalogue by the technician's figure (a lognormal centred on it, spread ``DIAGNOSIS_SIGMA``) and
books or releases. See docs/dispatch.md for the assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from fleet.contracts import DEFAULT_CONTRACT, ServiceContract
from fleet.distributions import HoursDistribution, prob_sum_exceeds
from fleet.faults import FaultCatalogue, FaultType, load_fault_catalogue
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
    CustomerVehicle,
    FaultCategory,
    FaultGrade,
    GeoPoint,
    ServiceStation,
    VehicleClass,
)

GRADE_PRIORITY: dict[FaultGrade, float] = {
    FaultGrade.MINOR: 1.0,
    FaultGrade.MAJOR: 2.0,
    FaultGrade.CRITICAL: 3.0,
}
"""Base priority weight by fault grade."""

CLASS_PRIORITY_FACTOR: dict[VehicleClass, float] = {
    VehicleClass.TRACTOR: 1.5,  # a stranded 49 t combination blocks a lane and a cargo contract
    VehicleClass.RIGID_TRUCK: 1.25,
    VehicleClass.LIGHT_TRUCK: 1.0,
    VehicleClass.VAN: 1.0,
    VehicleClass.CAR: 1.0,
}
TOW_IF_P_ON_SITE_BELOW = 0.5
TOW_SPEED_KMH = 50.0
"""Towing speed on the road (the routing ``towing`` profile's)."""
TOW_HOOKUP_HOURS = 0.5
"""Hooking the vehicle up before the tow (the simulation's ``tow_hookup_minutes`` default)."""
P90 = 0.9

DIAGNOSIS_SIGMA = 0.25
"""Spread (sigma of the log) of the technician's estimate: the true time is lognormal with the
estimate as its median, so 90% of repairs end within a factor exp(1.645 * 0.25) = 1.5 of it.
An assumption (no field data): a technician who has seen the vehicle is far surer than the
catalogue (whose sigmas are 0.4-0.9) but still misses by up to half now and then."""

DEFAULT_MEAN_BAY_HOURS = 21.0
"""Mean time a towed-in vehicle holds a workshop bay when the caller does not know better: the
catalogue's mean workshop repair weighted by how often each fault ends in the workshop
(share x (1 - p_on_site_fix)) is 21.2 h."""


class PolicyKind(StrEnum):
    """When and on what a replacement truck is booked (the simulation compares them)."""

    INTAKE_MEAN = "intake-mean"
    """At intake, when the expected repair time exceeds the threshold (the old rule)."""
    INTAKE_RISK = "intake-risk"
    """At intake, when ``p_exceeds_threshold`` reaches the booking probability."""
    DIAGNOSIS = "diagnosis"
    """Never at intake; only once the technician's diagnosis says so."""
    ORACLE = "oracle"
    """With hindsight: when the actual repair time exceeds the threshold (simulation only)."""


@dataclass(frozen=True, slots=True)
class ReplacementPolicy:
    """A booking policy. ``intake-risk`` uses the contract's booking probability,
    ``intake-p0.3`` the same rule with 0.3 for every contract."""

    kind: PolicyKind = PolicyKind.INTAKE_RISK
    booking_probability: float | None = None
    """Only for ``intake-risk``: overrides the contracts' probability; in (0, 1]."""

    def __post_init__(self) -> None:
        p = self.booking_probability
        if p is None:
            return
        if self.kind is not PolicyKind.INTAKE_RISK:
            raise ValueError(
                f"replacement policy {self.kind.value!r} takes no booking probability, got {p!r}"
            )
        if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 < p <= 1.0:
            raise ValueError(f"replacement policy booking probability must be in (0, 1], got {p!r}")

    @property
    def name(self) -> str:
        """The parseable name: ``intake-mean``, ``intake-risk``, ``intake-p0.5``, ..."""
        if self.booking_probability is not None:
            return f"intake-p{self.booking_probability:g}"
        return self.kind.value

    @classmethod
    def parse(cls, text: str) -> ReplacementPolicy:
        """``intake-mean``, ``intake-risk``, ``intake-p<probability>``, ``diagnosis``,
        ``oracle``; a ``ValueError`` names the value and the reason otherwise."""
        raw = text.strip().lower() if isinstance(text, str) else text
        if not isinstance(raw, str):
            raise ValueError(f"replacement policy must be a string, got {text!r}")
        for kind in PolicyKind:
            if raw == kind.value:
                return cls(kind)
        if raw.startswith("intake-p"):
            number = raw.removeprefix("intake-p")
            try:
                p = float(number)
            except ValueError:
                raise ValueError(
                    f"replacement policy {text!r}: {number!r} is not a probability "
                    "(write e.g. intake-p0.5)"
                ) from None
            if not 0.0 < p <= 1.0:
                raise ValueError(
                    f"replacement policy {text!r}: booking probability must be in (0, 1], got {p:g}"
                )
            return cls(PolicyKind.INTAKE_RISK, p)
        raise ValueError(
            f"unknown replacement policy {text!r}; known: intake-mean, intake-risk, "
            "intake-p<probability> (e.g. intake-p0.5), diagnosis, oracle"
        )

    def booking_probability_for(self, contract: ServiceContract) -> float:
        return (
            self.booking_probability
            if self.booking_probability is not None
            else contract.booking_probability
        )

    def books_at_intake(
        self,
        *,
        p_exceeds_threshold: float,
        expected_hours: float,
        threshold_hours: float,
        booking_probability: float,
        actual_hours: float | None = None,
    ) -> bool:
        """Whether to book at intake. ``oracle`` needs ``actual_hours`` (only a simulation has
        them); ``diagnosis`` never books here."""
        k = self.kind
        if k is PolicyKind.INTAKE_MEAN:
            return expected_hours > threshold_hours
        if k is PolicyKind.INTAKE_RISK:
            return p_exceeds_threshold >= booking_probability
        if k is PolicyKind.DIAGNOSIS:
            return False
        if actual_hours is None:
            raise ValueError("replacement policy 'oracle' decides on actual_hours; none given")
        return actual_hours > threshold_hours

    def books_after_diagnosis(
        self,
        *,
        p_exceeds_threshold: float,
        hours_since_breakdown: float,
        threshold_hours: float,
        booking_probability: float,
    ) -> bool:
        """Whether to hold a booking once the technician has given a figure: the risk rule for
        ``intake-risk`` and ``diagnosis``; the figure against the threshold (strictly) for
        ``intake-mean`` and ``oracle``, which treat it as the truth."""
        if self.kind in (PolicyKind.INTAKE_RISK, PolicyKind.DIAGNOSIS):
            return p_exceeds_threshold >= booking_probability
        return hours_since_breakdown > threshold_hours


DEFAULT_POLICY = ReplacementPolicy(PolicyKind.INTAKE_RISK)
"""Book at intake when the risk reaches the contract's booking probability
(``fleet.contracts.DEFAULT_BOOKING_PROBABILITY`` = 0.5 unless the contract says otherwise)."""


@dataclass(frozen=True, slots=True)
class WorkshopLoad:
    """How full the workshop is now: ``vehicles`` in it (in a bay or queued for one)."""

    bays: int
    vehicles: int
    mean_bay_hours: float = DEFAULT_MEAN_BAY_HOURS
    """Mean time a vehicle holds a bay; releases are taken as exponential (memoryless)."""

    def __post_init__(self) -> None:
        if not isinstance(self.bays, int) or isinstance(self.bays, bool) or self.bays < 1:
            raise ValueError(f"workshop load: bays must be an integer >= 1, got {self.bays!r}")
        v = self.vehicles
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"workshop load: vehicles must be an integer >= 0, got {v!r}")
        m = self.mean_bay_hours
        if not isinstance(m, int | float) or not math.isfinite(m) or m <= 0:
            raise ValueError(f"workshop load: mean_bay_hours must be > 0, got {m!r}")

    def queue_wait(self) -> HoursDistribution | None:
        """Time until a bay is ours: none while one is free; with all busy and ``k`` vehicles
        queued ahead, the (k + 1)-th release among ``bays`` exponential ones, an Erlang of shape
        k + 1 and rate bays / mean_bay_hours."""
        if self.vehicles < self.bays:
            return None
        releases = self.vehicles - self.bays + 1
        return HoursDistribution.gamma(releases * self.mean_bay_hours / self.bays, releases)


@dataclass(frozen=True)
class TriageContext:
    """What the estimate depends on besides the fault and the vehicle."""

    catalogue: FaultCatalogue | None = None
    """``None`` = the bundled catalogue."""
    workshop_station: ServiceStation | None = None
    """Where the vehicle would be repaired (designated, else nearest capable; see
    :func:`choose_workshop`); its stock decides the missing parts. ``None`` = parts at hand."""
    tow_leg_hours: float = 0.0
    """Hook-up and tow from the breakdown to the workshop (workshop path only)."""
    van_arrival_hours: float = 0.0
    """Time until the van is on site (both paths); 0 when not yet known."""
    workshop_load: WorkshopLoad | None = None
    """``None`` = unlimited bays, no queue (the default for networks that do not track them)."""
    contract: ServiceContract = DEFAULT_CONTRACT
    threshold_hours: float | None = None
    """Overrides the contract's threshold (a stored request keeps its own)."""
    policy: ReplacementPolicy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        if self.threshold_hours is not None:
            _check_threshold(self.threshold_hours)
        for name in ("tow_leg_hours", "van_arrival_hours"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"triage context: {name} must be a finite number >= 0, got {value!r}"
                )

    @property
    def effective_threshold_hours(self) -> float:
        if self.threshold_hours is not None:
            return float(self.threshold_hours)
        return self.contract.threshold_hours


@dataclass(frozen=True, slots=True)
class RepairTime:
    """Hours from the breakdown until the vehicle is back on the road, as a distribution:
    ``van_arrival + parts_lead + on_site`` with probability ``p_on_site_fix``, else
    ``van_arrival + tow_leg + parts_lead + queue_wait + workshop``."""

    p_on_site_fix: float
    on_site_hours: HoursDistribution
    workshop_hours: HoursDistribution
    parts_lead_hours: float = 0.0
    tow_leg_hours: float = 0.0
    van_arrival_hours: float = 0.0
    queue_wait: HoursDistribution | None = None

    def prob_exceeds(self, hours: float) -> float:
        """P(not back on the road within ``hours``), exact up to quadrature error."""
        p = self.p_on_site_fix
        base = hours - self.van_arrival_hours - self.parts_lead_hours
        total = 0.0
        if p > 0:
            total += p * self.on_site_hours.prob_exceeds(base)
        if p < 1:
            rest = base - self.tow_leg_hours
            if self.queue_wait is None:
                tail = self.workshop_hours.prob_exceeds(rest)
            else:
                tail = prob_sum_exceeds(self.workshop_hours, self.queue_wait, rest)
            total += (1 - p) * tail
        return min(1.0, max(0.0, total))

    def mean(self) -> float:
        p = self.p_on_site_fix
        wait = self.queue_wait.mean() if self.queue_wait is not None else 0.0
        workshop = self.tow_leg_hours + wait + self.workshop_hours.mean()
        return (
            self.van_arrival_hours
            + self.parts_lead_hours
            + p * self.on_site_hours.mean()
            + (1 - p) * workshop
        )

    def quantile(self, q: float) -> float:
        """Smallest t with P(time > t) <= 1 - q, by bisection (to 1e-9 relative)."""
        if not 0.0 <= q < 1.0:
            raise ValueError(f"quantile q must be in [0, 1), got {q!r}")
        target = 1.0 - q
        hi = max(self.on_site_hours.quantile(q), self.workshop_hours.quantile(q)) + (
            self.van_arrival_hours + self.parts_lead_hours + self.tow_leg_hours
        )
        if self.queue_wait is not None:
            hi += self.queue_wait.quantile(q)
        hi = max(hi, 1e-9)
        while self.prob_exceeds(hi) > target:
            hi *= 2
        lo = 0.0
        while hi - lo > 1e-9 * max(1.0, hi):
            mid = (lo + hi) / 2
            if self.prob_exceeds(mid) > target:
                lo = mid
            else:
                hi = mid
        return hi

    def sample(self, rng: np.random.Generator, size: int) -> Any:
        """``size`` draws (numpy array) with the caller's generator, e.g. for an oracle."""
        fixed = rng.random(size) < self.p_on_site_fix
        on_site = self.on_site_hours.sample(rng, size)
        workshop = self.workshop_hours.sample(rng, size) + self.tow_leg_hours
        if self.queue_wait is not None:
            workshop = workshop + self.queue_wait.sample(rng, size)
        return self.van_arrival_hours + self.parts_lead_hours + np.where(fixed, on_site, workshop)


@dataclass(frozen=True)
class RepairEstimate:
    fault_code: str
    vehicle_class: VehicleClass
    expected_hours: float
    p90_hours: float
    p_on_site_fix: float
    needs_tow: bool
    missing_parts: tuple[str, ...]
    parts_lead_time_hours: float
    priority: float
    """Weight >= 1 for the van matching (fault grade x vehicle class)."""
    threshold_hours: float
    needs_replacement: bool
    """The policy's decision (by default: ``p_exceeds_threshold >= booking_probability``)."""
    p_exceeds_threshold: float = 0.0
    """Probability that the vehicle is not back on the road within ``threshold_hours``."""
    booking_probability: float = DEFAULT_CONTRACT.booking_probability
    contract_id: str = DEFAULT_CONTRACT.id
    policy: ReplacementPolicy = DEFAULT_POLICY
    source: str = "catalogue"
    """``catalogue`` at intake, ``diagnosis`` once the technician has given a figure."""


def needs_replacement(hours: float, threshold: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS) -> bool:
    """The mean rule: true when a repair of ``hours`` exceeds the ``threshold`` (strictly)."""
    _check_hours(hours)
    _check_threshold(threshold)
    return hours > threshold


@dataclass(frozen=True, slots=True)
class WorkshopChoice:
    station: ServiceStation
    distance_km: float
    designated: bool


def station_can_repair(station: ServiceStation, vehicle_class: VehicleClass) -> bool:
    """Heavy classes need a heavy-duty bay; any station repairs the light ones."""
    return station.heavy_duty_bay or not vehicle_class.is_heavy


def choose_workshop(
    stations: Iterable[ServiceStation],
    location: GeoPoint,
    vehicle_class: VehicleClass | str,
    distance_km: Callable[[GeoPoint, GeoPoint], float],
    *,
    designated_station_id: str | None = None,
) -> WorkshopChoice | None:
    """The workshop a vehicle broken down at ``location`` would go to: its designated station
    when that one can repair the class, else the nearest capable station by ``distance_km``
    (ties by id). ``None`` when no capable station is reachable (infinite distance)."""
    klass = _vehicle_class(vehicle_class)
    pool = list(stations)
    if designated_station_id is not None:
        match = [s for s in pool if s.id == designated_station_id]
        if not match:
            raise ValueError(
                f"designated station {designated_station_id!r} is not among the stations"
            )
        if station_can_repair(match[0], klass):
            km = _checked_km(match[0], distance_km(location, match[0].location))
            return WorkshopChoice(match[0], km, designated=True)
    best: tuple[float, str] | None = None
    chosen: ServiceStation | None = None
    for station in pool:
        if not station_can_repair(station, klass):
            continue
        km = _checked_km(station, distance_km(location, station.location))
        if math.isinf(km):
            continue
        if best is None or (km, station.id) < best:
            best, chosen = (km, station.id), station
    if chosen is None or best is None:
        return None
    return WorkshopChoice(chosen, best[0], designated=False)


def tow_leg_hours(
    km: float, *, speed_kmh: float = TOW_SPEED_KMH, hookup_hours: float = TOW_HOOKUP_HOURS
) -> float:
    """Hours from hooking up at the breakdown to arriving at a workshop ``km`` away."""
    if not isinstance(km, int | float) or not math.isfinite(km) or km < 0:
        raise ValueError(f"tow distance km must be a finite number >= 0, got {km!r}")
    return hookup_hours + km / speed_kmh


def priority_for(grade: FaultGrade, vehicle_class: VehicleClass) -> float:
    return GRADE_PRIORITY[grade] * CLASS_PRIORITY_FACTOR[vehicle_class]


def repair_time(fault: FaultType, context: TriageContext | None = None) -> RepairTime:
    """The distribution of hours until ``fault`` is repaired, in ``context``."""
    ctx = context or TriageContext()
    catalogue = ctx.catalogue or load_fault_catalogue()
    lead = max((_part_lead(catalogue, p) for p in _missing_parts(fault, ctx)), default=0.0)
    return RepairTime(
        p_on_site_fix=fault.p_on_site_fix,
        on_site_hours=fault.on_site_hours,
        workshop_hours=fault.workshop_hours,
        parts_lead_hours=lead,
        tow_leg_hours=float(ctx.tow_leg_hours),
        van_arrival_hours=float(ctx.van_arrival_hours),
        queue_wait=ctx.workshop_load.queue_wait() if ctx.workshop_load is not None else None,
    )


def estimate_repair(
    fault: FaultType | str | None,
    vehicle: CustomerVehicle | VehicleClass | str,
    context: TriageContext | None = None,
) -> RepairEstimate:
    """The intake estimate for ``fault`` (a catalogue entry, its code, or ``None`` = UNKNOWN):
    mean, p90 and the risk of overrunning the contract threshold, and the policy's decision
    (``oracle`` and ``diagnosis`` never book here: they decide later)."""
    ctx = context or TriageContext()
    catalogue = ctx.catalogue or load_fault_catalogue()
    vehicle_class = _vehicle_class(vehicle)
    if not isinstance(fault, FaultType):
        try:
            fault = catalogue.get(fault)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    time = repair_time(fault, ctx)
    threshold = ctx.effective_threshold_hours
    expected = time.mean()
    p_exceeds = time.prob_exceeds(threshold)
    booking_probability = ctx.policy.booking_probability_for(ctx.contract)
    decides_later = ctx.policy.kind in (PolicyKind.ORACLE, PolicyKind.DIAGNOSIS)
    book = not decides_later and ctx.policy.books_at_intake(
        p_exceeds_threshold=p_exceeds,
        expected_hours=expected,
        threshold_hours=threshold,
        booking_probability=booking_probability,
    )
    p = fault.p_on_site_fix
    tow = p < TOW_IF_P_ON_SITE_BELOW or fault.category is FaultCategory.ACCIDENT_DAMAGE
    return RepairEstimate(
        fault_code=fault.code,
        vehicle_class=vehicle_class,
        expected_hours=expected,
        p90_hours=time.quantile(P90),
        p_on_site_fix=p,
        needs_tow=tow,
        missing_parts=_missing_parts(fault, ctx),
        parts_lead_time_hours=time.parts_lead_hours,
        priority=priority_for(fault.grade, vehicle_class),
        threshold_hours=threshold,
        needs_replacement=book,
        p_exceeds_threshold=p_exceeds,
        booking_probability=booking_probability,
        contract_id=ctx.contract.id,
        policy=ctx.policy,
    )


def diagnosis_hours(hours: float, sigma: float = DIAGNOSIS_SIGMA) -> HoursDistribution:
    """The remaining repair time once the technician has said ``hours``: lognormal with that
    median and ``sigma``; exactly 0 for a figure of 0 (already repaired)."""
    _check_hours(hours)
    return HoursDistribution.lognormal(hours, sigma) if hours > 0 else HoursDistribution.fixed(0)


def apply_diagnosis(
    estimate: RepairEstimate,
    hours: float,
    threshold: float | None = None,
    *,
    elapsed_hours: float = 0.0,
) -> RepairEstimate:
    """The estimate after the technician's on-site figure of ``hours`` still to go, given
    ``elapsed_hours`` since the breakdown (0 = compare the figure with the threshold as it
    stands). Replaces the catalogue figures and re-decides: it can book or release.
    ``threshold`` defaults to the estimate's."""
    _check_hours(hours)
    _check_hours(elapsed_hours)
    limit = estimate.threshold_hours if threshold is None else threshold
    _check_threshold(limit)
    remaining = diagnosis_hours(hours)
    p_exceeds = remaining.prob_exceeds(limit - elapsed_hours)
    return replace(
        estimate,
        expected_hours=float(hours),
        p90_hours=remaining.quantile(P90),
        threshold_hours=limit,
        p_exceeds_threshold=p_exceeds,
        needs_replacement=estimate.policy.books_after_diagnosis(
            p_exceeds_threshold=p_exceeds,
            hours_since_breakdown=elapsed_hours + hours,
            threshold_hours=limit,
            booking_probability=estimate.booking_probability,
        ),
        source="diagnosis",
    )


def _missing_parts(fault: FaultType, ctx: TriageContext) -> tuple[str, ...]:
    if ctx.workshop_station is None:
        return ()
    return tuple(p for p in fault.parts if p not in ctx.workshop_station.parts_in_stock)


def _part_lead(catalogue: FaultCatalogue, code: str) -> float:
    return catalogue.part(code).lead_time_hours


def _vehicle_class(vehicle: CustomerVehicle | VehicleClass | str) -> VehicleClass:
    raw = vehicle.vehicle_class if isinstance(vehicle, CustomerVehicle) else vehicle
    try:
        return VehicleClass(raw)
    except ValueError:
        raise ValueError(
            f"unknown vehicle class {raw!r}; known: {', '.join(c.value for c in VehicleClass)}"
        ) from None


def _checked_km(station: ServiceStation, km: float) -> float:
    if not isinstance(km, int | float) or math.isnan(km) or km < 0:
        raise ValueError(f"distance to station {station.id} must be a number >= 0, got {km!r}")
    return float(km)


def _check_hours(hours: float) -> None:
    if not isinstance(hours, int | float) or math.isnan(hours) or hours < 0 or math.isinf(hours):
        raise ValueError(f"repair hours must be a finite number >= 0, got {hours!r}")


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, int | float) or math.isnan(threshold) or threshold <= 0:
        raise ValueError(f"replacement threshold hours must be > 0, got {threshold!r}")
