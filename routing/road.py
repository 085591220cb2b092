"""The road-graph engine behind :class:`routing.provider.TravelTimeProvider`.

Model (see docs/routing.md):

- a point joins the graph at its nearest node (:mod:`routing.snap`); the off-network leg is the
  straight-line km times the profile's ``off_network_circuity``, driven at
  ``off_network_speed_kmh``. Points more than ``max_snap_km`` (50 km) from every node are
  unreachable (``inf``, never in a ``within`` result);
- km(a -> b) = off-network km of a + shortest road km between the snapped nodes + off-network
  km of b; nodes in different components (Hainan, Taiwan, islands) give ``inf``;
- on a graph without per-edge speeds (the national graph) the network minutes are road km at
  the profile's ``speed_kmh``; on a graph with per-edge speeds (imported OSM) they are the
  fastest route's minutes with each edge at min(edge speed, profile speed), so km and minutes
  may describe different routes there.

Bulk queries run ``scipy.sparse.csgraph.dijkstra`` from the unique snapped nodes of the smaller
side, in chunks (bounded memory), with ``limit=`` for bounded searches; searches towards a set of
nodes run on the transposed graph, so one-way streets are respected.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import dijkstra

from routing.graph import RoadGraph, load_graph, national_graph_dir
from routing.points import Points, as_latlon_array
from routing.provider import (
    DEFAULT_PROFILE,
    UNREACHABLE,
    Leg,
    PairSet,
    TravelProfile,
    _per_source_limit,
    get_profile,
    haversine_km,
)
from routing.snap import DEFAULT_MAX_SNAP_KM, Snapper, SnapResult

logger = logging.getLogger(__name__)

DEFAULT_MIN_COMPONENT_NODES = 100
"""Road components with fewer nodes (data fragments such as Zhoushan's 72 nodes, whose
bridges the source lacks) are not snap targets; the largest component always is."""
DEFAULT_CHUNK = 16
"""Searches per scipy call: each holds a (chunk, n_nodes) float64 block (16 x 122k = 16 MB);
small blocks stay in cache and measured ~20% faster than 64 on the national benchmark."""


@dataclass(frozen=True, slots=True)
class Route:
    """One route: km and minutes (off-network legs included) and its polyline, origin point
    first and destination point last; empty ``points`` and ``inf`` when unreachable."""

    km: float
    minutes: float
    points: tuple[tuple[float, float], ...]
    nodes: tuple[int, ...]

    @property
    def reachable(self) -> bool:
        return math.isfinite(self.km)


@dataclass(frozen=True, slots=True)
class Isochrone:
    """The graph nodes reachable from one point within a time budget."""

    nodes: np.ndarray
    minutes: np.ndarray
    """Minutes from the point to each node (off-network leg included)."""
    lat: np.ndarray
    lon: np.ndarray

    def hull(self) -> list[tuple[float, float]]:
        """Convex hull of the reached nodes as (lat, lon), counter-clockwise (empty if < 3)."""
        if len(self.nodes) < 3:
            return []
        from scipy.spatial import ConvexHull, QhullError

        pts = np.column_stack((self.lon, self.lat))
        try:
            hull = ConvexHull(pts)
        except QhullError:  # collinear nodes
            return []
        return [(float(self.lat[i]), float(self.lon[i])) for i in hull.vertices]


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys, per-item position in them, and CSR-style (ptr, members) of the items."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    members = np.argsort(inverse, kind="stable")
    ptr = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(np.bincount(inverse, minlength=len(uniq)), out=ptr[1:])
    return uniq, inverse, ptr, members


def _expand(
    groups: np.ndarray, ptr: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each entry (a group id), every member of the group: (entry index, member)."""
    counts = ptr[groups + 1] - ptr[groups]
    entry = np.repeat(np.arange(len(groups)), counts)
    starts = np.cumsum(counts) - counts
    offset = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return entry, members[ptr[groups][entry] + offset]


class RoadGraphProvider:
    """Travel km and minutes on a :class:`~routing.graph.RoadGraph` (see the module doc)."""

    def __init__(
        self,
        graph: RoadGraph,
        *,
        max_snap_km: float = DEFAULT_MAX_SNAP_KM,
        min_component_nodes: int = DEFAULT_MIN_COMPONENT_NODES,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        if not max_snap_km >= 0 or math.isinf(max_snap_km):
            raise ValueError(f"max_snap_km must be a finite number >= 0, got {max_snap_km!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        self.graph = graph
        self.name = f"road-graph:{graph.name}"
        self.max_snap_km = float(max_snap_km)
        self.min_component_nodes = int(min_component_nodes)
        self.chunk_size = int(chunk_size)

    def __repr__(self) -> str:
        g = self.graph
        kind = "directed" if g.directed else "undirected"
        return f"RoadGraphProvider({g.name!r}, {g.n_nodes} nodes, {g.n_edges} {kind} edges)"

    @cached_property
    def _snapper(self) -> Snapper:
        g = self.graph
        return Snapper(g.lat, g.lon, g.component, self.min_component_nodes)

    @property
    def has_edge_speeds(self) -> bool:
        return self.graph.edge_speed_kmh is not None

    # ------------------------------------------------------------------ snapping

    def snap(self, points: Points) -> SnapResult:
        """Nearest node of every point; points beyond ``max_snap_km`` are flagged (node -1)."""
        return self._snapper.snap(as_latlon_array(points), self.max_snap_km)

    def _off(self, snap: SnapResult, p: TravelProfile) -> np.ndarray:
        """Off-network km (straight line x circuity); inf where not snapped."""
        result: np.ndarray = np.where(
            snap.snapped, snap.distance_km * p.off_network_circuity, np.inf
        )
        return result

    # ------------------------------------------------------------------ searches

    def _csr(self, p: TravelProfile | None, reverse: bool):  # type: ignore[no-untyped-def]
        g = self.graph
        if p is None:
            return g.csr_km_reverse if reverse else g.csr_km
        return g.csr_minutes(p.speed_kmh, reverse=reverse)

    def _blocks(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        *,
        minutes_for: TravelProfile | None = None,
        limit: float | np.ndarray = np.inf,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Network distances from unique nodes ``src`` to unique nodes ``dst`` in blocks
        ``(rows, cols, block)``: ``block[i, j]`` = shortest km (or minutes, for
        ``minutes_for``) from ``src[rows[i]]`` to ``dst[cols[j]]``, inf beyond ``limit``
        (a scalar, or one limit per ``src`` node)."""
        limits = np.broadcast_to(np.asarray(limit, dtype=float), (len(src),))
        if len(src) == 0 or len(dst) == 0:
            return
        step = self.chunk_size
        g = self.graph
        cap = None if minutes_for is None else minutes_for.speed_kmh
        # Searches run on the Z-order renumbered graph (see RoadGraph.search_rank).
        src_r, dst_r = g.search_rank[src], g.search_rank[dst]
        if len(src) <= len(dst):
            csr = g.search_csr(cap, reverse=False)
            # similar limits share a chunk; within a limit, neighbours share a chunk
            order = np.lexsort((src_r, limits))
            all_cols = np.arange(len(dst))
            for start in range(0, len(src), step):
                rows = order[start : start + step]
                lim = np.nextafter(float(limits[rows].max()), np.inf)
                d = dijkstra(csr, directed=True, indices=src_r[rows], limit=lim)
                yield rows, all_cols, d[:, dst_r]
        else:  # fewer targets: search backwards from them on the transposed graph
            csr = g.search_csr(cap, reverse=True)
            lim = np.nextafter(float(limits.max()), np.inf)
            all_rows = np.arange(len(src))
            col_order = np.argsort(dst_r, kind="stable")
            for start in range(0, len(dst), step):
                cols = col_order[start : start + step]
                d = dijkstra(csr, directed=True, indices=dst_r[cols], limit=lim)
                yield all_rows, cols, d[:, src_r].T

    def _dense(
        self, src: np.ndarray, dst: np.ndarray, minutes_for: TravelProfile | None = None
    ) -> np.ndarray:
        out = np.full((len(src), len(dst)), np.inf)
        for rows, cols, block in self._blocks(src, dst, minutes_for=minutes_for):
            out[np.ix_(rows, cols)] = block
        return out

    def _network_minutes(self, net_km: np.ndarray, p: TravelProfile) -> np.ndarray:
        result: np.ndarray = net_km / p.speed_kmh * 60.0
        return result

    # ------------------------------------------------------------------ the protocol

    def matrix(
        self,
        origins: Points,
        destinations: Points,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(km, minutes), shape (len(origins), len(destinations)); inf = unreachable."""
        p = get_profile(profile)
        so, sd = self.snap(origins), self.snap(destinations)
        km = np.full((len(so), len(sd)), np.inf)
        minutes = km.copy()
        oi, di = np.flatnonzero(so.snapped), np.flatnonzero(sd.snapped)
        if len(oi) == 0 or len(di) == 0:
            return km, minutes
        uo, io = np.unique(so.node[oi], return_inverse=True)
        ud, id_ = np.unique(sd.node[di], return_inverse=True)
        net = self._dense(uo, ud)[np.ix_(io, id_)]
        off_o, off_d = self._off(so, p)[oi], self._off(sd, p)[di]
        km[np.ix_(oi, di)] = off_o[:, None] + net + off_d[None, :]
        if self.has_edge_speeds:
            net_min = self._dense(uo, ud, minutes_for=p)[np.ix_(io, id_)]
        else:
            net_min = self._network_minutes(net, p)
        off_min = (off_o[:, None] + off_d[None, :]) / p.off_network_speed_kmh * 60.0
        minutes[np.ix_(oi, di)] = net_min + off_min
        return km, minutes

    def one_to_many(
        self, origin: Points, destinations: Points, profile: str | TravelProfile = DEFAULT_PROFILE
    ) -> tuple[np.ndarray, np.ndarray]:
        """(km, minutes) from one origin to each destination, 1-D."""
        if len(as_latlon_array(origin)) != 1:
            raise ValueError("one_to_many() takes exactly one origin")
        km, minutes = self.matrix(origin, destinations, profile)
        return km[0], minutes[0]

    def leg(
        self, origin: Points, destination: Points, profile: str | TravelProfile = DEFAULT_PROFILE
    ) -> Leg:
        """One origin to one destination (``UNREACHABLE`` off the network or across
        components)."""
        a, b = as_latlon_array(origin), as_latlon_array(destination)
        if len(a) != 1 or len(b) != 1:
            raise ValueError("leg() takes one origin and one destination")
        p = get_profile(profile)
        sa, sb = self.snap(a), self.snap(b)
        if not (sa.snapped[0] and sb.snapped[0]) or sa.component[0] != sb.component[0]:
            return UNREACHABLE
        na, nb = int(sa.node[0]), int(sb.node[0])
        off = float(self._off(sa, p)[0] + self._off(sb, p)[0])
        net_km = self._single(na, nb, None)
        if math.isinf(net_km):
            return UNREACHABLE
        net_min = self._single(na, nb, p) if self.has_edge_speeds else net_km / p.speed_kmh * 60
        return Leg(off + net_km, net_min + off / p.off_network_speed_kmh * 60.0)

    def _single(self, a: int, b: int, minutes_for: TravelProfile | None) -> float:
        """Network km (or minutes) a -> b; first a search bounded by a generous multiple of
        the great-circle distance (road km rarely exceeds 3x it), then unbounded."""
        g = self.graph
        gc = float(
            haversine_km(np.array([[g.lat[a], g.lon[a]]]), np.array([[g.lat[b], g.lon[b]]]))[0, 0]
        )
        guess = 3.0 * gc + 20.0
        if minutes_for is not None:
            guess = (
                guess
                / float(
                    np.min(g.edge_speed_kmh)
                    if g.edge_speed_kmh is not None
                    else minutes_for.speed_kmh
                )
                * 60.0
            )
        csr = self._csr(minutes_for, reverse=False)
        for lim in (guess, np.inf):
            d = dijkstra(csr, directed=True, indices=a, limit=lim)
            if math.isfinite(d[b]):
                return float(d[b])
        return math.inf

    def within(
        self,
        sources: Points,
        targets: Points,
        max_km: float | Sequence[float] | np.ndarray,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> PairSet:
        """Every (source, target) with km(source -> target) <= max_km[source], sorted by
        (source, target); unsnapped points never appear."""
        p = get_profile(profile)
        src_pts = as_latlon_array(sources)
        limit = _per_source_limit(max_km, len(src_pts))
        ss, ts = self.snap(src_pts), self.snap(targets)
        off_s, off_t = self._off(ss, p), self._off(ts, p)
        with np.errstate(invalid="ignore"):  # inf - inf for an unsnapped source: nan
            budget = limit - off_s
        s_ok = np.flatnonzero(ss.snapped & (budget >= 0))
        t_ok = np.flatnonzero(ts.snapped)
        empty = np.empty(0, dtype=np.int64)
        if len(s_ok) == 0 or len(t_ok) == 0:
            return PairSet(empty, empty.copy(), np.empty(0), np.empty(0))
        us, s_inv, s_ptr, s_mem = _group(ss.node[s_ok])
        ut, _, t_ptr, t_mem = _group(ts.node[t_ok])
        node_budget = np.full(len(us), -np.inf)
        np.maximum.at(node_budget, s_inv, budget[s_ok])
        node_budget -= off_t[t_ok].min()
        # a negative budget reaches nothing beyond the node itself; scipy refuses limit < 0
        np.maximum(node_budget, 0.0, out=node_budget)
        parts_s, parts_t, parts_km = [], [], []
        for rows, cols, block in self._blocks(us, ut, limit=node_budget):
            bi, bj = np.nonzero(np.isfinite(block))
            if len(bi) == 0:
                continue
            net = block[bi, bj]
            e1, s_local = _expand(rows[bi], s_ptr, s_mem)
            e2, t_local = _expand(cols[bj][e1], t_ptr, t_mem)
            s_idx, t_idx = s_ok[s_local[e2]], t_ok[t_local]
            km = off_s[s_idx] + net[e1][e2] + off_t[t_idx]
            keep = km <= limit[s_idx]
            parts_s.append(s_idx[keep])
            parts_t.append(t_idx[keep])
            parts_km.append(km[keep])
        if not parts_s:
            return PairSet(empty, empty.copy(), np.empty(0), np.empty(0))
        s_all, t_all, km_all = (
            np.concatenate(parts_s),
            np.concatenate(parts_t),
            np.concatenate(parts_km),
        )
        order = np.lexsort((t_all, s_all))
        s_all, t_all, km_all = s_all[order], t_all[order], km_all[order]
        off_km = off_s[s_all] + off_t[t_all]
        off_min = off_km / p.off_network_speed_kmh * 60.0
        if self.has_edge_speeds:
            minutes = (
                self._pair_minutes(ss.node[s_all], ts.node[t_all], km_all - off_km, p) + off_min
            )
        else:
            minutes = self._network_minutes(km_all - off_km, p) + off_min
        return PairSet(s_all.astype(np.int64), t_all.astype(np.int64), km_all, minutes)

    def _pair_minutes(
        self, a: np.ndarray, b: np.ndarray, net_km: np.ndarray, p: TravelProfile
    ) -> np.ndarray:
        """Fastest network minutes for node pairs whose shortest road km is ``net_km``."""
        speeds = self.graph.edge_speed_kmh
        assert speeds is not None
        slowest = min(float(speeds.min()), p.speed_kmh)
        ua, ia = np.unique(a, return_inverse=True)
        ub, ib = np.unique(b, return_inverse=True)
        # The shortest route takes at most net_km / slowest hours, so the fastest one too.
        lim = np.zeros(len(ua))
        np.maximum.at(lim, ia, net_km / slowest * 60.0)
        out = np.full((len(ua), len(ub)), np.inf)
        for rows, cols, block in self._blocks(ua, ub, minutes_for=p, limit=lim):
            out[np.ix_(rows, cols)] = block
        result: np.ndarray = out[ia, ib]
        return result

    # ------------------------------------------------------------------ extras

    def path(
        self, origin: Points, destination: Points, profile: str | TravelProfile = DEFAULT_PROFILE
    ) -> Route:
        """The route itself, for display: the shortest-km route (the fastest one on a graph with
        per-edge speeds), with its km and minutes and its (lat, lon) polyline."""
        a, b = as_latlon_array(origin), as_latlon_array(destination)
        if len(a) != 1 or len(b) != 1:
            raise ValueError("path() takes one origin and one destination")
        p = get_profile(profile)
        sa, sb = self.snap(a), self.snap(b)
        unreachable = Route(math.inf, math.inf, (), ())
        if not (sa.snapped[0] and sb.snapped[0]) or sa.component[0] != sb.component[0]:
            return unreachable
        na, nb = int(sa.node[0]), int(sb.node[0])
        by_time = self.has_edge_speeds
        csr = self._csr(p if by_time else None, reverse=False)
        dist, pred = dijkstra(csr, directed=True, indices=na, return_predecessors=True)
        if not math.isfinite(dist[nb]):
            return unreachable
        nodes = [nb]
        while nodes[-1] != na:
            nodes.append(int(pred[nodes[-1]]))
        nodes.reverse()
        g = self.graph
        off = float(self._off(sa, p)[0] + self._off(sb, p)[0])
        if by_time:
            km_csr = g.csr_km
            net_km = float(sum(km_csr[u, v] for u, v in itertools.pairwise(nodes)))
            net_min = float(dist[nb])
        else:
            net_km = float(dist[nb])
            net_min = net_km / p.speed_kmh * 60.0
        pts = (
            (float(a[0, 0]), float(a[0, 1])),
            *((float(g.lat[n]), float(g.lon[n])) for n in nodes),
            (float(b[0, 0]), float(b[0, 1])),
        )
        return Route(
            off + net_km, net_min + off / p.off_network_speed_kmh * 60.0, pts, tuple(nodes)
        )

    def isochrone(
        self,
        points: Points,
        minutes: float,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> list[Isochrone]:
        """For each point, the graph nodes reachable from it within ``minutes`` (off-network leg
        included); an unsnapped point reaches nothing."""
        if not minutes >= 0 or math.isinf(minutes):
            raise ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
        p = get_profile(profile)
        snap = self.snap(points)
        off_min = self._off(snap, p) / p.off_network_speed_kmh * 60.0
        g = self.graph
        result = []
        for i in range(len(snap)):
            left = minutes - off_min[i]
            if not left >= 0:
                empty = np.empty(0, dtype=np.int64)
                result.append(Isochrone(empty, np.empty(0), np.empty(0), np.empty(0)))
                continue
            node = int(snap.node[i])
            if self.has_edge_speeds:
                d = dijkstra(self._csr(p, False), directed=True, indices=node, limit=left)
                net_min = d
            else:
                d = dijkstra(g.csr_km, directed=True, indices=node, limit=left * p.speed_kmh / 60.0)
                net_min = d / p.speed_kmh * 60.0
            reached = np.flatnonzero(np.isfinite(d) & (net_min <= left))
            result.append(
                Isochrone(reached, net_min[reached] + off_min[i], g.lat[reached], g.lon[reached])
            )
        return result


_PROVIDERS: dict[str, RoadGraphProvider] = {}
_LOCK = threading.Lock()


def load_road_provider(
    path: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> RoadGraphProvider:
    """The road engine for a graph directory (``None``: the vendored national graph), loaded
    once per process and path. ``cache_dir`` is where the parsed graph may be cached on disk
    (see :func:`routing.graph.load_graph`). ``ValueError`` if the directory is missing or
    malformed (nothing is cached then).
    """
    p = (Path(path) if path is not None else national_graph_dir()).expanduser()
    # Re-importing into the same directory must not serve the old graph: key on file stamps.
    stamps = (
        tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(p.iterdir()))
        if p.is_dir()
        else ()
    )
    key = f"{p.resolve()}|{stamps}"
    with _LOCK:
        cached = _PROVIDERS.get(key)
        if cached is None:
            cached = RoadGraphProvider(load_graph(p, cache_dir=cache_dir))
            _PROVIDERS[key] = cached
            logger.info("loaded %r from %s", cached, key)
        return cached


@dataclass(frozen=True, slots=True)
class RoadGraphSource:
    """Where the road graph comes from, decided once by the caller (the API's settings) and
    handed down to the simulation and the benchmarks, so that nothing below reads the
    environment. ``directory=None`` is the vendored national graph; ``cache_dir=None`` parses
    the graph files (once per process) and writes nothing to disk."""

    directory: Path | None = None
    cache_dir: Path | None = None

    def load(self) -> RoadGraphProvider:
        """The (per-process cached) engine for this graph."""
        return load_road_provider(self.directory, cache_dir=self.cache_dir)
