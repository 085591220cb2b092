"""Results: flat per-run records and their summary across replications (t-based intervals).

Definitions (all over breakdowns reported after the warm-up):

- dispatch delay = van assigned - reported; travel = van on site - assigned (includes a
  returning van's drive home); arrival (response) = on site - reported;
- share within the promise = breakdowns reached within ``promise.arrival_minutes`` / all
  breakdowns (escalated and unserved ones count as missed);
- escalated: no capable van covers the point at all, or still unassigned after
  ``escalate_after_minutes``; unserved: still open when the horizon ends;
- van utilisation = minutes busy (dispatched until home again) / measured minutes;
- cargo delay = delivered - (reported + direct loaded drive from the breakdown): the hours the
  breakdown cost the cargo; partner cost = the bookings' contract cost (a released truck: the
  call-out and the empty km it drove);
- replacement trips = trucks booked (released ones too); unneeded trips = booked for cargo
  whose repair ended within the threshold; needed cargo = cargo on board and a repair over the
  threshold; cargo missed = needed cargo that got no truck or got it late;
- missed-promise hours = per needed cargo, the hours past its deadline: the truck's lateness,
  or without a truck the cargo goes on with the repaired vehicle (van on site, or reported if
  no van came, + repair hours + the direct drive); missed-promise cost = those hours x
  ``replacement.downtime_cost_per_hour``; total cost = partner cost + missed-promise cost;
- offers (reported when the scenario has a ``[partner_offers]`` table or a sweep of partner
  terms; :mod:`simulations.partner_model`): rescue and truck offers made for
  measured breakdowns, of which declined and expired; partner rescue jobs (requests a provider
  took: their arrival counts as on site, for the promise too), their cost and mean arrival
  after the report; requests no provider could take; the delay added by declines = when the
  accepted offer was made - the first offer, mean over the jobs a partner took (for trucks
  the booked cargo); all partner cost = truck partner cost + partner rescue cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simulations.demand import Breakdowns
    from simulations.scenario import Scenario
    from simulations.tables import TravelTables


class Escalation(IntEnum):
    """Why a request went to a partner service instead of one of our vans."""

    NONE = 0
    NO_CAPABLE_VAN = 1
    """No van able to handle the request covers its point at all: escalated on arrival."""
    TIMEOUT = 2
    """Still without a van ``escalate_after_minutes`` after it was reported."""


@dataclass(frozen=True, eq=False)
class RunRecord:
    """What one run did, flat and immutable: the engine's output, the KPIs' input.

    Per request (``n`` breakdowns first, then their ``n`` follow-up tows at ``n + k``), per
    breakdown, per van, and the run's counters. Times are simulated minutes from the start
    (minute 0 = local midnight of day 0), ``nan`` when it never happened.
    """

    # per request (2n)
    reported_at: np.ndarray
    """A follow-up tow's is when the first van gave up on site."""
    assigned_at: np.ndarray
    on_site_at: np.ndarray
    van: np.ndarray
    """Van index, -1 when none was sent."""
    escalation: np.ndarray
    """:class:`Escalation` codes."""
    open_at_end: np.ndarray
    """Requests still waiting for a van when the horizon ended (sorted)."""
    # per breakdown (n)
    towed: np.ndarray
    followup_tow: np.ndarray
    """The first van could neither fix nor tow: a follow-up tow was requested."""
    replacement_requested_at: np.ndarray
    replacement_booked_at: np.ndarray
    replacement_delivered_at: np.ndarray
    replacement_cost_cny: np.ndarray
    replacement_lateness_minutes: np.ndarray
    replacement_failed: np.ndarray
    """No fitting truck, no partner in the province, or unreachable."""
    cargo_delay_minutes: np.ndarray
    """Delivered - (reported + direct loaded drive from the breakdown)."""
    replacement_pending: np.ndarray
    """Breakdowns still waiting for a truck (or for a company's answer) when the horizon ended
    (sorted)."""
    replacement_released_at: np.ndarray
    """When the diagnosis released an intake booking (a waiting request or a truck on its way);
    ``nan`` otherwise."""
    replacement_needed: np.ndarray
    """Cargo on board and true repair hours above the threshold."""
    # per van
    van_busy_minutes: np.ndarray
    """Busy (dispatched until home again) inside the measured window."""
    van_covers_demand: np.ndarray
    """The van's radius covers at least one demand point."""
    van_station: np.ndarray
    """Index of the van's station in ``tables.station_ids``."""
    # counters
    events: int
    dispatch_batches: int
    match_seconds: float
    replacement_batches: int
    # move-up (empty without it)
    move_up_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """When each move started (returns home included)."""
    move_up_km: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # partner rescue providers, per request (2n; empty without providers)
    partner_provider: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Index of the provider that took the request (``scenario.partner_rescue_providers``),
    -1: none."""
    partner_first_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    partner_accepted_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    partner_accepted_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """When the accepted offer was made (minus the first offer: the delay declines added)."""
    partner_job_end_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """When the provider is back at its base (its slot is free again)."""
    partner_cost_cny: np.ndarray = field(default_factory=lambda: np.zeros(0))
    partner_no_provider: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """No provider could take the request (coverage, capability, or all refused it)."""
    provider_peak_jobs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Per provider: the most slots held at once (offers in flight + jobs not ended)."""
    # the offer logs, one row per offer in the order made
    # (outcome: simulations.partner_model.OfferOutcome)
    rescue_offer_request: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rescue_offer_provider: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rescue_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rescue_offer_outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    truck_offer_breakdown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truck_offer_partner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Index into ``scenario.network.partners``."""
    truck_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    truck_offer_outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    truck_first_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per breakdown: the first truck offer for its cargo (``nan``: none)."""
    truck_accepted_offer_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Per breakdown: when the truck offer that was accepted was made."""

    def __post_init__(self) -> None:
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # a record, not state: nothing may change it

    @property
    def breakdown_count(self) -> int:
        return len(self.towed)


@dataclass(frozen=True, eq=False)
class RunResult:
    """One replication of one scenario variant."""

    scenario: str
    label: str
    replication: int
    seed: int
    kpis: dict[str, float]
    by_priority: dict[str, tuple[int, int]]
    """priority -> (breakdowns, reached within the promise)."""
    by_province: dict[str, tuple[int, int]]
    station_ids: tuple[str, ...]
    station_utilisation: np.ndarray
    daily_counts: np.ndarray
    """Breakdowns per measured day."""
    arrival_minutes: np.ndarray
    """Arrival times of the measured, served breakdowns (float32)."""
    perf: dict[str, float] = field(default_factory=dict)
    station_serves_demand: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Per station: one of its vans' radius covers a demand point of the scenario (the
    report's utilisation charts leave out the stations of other regions)."""


def _q(a: np.ndarray, q: float) -> float:
    return float(np.quantile(a, q)) if len(a) else math.nan


def _m(a: np.ndarray) -> float:
    return float(a.mean()) if len(a) else math.nan


def summarise_run(
    scenario: Scenario,
    tables: TravelTables,
    breakdowns: Breakdowns,
    record: RunRecord,
    *,
    replication: int,
    wall_seconds: float,
) -> RunResult:
    """The KPIs of one run from its record (definitions in the module docstring)."""
    n = len(breakdowns)
    warm = scenario.warmup_days * 1440.0
    measured_minutes = scenario.horizon_days * 1440.0
    in_window = breakdowns.t >= warm
    served = in_window & ~np.isnan(record.on_site_at[:n])
    delay = (record.assigned_at[:n] - breakdowns.t)[served]
    arrival = (record.on_site_at[:n] - breakdowns.t)[served]
    travel = arrival - delay
    promise = scenario.promise.arrival_minutes
    n_meas = int(in_window.sum())
    esc = record.escalation[:n][in_window]
    unserved = np.zeros(n, dtype=bool)
    unserved[record.open_at_end[record.open_at_end < n]] = True
    kpis: dict[str, float] = {
        "breakdowns": float(n_meas),
        "breakdowns_per_day": n_meas / scenario.horizon_days,
        "served": float(served.sum()),
        "escalated": float((esc != Escalation.NONE).sum()),
        "escalated_no_capable_van": float((esc == Escalation.NO_CAPABLE_VAN).sum()),
        "escalated_timeout": float((esc == Escalation.TIMEOUT).sum()),
        "unserved": float((unserved & in_window).sum()),
    }
    if scenario.dispatch.move_up:  # only then: runs without it keep their pinned KPI set
        kpis["move_ups"] = float((record.move_up_at >= warm).sum())
        kpis["move_up_km"] = float(record.move_up_km[record.move_up_at >= warm].sum())
    for name, arr in (("dispatch_delay", delay), ("travel", travel), ("arrival", arrival)):
        kpis[f"{name}_mean_min"] = _m(arr)
        for q in (50, 90, 95):
            kpis[f"{name}_p{q}_min"] = _q(arr, q / 100)
    denom = max(n_meas, 1)
    kpis["share_within_promise"] = float((arrival <= promise).sum()) / denom
    for m in scenario.promise.report_minutes:
        kpis[f"share_within_{m:g}_min"] = float((arrival <= m).sum()) / denom

    # tows
    tow_q = np.arange(n, 2 * n)
    tow_in = in_window & record.followup_tow
    tow_served = tow_in & ~np.isnan(record.on_site_at[tow_q])
    tow_wait = (record.on_site_at[tow_q] - record.reported_at[tow_q])[tow_served]
    kpis["tows"] = float((record.towed & in_window).sum())
    kpis["followup_tow_requests"] = float(tow_in.sum())
    kpis["followup_tow_escalated"] = float(
        (record.escalation[tow_q][tow_in] != Escalation.NONE).sum()
    )
    kpis["followup_tow_arrival_mean_min"] = _m(tow_wait)

    # replacements
    asked = in_window & ~np.isnan(record.replacement_requested_at)
    booked = asked & ~np.isnan(record.replacement_booked_at)
    kpis["replacements_requested"] = float(asked.sum())
    kpis["replacement_trips"] = float(booked.sum())
    released_waiting = ~booked & ~np.isnan(record.replacement_released_at)
    kpis["replacements_unmatched"] = float((asked & ~booked & ~released_waiting).sum())
    kpis["replacements_late"] = float((booked & (record.replacement_lateness_minutes > 0)).sum())
    delivered = booked & ~np.isnan(record.cargo_delay_minutes)
    cargo_delay_h = record.cargo_delay_minutes[delivered] / 60.0
    kpis["cargo_delay_mean_h"] = _m(cargo_delay_h)
    kpis["cargo_delay_p90_h"] = _q(cargo_delay_h, 0.9)
    pickup_h = (record.replacement_booked_at[booked] - breakdowns.t[booked]) / 60.0
    kpis["replacement_booked_after_mean_h"] = _m(pickup_h)
    kpis["partner_cost_cny"] = float(record.replacement_cost_cny[booked].sum())
    kpis["partner_cost_per_trip_cny"] = (
        kpis["partner_cost_cny"] / kpis["replacement_trips"] if booked.any() else math.nan
    )
    kpis.update(_policy_kpis(scenario, breakdowns, record, in_window, booked, delivered))
    if scenario.offers.declared:  # only then: runs without offers keep their pinned KPI set
        kpis.update(_offer_kpis(breakdowns, record, in_window, booked))

    # vans
    # vans whose radius covers at least one demand point (a regional run ignores the rest)
    util_van = record.van_busy_minutes[record.van_covers_demand] / measured_minutes
    kpis["vans"] = float(len(util_van))
    kpis["van_utilisation_mean"] = _m(util_van)
    kpis["van_utilisation_max"] = float(util_van.max()) if len(util_van) else math.nan
    n_st = len(tables.station_ids)
    busy_st = np.bincount(record.van_station, weights=record.van_busy_minutes, minlength=n_st)
    vans_st = np.bincount(record.van_station, minlength=n_st)
    with np.errstate(invalid="ignore", divide="ignore"):
        station_util = np.where(vans_st > 0, busy_st / (vans_st * measured_minutes), np.nan)
    serving_st = np.bincount(
        record.van_station, weights=record.van_covers_demand.astype(float), minlength=n_st
    )

    within = np.zeros(n, dtype=bool)
    within[served] = arrival <= promise
    by_priority: dict[str, tuple[int, int]] = {}
    pr = breakdowns.priority[in_window]
    wi = within[in_window]
    for p in np.unique(pr):
        sel = pr == p
        by_priority[f"{p:g}"] = (int(sel.sum()), int(wi[sel].sum()))
    prov = np.array(tables.points.province)[breakdowns.point[in_window]]
    by_province: dict[str, tuple[int, int]] = {}
    for p in np.unique(prov):
        sel = prov == p
        by_province[str(p)] = (int(sel.sum()), int(wi[sel].sum()))

    first_day = int(scenario.warmup_days)
    daily = breakdowns.daily_counts[first_day:]
    kpis["daily_breakdowns_var_to_mean"] = (
        float(daily.var(ddof=1) / daily.mean()) if len(daily) > 1 and daily.mean() > 0 else math.nan
    )
    events = float(record.events)
    return RunResult(
        scenario=scenario.name,
        label=scenario.label,
        replication=replication,
        seed=scenario.seed,
        kpis=kpis,
        by_priority=by_priority,
        by_province=by_province,
        station_ids=tables.station_ids,
        station_utilisation=station_util,
        daily_counts=daily,
        arrival_minutes=arrival.astype(np.float32),
        station_serves_demand=serving_st > 0,
        perf={
            "wall_seconds": wall_seconds,
            "events": events,
            "events_per_second": events / wall_seconds if wall_seconds > 0 else math.nan,
            "breakdowns_simulated": float(n),
            "dispatch_batches": float(record.dispatch_batches),
            "match_seconds": float(record.match_seconds),
            "replacement_batches": float(record.replacement_batches),
        },
    )


def _policy_kpis(
    scenario: Scenario,
    breakdowns: Breakdowns,
    record: RunRecord,
    in_window: np.ndarray,
    booked: np.ndarray,
    delivered: np.ndarray,
) -> dict[str, float]:
    """What the booking policy bought (definitions in the module docstring)."""
    n = len(breakdowns)
    spec = scenario.replacement
    needed = record.replacement_needed & in_window
    on_time = delivered & (record.replacement_lateness_minutes <= 0)
    truck_late_h = np.where(delivered, record.replacement_lateness_minutes / 60.0, np.nan)
    start = record.on_site_at[:n]
    start = np.where(np.isnan(start), breakdowns.t, start)
    own_late_h = (start - breakdowns.t) / 60.0 + breakdowns.repair_hours - spec.deadline_slack_hours
    late_h = np.where(delivered, truck_late_h, np.maximum(own_late_h, 0.0))
    missed_hours = float(late_h[needed].sum())
    missed_cost = missed_hours * spec.downtime_cost_per_hour
    partner_cost = float(record.replacement_cost_cny[booked].sum())
    return {
        "replacements_needed": float(needed.sum()),
        "replacements_released": float((booked & ~np.isnan(record.replacement_released_at)).sum()),
        "unneeded_trips": float((booked & ~record.replacement_needed).sum()),
        "cargo_missed": float((needed & ~on_time).sum()),
        "cargo_missed_no_truck": float((needed & ~delivered).sum()),
        "missed_promise_hours": missed_hours,
        "missed_promise_cost_cny": missed_cost,
        "total_cost_cny": partner_cost + missed_cost,
    }


def _offer_kpis(
    breakdowns: Breakdowns, record: RunRecord, in_window: np.ndarray, booked: np.ndarray
) -> dict[str, float]:
    """What asking partners cost (definitions in the module docstring)."""
    n = len(breakdowns)
    declined, expired = 1, 2  # simulations.partner_model.OfferOutcome
    request_in = np.concatenate([in_window, in_window])
    out: dict[str, float] = {}
    rows = request_in[record.rescue_offer_request]
    outcome = record.rescue_offer_outcome[rows]
    out["rescue_offers"] = float(rows.sum())
    out["rescue_offer_declines"] = float((outcome == declined).sum())
    out["rescue_offer_expiries"] = float((outcome == expired).sum())
    has_partner = len(record.partner_provider) == 2 * n
    took = (record.partner_provider >= 0) & request_in if has_partner else np.zeros(2 * n, bool)
    out["partner_rescue_jobs"] = float(took.sum())
    out["partner_rescue_no_provider"] = float(
        (record.partner_no_provider & request_in).sum() if has_partner else 0.0
    )
    out["partner_rescue_cost_cny"] = (
        float(record.partner_cost_cny[took].sum()) if took.any() else 0.0
    )
    if took.any():
        reported = record.reported_at[took]
        out["partner_rescue_arrival_mean_min"] = _m(record.on_site_at[took] - reported)
        out["rescue_decline_delay_mean_min"] = _m(
            record.partner_accepted_offer_at[took] - record.partner_first_offer_at[took]
        )
    else:
        out["partner_rescue_arrival_mean_min"] = math.nan
        out["rescue_decline_delay_mean_min"] = math.nan
    rows = in_window[record.truck_offer_breakdown]
    outcome = record.truck_offer_outcome[rows]
    out["truck_offers"] = float(rows.sum())
    out["truck_offer_declines"] = float((outcome == declined).sum())
    out["truck_offer_expiries"] = float((outcome == expired).sum())
    out["truck_decline_delay_mean_min"] = _m(
        (record.truck_accepted_offer_at - record.truck_first_offer_at)[booked]
    )
    out["partner_cost_all_cny"] = float(record.replacement_cost_cny[booked].sum()) + float(
        out["partner_rescue_cost_cny"]
    )
    return out


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float
    """Half-width of the t-based confidence interval (nan with one replication)."""
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean and Student-t confidence half-width of independent replications (nan ignored)."""
    from scipy import stats

    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if not len(a):
        return Estimate(math.nan, math.nan, 0)
    if len(a) < 2:
        return Estimate(float(a[0]), math.nan, 1)
    sem = float(a.std(ddof=1)) / math.sqrt(len(a))
    t = float(stats.t.ppf(0.5 + confidence / 2, len(a) - 1))
    return Estimate(float(a.mean()), t * sem, len(a))


@dataclass(frozen=True, eq=False)
class Summary:
    """All replications of one scenario variant."""

    scenario: str
    label: str
    runs: tuple[RunResult, ...]
    confidence: float = 0.95

    def estimate(self, kpi: str) -> Estimate:
        return t_interval([r.kpis[kpi] for r in self.runs], self.confidence)

    def estimates(self) -> dict[str, Estimate]:
        return {k: self.estimate(k) for k in self.runs[0].kpis}

    def by_province(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = {}
        for r in self.runs:
            for k, (n, w) in r.by_province.items():
                acc = out.setdefault(k, [0, 0])
                acc[0] += n
                acc[1] += w
        return {k: (v[0], v[1]) for k, v in sorted(out.items())}

    def by_priority(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = {}
        for r in self.runs:
            for k, (n, w) in r.by_priority.items():
                acc = out.setdefault(k, [0, 0])
                acc[0] += n
                acc[1] += w
        return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: float(kv[0]))}

    def station_utilisation(self) -> np.ndarray:
        return np.nanmean(np.vstack([r.station_utilisation for r in self.runs]), axis=0)

    def station_serves_demand(self) -> np.ndarray:
        """Stations whose vans cover some of the scenario's demand (all, if unknown)."""
        serves = self.runs[0].station_serves_demand
        if len(serves) != len(self.runs[0].station_ids):
            return np.ones(len(self.runs[0].station_ids), dtype=bool)
        return np.asarray(serves, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        from fleet.geography import province_name

        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 6)

        util = self.station_utilisation()
        return {
            "scenario": self.scenario,
            "variant": self.label,
            "replications": len(self.runs),
            "confidence": self.confidence,
            "kpis": {
                k: {"mean": num(e.mean), "ci_half_width": num(e.half_width), "n": e.n}
                for k, e in self.estimates().items()
            },
            "per_replication": [
                {
                    "replication": r.replication,
                    "kpis": {k: num(v) for k, v in r.kpis.items()},
                    "perf": {k: num(v) for k, v in r.perf.items()},
                }
                for r in self.runs
            ],
            "share_within_promise_by_priority": {
                k: {"breakdowns": n, "within": w, "share": num(w / n if n else math.nan)}
                for k, (n, w) in self.by_priority().items()
            },
            "share_within_promise_by_province": {
                k: {
                    "name": province_name(k),
                    "breakdowns": n,
                    "within": w,
                    "share": num(w / n if n else math.nan),
                }
                for k, (n, w) in self.by_province().items()
            },
            "station_utilisation": {
                sid: num(float(u)) for sid, u in zip(self.runs[0].station_ids, util, strict=True)
            },
        }
