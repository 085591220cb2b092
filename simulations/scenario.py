"""Simulation scenarios: one TOML file says everything a run needs.

The file format (every key optional unless marked; defaults in brackets) is documented in
``docs/simulations.md`` and by the shipped ``simulations/scenarios/*.toml``. In short::

    name = "national"            # [file stem]
    seed = 2026                  # [2026]
    horizon_days = 365           # [365] measured days
    warmup_days = 7              # [7] simulated first, not measured
    replications = 1             # [1]

    # The network: exactly the keys of a network file (fleet.scenario): base, replace,
    # [[stations]], [[vans]], [[partners]], [[trucks]], [[rescue_providers]], ...;
    # or network_file = "other.toml".
    base = "china-national"
    vans_per_station = 2         # optional: every station's van list cycled to this count
    service_radius_km = 60       # optional: every van's service radius (km)

    [demand]   breakdowns_per_day, dispersion, hourly_profile, points (county_seats,
               prefecture_seats, stations, roads), road_spacing_km, urban_share, provinces,
               vehicle_mix, cargo_share, contract_mix = {contract id = share},
               [[demand.points]] (lat, lon, weight)
    [repairs]  catalogue = "default" | path, [[repairs.faults]] (fault-catalogue entries),
               diagnosis_minutes, tow_hookup_minutes
    [travel]   provider = "auto" | "road" | "great-circle", circuity, speeds = {profile = km/h}
    [dispatch] policy = "batch-optimal" | "nearest-idle", batch_minutes,
               escalate_after_minutes, respect_shifts, trigger = "interval" | "arrival",
               objective = "eta" | "promise", after_job = "return-home" | "next-from-site",
               move_up
    [promise]  arrival_minutes, report_minutes
    [move_up]  max_moves_per_hour, max_move_km, check_minutes, min_gain
    [crews]    turnout_minutes, hours_per_day, first_shift_hour, night_on_call,
               on_call_turnout_minutes
    [replacement] threshold_hours, batch_minutes, deadline_slack_hours, allow_late, policy,
               downtime_cost_per_hour
    [partner_offers] rescue_providers (offer jobs to the network's rescue providers: false),
               acceptance_probability, response_delay_minutes (every partner's), cny_per_minute,
               [[partner_offers.partners]] (id, acceptance_probability, response_delay_minutes),
               [[partner_offers.providers]] (id, acceptance_probability, response_delay_minutes)
    [sweep]    key = [values...] (cartesian product; keys in SWEEP_KEYS)

The accepted keys, their types, ranges and defaults are the schemas below
(:data:`SCENARIO_KEYS`, :data:`DEMAND_KEYS`, ...), checked by the validator shared with network
files and fault catalogues (:mod:`fleet.toml_schema`). The whole file is checked before
anything is built; the first error names the file, the line and the key
(``x.toml line 12: demand.breakdowns_per_day must be > 0, got -5``), and nothing runs. Relative
paths inside a scenario are relative to the scenario file.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from dispatch.partner_rescue import DEFAULT_CNY_PER_MINUTE
from dispatch.triage import ReplacementPolicy
from fleet.faults import (
    FAULT_KEYS,
    PART_KEYS,
    FaultCatalogue,
    catalogue_from_values,
    load_fault_catalogue,
)
from fleet.geography import hourly_breakdown_profile, mainland_provinces, province_at
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
    PartnerRescueProvider,
    RescueVan,
    VehicleClass,
)
from fleet.network import Network
from fleet.scenario import NETWORK_KEYS, load_network_file, network_from_values
from fleet.toml_schema import (
    KeyPath,
    ScenarioError,
    Schema,
    TomlDocument,
    anything,
    boolean,
    convert,
    custom,
    either,
    entries,
    file_path,
    integer,
    list_of,
    mapping,
    not_all_zero,
    number,
    one_of,
    string,
    table,
)
from routing.provider import PROFILES

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""The shipped scenarios (``national``, ``shandong``, ``mmc_check``)."""

POLICIES = ("batch-optimal", "nearest-idle")
TRIGGERS = ("interval", "arrival")
"""When batch-optimal matches: every ``batch_minutes`` while requests wait (``interval``), or
as production does, at each event that can change a decision (``arrival``)."""
OBJECTIVES = ("eta", "promise")
"""``dispatch.MatchParams.objective``: weighted ETA, or the count within the promise first."""
AFTER_JOB = ("return-home", "next-from-site")
"""Where a van's next job starts from while it drives home empty after a job."""
PROVIDERS = ("auto", "road", "great-circle")
POINT_SETS = ("county_seats", "prefecture_seats", "stations", "roads")
"""Generated demand points; ``[[demand.points]]`` gives them explicitly instead."""

DEFAULT_VEHICLE_MIX: dict[str, float] = {
    "tractor": 0.55,
    "rigid_truck": 0.25,
    "light_truck": 0.12,
    "van": 0.05,
    "car": 0.03,
}
"""Breakdowns by vehicle class (ASSUMPTION: a heavy-truck maker's customer base)."""
DEFAULT_CARGO_SHARE: dict[str, float] = {
    "tractor": 0.9,
    "rigid_truck": 0.8,
    "light_truck": 0.6,
    "van": 0.5,
    "car": 0.0,
}
"""Share of breakdowns with cargo on board, by vehicle class (ASSUMPTION)."""

SWEEP_ALIASES = {"vans": "vans_per_station", "rate": "breakdowns_per_day"}

FLAT_MONTHS = (1.0,) * 12
FLAT_WEEKDAYS = (1.0,) * 7

__all__ = ["Scenario", "ScenarioError", "load_scenario", "resolve_scenario"]


@dataclass(frozen=True)
class DemandPoint:
    lat: float
    lon: float
    weight: float
    province_adcode: str
    name: str = ""


@dataclass(frozen=True)
class DemandSpec:
    breakdowns_per_day: float = 560.0
    dispersion: float = 2.3
    """Variance / mean of daily counts (1 = Poisson); a gamma-Poisson daily multiplier."""
    hourly_profile: tuple[float, ...] = field(default_factory=hourly_breakdown_profile)
    points: str = "county_seats"
    road_spacing_km: float = 20.0
    """``points = "roads"``: one demand point per cell of this size with road in it."""
    urban_share: float = 0.3
    """``points = "roads"``: the share of breakdowns at county seats (towns), the rest on roads
    (ASSUMPTION; no public split exists)."""
    explicit_points: tuple[DemandPoint, ...] = ()
    month_factors: tuple[float, ...] = (1.0,) * 12
    """January first; normalised to mean 1 (:mod:`simulations.seasons`)."""
    weekday_factors: tuple[float, ...] = (1.0,) * 7
    """Monday first; normalised to mean 1."""
    start_date: dt.date = dt.date(2026, 1, 1)
    """The calendar date of simulated day 0 (for the seasonal factors)."""
    provinces: frozenset[str] = frozenset()
    """Restrict generated points to these province adcodes (empty = all)."""
    vehicle_mix: tuple[tuple[VehicleClass, float], ...] = tuple(
        (VehicleClass(k), v) for k, v in DEFAULT_VEHICLE_MIX.items()
    )
    cargo_share: tuple[tuple[VehicleClass, float], ...] = tuple(
        (VehicleClass(k), v) for k, v in DEFAULT_CARGO_SHARE.items()
    )
    contract_mix: tuple[tuple[str, float], ...] = ()
    """Breakdowns by service contract (ids of the network's contracts), shares normalised;
    empty = every breakdown under the scenario's ``[replacement]`` threshold and the standard
    booking probability (the behaviour before contracts reached the simulation)."""


@dataclass(frozen=True)
class RepairSpec:
    catalogue: FaultCatalogue = field(default_factory=load_fault_catalogue)
    diagnosis_minutes: float = 30.0
    """On site before a van gives up on an on-site fix (then it tows or calls a wrecker)."""
    tow_hookup_minutes: float = 30.0


@dataclass(frozen=True)
class TravelSpec:
    provider: str = "auto"
    circuity: float = 1.2
    """Great-circle provider only."""
    speeds_kmh: tuple[tuple[str, float], ...] = ()
    """Overrides of ``routing.PROFILES`` speeds."""

    def profile(self, name: str) -> Any:
        base = PROFILES[name]
        for key, speed in self.speeds_kmh:
            if key == name:
                return replace(base, speed_kmh=speed)
        return base


@dataclass(frozen=True)
class DispatchSpec:
    policy: str = "batch-optimal"
    batch_minutes: float = 5.0
    escalate_after_minutes: float = 240.0
    """A request still without a van after this long goes to a partner service (escalated)."""
    respect_shifts: bool = True
    trigger: str = "interval"
    objective: str = "eta"
    after_job: str = "return-home"
    move_up: bool = False


@dataclass(frozen=True)
class MoveUpSpec:
    """``[move_up]``: limits of the repositioning (:mod:`simulations.move_up`)."""

    max_moves_per_hour: int = 4
    max_move_km: float = 100.0
    check_minutes: float = 15.0
    min_gain: float = 0.0005
    """Share of the demand a move (and a coverage drop) must be worth."""


@dataclass(frozen=True)
class CrewSpec:
    """``[crews]``: see :mod:`simulations.crews`."""

    turnout_minutes: float = 0.0
    hours_per_day: float = 24.0
    """Crew hours a day at stations open 24 h, from ``first_shift_hour``."""
    first_shift_hour: float = 6.0
    night_on_call: bool = False
    on_call_turnout_minutes: float = 30.0


@dataclass(frozen=True)
class PromiseSpec:
    arrival_minutes: float = 120.0
    report_minutes: tuple[float, ...] = (60.0, 90.0, 120.0, 180.0)


ORACLE_AT_DIAGNOSIS = "oracle-at-diagnosis"
"""The simulation's rule before booking policies existed: a truck is requested at the diagnosis
when the true repair hours exceed the threshold. Not a policy anyone can run (it needs the true
hours), nor the bound (the ``oracle`` books at intake); the default so that results stay
comparable with earlier runs."""
DEFAULT_DOWNTIME_COST_PER_HOUR_CNY = 500.0
"""What an hour of cargo past its deadline costs (ASSUMPTION: the makers' downtime programmes
and the cargo contracts pay per day off the road; 500 CNY/h = 12,000 CNY/day, between the demo
contracts' basic 150 and premium 800 CNY/h)."""


def parse_replacement_policy(text: Any) -> str:
    """The canonical name of a simulated booking policy: a ``dispatch.triage.ReplacementPolicy``
    name (``intake-mean``, ``intake-risk``, ``intake-p0.5``, ``diagnosis``, ``oracle``) or
    ``oracle-at-diagnosis``; a ``ValueError`` names the value and the choices otherwise."""
    if isinstance(text, str) and text.strip().lower() == ORACLE_AT_DIAGNOSIS:
        return ORACLE_AT_DIAGNOSIS
    try:
        return ReplacementPolicy.parse(text).name
    except ValueError as exc:
        unknown = str(exc).startswith("unknown")
        raise ValueError(f"{exc}, {ORACLE_AT_DIAGNOSIS}" if unknown else str(exc)) from None


@dataclass(frozen=True)
class ReplacementSpec:
    threshold_hours: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS
    batch_minutes: float = 15.0
    deadline_slack_hours: float = 12.0
    """Cargo deadline = breakdown + direct loaded drive + this slack."""
    allow_late: bool = True
    policy: str = ORACLE_AT_DIAGNOSIS
    """When a truck is booked (:func:`parse_replacement_policy`)."""
    downtime_cost_per_hour: float = DEFAULT_DOWNTIME_COST_PER_HOUR_CNY
    """CNY per hour that needed cargo is past its deadline (the missed-promise cost)."""


@dataclass(frozen=True)
class OfferTerms:
    """How a partner answers offers in the simulation (``acceptance_probability`` and
    ``response_delay_minutes`` of ``[partner_offers]`` and its per-company and per-provider
    entries): it answers ``response_delay_minutes`` after the offer and accepts with the
    probability; an answer due at or after the offer's expiry (the partner's
    ``promised_response_minutes``) never comes: the offer expires then."""

    acceptance_probability: float = 1.0
    response_delay_minutes: float = 0.0

    def __post_init__(self) -> None:
        p, d = self.acceptance_probability, self.response_delay_minutes
        if not 0.0 < p <= 1.0:
            raise ValueError(f"acceptance_probability must be > 0 and <= 1, got {p!r}")
        if not d >= 0.0:
            raise ValueError(f"response_delay_minutes must be >= 0, got {d!r}")


@dataclass(frozen=True)
class PartnerOfferSpec:
    """Partners in the simulation (:mod:`simulations.partner_model`), ``[partner_offers]``:
    whether escalated requests are offered to the network's partner rescue providers, and how
    every partner answers (the partner logistics companies offered replacement trucks, and the
    rescue providers). The defaults (no rescue offers, every truck offer accepted at once)
    reproduce the runs before offers."""

    rescue_providers: bool = False
    """Offer escalated requests to the network's rescue providers (``Network.rescue_providers``:
    the base network's and the scenario's own ``[[rescue_providers]]``). Off unless asked: the
    demo network's 62 providers are synthetic, so planning scenarios leave them out, and every
    figure measured before providers existed stays valid."""
    default_terms: OfferTerms = field(default_factory=OfferTerms)
    """Every partner's terms (truck companies and rescue providers) unless overridden."""
    partner_terms: tuple[tuple[str, OfferTerms], ...] = ()
    """Per partner company id (``[[partner_offers.partners]]``): its terms, for its trucks and
    for its rescue providers (a key the entry leaves out is the default's)."""
    provider_terms: tuple[tuple[str, OfferTerms], ...] = ()
    """Per rescue provider id (``[[partner_offers.providers]]``): its terms (a key the entry
    leaves out is its company's)."""
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE
    """The rescue ranking's exchange of partner cost for minutes (``dispatch.partner_rescue``)."""
    declared: bool = False
    """The scenario mentions partners' offers (``[partner_offers]`` or a sweep of their
    terms): the run reports the offer KPIs, even when every offer is accepted at once."""

    def terms_for_partner(self, partner_id: str) -> OfferTerms:
        for pid, terms in self.partner_terms:
            if pid == partner_id:
                return terms
        return self.default_terms

    def terms_for_provider(self, provider: PartnerRescueProvider) -> OfferTerms:
        for pid, terms in self.provider_terms:
            if pid == provider.id:
                return terms
        return self.terms_for_partner(provider.partner_id)

    @property
    def trucks_instant(self) -> bool:
        """Every truck offer is accepted the moment it is made (the runs before offers)."""
        plain = OfferTerms()
        return self.default_terms == plain and all(t == plain for _, t in self.partner_terms)

    def with_terms(self, **change: float) -> PartnerOfferSpec:
        """Every partner's terms (providers and truck companies) with ``change`` applied (the
        sweep keys ``partner_acceptance`` and ``partner_response_delay``)."""
        return replace(
            self,
            default_terms=replace(self.default_terms, **change),
            partner_terms=tuple((pid, replace(t, **change)) for pid, t in self.partner_terms),
            provider_terms=tuple((pid, replace(t, **change)) for pid, t in self.provider_terms),
            declared=True,
        )


@dataclass(frozen=True)
class Scenario:
    """An immutable, validated scenario."""

    name: str
    network: Network
    seed: int = 2026
    horizon_days: float = 365.0
    warmup_days: float = 7.0
    replications: int = 1
    demand: DemandSpec = field(default_factory=DemandSpec)
    repairs: RepairSpec = field(default_factory=RepairSpec)
    travel: TravelSpec = field(default_factory=TravelSpec)
    dispatch: DispatchSpec = field(default_factory=DispatchSpec)
    promise: PromiseSpec = field(default_factory=PromiseSpec)
    crews: CrewSpec = field(default_factory=CrewSpec)
    move_up: MoveUpSpec = field(default_factory=MoveUpSpec)
    replacement: ReplacementSpec = field(default_factory=ReplacementSpec)
    offers: PartnerOfferSpec = field(default_factory=PartnerOfferSpec)
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str = "<scenario>"
    label: str = ""
    """Which sweep variant this is (``vans_per_station=2``), empty for the base."""

    @property
    def partner_rescue_providers(self) -> tuple[PartnerRescueProvider, ...]:
        """The providers escalated requests are offered to: the network's when
        ``[partner_offers] rescue_providers = true``, none otherwise."""
        return self.network.rescue_providers if self.offers.rescue_providers else ()

    @cached_property
    def total_minutes(self) -> float:
        return (self.warmup_days + self.horizon_days) * 1440.0

    def with_days(self, days: float) -> Scenario:
        if not days > 0:
            raise ValueError(f"days must be > 0, got {days!r}")
        return replace(self, horizon_days=float(days))

    def with_override(self, key: str, value: Any) -> Scenario:
        """The scenario with one sweep parameter changed (see :data:`SWEEP_KEYS`)."""
        try:
            out = self._override(key, value)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(
                f"{self.source}: sweep {SWEEP_ALIASES.get(key, key)}={value!r} {exc}"
            ) from None
        label = f"{SWEEP_ALIASES.get(key, key)}={value}"
        return replace(out, label=f"{self.label}, {label}" if self.label else label)

    def _override(self, key: str, value: Any) -> Scenario:
        """``with_override`` without the label; a ValueError says what the value must be."""
        key = SWEEP_ALIASES.get(key, key)
        if key not in SWEEP_FIELDS:
            raise ValueError(f"is not a sweep key; known: {', '.join(SWEEP_KEYS)}")
        x = convert(SWEEP_FIELDS[key], value)
        if key == "vans_per_station":
            return replace(self, network=cycle_vans(self.network, x))
        if key == "breakdowns_per_day":
            return replace(self, demand=replace(self.demand, breakdowns_per_day=x))
        if key == "points":
            return replace(self, demand=replace(self.demand, points=x, explicit_points=()))
        if key in (
            "batch_minutes", "escalate_after_minutes", "policy", "trigger", "objective",
            "after_job", "move_up",
        ):  # fmt: skip
            return replace(self, dispatch=replace(self.dispatch, **{key: x}))
        if key == "promise_minutes":
            return replace(self, promise=replace(self.promise, arrival_minutes=x))
        if key == "threshold_hours":
            return replace(self, replacement=replace(self.replacement, threshold_hours=x))
        if key == "replacement_policy":
            return replace(self, replacement=replace(self.replacement, policy=x))
        if key == "partner_acceptance":
            return replace(self, offers=self.offers.with_terms(acceptance_probability=x))
        if key == "partner_response_delay":
            return replace(self, offers=self.offers.with_terms(response_delay_minutes=x))
        vans = tuple(replace(v, service_radius_km=x) for v in self.network.vans)
        return replace(self, network=replace(self.network, vans=vans))

    def variants(self, sweep: Sequence[tuple[str, Sequence[Any]]] | None = None) -> list[Scenario]:
        """The sweep's cartesian product of variants (``[self]`` without a sweep)."""
        table = list(self.sweep if sweep is None else sweep)
        if not table:
            return [self]
        keys = [k for k, _ in table]
        out = []
        for combo in itertools.product(*(vals for _, vals in table)):
            s = self
            for k, v in zip(keys, combo, strict=True):
                s = s.with_override(k, v)
            out.append(replace(s, sweep=()))
        return out


def cycle_vans(network: Network, per_station: int) -> Network:
    """Every station gets ``per_station`` vans: its own van list cycled (capabilities and radii
    kept in order), ids ``<first van id>#k`` for the added ones."""
    by_station: dict[str, list[RescueVan]] = {}
    for v in network.vans:
        by_station.setdefault(v.station_id, []).append(v)
    vans: list[RescueVan] = []
    for s in network.stations:
        own = by_station.get(s.id)
        if not own:
            continue
        for k in range(per_station):
            base = own[k % len(own)]
            vans.append(base if k < len(own) else replace(base, id=f"{base.id}#{k + 1}"))
    return replace(network, vans=tuple(vans))


# -- the file format ---------------------------------------------------------------------------


def _mainland_adcodes(adcodes: tuple[str, ...]) -> str | None:
    known = {p.adcode for p in mainland_provinces()}
    bad = [a for a in adcodes if a not in known]
    return f'must list mainland province adcodes (e.g. "370000"), got {bad[0]!r}' if bad else None


def _iso_date(text: str) -> str | None:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return f"must be a date like 2026-01-01, got {text!r}"
    return None


DEMAND_POINT_KEYS: Schema = {
    "lat": number(ge=-90, le=90),
    "lon": number(ge=-180, le=180),
    "weight": number(1.0, ge=0),
    "name": string(None),
}
DEMAND_KEYS: Schema = {
    "breakdowns_per_day": number(560.0, gt=0),
    "dispersion": number(2.3, ge=1),
    "hourly_profile": either(
        one_of(("real", "flat")), list_of(number(ge=0), length=24, check=not_all_zero),
        default="real",
    ),
    "points": either(one_of(POINT_SETS), entries(DEMAND_POINT_KEYS, non_empty=True),
                     default="county_seats"),
    "road_spacing_km": number(20.0, ge=2, le=200),
    "month_factors": list_of(number(ge=0), FLAT_MONTHS, length=12, check=not_all_zero),
    "weekday_factors": list_of(number(ge=0), FLAT_WEEKDAYS, length=7, check=not_all_zero),
    "start_date": string("2026-01-01", check=_iso_date),
    "urban_share": number(0.3, ge=0, le=1),
    "provinces": list_of(string(), (), check=_mainland_adcodes),
    "vehicle_mix": mapping(VehicleClass, number(ge=0), DEFAULT_VEHICLE_MIX, check=not_all_zero),
    "cargo_share": mapping(VehicleClass, number(ge=0, le=1), DEFAULT_CARGO_SHARE),
    # keys are contract ids, checked against the network's contracts once it is built
    "contract_mix": mapping(None, number(ge=0), {}, check=not_all_zero),
}  # fmt: skip
REPAIRS_KEYS: Schema = {
    "catalogue": either(one_of(("default",)), file_path(), default="default"),
    "faults": entries(FAULT_KEYS),
    "parts": entries(PART_KEYS),
    "diagnosis_minutes": number(30.0, ge=0),
    "tow_hookup_minutes": number(30.0, ge=0),
}
TRAVEL_KEYS: Schema = {
    "provider": one_of(PROVIDERS, "auto"),
    "circuity": number(1.2, ge=1),
    "speeds": mapping(PROFILES, number(gt=0), {}),
}
DISPATCH_KEYS: Schema = {
    "policy": one_of(POLICIES, "batch-optimal"),
    "batch_minutes": number(5.0, gt=0),
    "escalate_after_minutes": number(240.0, gt=0),
    "respect_shifts": boolean(True),
    "trigger": one_of(TRIGGERS, "interval"),
    "objective": one_of(OBJECTIVES, "eta"),
    "after_job": one_of(AFTER_JOB, "return-home"),
    "move_up": boolean(False),
}
MOVE_UP_KEYS: Schema = {
    "max_moves_per_hour": integer(4, ge=1),
    "max_move_km": number(100.0, gt=0),
    "check_minutes": number(15.0, gt=0),
    "min_gain": number(0.0005, ge=0, le=1),
}
CREW_KEYS: Schema = {
    "turnout_minutes": number(0.0, ge=0),
    "hours_per_day": number(24.0, gt=0, le=24),
    "first_shift_hour": number(6.0, ge=0, le=23),
    "night_on_call": boolean(False),
    "on_call_turnout_minutes": number(30.0, ge=0),
}
PROMISE_KEYS: Schema = {
    "arrival_minutes": number(120.0, gt=0),
    "report_minutes": list_of(number(gt=0), (60.0, 90.0, 120.0, 180.0)),
}
REPLACEMENT_KEYS: Schema = {
    "threshold_hours": number(DEFAULT_REPLACEMENT_THRESHOLD_HOURS, gt=0),
    "batch_minutes": number(15.0, gt=0),
    "deadline_slack_hours": number(12.0, ge=0),
    "allow_late": boolean(True),
    "policy": custom(parse_replacement_policy, expects="a booking policy",
                     default=ORACLE_AT_DIAGNOSIS),
    "downtime_cost_per_hour": number(DEFAULT_DOWNTIME_COST_PER_HOUR_CNY, ge=0),
}  # fmt: skip
SWEEP_FIELDS: Schema = {
    "vans_per_station": integer(ge=1),
    "breakdowns_per_day": number(gt=0),
    "batch_minutes": number(gt=0),
    "policy": one_of(POLICIES),
    "promise_minutes": number(gt=0),
    "threshold_hours": number(gt=0),
    "service_radius_km": number(gt=0),
    "escalate_after_minutes": number(gt=0),
    "replacement_policy": custom(parse_replacement_policy, expects="a booking policy"),
    "points": one_of(POINT_SETS),
    "trigger": one_of(TRIGGERS),
    "objective": one_of(OBJECTIVES),
    "after_job": one_of(AFTER_JOB),
    "move_up": boolean(),
    "partner_acceptance": number(gt=0, le=1),
    "partner_response_delay": number(ge=0),
}
"""What each sweep key's values must be; :meth:`Scenario.with_override` applies them."""
SWEEP_KEYS = tuple(SWEEP_FIELDS)
OFFER_TERM_KEYS: Schema = {
    "acceptance_probability": number(1.0, gt=0, le=1),
    "response_delay_minutes": number(0.0, ge=0),
}
"""How a partner answers offers (:class:`OfferTerms`)."""
TERM_OVERRIDE_KEYS: Schema = {
    "acceptance_probability": number(None, gt=0, le=1),
    "response_delay_minutes": number(None, ge=0),
}
"""One partner's own terms; a key left out is the next level's (provider -> company -> all)."""
PARTNER_OFFER_KEYS: Schema = {
    "rescue_providers": boolean(False),
    **OFFER_TERM_KEYS,
    "cny_per_minute": number(DEFAULT_CNY_PER_MINUTE, gt=0),
    "partners": entries({"id": string(), **TERM_OVERRIDE_KEYS}),
    "providers": entries({"id": string(), **TERM_OVERRIDE_KEYS}),
}
"""``[partner_offers]``: whether the network's rescue providers are offered jobs, every
partner's terms (truck companies and rescue providers), per company in
``[[partner_offers.partners]]`` and per rescue provider in ``[[partner_offers.providers]]``,
and the rescue ranking's exchange."""
_NETWORK_KEYS = {
    *("base", "replace", "stations", "vans", "partners", "trucks", "rescue_providers"),
    *("default_contract", "contracts", "vehicles"),
}
SCENARIO_KEYS: Schema = {
    "name": string(None),
    "seed": integer(2026, ge=0),
    "horizon_days": number(365.0, gt=0),
    "warmup_days": number(7.0, ge=0),
    "replications": integer(1, ge=1),
    **{key: NETWORK_KEYS[key] for key in sorted(_NETWORK_KEYS)},
    "network_file": file_path(None),
    "vans_per_station": integer(None, ge=1),
    "service_radius_km": number(None, gt=0),
    "demand": table(DEMAND_KEYS),
    "repairs": table(REPAIRS_KEYS),
    "travel": table(TRAVEL_KEYS),
    "dispatch": table(DISPATCH_KEYS),
    "promise": table(PROMISE_KEYS),
    "crews": table(CREW_KEYS),
    "move_up": table(MOVE_UP_KEYS),
    "replacement": table(REPLACEMENT_KEYS),
    "partner_offers": table(PARTNER_OFFER_KEYS),
    # each value is checked against SWEEP_FIELDS at load time (loading code below)
    "sweep": mapping((*SWEEP_KEYS, *SWEEP_ALIASES), list_of(anything(), non_empty=True), {}),
}
"""Everything a scenario file accepts; a key's line here is its type, range and default."""


# -- loading ---------------------------------------------------------------------------------


def resolve_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``national``, ``shandong``, ``mmc_check``) or a TOML file."""
    key = str(name_or_path)
    path = Path(key)
    if not path.exists():
        shipped = SCENARIO_DIR / f"{key}.toml"
        if shipped.exists():
            path = shipped
        else:
            names = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
            raise ScenarioError(
                f"no scenario file {key!r} and no shipped scenario of that name; shipped: "
                f"{', '.join(names)}"
            )
    return load_scenario(path)


def load_scenario(path: str | Path) -> Scenario:
    return scenario_from_document(TomlDocument.read(path))


def scenario_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<scenario>",
    text: str = "",
    base_dir: Path | None = None,
) -> Scenario:
    """Validate parsed TOML into a :class:`Scenario` (see the module docstring)."""
    return scenario_from_document(TomlDocument(source, text, data, base_dir or Path(".")))


def scenario_from_document(doc: TomlDocument) -> Scenario:
    """Check the whole file against :data:`SCENARIO_KEYS`, then build; nothing runs on error."""
    values = doc.validate(SCENARIO_KEYS)
    given = set(doc.data)
    stem = Path(doc.source).stem
    # the cheap parts first, so a mistake there fails before a national network is built
    demand = _demand(values["demand"], doc)
    repairs = _repairs(values["repairs"], doc)
    if values["network_file"] is not None:
        if given & _NETWORK_KEYS:
            raise doc.error(
                ("network_file",),
                "give either network_file or the network keys (base, stations, vans, ...), "
                "not both",
            )
        network = load_network_file(values["network_file"])
    elif given & _NETWORK_KEYS:
        net_values = {k: v for k, v in values.items() if k in _NETWORK_KEYS}
        net_values.update(name=values["name"] or stem, faults=None)
        network = network_from_values(net_values, doc)
    else:
        raise doc.error(
            (),
            'no network: give base = "china-national", [[stations]] and [[vans]], or network_file',
        )
    if not network.vans:
        raise doc.error((), "the network has no vans")
    if values["vans_per_station"] is not None:
        network = cycle_vans(network, values["vans_per_station"])
    demand = replace(demand, contract_mix=_contract_mix(values["demand"], doc, network))
    if values["service_radius_km"] is not None:  # every van's radius (a thinner own network)
        radius = values["service_radius_km"]
        vans = tuple(replace(v, service_radius_km=radius) for v in network.vans)
        network = replace(network, vans=vans)

    travel, promise = values["travel"], values["promise"]
    scenario = Scenario(
        name=values["name"] or stem,
        network=network,
        seed=values["seed"],
        horizon_days=values["horizon_days"],
        warmup_days=values["warmup_days"],
        replications=values["replications"],
        demand=demand,
        repairs=repairs,
        travel=TravelSpec(
            provider=travel["provider"],
            circuity=travel["circuity"],
            speeds_kmh=tuple(travel["speeds"].items()),
        ),
        dispatch=DispatchSpec(**values["dispatch"]),
        promise=PromiseSpec(
            arrival_minutes=promise["arrival_minutes"],
            report_minutes=tuple(sorted({*promise["report_minutes"], promise["arrival_minutes"]})),
        ),
        replacement=ReplacementSpec(**values["replacement"]),
        crews=_crews(values["crews"], doc),
        move_up=MoveUpSpec(**values["move_up"]),
        offers=_partner_offers(values, given, network, doc),
        sweep=tuple((SWEEP_ALIASES.get(k, k), v) for k, v in values["sweep"].items()),
        source=doc.source,
    )
    # sweep values are checked now, so a bad one stops the run before anything is simulated
    for key, sweep_values in values["sweep"].items():
        for i, value in enumerate(sweep_values):
            try:
                scenario._override(key, value)
            except (TypeError, ValueError) as exc:
                raise doc.error(("sweep", key, i), str(exc)) from None
    return scenario


def _demand(values: Mapping[str, Any], doc: TomlDocument) -> DemandSpec:
    points, profile = values["points"], values["hourly_profile"]
    explicit = [_demand_point(raw, doc, ("demand", "points", i))
                for i, raw in enumerate(points if isinstance(points, list) else ())]  # fmt: skip
    if explicit and sum(p.weight for p in explicit) <= 0:
        raise doc.error(("demand", "points"), "weights must not all be zero")
    if profile == "real":
        profile = hourly_breakdown_profile()
    elif profile == "flat":
        profile = (1.0,) * 24
    else:
        mean = sum(profile) / 24
        profile = tuple(v / mean for v in profile)
    return DemandSpec(
        breakdowns_per_day=values["breakdowns_per_day"],
        dispersion=values["dispersion"],
        hourly_profile=profile,
        points="explicit" if isinstance(points, list) else points,
        road_spacing_km=values["road_spacing_km"],
        month_factors=tuple(float(v) for v in values["month_factors"]),
        weekday_factors=tuple(float(v) for v in values["weekday_factors"]),
        start_date=dt.date.fromisoformat(values["start_date"]),
        urban_share=values["urban_share"],
        explicit_points=tuple(explicit),
        provinces=frozenset(values["provinces"]),
        vehicle_mix=tuple(values["vehicle_mix"].items()),
        cargo_share=tuple(values["cargo_share"].items()),
    )


def _contract_mix(
    values: Mapping[str, Any], doc: TomlDocument, network: Network
) -> tuple[tuple[str, float], ...]:
    """``demand.contract_mix`` against the network's contracts (``[[contracts]]`` of the
    file and its base): every key must be a contract id."""
    known = network.registry.contract_by_id
    for key in values["contract_mix"]:
        if key not in known:
            raise doc.error(
                ("demand", "contract_mix", key),
                f"no contract with id {key!r}; contracts: {', '.join(sorted(known))}",
            )
    return tuple((str(k), float(v)) for k, v in values["contract_mix"].items())


def _crews(values: Mapping[str, Any], doc: TomlDocument) -> CrewSpec:
    hours = values["hours_per_day"]
    if hours < 24 and values["first_shift_hour"] + hours > 24:
        raise doc.error(
            ("crews", "hours_per_day"),
            f"first_shift_hour + hours_per_day must be <= 24, got "
            f"{values['first_shift_hour']:g} + {values['hours_per_day']:g}",
        )
    return CrewSpec(**values)


def _partner_offers(
    values: Mapping[str, Any], given: set[str], network: Network, doc: TomlDocument
) -> PartnerOfferSpec:
    """``[partner_offers]``: per-company terms name a partner of the network, per-provider
    terms a rescue provider of it (ids unique); providers declared or given terms without
    ``rescue_providers = true`` are refused (they would get no offer)."""
    offers = values["partner_offers"]
    default = OfferTerms(offers["acceptance_probability"], offers["response_delay_minutes"])
    offered = offers["rescue_providers"]
    not_offered = (
        "the simulation offers jobs to rescue providers only with [partner_offers] "
        "rescue_providers = true; set it, or leave this out"
    )
    if not offered and "rescue_providers" in given:
        raise doc.error(("rescue_providers", 0), not_offered)
    if not offered and offers["providers"]:
        raise doc.error(("partner_offers", "providers", 0), not_offered)
    if offered and not network.rescue_providers:
        raise doc.error(
            ("partner_offers", "rescue_providers"),
            "must be false on a network without rescue providers (give [[rescue_providers]])",
        )
    partner_terms = _term_overrides(
        offers["partners"], ("partner_offers", "partners"), doc,
        known=network.partner_by_id, what="a partner", inherit=lambda _: default,
    )  # fmt: skip
    by_partner = dict(partner_terms)
    provider_by_id = {p.id: p for p in network.rescue_providers}
    provider_terms = _term_overrides(
        offers["providers"], ("partner_offers", "providers"), doc,
        known=provider_by_id, what="a rescue provider",
        inherit=lambda pid: by_partner.get(provider_by_id[pid].partner_id, default),
    )  # fmt: skip
    return PartnerOfferSpec(
        rescue_providers=offered,
        default_terms=default,
        partner_terms=partner_terms,
        provider_terms=provider_terms,
        cny_per_minute=offers["cny_per_minute"],
        declared="partner_offers" in given,
    )


def _term_overrides(
    rows: Sequence[Mapping[str, Any]],
    at: KeyPath,
    doc: TomlDocument,
    *,
    known: Mapping[str, Any],
    what: str,
    inherit: Callable[[str], OfferTerms],
) -> tuple[tuple[str, OfferTerms], ...]:
    """Per-id terms of ``[[partner_offers.partners]]`` / ``[[partner_offers.providers]]``: each
    id known and given once; a key left out is ``inherit(id)``'s."""
    out: list[tuple[str, OfferTerms]] = []
    for i, raw in enumerate(rows):
        where: KeyPath = (*at, i, "id")
        ident = raw["id"]
        if ident not in known:
            raise doc.error(where, f"must name {what} of the network, got {ident!r}")
        if any(pid == ident for pid, _ in out):
            raise doc.error(where, f"must be unique, got {ident!r} twice")
        base = inherit(ident)
        change = {k: raw[k] for k in TERM_OVERRIDE_KEYS if raw[k] is not None}
        out.append((ident, replace(base, **change)))
    return tuple(out)


def _demand_point(raw: Mapping[str, Any], doc: TomlDocument, at: KeyPath) -> DemandPoint:
    province = province_at(raw["lat"], raw["lon"])
    if province is None:
        raise doc.error(at, f"position ({raw['lat']}, {raw['lon']}) is outside China")
    name = raw["name"] or f"point {at[-1]}"
    return DemandPoint(raw["lat"], raw["lon"], raw["weight"], province, name)


def _repairs(values: Mapping[str, Any], doc: TomlDocument) -> RepairSpec:
    at = ("repairs",)
    given = set(doc.data.get("repairs", {}))
    if "faults" in given and "catalogue" in given:
        raise doc.error(
            (*at, "catalogue"), "give repairs.catalogue or [[repairs.faults]], not both"
        )
    if "faults" in given:
        catalogue = catalogue_from_values(values, doc, at)
    elif values["catalogue"] == "default":
        catalogue = load_fault_catalogue()
    else:
        catalogue = load_fault_catalogue(values["catalogue"])
    return RepairSpec(
        catalogue=catalogue,
        diagnosis_minutes=values["diagnosis_minutes"],
        tow_hookup_minutes=values["tow_hookup_minutes"],
    )


def parse_sweep_option(text: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``vans=1,2,3;policy=nearest-idle,batch-optimal`` -> sweep table (CLI ``--sweep``)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        if "=" not in part:
            raise ValueError(f"--sweep {part!r}: expected key=v1,v2,...")
        key, values = part.split("=", 1)
        key = SWEEP_ALIASES.get(key.strip(), key.strip())
        if key not in SWEEP_KEYS:
            raise ValueError(f"--sweep: unknown key {key!r}; known: {', '.join(SWEEP_KEYS)}")
        parsed: list[Any] = []
        for raw in values.split(","):
            raw = raw.strip()
            num = _as_number_text(raw)
            parsed.append(num if num is not None else raw)
        out.append((key, tuple(parsed)))
    if not out:
        raise ValueError("--sweep is empty")
    return tuple(out)


def _as_number_text(raw: str) -> int | float | None:
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return None
