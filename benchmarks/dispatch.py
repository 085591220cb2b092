"""``rescue bench assignment`` and ``rescue bench dispatch``: exactness and speed of dispatch.

- :func:`assignment_records`: OR-Library assign/assignp files through the same assignment core
  that ``dispatch.match_vans`` uses; one record per instance (objective = total cost).
- :func:`dispatch_benchmark`: a synthetic national batch (:mod:`dispatch.synthetic`):
  candidate generation with road travel times plus the optimal matching, timed over repeats
  (median wall time, and median process CPU time, steadier on a shared machine), against the
  naive policy (arrival order, nearest free feasible van) on the same batch, in the same run;
  with ``partners`` also the same decision with the national network's partner rescue
  providers as extra columns (:func:`partner_columns_record`);
- :func:`replan_benchmark`: one live cycle with re-planning (open requests plus assigned
  jobs whose van has not arrived, pinned to vans on their way) against the cycle without
  re-planning (the open requests and the free vans only) on the same world, in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from routing.road import RoadGraphSource

GOAL_SECONDS = 0.5
REPLAN_GOAL_RATIO = 1.5
"""A cycle with re-planning may cost at most this times the cycle without it."""
REDIRECT_KM = 25.0
"""The cycle's default (``RESCUE_REPLAN_REDIRECT_KM``): vans on their way are offered other
breakdowns within this many road km."""
ENGINES = ("road", "great-circle")


def assignment_records(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """One record per OR-Library file, in order; ``ValueError`` (naming the file) at the first
    file that is missing or malformed, after the records of the files before it."""
    from dispatch.assignment import read_orlib_assignment

    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        instance = read_orlib_assignment(path)
        started = time.perf_counter()
        result = instance.solve()
        seconds = time.perf_counter() - started
        yield {
            "instance": instance.name,
            "n": instance.n,
            "arcs": len(instance.arc_row),
            "objective": result.objective,
            "seconds": round(seconds, 4),
        }


def dispatch_benchmark(
    *,
    requests: int = 1000,
    vans: int = 3000,
    seed: int = 0,
    engine: str = "road",
    repeats: int = 5,
    road_graph: RoadGraphSource = RoadGraphSource(),
    networkx: bool = True,
    storm: bool = False,
    storm_requests: int = 0,
    partners: bool = False,
) -> dict[str, Any]:
    """The whole van-dispatch decision for ``requests`` synthetic requests and ``vans`` vans on
    the national network (travel on ``road_graph`` or great-circle), against the naive policy
    on the same batch and (road engine, ``networkx``) the networkx candidate baseline. With
    ``storm`` the record is :func:`benchmarks.storm.run_storm_benchmark`'s instead; with
    ``partners`` it also carries :func:`partner_columns_record` of the same batch."""
    import numpy as np

    from benchmarks.storm import keep_station_balls, networkx_candidate_seconds, run_storm_benchmark
    from dispatch.synthetic import synthetic_requests, synthetic_vans
    from dispatch.vans import build_van_matching_problem, match_vans, match_vans_naive
    from fleet.demo import build_national_network
    from routing import GreatCircleProvider, RoadGraphProvider, TravelTimeProvider

    if engine not in ENGINES:
        raise ValueError(f"--engine must be road or great-circle, got {engine!r}")
    for name, value in (("--requests", requests), ("--vans", vans), ("--repeats", repeats)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    load_started = time.perf_counter()
    provider: TravelTimeProvider = road_graph.load() if engine == "road" else GreatCircleProvider()
    load_seconds = time.perf_counter() - load_started

    network = build_national_network()
    if storm:
        return run_storm_benchmark(
            provider,
            network,
            requests=storm_requests or 10 * requests,
            base_requests=requests,
            vans=vans,
            seed=seed,
            repeats=repeats,
        )
    rng = np.random.default_rng(seed)
    van_states = synthetic_vans(network, vans, rng)
    batch = synthetic_requests(requests, rng)
    balls_seconds = keep_station_balls(provider, van_states)

    build_times, match_times, total_times, total_cpu = [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        problem = build_van_matching_problem(batch, van_states, provider)
        t1 = time.perf_counter()
        optimal = match_vans(problem, provider=provider)
        t2, c2 = time.perf_counter(), time.process_time()
        build_times.append(t1 - t0)
        match_times.append(t2 - t1)
        total_times.append(t2 - t0)
        total_cpu.append(c2 - c0)
    naive_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        naive = match_vans_naive(problem, provider=provider)
        naive_times.append(time.perf_counter() - t0)

    never_worse = optimal.served_weight() > naive.served_weight() + 1e-9 or (
        abs(optimal.served_weight() - naive.served_weight()) <= 1e-9
        and optimal.total_weighted_eta() <= naive.total_weighted_eta() + 1e-6
    )
    median_total = statistics.median(total_times)
    median_cpu = statistics.median(total_cpu)
    median_naive_match = statistics.median(naive_times)
    baseline: dict[str, Any] = {}
    if networkx and isinstance(provider, RoadGraphProvider):
        nx_seconds, nx_cpu, nx_pairs = networkx_candidate_seconds(provider, van_states, batch)
        baseline = {
            "networkx_candidates_seconds": round(nx_seconds, 3),
            "networkx_candidates_cpu_seconds": round(nx_cpu, 3),
            "networkx_pairs": nx_pairs,
            "decision_over_networkx": round(median_total / nx_seconds, 4),
            "decision_over_networkx_cpu": round(median_cpu / nx_cpu, 4),
            "goal_decision_over_networkx": 0.04,
        }
    extra: dict[str, Any] = {}
    if partners:
        extra["partners"] = partner_columns_record(
            batch, van_states, network, provider, repeats=repeats,
            without_seconds=median_total, without=optimal,
        )  # fmt: skip
    return {
        "benchmark": "dispatch",
        "engine": engine,
        "engine_note": None,
        "engine_load_seconds": round(load_seconds, 3),
        "requests": requests,
        "vans": vans,
        "seed": seed,
        "repeats": repeats,
        "arcs": problem.num_arcs,
        "median_seconds": round(median_total, 4),
        "median_cpu_seconds": round(median_cpu, 4),
        "median_candidates_seconds": round(statistics.median(build_times), 4),
        "median_assignment_seconds": round(statistics.median(match_times), 4),
        "balls_seconds": round(balls_seconds, 3),
        **baseline,
        "goal_seconds": GOAL_SECONDS,
        "meets_goal": median_total <= GOAL_SECONDS,
        "optimal": optimal.summary(),
        "naive": naive.summary(),
        "served_gain": optimal.served_count() - naive.served_count(),
        "served_weight_gain": round(optimal.served_weight() - naive.served_weight(), 3),
        "weighted_eta_ratio_naive_over_optimal": (
            round(naive.total_weighted_eta() / optimal.total_weighted_eta(), 4)
            if optimal.total_weighted_eta()
            else None
        ),
        "optimal_never_worse": never_worse,
        "median_naive_policy_seconds": round(median_naive_match, 4),
        "time_ratio_optimal_over_naive": (
            round(statistics.median(match_times) / median_naive_match, 2)
            if median_naive_match
            else None
        ),
        **extra,
    }


def partner_columns_record(
    batch: Any,
    van_states: Any,
    network: Any,
    provider: Any,
    *,
    repeats: int,
    without_seconds: float,
    without: Any,
) -> dict[str, Any]:
    """The same decision (candidates + matching) with the network's partner rescue providers
    as extra columns (all free; each request a job needing the capability its tow asks for),
    timed over ``repeats`` beside ``without_seconds``, the decision without them in the same
    run: the figure and the ratio, and what moved to partners."""
    from dispatch.partner_rescue import (
        ProviderState,
        RescueJob,
        build_partner_columns,
        required_capability,
    )
    from dispatch.vans import build_van_matching_problem, match_vans
    from fleet.province_index import province_at

    states = tuple(ProviderState(p) for p in network.rescue_providers)
    jobs = [
        RescueJob(r.id, r.location, province_at(r.location.lat, r.location.lon),
                  required_capability(needs_tow=r.needs_tow, fault_code=None))
        for r in batch
    ]  # fmt: skip
    totals, column_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem = build_van_matching_problem(batch, van_states, provider)
        t1 = time.perf_counter()
        columns = build_partner_columns(jobs, states, provider)
        t2 = time.perf_counter()
        matching = match_vans(problem, provider=provider, partners=columns)
        totals.append(time.perf_counter() - t0)
        column_times.append(t2 - t1)
    median = statistics.median(totals)
    return {
        "providers": len(states),
        "partner_arcs": len(columns.arcs),
        "median_seconds": round(median, 4),
        "median_partner_columns_seconds": round(statistics.median(column_times), 4),
        "without_partners_seconds": round(without_seconds, 4),
        "ratio_with_over_without": round(median / without_seconds, 2) if without_seconds else None,
        "served_by_own_vans": matching.served_count(),
        "served_by_own_vans_without_partners": without.served_count(),
        "offered_to_partners": len(matching.partner_assignments),
    }


def replan_world(
    network: Any,
    *,
    requests: int,
    assigned: int,
    vans: int,
    seed: int,
    provider: Any,
    redirect_km: float | None = REDIRECT_KM,
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """A seeded live world: ``vans`` synthetic vans, ``assigned`` jobs already given to vans
    (by the optimal matching of their own batch, each van then a third of the way there,
    pinned to it, with two thirds of its leg left) and ``requests`` new open requests.
    Returns (open requests, free vans, assigned requests, vans on their way)."""
    import numpy as np

    from dispatch.synthetic import synthetic_requests, synthetic_vans
    from dispatch.vans import OpenRequest, VanState, build_van_matching_problem, match_vans
    from fleet.model import GeoPoint
    from routing import Leg

    rng = np.random.default_rng(seed)
    van_states = synthetic_vans(network, vans, rng)
    earlier = [  # a quarter more than wanted: some find no van
        OpenRequest(f"A{i:05d}", r.location, r.vehicle_class, r.needs_tow, r.priority)
        for i, r in enumerate(synthetic_requests(assigned + assigned // 4, rng))
    ]
    batch = synthetic_requests(requests, rng)
    first = match_vans(build_van_matching_problem(earlier, van_states, provider))
    sent_jobs = first.assignments[:assigned]
    van_of = {a.request_id: a.van_id for a in sent_jobs}
    job_of = {a.van_id: a for a in sent_jobs}
    request_by_id = {r.id: r for r in earlier}
    moving, free = [], []
    for v in van_states:
        sent = job_of.get(v.id)
        if sent is None:
            free.append(v)
            continue
        job = sent.request_id
        start, goal = v.expected_position, request_by_id[job].location
        here = GeoPoint(
            start.lat + (goal.lat - start.lat) / 3, start.lon + (goal.lon - start.lon) / 3
        )
        moving.append(
            VanState(
                v.van,
                v.home,
                position=here,
                pinned_request_id=job,
                redirect_km=redirect_km,
                pinned_leg=Leg(sent.travel_km * 2 / 3, sent.travel_minutes * 2 / 3),
            )
        )
    on_way = [r for r in earlier if r.id in van_of]
    return list(batch), free, on_way, moving


def replan_benchmark(
    *,
    requests: int = 1000,
    assigned: int = 2000,
    vans: int = 3000,
    seed: int = 0,
    engine: str = "road",
    repeats: int = 3,
    gain_minutes: float = 15.0,
    redirect_km: float | None = REDIRECT_KM,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> dict[str, Any]:
    """One dispatch cycle with re-planning against the same cycle without it, on the same
    seeded world (:func:`replan_world`), each timed over ``repeats`` (median, alternating; wall
    and process CPU time, the latter steadier on a shared machine):
    without, the open requests against the free vans; with, the open and the assigned
    requests against the free vans and the vans on their way (``allow_reassignment``, a move
    must gain ``gain_minutes``, priority-weighted)."""
    from benchmarks.storm import keep_station_balls
    from dispatch.vans import MatchParams, build_van_matching_problem, match_vans
    from fleet.demo import build_national_network
    from routing import GreatCircleProvider, TravelTimeProvider

    if engine not in ENGINES:
        raise ValueError(f"--engine must be road or great-circle, got {engine!r}")
    for name, value in (("--requests", requests), ("--vans", vans), ("--repeats", repeats),
                        ("--assigned", assigned)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    provider: TravelTimeProvider = road_graph.load() if engine == "road" else GreatCircleProvider()
    network = build_national_network()
    batch, free, on_way, moving = replan_world(
        network, requests=requests, assigned=assigned, vans=vans, seed=seed,
        provider=provider, redirect_km=redirect_km,
    )  # fmt: skip
    keep_station_balls(provider, free + moving)
    params = MatchParams(reassignment_penalty_minutes=gain_minutes)
    plain_times, replan_times, plain_cpu, replan_cpu = [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        plain = match_vans(build_van_matching_problem(batch, free, provider), provider=provider)
        t1, c1 = time.perf_counter(), time.process_time()
        problem = build_van_matching_problem(batch + on_way, free + moving, provider)
        replanned = match_vans(problem, allow_reassignment=True, params=params, provider=provider)
        t2, c2 = time.perf_counter(), time.process_time()
        plain_times.append(t1 - t0)
        replan_times.append(t2 - t1)
        plain_cpu.append(c1 - c0)
        replan_cpu.append(c2 - c1)
    pinned = {v.pinned_request_id: v.id for v in moving}
    chosen = {a.request_id: a.van_id for a in replanned.assignments}
    moved = sum(1 for r, v in pinned.items() if r in chosen and chosen[r] != v)
    released = sum(1 for r in pinned if r not in chosen)
    new_served = sum(1 for r in chosen if r not in pinned)
    plain_s, replan_s = statistics.median(plain_times), statistics.median(replan_times)
    ratio = replan_s / plain_s if plain_s else None
    cpu_plain, cpu_replan = statistics.median(plain_cpu), statistics.median(replan_cpu)
    return {
        "benchmark": "dispatch-replan",
        "engine": engine,
        "requests": requests,
        "assigned": len(on_way),
        "vans": vans,
        "vans_on_their_way": len(moving),
        "seed": seed,
        "repeats": repeats,
        "gain_minutes": gain_minutes,
        "redirect_km": redirect_km,
        "median_seconds_without_replan": round(plain_s, 4),
        "median_seconds_with_replan": round(replan_s, 4),
        "ratio_replan_over_plain": round(ratio, 3) if ratio is not None else None,
        "median_cpu_seconds_without_replan": round(cpu_plain, 4),
        "median_cpu_seconds_with_replan": round(cpu_replan, 4),
        "cpu_ratio_replan_over_plain": round(cpu_replan / cpu_plain, 3) if cpu_plain else None,
        "goal_ratio": REPLAN_GOAL_RATIO,
        "meets_goal": ratio is not None and ratio <= REPLAN_GOAL_RATIO,
        "served_without_replan": plain.served_count(),
        "served_new_with_replan": new_served,
        "moved": moved,
        "released": released,
        "arcs_with_replan": problem.num_arcs,
    }
