"""Triage: from a reported fault to a repair estimate, a priority and the replacement decision.

The model (assumptions, see docs/dispatch.md):

- the repair is on site with probability ``p_on_site_fix`` (time ``on_site_hours``), otherwise
  in a workshop (``workshop_hours``); the catalogue's figures assume the parts are at hand;
- parts of the fault that the nearest capable station does not stock are ordered in parallel and
  delay either path by the longest missing part's ``lead_time_hours``;
- a tow is needed when an on-site fix is less likely than not (``p_on_site_fix < 0.5``) or the
  fault is accident damage;
- the request needs a replacement truck when the expected repair time exceeds the contract
  threshold (24 h by default, per contract e.g. 8 h): decided at intake, and again with the
  technician's figure by :func:`apply_diagnosis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from fleet.faults import FaultCatalogue, FaultType, load_fault_catalogue
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
    CustomerVehicle,
    FaultCategory,
    FaultGrade,
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
P90 = 0.9


@dataclass(frozen=True)
class TriageContext:
    """What the estimate depends on besides the fault and the vehicle."""

    catalogue: FaultCatalogue | None = None
    """``None`` = the bundled catalogue."""
    nearest_station: ServiceStation | None = None
    """Nearest station able to repair the vehicle; ``None`` = parts assumed available."""
    threshold_hours: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS
    """The customer's contract threshold for a replacement truck."""

    def __post_init__(self) -> None:
        _check_threshold(self.threshold_hours)


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
    source: str = "catalogue"
    """``catalogue`` at intake, ``diagnosis`` once the technician has given a figure."""


def needs_replacement(hours: float, threshold: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS) -> bool:
    """True when a repair of ``hours`` exceeds the contract ``threshold`` (strictly)."""
    _check_hours(hours)
    _check_threshold(threshold)
    return hours > threshold


def priority_for(grade: FaultGrade, vehicle_class: VehicleClass) -> float:
    return GRADE_PRIORITY[grade] * CLASS_PRIORITY_FACTOR[vehicle_class]


def estimate_repair(
    fault: FaultType | str | None,
    vehicle: CustomerVehicle | VehicleClass | str,
    context: TriageContext | None = None,
) -> RepairEstimate:
    """The intake estimate for ``fault`` (a catalogue entry, its code, or ``None`` = UNKNOWN)."""
    ctx = context or TriageContext()
    catalogue = ctx.catalogue or load_fault_catalogue()
    vehicle_class = _vehicle_class(vehicle)
    if not isinstance(fault, FaultType):
        try:
            fault = catalogue.get(fault)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    missing: tuple[str, ...] = ()
    lead = 0.0
    if ctx.nearest_station is not None:
        missing = tuple(p for p in fault.parts if p not in ctx.nearest_station.parts_in_stock)
        lead = max((_part_lead(catalogue, p) for p in missing), default=0.0)
    p = fault.p_on_site_fix
    expected = fault.expected_repair_hours() + lead
    p90 = lead + _mixture_quantile(fault, P90)
    tow = p < TOW_IF_P_ON_SITE_BELOW or fault.category is FaultCategory.ACCIDENT_DAMAGE
    return RepairEstimate(
        fault_code=fault.code,
        vehicle_class=vehicle_class,
        expected_hours=expected,
        p90_hours=p90,
        p_on_site_fix=p,
        needs_tow=tow,
        missing_parts=missing,
        parts_lead_time_hours=lead,
        priority=priority_for(fault.grade, vehicle_class),
        threshold_hours=ctx.threshold_hours,
        needs_replacement=needs_replacement(expected, ctx.threshold_hours),
    )


def apply_diagnosis(
    estimate: RepairEstimate, hours: float, threshold: float | None = None
) -> RepairEstimate:
    """The estimate after the technician's on-site diagnosis of ``hours`` (replaces the
    catalogue figures; ``threshold`` defaults to the one of the estimate)."""
    _check_hours(hours)
    limit = estimate.threshold_hours if threshold is None else threshold
    return replace(
        estimate,
        expected_hours=float(hours),
        p90_hours=float(hours),
        threshold_hours=limit,
        needs_replacement=needs_replacement(hours, limit),
        source="diagnosis",
    )


def _mixture_quantile(fault: FaultType, q: float) -> float:
    """Quantile of on-site (prob p) / workshop (1 - p) repair time, by bisection."""
    p = fault.p_on_site_fix

    def exceeds(t: float) -> float:
        return p * fault.on_site_hours.prob_exceeds(t) + (
            1 - p
        ) * fault.workshop_hours.prob_exceeds(t)

    # The mixture's q-quantile lies between the components' q-quantiles.
    a, b = fault.on_site_hours.quantile(q), fault.workshop_hours.quantile(q)
    lo, hi = min(a, b), max(a, b)
    for _ in range(100):
        mid = (lo + hi) / 2
        if exceeds(mid) > 1 - q:
            lo = mid
        else:
            hi = mid
    return hi


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


def _check_hours(hours: float) -> None:
    if not isinstance(hours, int | float) or math.isnan(hours) or hours < 0 or math.isinf(hours):
        raise ValueError(f"repair hours must be a finite number >= 0, got {hours!r}")


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, int | float) or math.isnan(threshold) or threshold <= 0:
        raise ValueError(f"replacement threshold hours must be > 0, got {threshold!r}")
