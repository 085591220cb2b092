"""Simulation scenarios: one TOML file says everything a run needs.

The file format (every key optional unless marked; defaults in brackets) is documented in
``docs/simulations.md`` and by the shipped ``simulations/scenarios/*.toml``. In short::

    name = "national"            # [file stem]
    seed = 2026                  # [2026]
    horizon_days = 365           # [365] measured days
    warmup_days = 7              # [7] simulated first, not measured
    replications = 1             # [1]

    # The network: exactly the keys of a network file (fleet.scenario): base, replace,
    # [[stations]], [[vans]], [[partners]], [[trucks]]; or network_file = "other.toml".
    base = "china-national"
    vans_per_station = 2         # optional: every station's van list cycled to this count

    [demand]   breakdowns_per_day, dispersion, hourly_profile, points, provinces,
               vehicle_mix, cargo_share, [[demand.points]] (lat, lon, weight)
    [repairs]  catalogue = "default" | path, [[repairs.faults]] (fault-catalogue entries),
               diagnosis_minutes, tow_hookup_minutes
    [travel]   provider = "auto" | "road" | "great-circle", circuity, speeds = {profile = km/h}
    [dispatch] policy = "batch-optimal" | "nearest-idle", batch_minutes,
               escalate_after_minutes, respect_shifts
    [promise]  arrival_minutes, report_minutes
    [replacement] threshold_hours, batch_minutes, deadline_slack_hours, allow_late
    [sweep]    key = [values...] (cartesian product; keys in SWEEP_KEYS)

Every error names the file, the key (``demand.breakdowns_per_day``) and its line, and nothing
runs. Relative paths inside a scenario are relative to the scenario file.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from fleet.distributions import HoursDistribution
from fleet.faults import FaultCatalogue, catalogue_from_mapping, load_fault_catalogue
from fleet.geography import hourly_breakdown_profile, mainland_provinces, province_at
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
    GeoPoint,
    RescueVan,
    VehicleClass,
)
from fleet.network import Network
from fleet.scenario import ScenarioError, load_network_file, network_from_mapping, read_toml
from routing.provider import PROFILES

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""The shipped scenarios (``national``, ``shandong``, ``mmc_check``)."""

_NETWORK_KEYS = {"base", "replace", "stations", "vans", "partners", "trucks"}
_TOP_KEYS = _NETWORK_KEYS | {
    "name", "seed", "horizon_days", "warmup_days", "replications", "network_file",
    "vans_per_station", "demand", "repairs", "travel", "dispatch", "promise", "replacement",
    "sweep",
}  # fmt: skip

POLICIES = ("batch-optimal", "nearest-idle")
PROVIDERS = ("auto", "road", "great-circle")
POINT_SETS = ("county_seats", "prefecture_seats", "stations", "explicit")

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

SWEEP_KEYS = (
    "vans_per_station",
    "breakdowns_per_day",
    "batch_minutes",
    "policy",
    "promise_minutes",
    "threshold_hours",
    "service_radius_km",
    "escalate_after_minutes",
)
SWEEP_ALIASES = {"vans": "vans_per_station", "rate": "breakdowns_per_day"}

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
    explicit_points: tuple[DemandPoint, ...] = ()
    provinces: frozenset[str] = frozenset()
    """Restrict generated points to these province adcodes (empty = all)."""
    vehicle_mix: tuple[tuple[VehicleClass, float], ...] = tuple(
        (VehicleClass(k), v) for k, v in DEFAULT_VEHICLE_MIX.items()
    )
    cargo_share: tuple[tuple[VehicleClass, float], ...] = tuple(
        (VehicleClass(k), v) for k, v in DEFAULT_CARGO_SHARE.items()
    )


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


@dataclass(frozen=True)
class PromiseSpec:
    arrival_minutes: float = 120.0
    report_minutes: tuple[float, ...] = (60.0, 90.0, 120.0, 180.0)


@dataclass(frozen=True)
class ReplacementSpec:
    threshold_hours: float = DEFAULT_REPLACEMENT_THRESHOLD_HOURS
    batch_minutes: float = 15.0
    deadline_slack_hours: float = 12.0
    """Cargo deadline = breakdown + direct loaded drive + this slack."""
    allow_late: bool = True


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
    replacement: ReplacementSpec = field(default_factory=ReplacementSpec)
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    source: str = "<scenario>"
    label: str = ""
    """Which sweep variant this is (``vans_per_station=2``), empty for the base."""

    @cached_property
    def total_minutes(self) -> float:
        return (self.warmup_days + self.horizon_days) * 1440.0

    def with_days(self, days: float) -> Scenario:
        if not days > 0:
            raise ValueError(f"days must be > 0, got {days!r}")
        return replace(self, horizon_days=float(days))

    def with_override(self, key: str, value: Any) -> Scenario:
        """The scenario with one sweep parameter changed (see :data:`SWEEP_KEYS`)."""
        key = SWEEP_ALIASES.get(key, key)
        where = f"{self.source}: sweep {key}={value!r}"
        try:
            if key == "vans_per_station":
                n = int(value)
                if n < 1 or n != value:
                    raise ValueError("must be an integer >= 1")
                out = replace(self, network=cycle_vans(self.network, n))
            elif key == "breakdowns_per_day":
                out = replace(self, demand=replace(self.demand, breakdowns_per_day=_pos(value)))
            elif key == "batch_minutes":
                out = replace(self, dispatch=replace(self.dispatch, batch_minutes=_pos(value)))
            elif key == "escalate_after_minutes":
                d = replace(self.dispatch, escalate_after_minutes=_pos(value))
                out = replace(self, dispatch=d)
            elif key == "policy":
                if value not in POLICIES:
                    raise ValueError(f"is not one of {', '.join(POLICIES)}")
                out = replace(self, dispatch=replace(self.dispatch, policy=str(value)))
            elif key == "promise_minutes":
                out = replace(self, promise=replace(self.promise, arrival_minutes=_pos(value)))
            elif key == "threshold_hours":
                r = replace(self.replacement, threshold_hours=_pos(value))
                out = replace(self, replacement=r)
            elif key == "service_radius_km":
                radius = _pos(value)
                vans = tuple(replace(v, service_radius_km=radius) for v in self.network.vans)
                out = replace(self, network=replace(self.network, vans=vans))
            else:
                raise ValueError(f"unknown sweep key; known: {', '.join(SWEEP_KEYS)}")
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        label = f"{key}={value}"
        return replace(out, label=f"{self.label}, {label}" if self.label else label)

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


def _pos(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"must be a number > 0, got {value!r}")
    return float(value)


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
    p = Path(path)
    data, text = read_toml(p)
    return scenario_from_mapping(data, source=str(p), text=text, base_dir=p.parent)


def scenario_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<scenario>",
    text: str = "",
    base_dir: Path | None = None,
) -> Scenario:
    """Validate parsed TOML into a :class:`Scenario` (see the module docstring)."""
    at = _Where(source, text)
    base_dir = base_dir or Path(".")
    _unknown(data, _TOP_KEYS, (), at)

    # network
    if "network_file" in data:
        if set(data) & _NETWORK_KEYS:
            raise ScenarioError(
                f"{at.of(('network_file',))}: give either network_file or the network keys "
                "(base, stations, vans, ...), not both"
            )
        nf = _path(data, "network_file", at, base_dir)
        network = load_network_file(nf)
    else:
        net_data = {k: v for k, v in data.items() if k in _NETWORK_KEYS}
        if not net_data:
            raise ScenarioError(
                f'{source}: no network: give base = "china-national", [[stations]] and '
                "[[vans]], or network_file"
            )
        net_data["name"] = str(data.get("name", Path(source).stem))
        network = network_from_mapping(net_data, source=source, text=text)
    if not network.vans:
        raise ScenarioError(f"{source}: the network has no vans")

    name = _str(data, ("name",), at, Path(source).stem)
    seed = int(_num(data, ("seed",), at, 2026, minimum=0, integer=True))
    horizon = _num(data, ("horizon_days",), at, 365.0, minimum=0, strict=True)
    warmup = _num(data, ("warmup_days",), at, 7.0, minimum=0)
    reps = int(_num(data, ("replications",), at, 1, minimum=1, integer=True))
    if "vans_per_station" in data:
        n = int(_num(data, ("vans_per_station",), at, 1, minimum=1, integer=True))
        network = cycle_vans(network, n)

    scenario = Scenario(
        name=name,
        network=network,
        seed=seed,
        horizon_days=horizon,
        warmup_days=warmup,
        replications=reps,
        demand=_demand(_table(data, "demand", at), at),
        repairs=_repairs(_table(data, "repairs", at), at, base_dir),
        travel=_travel(_table(data, "travel", at), at),
        dispatch=_dispatch(_table(data, "dispatch", at), at),
        promise=_promise(_table(data, "promise", at), at),
        replacement=_replacement(_table(data, "replacement", at), at),
        sweep=_sweep(_table(data, "sweep", at), at),
        source=source,
    )
    # sweep values are checked now, so a bad one stops the run before anything is simulated
    scenario.variants()
    return scenario


def _demand(t: Mapping[str, Any], at: _Where) -> DemandSpec:
    s = ("demand",)
    _unknown(
        t,
        {"breakdowns_per_day", "dispersion", "hourly_profile", "points", "provinces",
         "vehicle_mix", "cargo_share"},
        s, at,
    )  # fmt: skip
    rate = _num(t, (*s, "breakdowns_per_day"), at, 560.0, minimum=0, strict=True)
    dispersion = _num(t, (*s, "dispersion"), at, 2.3, minimum=1)
    profile_raw = t.get("hourly_profile", "real")
    if profile_raw == "real":
        profile = hourly_breakdown_profile()
    elif profile_raw == "flat":
        profile = (1.0,) * 24
    elif isinstance(profile_raw, list) and len(profile_raw) == 24:
        vals = [_as_number(v) for v in profile_raw]
        if any(v is None or v < 0 for v in vals) or sum(v or 0 for v in vals) <= 0:
            raise ScenarioError(
                f"{at.of((*s, 'hourly_profile'))}: demand.hourly_profile must be 24 numbers "
                ">= 0, not all zero"
            )
        mean = sum(v or 0.0 for v in vals) / 24
        profile = tuple((v or 0.0) / mean for v in vals)
    else:
        raise ScenarioError(
            f'{at.of((*s, "hourly_profile"))}: demand.hourly_profile must be "real", '
            f'"flat" or a list of 24 numbers, got {profile_raw!r}'
        )
    points_raw = t.get("points", "county_seats")
    explicit: list[DemandPoint] = []
    if isinstance(points_raw, list):
        points = "explicit"
        if not points_raw:
            raise ScenarioError(f"{at.of((*s, 'points'))}: demand.points is empty")
        for i, raw in enumerate(points_raw):
            ps = (*s, "points", i)
            if not isinstance(raw, Mapping):
                raise ScenarioError(f"{at.of(ps)}: demand.points[{i}] must be a table")
            _unknown(raw, {"lat", "lon", "weight", "name"}, ps, at)
            lat = _num(raw, (*ps, "lat"), at, None)
            lon = _num(raw, (*ps, "lon"), at, None)
            weight = _num(raw, (*ps, "weight"), at, 1.0, minimum=0)
            try:
                GeoPoint(lat, lon)
            except ValueError as exc:
                raise ScenarioError(f"{at.of(ps)}: demand.points[{i}]: {exc}") from None
            province = province_at(lat, lon)
            if province is None:
                raise ScenarioError(
                    f"{at.of(ps)}: demand.points[{i}]: position ({lat}, {lon}) is outside China"
                )
            explicit.append(
                DemandPoint(lat, lon, weight, province, str(raw.get("name", f"point {i}")))
            )
        if sum(p.weight for p in explicit) <= 0:
            raise ScenarioError(f"{at.of((*s, 'points'))}: demand.points weights are all zero")
    elif points_raw in POINT_SETS and points_raw != "explicit":
        points = str(points_raw)
    else:
        raise ScenarioError(
            f"{at.of((*s, 'points'))}: demand.points must be one of county_seats, "
            f"prefecture_seats, stations or an array of tables [[demand.points]], got "
            f"{points_raw!r}"
        )
    provinces_raw = t.get("provinces", [])
    known = {p.adcode for p in mainland_provinces()}
    if not isinstance(provinces_raw, list) or any(str(p) not in known for p in provinces_raw):
        bad = (
            provinces_raw
            if not isinstance(provinces_raw, list)
            else next(p for p in provinces_raw if str(p) not in known)
        )
        raise ScenarioError(
            f"{at.of((*s, 'provinces'))}: demand.provinces must list mainland province adcodes "
            f'(e.g. "370000"), got {bad!r}'
        )
    mix = _shares(t, (*s, "vehicle_mix"), at, DEFAULT_VEHICLE_MIX, total_positive=True)
    cargo = _shares(t, (*s, "cargo_share"), at, DEFAULT_CARGO_SHARE, at_most_one=True)
    return DemandSpec(
        breakdowns_per_day=rate,
        dispersion=dispersion,
        hourly_profile=tuple(profile),
        points=points,
        explicit_points=tuple(explicit),
        provinces=frozenset(str(p) for p in provinces_raw),
        vehicle_mix=mix,
        cargo_share=cargo,
    )


def _shares(
    t: Mapping[str, Any],
    path: tuple[str, ...],
    at: _Where,
    default: Mapping[str, float],
    *,
    total_positive: bool = False,
    at_most_one: bool = False,
) -> tuple[tuple[VehicleClass, float], ...]:
    raw = t.get(path[-1])
    dotted = ".".join(map(str, path))
    if raw is None:
        return tuple((VehicleClass(k), v) for k, v in default.items())
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{at.of(path)}: {dotted} must be a table {{tractor = 0.5, ...}}")
    out = []
    for k, v in raw.items():
        try:
            vc = VehicleClass(k)
        except ValueError:
            raise ScenarioError(
                f"{at.of((*path, k))}: {dotted}: unknown vehicle class {k!r}; known: "
                f"{', '.join(c.value for c in VehicleClass)}"
            ) from None
        x = _as_number(v)
        if x is None or x < 0 or (at_most_one and x > 1):
            rng = "in [0, 1]" if at_most_one else ">= 0"
            raise ScenarioError(f"{at.of((*path, k))}: {dotted}.{k} must be {rng}, got {v!r}")
        out.append((vc, x))
    if total_positive and sum(x for _, x in out) <= 0:
        raise ScenarioError(f"{at.of(path)}: {dotted} shares must not all be zero")
    return tuple(out)


def _repairs(t: Mapping[str, Any], at: _Where, base_dir: Path) -> RepairSpec:
    s = ("repairs",)
    _unknown(t, {"catalogue", "faults", "parts", "diagnosis_minutes", "tow_hookup_minutes"}, s, at)
    catalogue_ref = t.get("catalogue", "default")
    if "faults" in t:
        if "catalogue" in t:
            raise ScenarioError(
                f"{at.of((*s, 'catalogue'))}: give repairs.catalogue or [[repairs.faults]], "
                "not both"
            )
        faults_raw = t["faults"]
        if not isinstance(faults_raw, list) or not faults_raw:
            raise ScenarioError(f"{at.of((*s, 'faults'))}: [[repairs.faults]] is empty")
        for i, raw in enumerate(faults_raw):
            fs = (*s, "faults", i)
            for key in ("on_site_hours", "workshop_hours"):
                if key in raw:
                    try:
                        HoursDistribution.from_mapping(raw[key])
                    except (ValueError, TypeError) as exc:
                        raise ScenarioError(
                            f"{at.of((*fs, key))}: repairs.faults[{i}].{key}: {exc}"
                        ) from None
            for key in ("p_on_site_fix", "share"):
                if key in raw:
                    x = _as_number(raw[key])
                    hi = 1.0 if key == "p_on_site_fix" else math.inf
                    if x is None or not 0 <= x <= hi:
                        raise ScenarioError(
                            f"{at.of((*fs, key))}: repairs.faults[{i}].{key} must be "
                            f"{'in [0, 1]' if hi == 1 else '>= 0'}, got {raw[key]!r}"
                        )
        try:
            catalogue = catalogue_from_mapping(
                {"faults": faults_raw, "parts": t.get("parts", [])}, source="repairs"
            )
        except ValueError as exc:
            raise ScenarioError(f"{at.of((*s, 'faults'))}: {exc}") from None
    elif catalogue_ref == "default":
        catalogue = load_fault_catalogue()
    else:
        p = _path(t, "catalogue", at, base_dir, prefix=s)
        try:
            catalogue = load_fault_catalogue(p)
        except (ValueError, OSError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(f"{at.of((*s, 'catalogue'))}: repairs.catalogue: {exc}") from None
    return RepairSpec(
        catalogue=catalogue,
        diagnosis_minutes=_num(t, (*s, "diagnosis_minutes"), at, 30.0, minimum=0),
        tow_hookup_minutes=_num(t, (*s, "tow_hookup_minutes"), at, 30.0, minimum=0),
    )


def _travel(t: Mapping[str, Any], at: _Where) -> TravelSpec:
    s = ("travel",)
    _unknown(t, {"provider", "circuity", "speeds"}, s, at)
    provider = t.get("provider", "auto")
    if provider not in PROVIDERS:
        raise ScenarioError(
            f"{at.of((*s, 'provider'))}: travel.provider must be one of {', '.join(PROVIDERS)}, "
            f"got {provider!r}"
        )
    circuity = _num(t, (*s, "circuity"), at, 1.2, minimum=1)
    speeds_raw = t.get("speeds", {})
    if not isinstance(speeds_raw, Mapping):
        raise ScenarioError(f"{at.of((*s, 'speeds'))}: travel.speeds must be a table")
    speeds = []
    for k, _v in speeds_raw.items():
        if k not in PROFILES:
            raise ScenarioError(
                f"{at.of((*s, 'speeds', k))}: travel.speeds: unknown profile {k!r}; known: "
                f"{', '.join(sorted(PROFILES))}"
            )
        speeds.append((k, _num(speeds_raw, (*s, "speeds", k), at, None, minimum=0, strict=True)))
    return TravelSpec(provider=str(provider), circuity=circuity, speeds_kmh=tuple(speeds))


def _dispatch(t: Mapping[str, Any], at: _Where) -> DispatchSpec:
    s = ("dispatch",)
    _unknown(t, {"policy", "batch_minutes", "escalate_after_minutes", "respect_shifts"}, s, at)
    policy = t.get("policy", "batch-optimal")
    if policy not in POLICIES:
        raise ScenarioError(
            f"{at.of((*s, 'policy'))}: dispatch.policy must be one of {', '.join(POLICIES)}, "
            f"got {policy!r}"
        )
    shifts = t.get("respect_shifts", True)
    if not isinstance(shifts, bool):
        raise ScenarioError(f"{at.of((*s, 'respect_shifts'))}: must be true or false")
    return DispatchSpec(
        policy=str(policy),
        batch_minutes=_num(t, (*s, "batch_minutes"), at, 5.0, minimum=0, strict=True),
        escalate_after_minutes=_num(
            t, (*s, "escalate_after_minutes"), at, 240.0, minimum=0, strict=True
        ),
        respect_shifts=shifts,
    )


def _promise(t: Mapping[str, Any], at: _Where) -> PromiseSpec:
    s = ("promise",)
    _unknown(t, {"arrival_minutes", "report_minutes"}, s, at)
    arrival = _num(t, (*s, "arrival_minutes"), at, 120.0, minimum=0, strict=True)
    report_raw = t.get("report_minutes", [60, 90, 120, 180])
    vals = [_as_number(v) for v in report_raw] if isinstance(report_raw, list) else [None]
    if any(v is None or v <= 0 for v in vals):
        raise ScenarioError(
            f"{at.of((*s, 'report_minutes'))}: promise.report_minutes must be a list of numbers "
            f"> 0, got {report_raw!r}"
        )
    report = tuple(sorted({*(v for v in vals if v is not None), arrival}))
    return PromiseSpec(arrival_minutes=arrival, report_minutes=report)


def _replacement(t: Mapping[str, Any], at: _Where) -> ReplacementSpec:
    s = ("replacement",)
    _unknown(t, {"threshold_hours", "batch_minutes", "deadline_slack_hours", "allow_late"}, s, at)
    allow_late = t.get("allow_late", True)
    if not isinstance(allow_late, bool):
        raise ScenarioError(f"{at.of((*s, 'allow_late'))}: must be true or false")
    return ReplacementSpec(
        threshold_hours=_num(t, (*s, "threshold_hours"), at, 24.0, minimum=0, strict=True),
        batch_minutes=_num(t, (*s, "batch_minutes"), at, 15.0, minimum=0, strict=True),
        deadline_slack_hours=_num(t, (*s, "deadline_slack_hours"), at, 12.0, minimum=0),
        allow_late=allow_late,
    )


def _sweep(t: Mapping[str, Any], at: _Where) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    out = []
    for k, v in t.items():
        key = SWEEP_ALIASES.get(k, k)
        if key not in SWEEP_KEYS:
            raise ScenarioError(
                f"{at.of(('sweep', k))}: unknown sweep key {k!r}; known: {', '.join(SWEEP_KEYS)} "
                "(aliases: vans, rate)"
            )
        if not isinstance(v, list) or not v:
            raise ScenarioError(f"{at.of(('sweep', k))}: sweep.{k} must be a non-empty list")
        out.append((key, tuple(v)))
    return tuple(out)


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


# -- small validators --------------------------------------------------------------------------


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


def _table(data: Mapping[str, Any], key: str, at: _Where) -> Mapping[str, Any]:
    t = data.get(key, {})
    if not isinstance(t, Mapping):
        raise ScenarioError(f"{at.of((key,))}: {key} must be a table [{key}]")
    return t


def _unknown(t: Mapping[str, Any], allowed: set[str], path: tuple[Any, ...], at: _Where) -> None:
    unknown = sorted(set(t) - allowed)
    if unknown:
        key = unknown[0]
        dotted = ".".join(str(p) for p in (*path, key))
        raise ScenarioError(
            f"{at.of((*path, key))}: unknown key {dotted!r}; allowed here: "
            f"{', '.join(sorted(allowed))}"
        )


def _num(
    t: Mapping[str, Any],
    path: tuple[Any, ...],
    at: _Where,
    default: float | None,
    *,
    minimum: float | None = None,
    strict: bool = False,
    integer: bool = False,
) -> float:
    key = path[-1]
    dotted = ".".join(str(p) for p in path)
    if key not in t:
        if default is None:
            raise ScenarioError(f"{at.of(path[:-1])}: missing key {dotted!r}")
        return float(default)
    v = _as_number(t[key])
    if v is None or math.isinf(v) or (integer and v != int(v)):
        what = "an integer" if integer else "a number"
        raise ScenarioError(f"{at.of(path)}: {dotted} must be {what}, got {t[key]!r}")
    if minimum is not None and (v <= minimum if strict else v < minimum):
        raise ScenarioError(
            f"{at.of(path)}: {dotted} must be {'>' if strict else '>='} {minimum:g}, got {v:g}"
        )
    return v


def _str(t: Mapping[str, Any], path: tuple[str, ...], at: _Where, default: str) -> str:
    v = t.get(path[-1], default)
    if not isinstance(v, str) or not v:
        raise ScenarioError(f"{at.of(path)}: {'.'.join(path)} must be a non-empty string")
    return v


def _path(
    t: Mapping[str, Any], key: str, at: _Where, base_dir: Path, prefix: tuple[str, ...] = ()
) -> Path:
    v = t.get(key)
    if not isinstance(v, str) or not v:
        raise ScenarioError(f"{at.of((*prefix, key))}: {key} must be a file path")
    p = Path(v)
    if not p.is_absolute():
        p = base_dir / p
    if not p.exists():
        raise ScenarioError(f"{at.of((*prefix, key))}: {key}: no such file {str(p)!r}")
    return p


class _Where:
    """Finds the line of a (possibly nested) key in the TOML text, for error messages."""

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        # per line: (table path with array indices, is header line)
        self.context: list[tuple[tuple[Any, ...], bool]] = []
        current: tuple[Any, ...] = ()
        counts: dict[tuple[Any, ...], int] = {}
        for line in self.lines:
            m = self._header.match(line)
            if m:
                names = tuple(n.strip().strip('"') for n in m.group(2).split("."))
                if m.group(1) == "[[":
                    n = counts.get(names, 0)
                    counts[names] = n + 1
                    current = (*names, n)
                else:
                    current = names
                self.context.append((current, True))
            else:
                self.context.append((current, False))

    def line(self, path: tuple[Any, ...]) -> int | None:
        path = tuple(path)
        for cut in range(len(path), 0, -1):
            table, key = path[: cut - 1], path[cut - 1]
            if isinstance(key, int):
                target = (*table, key)
                for n, (ctx, is_header) in enumerate(self.context, start=1):
                    if is_header and ctx == target:
                        return n
                continue
            rx = re.compile(rf"^\s*\"?{re.escape(str(key))}\"?\s*=")
            dotted = re.compile(rf"^\s*{re.escape('.'.join(str(p) for p in path[:cut]))}\s*=")
            for n, (ctx, is_header) in enumerate(self.context, start=1):
                line = self.lines[n - 1]
                if is_header:
                    if ctx == path[:cut]:
                        return n
                    continue
                if ctx == table and rx.match(line):
                    return n
                if ctx == () and dotted.match(line):
                    return n
            # a key inside an inline table: the line of the enclosing key
        return None

    def of(self, path: tuple[Any, ...]) -> str:
        n = self.line(path)
        return f"{self.source} line {n}" if n else self.source
