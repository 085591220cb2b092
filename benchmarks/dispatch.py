"""``rescue bench assignment`` and ``rescue bench dispatch``: exactness and speed of dispatch.

- :func:`assignment_records`: OR-Library assign/assignp files through the same assignment core
  that ``dispatch.match_vans`` uses; one record per instance (objective = total cost).
- :func:`dispatch_benchmark`: a synthetic national batch (:mod:`dispatch.synthetic`):
  candidate generation with road travel times plus the optimal matching, timed over repeats
  (median), against the naive policy (arrival order, nearest free feasible van) on the same
  batch, in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from routing.road import RoadGraphSource

GOAL_SECONDS = 0.5
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
) -> dict[str, Any]:
    """The whole van-dispatch decision for ``requests`` synthetic requests and ``vans`` vans on
    the national network (travel on ``road_graph`` or great-circle), against the naive policy
    on the same batch and (road engine, ``networkx``) the networkx candidate baseline. With
    ``storm`` the record is :func:`benchmarks.storm.run_storm_benchmark`'s instead."""
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

    build_times, match_times, total_times = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem = build_van_matching_problem(batch, van_states, provider)
        t1 = time.perf_counter()
        optimal = match_vans(problem, provider=provider)
        t2 = time.perf_counter()
        build_times.append(t1 - t0)
        match_times.append(t2 - t1)
        total_times.append(t2 - t0)
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
    median_naive_match = statistics.median(naive_times)
    baseline: dict[str, Any] = {}
    if networkx and isinstance(provider, RoadGraphProvider):
        nx_seconds, nx_pairs = networkx_candidate_seconds(provider, van_states, batch)
        baseline = {
            "networkx_candidates_seconds": round(nx_seconds, 3),
            "networkx_pairs": nx_pairs,
            "decision_over_networkx": round(median_total / nx_seconds, 4),
            "goal_decision_over_networkx": 0.04,
        }
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
    }
