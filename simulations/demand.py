"""Breakdown streams: when, where, which vehicle, what fault, what cargo.

Everything a breakdown will turn out to be is drawn up front, one independent random stream per
process (``numpy.random.SeedSequence(seed, spawn_key=(replication,)).spawn(...)``), so runs of
the same scenario with more or fewer vans see the very same breakdowns (common random numbers)
and a replication gives the same numbers whether it runs alone, in a process pool or on Ray.

- Daily counts: Poisson(rate x S_d x G_d), G_d ~ Gamma(k, 1/k) with k = rate / (dispersion - 1),
  so variance / mean of daily counts = ``dispersion`` (1 = a plain Poisson process); S_d the
  day's month x weekday factor (:mod:`simulations.seasons`, 1 by default).
- Time of day: hour by the (real) hourly profile, uniform within the hour.
- Place: a demand point by population weight; vehicle class by the mix; fault by the catalogue's
  shares; on-site fix ~ Bernoulli(p_on_site_fix) with on-site / workshop hours from the fault's
  distributions; cargo by class (ASSUMPTIONS below), destination a prefecture seat by population.
- The technician's figure at the diagnosis: the true repair hours times exp(sigma z), z standard
  normal, sigma ``dispatch.triage.DIAGNOSIS_SIGMA`` (the spread the triage assumes), drawn for
  every breakdown from its own stream so that the booking policy changes no other draw.
- Service contract (only with ``demand.contract_mix``): by the mix's shares, from its own
  stream, so that changing the mix or a contract's terms changes no other draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dispatch.replacement import CargoKind
from dispatch.triage import DIAGNOSIS_SIGMA, estimate_repair
from fleet.model import VehicleClass
from simulations.scenario import FLAT_MONTHS, FLAT_WEEKDAYS, Scenario
from simulations.seasons import daily_season_factors
from simulations.tables import TravelTables

STREAMS = (
    "daily_multiplier",
    "daily_count",
    "time_of_day",
    "place",
    "vehicle",
    "fault",
    "repair_outcome",
    "repair_hours",
    "cargo",
    "destination",
    "diagnosis",
    "contract",  # last: adding a stream at the end leaves the others' draws unchanged
)
VEHICLE_CLASSES = tuple(VehicleClass)
CARGO_KINDS = tuple(CargoKind)

# ASSUMPTIONS (no public data): cargo kind and weight by vehicle class.
_CARGO_KIND_MIX: dict[VehicleClass, tuple[tuple[CargoKind, float], ...]] = {
    VehicleClass.TRACTOR: ((CargoKind.SEMI_TRAILER, 1.0),),
    VehicleClass.RIGID_TRUCK: (
        (CargoKind.LOOSE, 0.5),
        (CargoKind.PALLETISED, 0.4),
        (CargoKind.OVERSIZE, 0.1),
    ),
    VehicleClass.LIGHT_TRUCK: ((CargoKind.LOOSE, 0.7), (CargoKind.PALLETISED, 0.3)),
    VehicleClass.VAN: ((CargoKind.LOOSE, 1.0),),
    VehicleClass.CAR: ((CargoKind.LOOSE, 1.0),),
}
_CARGO_WEIGHT_T: dict[VehicleClass, tuple[float, float]] = {
    VehicleClass.TRACTOR: (10.0, 35.0),
    VehicleClass.RIGID_TRUCK: (3.0, 15.0),
    VehicleClass.LIGHT_TRUCK: (0.5, 3.0),
    VehicleClass.VAN: (0.2, 1.5),
    VehicleClass.CAR: (0.1, 0.5),
}


@dataclass(frozen=True, eq=False)
class Breakdowns:
    """One row per breakdown, sorted by report time (minutes from the start)."""

    t: np.ndarray
    point: np.ndarray
    vehicle: np.ndarray  # index into VEHICLE_CLASSES
    fault: np.ndarray  # index into the catalogue
    fixed_on_site: np.ndarray  # bool
    on_site_hours: np.ndarray
    workshop_hours: np.ndarray
    technician_hours: np.ndarray
    """The technician's figure for the repair, drawn around the true hours."""
    needs_tow: np.ndarray  # triage at intake
    priority: np.ndarray
    has_cargo: np.ndarray
    cargo_kind: np.ndarray  # index into CARGO_KINDS
    cargo_t: np.ndarray
    destination: np.ndarray
    daily_counts: np.ndarray
    contract: np.ndarray | None = None
    """Index into ``scenario.demand.contract_mix``; ``None`` when the scenario has no mix."""

    def __len__(self) -> int:
        return len(self.t)

    @property
    def repair_hours(self) -> np.ndarray:
        """The true repair hours: on site when fixed there, else in the workshop."""
        return np.where(self.fixed_on_site, self.on_site_hours, self.workshop_hours)


def replication_streams(seed: int, replication: int) -> dict[str, np.random.Generator]:
    """The independent random streams of one replication."""
    root = np.random.SeedSequence(seed, spawn_key=(replication,))
    return {
        name: np.random.default_rng(child)
        for name, child in zip(STREAMS, root.spawn(len(STREAMS)), strict=True)
    }


def daily_counts(scenario: Scenario, streams: dict[str, np.random.Generator]) -> np.ndarray:
    """The breakdowns of each simulated day (warm-up included, the last day whole), the first
    draws of :func:`draw_breakdowns` (from the ``daily_multiplier`` and ``daily_count``
    streams only: cheap, and without touching the other streams). The runner orders a sweep's
    tasks by their sum, the main driver of a replication's run time."""
    spec = scenario.demand
    days = math.ceil(scenario.warmup_days + scenario.horizon_days)
    rate = spec.breakdowns_per_day
    if spec.dispersion > 1.0:
        k = rate / (spec.dispersion - 1.0)
        mult = streams["daily_multiplier"].gamma(k, 1.0 / k, size=days)
    else:
        mult = np.ones(days)
    if spec.month_factors != FLAT_MONTHS or spec.weekday_factors != FLAT_WEEKDAYS:
        mult = mult * daily_season_factors(
            spec.start_date, days, spec.month_factors, spec.weekday_factors
        )
    counts: np.ndarray = streams["daily_count"].poisson(rate * mult)
    return counts


def draw_breakdowns(
    scenario: Scenario, tables: TravelTables, streams: dict[str, np.random.Generator]
) -> Breakdowns:
    spec = scenario.demand
    days = math.ceil(scenario.warmup_days + scenario.horizon_days)
    counts = daily_counts(scenario, streams)
    n = int(counts.sum())
    profile = np.asarray(spec.hourly_profile, dtype=float)
    rng_t = streams["time_of_day"]
    hour = rng_t.choice(24, size=n, p=profile / profile.sum())
    frac = rng_t.random(n)
    day = np.repeat(np.arange(days), counts)
    t = day * 1440.0 + (hour + frac) * 60.0
    order = np.argsort(t, kind="stable")
    t = t[order]
    keep = t < scenario.total_minutes
    t = t[keep]
    n = len(t)

    point = streams["place"].choice(len(tables.points), size=n, p=tables.points.weight)
    mix = dict(spec.vehicle_mix)
    class_p = np.array([mix.get(c, 0.0) for c in VEHICLE_CLASSES], dtype=float)
    vehicle = streams["vehicle"].choice(len(VEHICLE_CLASSES), size=n, p=class_p / class_p.sum())

    catalogue = scenario.repairs.catalogue
    faults = catalogue.faults
    shares = np.array([f.share for f in faults], dtype=float)
    fault = streams["fault"].choice(len(faults), size=n, p=shares / shares.sum())
    p_fix = np.array([f.p_on_site_fix for f in faults])
    fixed = streams["repair_outcome"].random(n) < p_fix[fault]
    on_site = np.zeros(n)
    workshop = np.zeros(n)
    rng_h = streams["repair_hours"]
    for fi, f in enumerate(faults):
        idx = np.nonzero(fault == fi)[0]
        if len(idx):
            on_site[idx] = f.on_site_hours.sample(rng_h, len(idx))
            workshop[idx] = f.workshop_hours.sample(rng_h, len(idx))

    true_hours = np.where(fixed, on_site, workshop)
    technician = true_hours * np.exp(DIAGNOSIS_SIGMA * streams["diagnosis"].standard_normal(n))

    # triage at intake, once per (fault, class)
    tow_tab = np.zeros((len(faults), len(VEHICLE_CLASSES)), dtype=bool)
    prio_tab = np.ones((len(faults), len(VEHICLE_CLASSES)))
    for fi, f in enumerate(faults):
        for ci, c in enumerate(VEHICLE_CLASSES):
            est = estimate_repair(f, c)
            tow_tab[fi, ci] = est.needs_tow
            prio_tab[fi, ci] = est.priority

    rng_c = streams["cargo"]
    cargo_share = dict(spec.cargo_share)
    share_by_class = np.array([cargo_share.get(c, 0.0) for c in VEHICLE_CLASSES])
    u_has, u_kind, u_weight = rng_c.random(n), rng_c.random(n), rng_c.random(n)
    has_cargo = u_has < share_by_class[vehicle]
    cargo_kind = np.zeros(n, dtype=np.int64)
    cargo_t = np.zeros(n)
    for ci, c in enumerate(VEHICLE_CLASSES):
        idx = np.nonzero(vehicle == ci)[0]
        if not len(idx):
            continue
        kinds = _CARGO_KIND_MIX[c]
        cum = np.cumsum([w for _, w in kinds])
        pick = np.minimum(np.searchsorted(cum / cum[-1], u_kind[idx], side="right"), len(kinds) - 1)
        cargo_kind[idx] = np.array([CARGO_KINDS.index(k) for k, _ in kinds])[pick]
        lo, hi = _CARGO_WEIGHT_T[c]
        cargo_t[idx] = lo + (hi - lo) * u_weight[idx]
    destination = streams["destination"].choice(
        len(tables.dest_weight), size=n, p=tables.dest_weight
    )
    contract = None
    if spec.contract_mix:
        contract_p = np.array([share for _, share in spec.contract_mix], dtype=float)
        contract = streams["contract"].choice(
            len(contract_p), size=n, p=contract_p / contract_p.sum()
        )
    return Breakdowns(
        t=t,
        point=point.astype(np.int64),
        vehicle=vehicle.astype(np.int64),
        fault=fault.astype(np.int64),
        fixed_on_site=fixed,
        on_site_hours=on_site,
        workshop_hours=workshop,
        technician_hours=technician,
        needs_tow=tow_tab[fault, vehicle],
        priority=prio_tab[fault, vehicle],
        has_cargo=has_cargo,
        cargo_kind=cargo_kind,
        cargo_t=cargo_t,
        destination=destination.astype(np.int64),
        daily_counts=np.bincount((t // 1440).astype(np.int64), minlength=days),
        contract=None if contract is None else contract.astype(np.int64),
    )
