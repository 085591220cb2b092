"""Storm benchmark (``rescue bench dispatch --storm``) and the networkx candidate baseline.

A storm: 10,000 open requests at once against 3,000 vans on the national network, so most of
them cannot be assigned (at most one request per van) and each must be explained. The cycle
(candidates + optimal matching + explanations) is timed beside the 1,000-request cycle of
the same run (the storm's first 1,000 requests, same vans): the goal is a ratio of at most
10 (linear or better) with the explanations at most a quarter of the storm cycle.

:func:`networkx_candidate_seconds` is the baseline ``rescue bench dispatch`` compares the
whole decision with: the same batch's home-station candidates found the naive way (one
networkx Dijkstra bounded by the radius per breakdown, as ``rescue bench routing`` does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from dispatch.synthetic import synthetic_requests, synthetic_vans
from dispatch.vans import OpenRequest, VanState, build_van_matching_problem, match_vans
from fleet.network import Network
from routing.provider import BallKeepingProvider, TravelTimeProvider
from routing.reference import naive_within
from routing.road import RoadGraphProvider


def keep_station_balls(provider: TravelTimeProvider, vans: Sequence[VanState]) -> float:
    """Keep (compute or load) the home stations' balls before anything is timed; seconds."""
    if not isinstance(provider, BallKeepingProvider) or not vans:
        return 0.0
    homes = np.unique(np.array([(v.home.lat, v.home.lon) for v in vans]), axis=0)
    radius = max(v.van.service_radius_km for v in vans)
    started = time.perf_counter()
    provider.keep_balls(homes, radius)
    return time.perf_counter() - started


def networkx_candidate_seconds(
    provider: RoadGraphProvider, vans: Sequence[VanState], requests: Sequence[OpenRequest]
) -> tuple[float, float, int]:
    """Seconds (wall, process CPU) and pairs found of the naive candidate search for this
    batch: every (van home, breakdown) within the van's radius by networkx Dijkstra from each
    breakdown."""
    homes = np.array([(v.home.lat, v.home.lon) for v in vans])
    radius = np.array([v.van.service_radius_km for v in vans], dtype=float)
    locs = np.array([(r.location.lat, r.location.lon) for r in requests])
    graph = provider.graph.to_networkx()
    started, cpu = time.perf_counter(), time.process_time()
    pairs = naive_within(provider, graph, homes, locs, radius)
    return time.perf_counter() - started, time.process_time() - cpu, len(pairs)


def _cycle(
    requests: Sequence[OpenRequest], vans: Sequence[VanState], provider: TravelTimeProvider
) -> dict[str, Any]:
    started = time.perf_counter()
    problem = build_van_matching_problem(requests, vans, provider)
    built = time.perf_counter()
    matching = match_vans(problem, provider=provider)
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "candidates_seconds": built - started,
        "assignment_seconds": done - built - matching.explain_seconds,
        "explain_seconds": matching.explain_seconds,
        "arcs": problem.num_arcs,
        "served": matching.served_count(),
        "unassigned": len(matching.unassigned),
        "unassigned_reasons": matching.summary()["unassigned_reasons"],
    }


def _median_cycle(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median total time (its parts add up), rounded."""
    ranked = sorted(runs, key=lambda r: r["seconds"])
    run = dict(ranked[(len(ranked) - 1) // 2])
    for k in ("seconds", "candidates_seconds", "assignment_seconds", "explain_seconds"):
        run[k] = round(run[k], 4)
    run["explain_share"] = round(run["explain_seconds"] / run["seconds"], 3)
    return run


def _spread(runs: list[dict[str, Any]]) -> list[float]:
    return [round(min(r["seconds"] for r in runs), 4), round(max(r["seconds"] for r in runs), 4)]


def run_storm_benchmark(
    provider: TravelTimeProvider,
    network: Network,
    *,
    requests: int = 10_000,
    base_requests: int = 1000,
    vans: int = 3000,
    seed: int = 0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Time the base and the storm cycle (``repeats`` each, interleaved, after one untimed
    base cycle; the median run of each is reported) and return the JSON record of
    ``rescue bench dispatch --storm``."""
    if not 1 <= base_requests <= requests:
        raise ValueError(
            f"base_requests must be in [1, requests={requests}], got {base_requests!r}"
        )
    if vans < 1 or repeats < 1:
        raise ValueError("vans and repeats must be >= 1")
    rng = np.random.default_rng(seed)
    van_states = synthetic_vans(network, vans, rng)
    storm = synthetic_requests(requests, rng)
    base = storm[:base_requests]
    balls_seconds = keep_station_balls(provider, van_states)
    _cycle(base, van_states, provider)  # warm-up: lazy imports and first-call set-up
    base_runs, storm_runs = [], []
    for _ in range(repeats):
        base_runs.append(_cycle(base, van_states, provider))
        storm_runs.append(_cycle(storm, van_states, provider))
    base_cycle, storm_cycle = _median_cycle(base_runs), _median_cycle(storm_runs)
    ratio = storm_cycle["seconds"] / base_cycle["seconds"]
    return {
        "benchmark": "dispatch-storm",
        "engine": getattr(provider, "name", type(provider).__name__),
        "vans": vans,
        "seed": seed,
        "repeats": repeats,
        "balls_seconds": round(balls_seconds, 3),
        "base": {"requests": base_requests, **base_cycle},
        "storm": {"requests": requests, **storm_cycle},
        "storm_over_base": round(ratio, 2),
        "requests_ratio": round(requests / base_requests, 2),
        "goal_storm_over_base": 10.0,
        "goal_explain_share": 0.25,
        "meets_goal": ratio <= 10.0 and storm_cycle["explain_share"] <= 0.25,
        "spread_seconds": {"base": _spread(base_runs), "storm": _spread(storm_runs)},
    }
