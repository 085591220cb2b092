"""``rescue bench routing``: candidate generation on a road graph against networkx.

For ``breakdowns`` random breakdown points and ``vans`` vans at random home stations, find
every (van, breakdown) with road km(home station -> breakdown) <= the van's radius and its
travel time, (a) with :meth:`RoadGraphProvider.within` and (b) the naive way
(:func:`routing.reference.naive_within`, networkx Dijkstra bounded by the largest radius from
each breakdown). Same snapping and off-network legs in both; the record says whether the pair
sets are identical, the ratio of their times and the engine's memory.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from routing.provider import PairSet
from routing.reference import naive_within, random_breakdowns
from routing.road import RoadGraphProvider, RoadGraphSource

OTHER_GRAPH_STATIONS = 938
"""Home stations drawn on a graph that is not the national one (the demo network's count)."""


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the peak
        return _peak_mb()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def station_points(road_graph: RoadGraphSource, seed: int) -> np.ndarray:
    """Home stations as (lat, lon): the demo network's 938 stations on the national graph,
    else random nodes of the given graph (seeded)."""
    if road_graph.directory is None:
        from fleet.demo import build_national_network

        stations = build_national_network().stations
        return np.array([[s.location.lat, s.location.lon] for s in stations])
    g = road_graph.load().graph
    size = min(OTHER_GRAPH_STATIONS, g.n_nodes)
    pick = np.random.default_rng(seed + 1).choice(g.n_nodes, size=size)
    return np.column_stack((g.lat[pick], g.lon[pick]))


def run_routing_benchmark(
    load_provider: Callable[[], RoadGraphProvider],
    station_latlon: np.ndarray,
    *,
    breakdowns: int = 1000,
    vans: int = 3000,
    repeat: int = 5,
    seed: int = 0,
    radius_km: float = 150.0,
    naive: bool = True,
    profile: str = "rescue_van",
    keep_balls: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; ``load_provider()`` returns the engine (timed and measured). With
    ``keep_balls`` the stations' balls are kept first (timed apart as ``balls_s``: computed,
    or read from the cache directory), as the dispatch cycle does; ``searched_s`` is one run
    of the same query by bounded searches alone."""
    if breakdowns < 1 or vans < 1 or repeat < 1:
        raise ValueError("breakdowns, vans and repeat must be >= 1")
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    provider = load_provider()
    provider.snap(station_latlon[:1])  # builds the KD-tree
    provider.graph.csr_km  # noqa: B018  (builds the sparse graph)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    points = random_breakdowns(provider, breakdowns, rng)
    homes = station_latlon[rng.integers(0, len(station_latlon), size=vans)]
    radius = np.full(vans, radius_km)
    balls: dict[str, Any] = {}
    if keep_balls:
        searched = RoadGraphProvider(provider.graph)  # same graph, no kept balls
        t = time.perf_counter()
        searched.within(homes, points, radius, profile)
        balls["searched_s"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()
        balls["balls_computed"] = provider.keep_balls(station_latlon, radius_km)
        balls["balls_s"] = round(time.perf_counter() - t, 3)
    times = []
    result: PairSet | None = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = provider.within(homes, points, radius, profile)
        times.append(time.perf_counter() - t)
    assert result is not None
    engine_mb = max(_peak_mb(), _rss_mb()) - rss0
    out: dict[str, Any] = {
        "benchmark": "routing",
        "graph": provider.graph.name,
        "nodes": provider.graph.n_nodes,
        "breakdowns": breakdowns,
        "vans": vans,
        "radius_km": radius_km,
        "pairs": len(result),
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "load_s": round(load_s, 3),
        "engine_mb": round(engine_mb, 1),
        **balls,
    }
    if naive:
        g = provider.graph.to_networkx()
        t = time.perf_counter()
        pairs = naive_within(provider, g, homes, points, radius, profile)
        naive_s = time.perf_counter() - t
        out["naive_s"] = round(naive_s, 3)
        out["ratio"] = round(naive_s / statistics.median(times), 1)
        out["identical"] = pairs == result.as_set()
    return out


def routing_benchmark(
    road_graph: RoadGraphSource,
    *,
    breakdowns: int = 1000,
    vans: int = 3000,
    repeat: int = 5,
    seed: int = 0,
    radius_km: float = 150.0,
    naive: bool = True,
    keep_balls: bool = True,
) -> dict[str, Any]:
    """The ``rescue bench routing`` record on ``road_graph`` (stations: :func:`station_points`)."""
    return run_routing_benchmark(
        road_graph.load,
        station_points(road_graph, seed),
        breakdowns=breakdowns,
        vans=vans,
        repeat=repeat,
        seed=seed,
        radius_km=radius_km,
        naive=naive,
        keep_balls=keep_balls,
    )
