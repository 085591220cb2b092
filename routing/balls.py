"""Kept road-km balls around fixed points (service stations), in memory and on disk.

Stations do not move, so the road km from a station's node to every node within the service
radius are the same in every dispatch cycle. Computing these balls once per road graph (the
national network's 935 station nodes at 150 km: ~1.6 million (node, km) entries, ~19 MB,
under a second) and keeping them turns the largest search of candidate generation into a
lookup (:meth:`routing.road.RoadGraphProvider.keep_balls`).

A ball holds the exact network km that a search bounded by its radius finds (the same scipy
Dijkstra on the same graph), so a lookup gives the same numbers as the search it replaces.
On disk an entry is keyed by the graph's :func:`graph_fingerprint` (a hash of its arrays, not
its path) and the radius, and carries both inside: an entry written for another graph or
radius, or a damaged one, is ignored and rewritten, never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import dijkstra

from routing.graph import RoadGraph

logger = logging.getLogger(__name__)

BALLS_FORMAT_VERSION = 1
BALL_SEARCHES_PER_CALL = 16
"""Sources per scipy call while computing balls (as in the provider's bulk searches)."""


def graph_fingerprint(graph: RoadGraph) -> str:
    """A hash of everything that decides road km on ``graph`` (coordinates, edges, lengths,
    speeds, direction): two graphs with the same fingerprint give the same balls."""
    cached = graph.__dict__.get("_fingerprint")
    if cached is not None:
        return str(cached)
    h = hashlib.sha256(f"balls-v{BALLS_FORMAT_VERSION}|directed={graph.directed}".encode())
    for arr in (graph.lat, graph.lon, graph.edge_u, graph.edge_v, graph.edge_km):
        h.update(np.ascontiguousarray(arr).tobytes())
        h.update(b"|")
    if graph.edge_speed_kmh is not None:
        h.update(np.ascontiguousarray(graph.edge_speed_kmh).tobytes())
    digest = h.hexdigest()[:32]
    graph.__dict__["_fingerprint"] = digest
    return digest


@dataclass(frozen=True, eq=False)
class NodeBalls:
    """For each source node, every node within ``radius_km`` network km of it and that km.

    ``source`` is sorted and unique; the ball of ``source[i]`` is ``node[ptr[i]:ptr[i+1]]``
    with km ``km[ptr[i]:ptr[i+1]]`` (original node numbering, forward direction).
    """

    fingerprint: str
    radius_km: float
    source: np.ndarray
    ptr: np.ndarray
    node: np.ndarray
    km: np.ndarray

    def __post_init__(self) -> None:
        for arr in (self.source, self.ptr, self.node, self.km):
            arr.setflags(write=False)

    @property
    def n_entries(self) -> int:
        return len(self.node)

    def rows(self, nodes: np.ndarray) -> np.ndarray:
        """Row of each node in :attr:`source`, -1 where it has no ball."""
        if len(self.source) == 0:
            return np.full(len(nodes), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.source, nodes), len(self.source) - 1)
        return np.where(self.source[at] == nodes, at, -1).astype(np.int64)

    def by_node(self, n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same entries grouped by reached node (cached): ``(ptr, row, km)`` with the
        balls that reach node ``v`` at ``row[ptr[v]:ptr[v+1]]``. A lookup for a few target
        nodes then costs the pairs it finds, not the size of the balls."""
        cached = self.__dict__.get("_by_node")
        if cached is None:
            order = np.argsort(self.node, kind="stable")
            rows = np.repeat(np.arange(len(self.source), dtype=np.int64), np.diff(self.ptr))
            ptr = np.zeros(n_nodes + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.node, minlength=n_nodes), out=ptr[1:])
            cached = (ptr, rows[order], self.km[order])
            for arr in cached:
                arr.setflags(write=False)
            self.__dict__["_by_node"] = cached
        return cached

    def merged(self, other: NodeBalls) -> NodeBalls:
        """The balls of both (same graph and radius); ``other`` wins for a node in both."""
        if other.fingerprint != self.fingerprint or other.radius_km != self.radius_km:
            raise ValueError("can only merge balls of the same graph and radius")
        keep = np.flatnonzero(other.rows(self.source) < 0)
        parts = [(self, keep), (other, np.arange(len(other.source)))]
        source = np.concatenate([b.source[r] for b, r in parts])
        sizes = np.concatenate([np.diff(b.ptr)[r] for b, r in parts])
        order = np.argsort(source, kind="stable")
        nodes, kms = [], []
        for b, r in parts:
            for i in r.tolist():
                nodes.append(b.node[b.ptr[i] : b.ptr[i + 1]])
                kms.append(b.km[b.ptr[i] : b.ptr[i + 1]])
        ptr = np.zeros(len(source) + 1, dtype=np.int64)
        np.cumsum(sizes[order], out=ptr[1:])
        return NodeBalls(
            self.fingerprint,
            self.radius_km,
            source[order],
            ptr,
            np.concatenate([nodes[i] for i in order]) if nodes else np.empty(0, np.int32),
            np.concatenate([kms[i] for i in order]) if kms else np.empty(0),
        )


def compute_balls(graph: RoadGraph, nodes: np.ndarray, radius_km: float) -> NodeBalls:
    """The balls of radius ``radius_km`` around ``nodes`` (bounded Dijkstra, exact km)."""
    if not radius_km >= 0 or not np.isfinite(radius_km):
        raise ValueError(f"radius_km must be a finite number >= 0, got {radius_km!r}")
    source = np.unique(np.asarray(nodes, dtype=np.int64))
    if len(source) and (source[0] < 0 or source[-1] >= graph.n_nodes):
        raise ValueError(f"ball source nodes must be in [0, {graph.n_nodes})")
    csr = graph.search_csr(None, reverse=False)
    rank = graph.search_rank
    node_at_rank = np.argsort(rank).astype(np.int32)
    limit = np.nextafter(float(radius_km), np.inf)
    sizes, found_node, found_km = [], [], []
    for start in range(0, len(source), BALL_SEARCHES_PER_CALL):
        chunk = rank[source[start : start + BALL_SEARCHES_PER_CALL]]
        d = dijkstra(csr, directed=True, indices=chunk, limit=limit)
        row, col = np.nonzero(np.isfinite(d))
        sizes.append(np.bincount(row, minlength=len(chunk)))
        found_node.append(node_at_rank[col])
        found_km.append(d[row, col])
    ptr = np.zeros(len(source) + 1, dtype=np.int64)
    if sizes:
        np.cumsum(np.concatenate(sizes), out=ptr[1:])
    return NodeBalls(
        graph_fingerprint(graph),
        float(radius_km),
        source,
        ptr,
        np.concatenate(found_node) if found_node else np.empty(0, dtype=np.int32),
        np.concatenate(found_km) if found_km else np.empty(0),
    )


def balls_path(cache_dir: Path, fingerprint: str, radius_km: float) -> Path:
    return Path(cache_dir) / f"balls-{fingerprint}-{radius_km!r}km.npz"


def load_balls(cache_dir: Path, graph: RoadGraph, radius_km: float) -> NodeBalls | None:
    """The kept balls of ``graph`` at ``radius_km`` from ``cache_dir``, or ``None`` when there
    are none, or they belong to another graph or radius, or the file is damaged."""
    fingerprint = graph_fingerprint(graph)
    path = balls_path(cache_dir, fingerprint, radius_km)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if (
                int(z["version"]) != BALLS_FORMAT_VERSION
                or str(z["fingerprint"]) != fingerprint
                or float(z["radius_km"]) != float(radius_km)
            ):
                logger.warning("ignoring ball cache %s: written for another graph or radius", path)
                return None
            balls = NodeBalls(
                fingerprint,
                float(radius_km),
                z["source"].astype(np.int64),
                z["ptr"].astype(np.int64),
                z["node"].astype(np.int32),
                z["km"].astype(np.float64),
            )
        _check(balls, graph.n_nodes)
        return balls
    except Exception as exc:  # a damaged entry is rebuilt, never trusted
        logger.warning("ignoring unreadable ball cache %s: %s", path, exc)
        return None


def _check(balls: NodeBalls, n_nodes: int) -> None:
    s, ptr, node, km = balls.source, balls.ptr, balls.node, balls.km
    if len(ptr) != len(s) + 1 or ptr[0] != 0 or ptr[-1] != len(node) or len(km) != len(node):
        raise ValueError("inconsistent ball arrays")
    if len(s) and (np.any(np.diff(s) <= 0) or s[0] < 0 or s[-1] >= n_nodes):
        raise ValueError("ball sources out of order or range")
    if np.any(np.diff(ptr) < 0) or (len(node) and (node.min() < 0 or node.max() >= n_nodes)):
        raise ValueError("ball entries out of range")
    if len(km) and not (np.all(km >= 0) and np.all(km <= np.nextafter(balls.radius_km, np.inf))):
        raise ValueError("ball km out of range")


def save_balls(cache_dir: Path, balls: NodeBalls) -> Path | None:
    """Write ``balls`` atomically; ``None`` (logged) when the directory is not writable."""
    path = balls_path(cache_dir, balls.fingerprint, balls.radius_km)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                version=np.array(BALLS_FORMAT_VERSION),
                fingerprint=np.array(balls.fingerprint),
                radius_km=np.array(balls.radius_km),
                source=balls.source,
                ptr=balls.ptr,
                node=balls.node,
                km=balls.km,
            )
        os.replace(tmp, path)
    except OSError as exc:
        logger.info("ball cache not written (%s)", exc)
        return None
    return path
