"""From a scenario to recommended van bases and van counts, checked by simulation.

Candidate sites are the network's stations; demand is the scenario's demand points weighted by
population (x breakdowns per day). A point is covered by a site when the site's road distance
is within the van service radius and within the criterion (``threshold_minutes`` of driving,
default the promise, or ``radius_km``). The location models are the planning solvers of
:mod:`simulations.planning` (``solve_mclp``, ``solve_pmedian``, ``solve_min_facilities``).

Van counts: each demand point goes to its nearest open base; a base's offered load is its
breakdowns per hour x the mean job hours (drive there and back + the fault mix's mean time on
site); it gets the fewest vans with an Erlang C probability of waiting <= 10%. The first van of
a base is a heavy service van, the second a wrecker, further ones heavy service vans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fleet.model import RescueVan, StationGrade, VanCapability
from fleet.network import Network
from routing.road import RoadGraphSource
from simulations.erlang import servers_for
from simulations.planning import PlanResult, solve_mclp, solve_min_facilities, solve_pmedian
from simulations.results import Summary
from simulations.scenario import Scenario
from simulations.tables import demand_points, make_provider

OBJECTIVES = ("coverage", "p-median", "min-vans")
OBJECTIVE_MEANING = {
    "coverage": "breakdowns per day whose nearest chosen base is within the criterion "
    "(higher is better)",
    "p-median": "breakdowns per day x road minutes to the nearest chosen base, summed "
    "(lower is better)",
    "min-vans": "number of bases needed to cover the target share (lower is better)",
}
"""What the solver's objective value counts, said beside it."""
MAX_WAIT_PROBABILITY = 0.1
_CAPABILITY_ORDER = (VanCapability.HEAVY_SERVICE, VanCapability.WRECKER)


@dataclass(frozen=True, eq=False)
class PlanRecommendation:
    scenario: Scenario
    objective: str
    criterion: str
    station_ids: tuple[str, ...]
    vans_per_base: tuple[int, ...]
    model_coverage_share: float
    result: PlanResult
    network: Network
    extra: dict[str, Any] = field(default_factory=dict)
    road_graph: RoadGraphSource = field(default_factory=RoadGraphSource)

    def describe(self) -> str:
        r = self.result
        lines = [
            f"{self.objective}: {len(self.station_ids)} bases, {sum(self.vans_per_base)} vans "
            f"({self.criterion}); objective {r.objective:,.1f}, "
            + ("proven optimal" if r.proven_optimal else f"NOT proven optimal, gap {r.gap:.2%}")
            + f", {r.seconds:.1f} s ({r.method})",
        ]
        lines.append(f"  objective = {OBJECTIVE_MEANING[self.objective]}")
        names = {st.id: st.name for st in self.network.stations}
        top = sorted(zip(self.vans_per_base, self.station_ids, strict=True), reverse=True)[:10]
        lines.append(
            "busiest bases: " + ", ".join(f"{names.get(sid, sid)} ({sid}) x{n}" for n, sid in top)
        )
        return "\n".join(lines)

    def simulate(
        self,
        days: float = 14.0,
        replications: int = 1,
        today: bool = False,
        cache_dir: Path | None = None,
    ) -> Summary:
        """Simulate the recommendation (or, ``today``, the scenario's own network) for
        ``days``: the same seed and breakdowns either way, so the two compare run for run.
        ``cache_dir``: read and keep the travel tables there, as ``rescue simulate`` does
        (on the national road demand they are most of a plan's time when computed)."""
        from simulations.runner import run

        s = replace(
            self.scenario.with_days(days),
            network=self.scenario.network if today else self.network,
            sweep=(),
            warmup_days=min(self.scenario.warmup_days, 2.0),
            label="today's network" if today else f"plan {self.objective}",
        )
        return run(
            s,
            replications=replications,
            backend="serial",
            road_graph=self.road_graph,
            cache_dir=cache_dir,
        )[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "objective": self.objective,
            "criterion": self.criterion,
            "solver": self.result.summary(),
            "model_coverage_share": round(self.model_coverage_share, 6),
            "bases": [
                {"station_id": sid, "vans": n}
                for sid, n in zip(self.station_ids, self.vans_per_base, strict=True)
            ],
            "vans": int(sum(self.vans_per_base)),
            **self.extra,
        }


def plan_bases(
    scenario: Scenario,
    *,
    objective: str = "coverage",
    p: int | None = None,
    target_share: float = 0.9,
    radius_km: float | None = None,
    threshold_minutes: float | None = None,
    fix_existing: bool = False,
    backup: bool = False,
    time_limit_s: float = 60.0,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> PlanRecommendation:
    """Recommend van bases and counts for ``scenario`` (module docstring); road travel comes
    from ``road_graph`` when the scenario uses the road engine."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if radius_km is not None and threshold_minutes is not None:
        raise ValueError("give --radius-km or --threshold-min, not both")
    if not 0 < target_share <= 1:
        raise ValueError(f"target share must be in (0, 1], got {target_share!r}")
    for name, v in (("radius_km", radius_km), ("threshold_minutes", threshold_minutes)):
        if v is not None and not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
    net = scenario.network
    stations = net.stations
    provider = make_provider(scenario, road_graph)
    points = demand_points(scenario, provider=provider, road_graph=road_graph)
    van_radius = max(v.service_radius_km for v in net.vans)
    st_ll = np.array([(s.location.lat, s.location.lon) for s in stations], dtype=float)
    pairs = provider.within(st_ll, points.latlon, van_radius, scenario.travel.profile("rescue_van"))
    site = np.asarray(pairs.source, dtype=np.int64)
    point = np.asarray(pairs.target, dtype=np.int64)
    km = np.asarray(pairs.km, dtype=float)
    minutes = np.asarray(pairs.minutes, dtype=float)
    if radius_km is not None:
        ok = km <= radius_km
        criterion = f"{radius_km:g} road km"
    else:
        limit = threshold_minutes or scenario.promise.arrival_minutes
        ok = minutes <= limit
        criterion = f"{limit:g} road minutes"
    n_pts, n_sites = len(points), len(stations)
    coverage = np.zeros((n_pts, n_sites), dtype=bool)
    coverage[point[ok], site[ok]] = True
    demand = points.weight * scenario.demand.breakdowns_per_day
    fixed: tuple[int, ...] = ()
    if fix_existing:
        fixed = tuple(i for i, s in enumerate(stations) if s.grade is StationGrade.AAA)
    current = len({v.station_id for v in net.vans})
    if objective == "coverage":
        k = p or current
        result = solve_mclp(
            coverage, demand, k, fixed=fixed, backup=backup, time_limit_s=time_limit_s
        )
    elif objective == "p-median":
        k = p or current
        big = float(minutes.max() if len(minutes) else 1.0) * 10.0 + 1000.0
        dist = np.full((n_pts, n_sites), big)
        dist[point, site] = minutes
        result = solve_pmedian(dist, k, weights=demand, fixed=fixed, time_limit_s=time_limit_s)
    else:
        result = solve_min_facilities(
            coverage, demand, target_share, fixed=fixed, time_limit_s=time_limit_s
        )
    sites = np.array(sorted(result.sites), dtype=np.int64)
    covered = coverage[:, sites].any(axis=1) if len(sites) else np.zeros(n_pts, dtype=bool)
    share = float(demand[covered].sum() / demand.sum())

    # van counts: nearest open base per point, Erlang C on the base's offered load
    open_mask = np.zeros(n_sites, dtype=bool)
    open_mask[sites] = True
    sel = open_mask[site]
    best = np.full(n_pts, math.inf)
    base_of = np.full(n_pts, -1, dtype=np.int64)
    for s_, p_, m_ in zip(site[sel], point[sel], minutes[sel], strict=True):
        if m_ < best[p_]:
            best[p_], base_of[p_] = m_, s_
    cat = scenario.repairs.catalogue
    shares = np.array([f.share for f in cat.faults], dtype=float)
    shares /= shares.sum()
    fail_minutes = scenario.repairs.diagnosis_minutes + scenario.repairs.tow_hookup_minutes
    on_site_h = float(
        sum(
            w
            * (f.p_on_site_fix * f.on_site_hours.mean() + (1 - f.p_on_site_fix) * fail_minutes / 60)
            for w, f in zip(shares, cat.faults, strict=True)
        )
    )
    load = np.zeros(n_sites)
    has = base_of >= 0
    job_h = on_site_h + 2.0 * best[has] / 60.0
    np.add.at(load, base_of[has], demand[has] / 24.0 * job_h)
    counts = tuple(servers_for(float(load[j]), MAX_WAIT_PROBABILITY) for j in sites.tolist())
    vans: list[RescueVan] = []
    radius_by_station = {v.station_id: v.service_radius_km for v in net.vans}
    for j, c in zip(sites.tolist(), counts, strict=True):
        st = stations[j]
        for k in range(c):
            cap = _CAPABILITY_ORDER[k] if k < len(_CAPABILITY_ORDER) else _CAPABILITY_ORDER[0]
            vans.append(
                RescueVan(
                    id=f"PLAN-{st.id}-{k + 1}",
                    station_id=st.id,
                    capability=cap,
                    service_radius_km=radius_by_station.get(st.id, van_radius),
                )
            )
    network = replace(net, vans=tuple(vans))
    return PlanRecommendation(
        scenario=scenario,
        objective=objective,
        criterion=criterion,
        station_ids=tuple(stations[j].id for j in sites.tolist()),
        vans_per_base=counts,
        model_coverage_share=share,
        result=result,
        network=network,
        extra={"fixed_bases": len(fixed), "current_bases": current},
        road_graph=road_graph,
    )
