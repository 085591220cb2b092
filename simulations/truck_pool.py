"""How many replacement trucks each province's partners should hold, checked by simulation.

The question: with ``c`` trucks of a type in a province, what share of the replacement
requests gets a truck at the cargo within ``Y`` hours of asking? Two things decide it: the
drive from the depot (no pool size changes it) and the wait for a free truck (the pool size
does). The planner measures the first and models the second, then checks the answer:

1. **Demand, with an unlimited pool.** The scenario runs (its breakdowns, triage, booking
   policy and contracts, the production matcher) with ``ample`` trucks of every type at every
   depot of the province's partners, so no request ever waits for a truck. Per request it
   records the province, the pool (the truck type its cargo needs: semi-trailer -> tractor,
   loose and palletised -> box truck, oversize -> flatbed; palletised cargo may also go on a
   flatbed in the runs, so box-truck pools are sized conservatively), the *reach time*
   (request to truck at the cargo: the replacement batch plus the empty drive) and the
   *holding time* (truck leaves its depot to truck back there). If a depot ever had all its
   ample trucks out at once, ``ample`` doubles and the run repeats.
2. **Where: the depots.** Per province and truck type, request ``i`` can be reached in time
   from depot ``d`` when its batch delay + the empty drive from ``d`` is within ``Y``. Depots
   are chosen greedily by most newly covered requests (maximal covering) until every request
   that some depot reaches in time is covered: the drive alone then allows the ceiling (step
   3). The set does not depend on the target, so a larger target never asks for fewer trucks
   (the count below grows with the target and starts at one truck per chosen depot).
3. **How many: M/M/c on the measured figures** (:func:`simulations.erlang.erlang_c`). Per
   province and truck type: arrival rate ``lam`` (requests per hour), mean holding time ``h``,
   offered load ``a = lam h``; ``reach_i`` is the batch delay + the drive from the nearest
   chosen depot. With ``c`` trucks pooled a request waits with probability ``C(a, c)`` and
   then ``W > s`` with probability ``C exp(-(c/h - lam) s)``; it is in time when
   reach + wait <= Y, so the modelled share is the mean over the measured requests of
   ``[reach_i <= Y] (1 - C exp(-(c/h - lam)(Y - reach_i)))``. The recommendation is the fewest
   trucks (at least one per chosen depot) whose modelled share reaches the target; they go one
   to each chosen depot, the rest by the largest remainder of the requests nearest to each.
   New trucks copy the largest truck of that type the province's partners have (its partner
   and capacity), else a standard one. Where even an unlimited pool misses the target (the
   *ceiling*, set by how far the depots are), the target is the ceiling less half a point
   (``TRAVEL_LIMITED_MARGIN``) and the cell is marked travel-limited: more trucks cannot
   shorten the drive. (``min(target, ceiling - margin)`` grows with the target, so a larger
   target never asks for fewer trucks; a target of 1, which no finite pool reaches, is sized
   the same way.)
4. **Check by simulation, on the same breakdowns.** The recommended pool and today's pool run
   the same seeds; per province the share of requests reached within ``Y`` is reported side by
   side. Where the recommended pool misses its province's target, the type with the most
   requests reached late gets one more truck and the check repeats (``max_rounds``).

Requests count from the end of the warm-up; requests within ``Y`` of the horizon's end are
left out (their outcome is not known yet); requests released before the truck came (the
diagnosis said no) are left out; requests no truck could ever serve count as missed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dispatch.replacement import CargoKind
from fleet.geography import mainland_provinces
from fleet.model import ReplacementTruck, TruckType
from fleet.network import Network
from routing.road import RoadGraphSource
from simulations.demand import CARGO_KINDS, draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.erlang import erlang_c
from simulations.scenario import Scenario
from simulations.tables import TravelTables, build_tables

TRUCK_TYPES = tuple(TruckType)
POOL_OF_CARGO: dict[CargoKind, TruckType] = {
    CargoKind.SEMI_TRAILER: TruckType.TRACTOR,
    CargoKind.LOOSE: TruckType.BOX_TRUCK,
    CargoKind.PALLETISED: TruckType.BOX_TRUCK,
    CargoKind.OVERSIZE: TruckType.FLATBED,
}
"""The pool a request is counted in: the truck type its cargo needs (palletised: box truck)."""
STANDARD_CAPACITY_T: dict[TruckType, float] = {
    TruckType.TRACTOR: 40.0,
    TruckType.BOX_TRUCK: 18.0,
    TruckType.FLATBED: 30.0,
}
"""Capacity of a new truck of a type the province's partners do not have yet."""
DEFAULT_TARGET_SHARE = 0.95
DEFAULT_WITHIN_HOURS = 4.0
"""Defaults of ``rescue plan --objective trucks``: 95 % of requests reached within 4 h (the
demo partners promise a 1-3 h response; 4 h leaves the drive to a far county)."""
MAX_TRUCKS_PER_CELL = 500
TRAVEL_LIMITED_MARGIN = 0.005
"""Where the drive alone misses the target, the pool must come this close to the ceiling."""


def target_for(target_share: float, ceiling_share: float) -> float:
    """The share a pool is sized for: the target, or just under what the drive allows."""
    return min(target_share, ceiling_share - TRAVEL_LIMITED_MARGIN)


def check_options(target_share: float, within_hours: float) -> None:
    """The options' rules, as the CLI names them."""
    if not isinstance(target_share, int | float) or not 0 < target_share <= 1:
        raise ValueError(f"--target-share must be in (0, 1], got {target_share!r}")
    if (
        not isinstance(within_hours, int | float)
        or not math.isfinite(within_hours)
        or (within_hours <= 0)
    ):
        raise ValueError(f"--within-hours must be > 0, got {within_hours!r}")


@dataclass(frozen=True)
class PoolCell:
    """One province's pool of one truck type."""

    province: str
    truck_type: TruckType
    today: int
    requests: int
    """Measured requests (all replications)."""
    requests_per_day: float
    mean_hold_hours: float
    offered_load: float
    """Erlangs: requests per hour x mean holding hours."""
    ceiling_share: float
    """Share reached within Y with an unlimited pool."""
    erlang_trucks: int
    """The M/M/c recommendation (step 2)."""
    recommended: int
    """After the simulated check (step 4)."""
    model_share: float
    """The modelled share at ``recommended``."""
    travel_limited: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "province": self.province,
            "truck_type": self.truck_type.value,
            "today": self.today,
            "recommended": self.recommended,
            "erlang_trucks": self.erlang_trucks,
            "requests": self.requests,
            "requests_per_day": round(self.requests_per_day, 4),
            "mean_hold_hours": round(self.mean_hold_hours, 3),
            "offered_load": round(self.offered_load, 4),
            "ceiling_share": round(self.ceiling_share, 4),
            "model_share": round(self.model_share, 4),
            "travel_limited": self.travel_limited,
        }


@dataclass(frozen=True)
class ProvinceCheck:
    """The simulated share within Y of one province, today and with the recommendation."""

    province: str
    name: str
    requests: int
    target: float
    """The province's target: :func:`target_for` its ceiling."""
    ceiling_share: float
    today_share: float
    plan_share: float
    today_trucks: int
    plan_trucks: int

    @property
    def met(self) -> bool:
        return self.requests == 0 or self.plan_share >= self.target - 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {
            "province": self.province,
            "name": self.name,
            "requests": self.requests,
            "target": round(self.target, 4),
            "ceiling_share": round(self.ceiling_share, 4),
            "today_share": round(self.today_share, 4),
            "plan_share": round(self.plan_share, 4),
            "today_trucks": self.today_trucks,
            "plan_trucks": self.plan_trucks,
            "met": self.met,
        }


@dataclass(frozen=True, eq=False)
class TruckPlan:
    """The recommendation and its simulated check."""

    scenario: Scenario
    target_share: float
    within_hours: float
    days: float
    replications: int
    cells: tuple[PoolCell, ...]
    checks: tuple[ProvinceCheck, ...]
    rounds: int
    """Simulated checks run (1 = the M/M/c answer passed at once)."""
    ample: int
    network: Network
    """Today's network with the recommended trucks in the planned provinces."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)

    def describe(self) -> str:
        today = sum(c.today for c in self.cells)
        plan = sum(c.recommended for c in self.cells)
        limited = [c for c in self.cells if c.travel_limited]
        lines = [
            f"trucks: {plan} recommended in {len(self.checks)} province(s) (today {today}) so "
            f"that {self.target_share:.0%} of replacement requests have a truck at the cargo "
            f"within {self.within_hours:g} h; checked by {self.rounds} simulated run(s) of "
            f"{self.days:g} days x {self.replications} replication(s) on the same breakdowns",
        ]
        if limited:
            lines.append(
                f"  travel-limited (even an unlimited pool misses the target): {len(limited)} "
                f"pool(s); their target is the ceiling less {TRAVEL_LIMITED_MARGIN:.1%}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "objective": "trucks",
            "target_share": self.target_share,
            "within_hours": self.within_hours,
            "days": self.days,
            "replications": self.replications,
            "rounds": self.rounds,
            "ample_trucks_per_depot": self.ample,
            "met": self.met,
            "trucks_today": sum(c.today for c in self.cells),
            "trucks_recommended": sum(c.recommended for c in self.cells),
            "pools": [c.to_dict() for c in self.cells],
            "provinces": [c.to_dict() for c in self.checks],
            **self.extra,
        }


@dataclass(frozen=True, eq=False)
class _Requests:
    """The measured replacement requests of one or more runs, one row each."""

    province: np.ndarray  # str
    pool: np.ndarray  # index into TRUCK_TYPES
    reach_minutes: np.ndarray  # request -> truck at the cargo (inf: never)
    reach_free_minutes: np.ndarray
    """The same without any wait for a busy truck: batch delay + empty drive (inf: never)."""
    hold_minutes: np.ndarray  # truck out and back (nan: no truck)
    depot: np.ndarray  # the booked truck's depot row in the tables (-1: none)
    point: np.ndarray  # demand point of the breakdown
    batch_minutes: np.ndarray  # request -> booking (the replacement batch; inf: never booked)
    busy_peak: int
    """Unlimited run: the most trucks of one type out at once from one depot."""


def _province_of_truck(network: Network, provinces: set[str]) -> dict[str, str]:
    """Truck id -> the planned province its partner serves (first by adcode)."""
    out: dict[str, str] = {}
    partners = network.partner_by_id
    for t in network.trucks:
        served = sorted(partners[t.partner_id].provinces & provinces)
        if served:
            out[t.id] = served[0]
    return out


def _depots_by_province(
    network: Network, tables: TravelTables, province_of: dict[str, str]
) -> dict[str, list[int]]:
    """Per planned province: the depot rows (in the tables) of its partners' trucks."""
    row = {(float(a), float(o)): k for k, (a, o) in enumerate(tables.depot_latlon)}
    out: dict[str, set[int]] = defaultdict(set)
    for t in network.trucks:
        p = province_of.get(t.id)
        k = row.get((t.depot.lat, t.depot.lon))
        if p is not None and k is not None:
            out[p].add(k)
    return {p: sorted(v) for p, v in out.items()}


def _templates(
    network: Network, province_of: dict[str, str]
) -> dict[tuple[str, TruckType], ReplacementTruck]:
    """Per province and type: the truck new ones copy (the largest of that type; without
    one, the province's first truck with the type's standard capacity)."""
    out: dict[tuple[str, TruckType], ReplacementTruck] = {}
    first: dict[str, ReplacementTruck] = {}
    for t in network.trucks:
        p = province_of.get(t.id)
        if p is None:
            continue
        first.setdefault(p, t)
        key = (p, t.truck_type)
        if key not in out or t.capacity_t > out[key].capacity_t:
            out[key] = t
    for p, t in first.items():
        for tt in TRUCK_TYPES:
            if (p, tt) not in out:
                out[(p, tt)] = replace(t, truck_type=tt, capacity_t=STANDARD_CAPACITY_T[tt])
    return out


def _pool_network(
    network: Network,
    tables: TravelTables,
    province_of: dict[str, str],
    counts: dict[tuple[str, TruckType], dict[int, int]],
) -> Network:
    """``network`` with the planned provinces' trucks replaced by ``counts``: per province
    and type, trucks per depot row."""
    templates = _templates(network, province_of)
    adcode_at = {(t.depot.lat, t.depot.lon): t.depot_adcode for t in network.trucks}
    kept = [t for t in network.trucks if t.id not in province_of]
    added: list[ReplacementTruck] = []
    for (p, tt), per_depot in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        template = templates.get((p, tt))
        if template is None:
            continue
        n = 0
        for depot, c in sorted(per_depot.items()):
            lat, lon = (float(x) for x in tables.depot_latlon[depot])
            for _ in range(c):
                n += 1
                added.append(
                    replace(
                        template,
                        id=f"POOL-{p}-{tt.value}-{n}",
                        depot=replace(template.depot, lat=lat, lon=lon),
                        depot_adcode=adcode_at.get((lat, lon), template.depot_adcode),
                    )
                )
    return replace(network, trucks=tuple(kept + added))


def _measure(
    scenario: Scenario,
    tables: TravelTables,
    network: Network,
    province_of: dict[str, str],
    within_minutes: float,
) -> _Requests:
    """Run the scenario with ``network``'s trucks, every replication; the measured requests."""
    s = replace(scenario, network=network)
    warm = s.warmup_days * 1440.0
    last = s.total_minutes - within_minutes
    provinces = set(province_of.values())
    truck_depot_row = {(float(a), float(o)): k for k, (a, o) in enumerate(tables.depot_latlon)}
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    peak = 0
    for rep in range(s.replications):
        b = draw_breakdowns(s, tables, replication_streams(s.seed, rep))
        sim = Simulation(s, tables, b)
        sim.run()
        repl = sim.replacements
        n = len(b)
        asked = ~np.isnan(repl.requested_at[:n])
        released = ~np.isnan(repl.released_at[:n])
        keep = asked & ~released & (b.t >= warm) & (repl.requested_at[:n] <= last)
        province = np.array(tables.points.province, dtype=object)[b.point]
        keep &= np.isin(province, sorted(provinces))
        idx = np.nonzero(keep)[0]
        booked = ~np.isnan(repl.booked_at[idx])
        pickup = repl.pickup_at[idx]
        drive_out = repl.drive_out_at[idx]
        # the drive alone (no wait for a busy truck): batch delay + empty leg
        reach_free = (repl.booked_at[idx] - repl.requested_at[idx]) + (pickup - drive_out)
        reach = np.where(booked, pickup - repl.requested_at[idx], np.inf)
        trucks = sim.replacements.trucks
        k = repl.truck_of[idx]
        depot = np.array(
            [
                truck_depot_row.get((trucks[j].depot.lat, trucks[j].depot.lon), -1)
                if j >= 0
                else -1
                for j in k.tolist()
            ],
            dtype=np.int64,
        )
        parts["province"].append(province[idx])
        parts["pool"].append(
            np.array(
                [TRUCK_TYPES.index(POOL_OF_CARGO[CARGO_KINDS[c]]) for c in b.cargo_kind[idx]],
                dtype=np.int64,
            )
        )
        parts["reach"].append(reach)
        parts["reach_free"].append(np.where(booked, reach_free, np.inf))
        parts["hold"].append(np.where(booked, repl.truck_back_at[idx] - drive_out, np.nan))
        parts["depot"].append(depot)
        parts["point"].append(b.point[idx])
        parts["batch"].append(
            np.where(booked, repl.booked_at[idx] - repl.requested_at[idx], np.inf)
        )
        # the most trucks of one type out at once from one depot (any request, any province)
        out = ~np.isnan(repl.drive_out_at[:n]) & (repl.truck_of[:n] >= 0)
        peak = max(peak, _busy_peak(repl, out))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return _Requests(
        province=cat["province"].astype(str) if len(cat["province"]) else np.zeros(0, dtype=str),
        pool=cat["pool"].astype(np.int64),
        reach_minutes=cat["reach"],
        reach_free_minutes=cat["reach_free"],
        hold_minutes=cat["hold"],
        depot=cat["depot"].astype(np.int64),
        point=cat["point"].astype(np.int64),
        batch_minutes=cat["batch"],
        busy_peak=peak,
    )


def _busy_peak(repl: Any, out: np.ndarray) -> int:
    """The most trucks of one type simultaneously away from one depot (bookings ``out``)."""
    ks = repl.truck_of[out]
    if not len(ks):
        return 0
    starts = repl.drive_out_at[out]
    ends = repl.truck_back_at[out]
    depot = repl.truck_depot[ks]
    ttype = np.array([TRUCK_TYPES.index(repl.trucks[j].truck_type) for j in ks.tolist()])
    peak = 0
    for key in set(zip(depot.tolist(), ttype.tolist(), strict=True)):
        sel = (depot == key[0]) & (ttype == key[1])
        events = np.concatenate([starts[sel], ends[sel]])
        step = np.concatenate([np.ones(sel.sum()), -np.ones(sel.sum())])
        order = np.lexsort((step, events))  # at a tie the return counts first
        peak = max(peak, int(np.cumsum(step[order]).max()))
    return peak


def modelled_share(
    reach_minutes: np.ndarray,
    within_minutes: float,
    arrivals_per_hour: float,
    mean_hold_hours: float,
    trucks: int,
) -> float:
    """The share of requests with reach + M/M/c wait <= ``within_minutes`` (module doc)."""
    reach = np.asarray(reach_minutes, dtype=float)
    if not len(reach):
        return 1.0
    a = arrivals_per_hour * mean_hold_hours
    if trucks < 1 or a >= trucks:
        return 0.0
    wait_p = erlang_c(a, trucks)
    decay_per_hour = trucks / mean_hold_hours - arrivals_per_hour
    slack_h = (within_minutes - reach) / 60.0
    ok = slack_h >= 0
    p = np.where(ok, 1.0 - wait_p * np.exp(-decay_per_hour * np.where(ok, slack_h, 0.0)), 0.0)
    return float(p.mean())


def _share_within(reach: np.ndarray, within_minutes: float) -> float:
    return float((reach <= within_minutes).mean()) if len(reach) else math.nan


def _covering_depots(covers: np.ndarray) -> list[int]:
    """Greedy covering: rows of ``covers`` (depot x request: the drive alone is within the
    time) added by most newly covered requests (ties: lowest row) until every request that any
    row covers is covered."""
    n = covers.shape[1]
    if not n:
        return []
    goal = int(covers.any(axis=0).sum())
    done = np.zeros(n, dtype=bool)
    chosen: list[int] = []
    while int(done.sum()) < goal:
        gain = (covers & ~done).sum(axis=1)
        d = int(np.argmax(gain))
        chosen.append(d)
        done |= covers[d]
    return chosen


def _spread(total: int, weights: dict[int, float], depots: Sequence[int]) -> dict[int, int]:
    """``total`` trucks over ``depots``: one each (while they last), the rest by the largest
    remainder of ``weights`` (ties and zero weights: in depot order)."""
    if total <= 0 or not depots:
        return {}
    depots = list(depots)[:total]
    w = np.array([weights.get(d, 0.0) for d in depots], dtype=float)
    if w.sum() <= 0:
        w = np.ones(len(depots))
    exact = (total - len(depots)) * w / w.sum()
    whole = np.floor(exact)
    base = whole.astype(np.int64) + 1
    rest = total - int(base.sum())
    order = sorted(range(len(depots)), key=lambda i: (-(exact[i] - whole[i]), -w[i], i))
    for i in order[:rest]:
        base[i] += 1
    return {d: int(c) for d, c in zip(depots, base.tolist(), strict=True) if c}


def plan_trucks(
    scenario: Scenario,
    *,
    target_share: float = DEFAULT_TARGET_SHARE,
    within_hours: float = DEFAULT_WITHIN_HOURS,
    days: float | None = None,
    replications: int | None = None,
    max_rounds: int = 5,
    ample: int = 8,
    road_graph: RoadGraphSource = RoadGraphSource(),
    cache_dir: Any = None,
    tables: TravelTables | None = None,
) -> TruckPlan:
    """Recommend replacement-truck pools per province and truck type (module docstring) and
    check them by simulation beside today's pool."""
    check_options(target_share, within_hours)
    if days is not None and not days > 0:
        raise ValueError(f"--sim-days must be > 0, got {days!r}")
    if replications is not None and replications < 1:
        raise ValueError(f"--replications must be >= 1, got {replications!r}")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds!r}")
    s = replace(
        scenario.with_days(days) if days is not None else scenario,
        sweep=(),
        replications=replications or scenario.replications,
    )
    if tables is None:
        tables = build_tables(s, road_graph=road_graph, cache_dir=cache_dir)
    within = within_hours * 60.0
    net = s.network
    demand_provinces = set(tables.points.province)
    province_of = _province_of_truck(net, demand_provinces)
    depots = _depots_by_province(net, tables, province_of)
    planned = sorted(depots)
    if not planned:
        raise ValueError(
            f"{s.source}: no partner trucks serve the scenario's provinces "
            f"({', '.join(sorted(demand_provinces))}); nothing to size"
        )
    measured_days = s.horizon_days * s.replications

    # 1. demand with an unlimited pool (ample trucks of every type at every depot)
    while True:
        ample_counts = {
            (p, tt): dict.fromkeys(depots[p], ample) for p in planned for tt in TRUCK_TYPES
        }
        ample_net = _pool_network(net, tables, province_of, ample_counts)
        measured = _measure(
            s, tables, ample_net, _province_of_truck(ample_net, demand_provinces), within
        )
        if measured.busy_peak < ample or ample >= 64:
            break
        ample *= 2

    reach_free = measured.reach_free_minutes
    # 2. M/M/c per province and type
    today_count: dict[tuple[str, TruckType], int] = defaultdict(int)
    for t in net.trucks:
        if t.id in province_of:
            today_count[(province_of[t.id], t.truck_type)] += 1
    cell_stats: dict[tuple[str, TruckType], tuple[np.ndarray, float, float, float]] = {}
    erlang: dict[tuple[str, TruckType], int] = {}
    where: dict[tuple[str, TruckType], tuple[list[int], dict[int, float]]] = {}
    for p in planned:
        rows = np.array(depots[p], dtype=np.int64)
        for ti, tt in enumerate(TRUCK_TYPES):
            sel = (measured.province == p) & (measured.pool == ti)
            n = int(sel.sum())
            holds = measured.hold_minutes[sel]
            holds = holds[~np.isnan(holds)]
            h = float(holds.mean()) / 60.0 if len(holds) else 0.0
            lam = n / (measured_days * 24.0)
            ceiling = _share_within(reach_free[sel], within) if n else 1.0
            need = target_for(target_share, ceiling)
            # where: the fewest depots whose drive alone keeps the cell within reach
            drive = tables.empty_minutes[np.ix_(rows, measured.point[sel])]
            reach_from = measured.batch_minutes[sel][None, :] + drive  # (depots, requests)
            chosen = _covering_depots(reach_from <= within)
            if n and not chosen:  # no depot is within the time: the one nearest on average
                chosen = [int(np.argmin(np.where(np.isfinite(drive), drive, 1e12).mean(axis=1)))]
            reach = (
                reach_from[chosen].min(axis=0) if chosen else np.full(n, np.inf)
            )  # nearest chosen depot
            nearest = np.array(chosen)[reach_from[chosen].argmin(axis=0)] if chosen and n else []
            weights = {int(rows[d]): float(np.sum(nearest == d)) for d in chosen}
            where[(p, tt)] = ([int(rows[d]) for d in chosen], weights)
            # how many: the fewest (one per chosen depot at least) with the modelled share
            c = 0
            if n:
                c = max(1, len(chosen))
                while (
                    h > 0
                    and modelled_share(reach, within, lam, h, c) < need - 1e-12
                    and c < MAX_TRUCKS_PER_CELL
                ):
                    c += 1
            cell_stats[(p, tt)] = (reach, lam, h, ceiling)
            erlang[(p, tt)] = c

    def network_for(counts: dict[tuple[str, TruckType], int]) -> Network:
        return _pool_network(
            net,
            tables,
            province_of,
            {k: _spread(c, where[k][1], where[k][0]) for k, c in counts.items()},
        )

    # province targets: per-cell needs weighted by requests
    province_requests = {p: int((measured.province == p).sum()) for p in planned}
    province_ceiling = {
        p: _share_within(reach_free[measured.province == p], within)
        if province_requests[p]
        else 1.0
        for p in planned
    }
    province_target = {p: target_for(target_share, province_ceiling[p]) for p in planned}

    # 4. today's pool and the recommendation on the same breakdowns; one more truck where missed
    today_measured = _measure(s, tables, net, province_of, within)
    counts = dict(erlang)
    rounds = 0
    while True:
        rounds += 1
        plan_net = network_for(counts)
        plan_measured = _measure(
            s, tables, plan_net, _province_of_truck(plan_net, demand_provinces), within
        )
        missed = []
        for p in planned:
            sel = plan_measured.province == p
            if sel.any() and _share_within(plan_measured.reach_minutes[sel], within) < (
                province_target[p] - 1e-12
            ):
                missed.append(p)
        if not missed or rounds >= max_rounds:
            break
        for p in missed:
            # the type with the most requests reached late gains most from one more truck
            late = [
                int(
                    (
                        (plan_measured.province == p)
                        & (plan_measured.pool == ti)
                        & ~(plan_measured.reach_minutes <= within)
                    ).sum()
                )
                for ti in range(len(TRUCK_TYPES))
            ]
            worst = int(np.argmax(late))
            if late[worst] and counts[(p, TRUCK_TYPES[worst])] < MAX_TRUCKS_PER_CELL:
                counts[(p, TRUCK_TYPES[worst])] += 1

    names = {u.adcode: u.name for u in mainland_provinces()}
    cells = []
    for p in planned:
        for tt in TRUCK_TYPES:
            reach, lam, h, ceiling = cell_stats[(p, tt)]
            c = counts[(p, tt)]
            cells.append(
                PoolCell(
                    province=p,
                    truck_type=tt,
                    today=today_count[(p, tt)],
                    requests=len(reach),
                    requests_per_day=len(reach) / measured_days,
                    mean_hold_hours=h,
                    offered_load=lam * h,
                    ceiling_share=ceiling,
                    erlang_trucks=erlang[(p, tt)],
                    recommended=c,
                    model_share=modelled_share(reach, within, lam, h, c) if len(reach) else 1.0,
                    travel_limited=ceiling < target_share,
                )
            )
    checks = []
    for p in planned:
        t_sel = today_measured.province == p
        p_sel = plan_measured.province == p
        checks.append(
            ProvinceCheck(
                province=p,
                name=names.get(p, p),
                requests=int(p_sel.sum()),
                target=province_target[p],
                ceiling_share=province_ceiling[p],
                today_share=_share_within(today_measured.reach_minutes[t_sel], within),
                plan_share=_share_within(plan_measured.reach_minutes[p_sel], within),
                today_trucks=sum(today_count[(p, tt)] for tt in TRUCK_TYPES),
                plan_trucks=sum(counts[(p, tt)] for tt in TRUCK_TYPES),
            )
        )
    return TruckPlan(
        scenario=s,
        target_share=float(target_share),
        within_hours=float(within_hours),
        days=s.horizon_days,
        replications=s.replications,
        cells=tuple(cells),
        checks=tuple(checks),
        rounds=rounds,
        ample=ample,
        network=plan_net,
    )
