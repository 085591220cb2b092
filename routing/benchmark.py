"""The routing benchmark (``rescue bench routing``): candidate generation on a road graph.

For ``breakdowns`` random breakdown points and ``vans`` vans at random home stations, find
every (van, breakdown) with road km(home station -> breakdown) <= the van's radius and its
travel time, (a) with :meth:`RoadGraphProvider.within` and (b) the naive way, a networkx
Dijkstra bounded by the largest radius from each breakdown (on the reversed graph when
directed). Same snapping and off-network legs in both; the result says whether the pair sets
are identical.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Any

import numpy as np

from routing.provider import PairSet, get_profile
from routing.road import RoadGraphProvider


def random_breakdowns(
    provider: RoadGraphProvider, n: int, rng: np.random.Generator, jitter_km: float = 3.0
) -> np.ndarray:
    """``n`` points near random nodes of the largest road component (up to ``jitter_km`` off)."""
    g = provider.graph
    largest = np.argmax(np.bincount(g.component))
    nodes = rng.choice(np.flatnonzero(g.component == largest), size=n)
    r = jitter_km * np.sqrt(rng.random(n))
    theta = rng.random(n) * 2 * np.pi
    lat = g.lat[nodes] + r * np.cos(theta) / 111.2
    lon = g.lon[nodes] + r * np.sin(theta) / (111.2 * np.cos(np.radians(g.lat[nodes])))
    return np.column_stack((np.clip(lat, -90, 90), np.clip(lon, -180, 180)))


def naive_within(
    provider: RoadGraphProvider,
    nx_graph: Any,
    sources: np.ndarray,
    targets: np.ndarray,
    max_km: np.ndarray,
    profile: str = "rescue_van",
) -> set[tuple[int, int]]:
    """The baseline: one networkx Dijkstra per unique target node, cut off at the largest
    budget, then every source checked against it (same snapping and off-network km)."""
    import networkx as nx

    p = get_profile(profile)
    ss, ts = provider.snap(sources), provider.snap(targets)
    off_s = np.where(ss.snapped, ss.distance_km * p.off_network_circuity, np.inf)
    off_t = np.where(ts.snapped, ts.distance_km * p.off_network_circuity, np.inf)
    graph = nx_graph.reverse(copy=False) if nx_graph.is_directed() else nx_graph
    cutoff = float(np.max(max_km - off_s, initial=0.0))
    by_node: dict[int, list[int]] = {}
    for i, node in enumerate(ss.node.tolist()):
        if node >= 0:
            by_node.setdefault(node, []).append(i)
    pairs: set[tuple[int, int]] = set()
    dist_cache: dict[int, dict[int, float]] = {}
    for t, tnode in enumerate(ts.node.tolist()):
        if tnode < 0:
            continue
        if tnode not in dist_cache:
            dist_cache[tnode] = nx.single_source_dijkstra_path_length(
                graph, tnode, cutoff=cutoff, weight="length_km"
            )
        dist = dist_cache[tnode]
        for snode, members in by_node.items():
            d = dist.get(snode)
            if d is None:
                continue
            for s in members:
                if off_s[s] + d + off_t[t] <= max_km[s]:
                    pairs.add((s, t))
    return pairs


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the peak
        return _peak_mb()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_routing_benchmark(
    load_provider: Any,
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
    provider: RoadGraphProvider = load_provider()
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
