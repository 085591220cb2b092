"""A reference for the road engine: the plain networkx way to find candidates, and random
breakdown points on a graph.

:func:`naive_within` answers the same question as :meth:`RoadGraphProvider.within` (every
source within its km budget of every target) with one networkx Dijkstra per target node on
the reversed graph when directed, with the same snapping and off-network legs. The tests use
it as an oracle and ``benchmarks/routing.py`` as the baseline it times the engine against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from routing.provider import get_profile
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
