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
nodes run on the transposed graph, so one-way streets are respected. Sources whose balls are
kept (:meth:`RoadGraphProvider.keep_balls`: the service stations) are looked up instead.
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
from geopy.distance import EARTH_RADIUS
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from routing.balls import NodeBalls, compute_balls, load_balls, save_balls
from routing.graph import RoadGraph, load_graph, national_graph_dir
from routing.points import Points, as_latlon_array
from routing.provider import (
    DEFAULT_PROFILE,
    UNREACHABLE,
    Arrivals,
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

EARLIEST_ARRIVAL_PER_TARGET_MAX = 64
"""Up to this many target nodes :meth:`RoadGraphProvider.earliest_arrival` may search backwards
from each, out to its nearest sources (~1-3 ms each on the national graph when they are near;
far or late sources make each search cover much of the graph, see
``EARLIEST_ARRIVAL_WORK_SHARE``); for more, one multi-source search of the whole graph
(~25-70 ms) costs less and no longer grows with the number of targets."""

BACKWARD_GROWTH = (1.0, 4.0, math.inf)
"""The bounds of :meth:`RoadGraphProvider._arrivals_backwards`' rounds, as multiples of each
target's first bound. A round runs for the targets the last one left unsettled when the work
it is predicted from what they settled in the last round stays under
``EARLIEST_ARRIVAL_WORK_SHARE`` times the graph (x4: 16 times the area; unbounded: the whole
graph, unless a target's x4 search settled no more than its first, i.e. it ran out of graph);
else the forward search takes them. The 1,000-request batch's explanations: 24 ms this way
(its unsettled targets sit where a search runs out of road after a few hundred nodes), 105 ms
with the forward search straight after the first round."""

EARLIEST_ARRIVAL_GRID_DEG = 1.0
"""Cell size (degrees) of the node-count grid that estimates how many nodes a bounded search
settles (:meth:`RoadGraphProvider._search_work`)."""

EARLIEST_ARRIVAL_WORK_SHARE = 1.5
""":meth:`RoadGraphProvider.earliest_arrival` searches backwards from the targets while their
bounded searches are estimated to settle at most this times the graph's nodes, and otherwise
runs the one multi-source search (which settles each node once). On the national graph the
estimate overstates the work (it counts straight-line discs, roads wind): the two cost the
same near 1.8 (10 targets: ~15 ms per graph's worth of estimate, ~25-35 ms forwards)."""

PAIR_GUESS_CIRCUITY = 2.0
"""First budget of :meth:`RoadGraphProvider.pair_legs` for a pair no kept ball bounds: this
times its straight-line km, plus 20 km (then 4x, then unbounded)."""
PAIR_BOUND_TABLE_CELLS = 2_000_000
"""Cells of the (ball centre, target) km table the pair bounds read at a time (16 MB)."""


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


def _pairwise_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle km between point k of the first arrays and point k of the second."""
    la1, lo1, la2, lo2 = (np.radians(x) for x in (lat1, lon1, lat2, lon2))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    result: np.ndarray = 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result


class RoadGraphProvider:
    """Travel km and minutes on a :class:`~routing.graph.RoadGraph` (see the module doc)."""

    def __init__(
        self,
        graph: RoadGraph,
        *,
        max_snap_km: float = DEFAULT_MAX_SNAP_KM,
        min_component_nodes: int = DEFAULT_MIN_COMPONENT_NODES,
        chunk_size: int = DEFAULT_CHUNK,
        ball_cache_dir: str | Path | None = None,
    ) -> None:
        """``ball_cache_dir``: where :meth:`keep_balls` keeps its balls between processes
        (``None``: in memory only)."""
        if not max_snap_km >= 0 or math.isinf(max_snap_km):
            raise ValueError(f"max_snap_km must be a finite number >= 0, got {max_snap_km!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        self.graph = graph
        self.name = f"road-graph:{graph.name}"
        self.max_snap_km = float(max_snap_km)
        self.min_component_nodes = int(min_component_nodes)
        self.chunk_size = int(chunk_size)
        self.ball_cache_dir = Path(ball_cache_dir) if ball_cache_dir is not None else None
        self._balls: NodeBalls | None = None
        self._balls_lock = threading.Lock()

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

    def _node_pairs(
        self, src: np.ndarray, dst: np.ndarray, limit: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every (i, j, km) with network km(src[i] -> dst[j]) <= limit[i] (and possibly a few
        beyond it): from the kept balls for the sources that have one (see
        :meth:`keep_balls`), by bounded searches for the others."""
        balls = self._balls
        searched = np.arange(len(src))
        if balls is not None and len(src) and len(dst):
            rows = balls.rows(src)
            use = np.flatnonzero((rows >= 0) & (limit <= balls.radius_km))
            if len(use):
                yield self._ball_pairs(balls, rows[use], use, dst, limit)
                searched = np.flatnonzero(~np.isin(searched, use))
        if len(searched) == 0:
            return
        for rows_, cols, block in self._blocks(src[searched], dst, limit=limit[searched]):
            bi, bj = np.nonzero(np.isfinite(block))
            yield searched[rows_[bi]], cols[bj], block[bi, bj]

    def _ball_pairs(
        self,
        balls: NodeBalls,
        ball_rows: np.ndarray,
        src_index: np.ndarray,
        dst: np.ndarray,
        limit: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries of the balls ``ball_rows`` (for ``src[src_index]``) that are target
        nodes ``dst`` within the limit, as (i, j, km) like :meth:`_node_pairs`."""
        ptr, row, ball_km = balls.by_node(self.graph.n_nodes)
        counts = ptr[dst + 1] - ptr[dst]
        owner = np.repeat(np.arange(len(dst)), counts)
        starts = np.repeat(ptr[dst] - (np.cumsum(counts) - counts), counts)
        entry = np.arange(len(owner)) + starts
        src_of_row = np.full(len(balls.source), -1, dtype=np.int64)
        src_of_row[ball_rows] = src_index
        i = src_of_row[row[entry]]
        hit = np.flatnonzero(i >= 0)
        i, j, km = i[hit], owner[hit], ball_km[entry[hit]]
        near = km <= np.nextafter(limit[i], np.inf)  # as a bounded search's limit
        return i[near], j[near], km[near]

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
        for rows, cols, net in self._node_pairs(us, ut, node_budget):
            if len(rows) == 0:
                continue
            e1, s_local = _expand(rows, s_ptr, s_mem)
            e2, t_local = _expand(cols[e1], t_ptr, t_mem)
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

    def pair_legs(
        self,
        sources: Points,
        targets: Points,
        pair_source: Sequence[int] | np.ndarray,
        pair_target: Sequence[int] | np.ndarray,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(km, minutes) of each pair ``sources[pair_source[k]] -> targets[pair_target[k]]``,
        the numbers ``within`` and ``matrix`` give for it (inf = unreachable), by one search
        from each source node (or backwards from each target node, when fewer) bounded by the
        farthest of its pairs (see :meth:`_pair_network_km`), instead of growing budgets or a
        full matrix."""
        p = get_profile(profile)
        src, dst = as_latlon_array(sources), as_latlon_array(targets)
        ps = np.asarray(pair_source, dtype=np.int64).reshape(-1)
        pt = np.asarray(pair_target, dtype=np.int64).reshape(-1)
        if len(ps) != len(pt):
            raise ValueError(f"pair_target has {len(pt)} entries, pair_source has {len(ps)}")
        for name, idx, n in (("pair_source", ps, len(src)), ("pair_target", pt, len(dst))):
            if len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{name} index out of range [0, {n})")
        km = np.full(len(ps), np.inf)
        minutes = km.copy()
        if len(ps) == 0:
            return km, minutes
        ss, ts = self.snap(src), self.snap(dst)
        ok = np.flatnonzero(
            ss.snapped[ps] & ts.snapped[pt] & (ss.component[ps] == ts.component[pt])
        )
        s_idx, t_idx = ps[ok], pt[ok]
        net = self._pair_network_km(ss.node[s_idx], ts.node[t_idx])
        off_s, off_t = self._off(ss, p), self._off(ts, p)
        # the same expressions, in the same order, as within(): the same floats
        found = np.flatnonzero(np.isfinite(net))
        s_idx, t_idx, net = s_idx[found], t_idx[found], net[found]
        km_ok = off_s[s_idx] + net + off_t[t_idx]
        off_km = off_s[s_idx] + off_t[t_idx]
        off_min = off_km / p.off_network_speed_kmh * 60.0
        if self.has_edge_speeds:
            net_min = self._pair_minutes(ss.node[s_idx], ts.node[t_idx], km_ok - off_km, p)
        else:
            net_min = self._network_minutes(km_ok - off_km, p)
        km[ok[found]] = km_ok
        minutes[ok[found]] = net_min + off_min
        return km, minutes

    def _pair_network_km(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Shortest network km from node ``u[k]`` to node ``v[k]`` (inf when unreachable).

        Each unique pair gets an upper bound from the kept balls (:meth:`_ball_bounds`); a
        search from each source node (or target node) with the largest bound of its pairs
        then settles all of them at once, exactly. Pairs without a bound are searched within
        ``PAIR_GUESS_CIRCUITY`` x their straight-line km + 20 km, then 4x that, then without
        bound (unreachable pairs end there)."""
        g = self.graph
        key = u.astype(np.int64) * g.n_nodes + v
        uniq, inverse = np.unique(key, return_inverse=True)
        uu, vv = uniq // g.n_nodes, uniq % g.n_nodes
        bound = self._ball_bounds(uu, vv)
        certain = np.isfinite(bound)
        straight = _pairwise_km(g.lat[uu], g.lon[uu], g.lat[vv], g.lon[vv])
        limit = np.where(
            certain,
            bound * (1.0 + 1e-12) + 1e-9,  # float rounding of the two sums
            PAIR_GUESS_CIRCUITY * straight + 20.0,
        )
        result = np.full(len(uniq), np.inf)
        grown = np.zeros(len(uniq), dtype=bool)
        pending = np.arange(len(uniq))
        while len(pending):
            result[pending] = self._bounded_pairs(uu[pending], vv[pending], limit[pending])
            pending = pending[np.isinf(result[pending]) & np.isfinite(limit[pending])]
            limit[pending] = np.where(grown[pending], np.inf, 4.0 * limit[pending])
            grown[pending] = True
        out: np.ndarray = result[inverse.reshape(-1)]
        return out

    def _ball_bounds(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """For each node pair, min over the kept balls holding both ends of km(c -> u) +
        km(c -> v) through their centre c: an upper bound of km(u -> v) by the triangle
        inequality on an undirected graph (km(u -> c) = km(c -> u)); inf without one."""
        bound = np.full(len(u), np.inf)
        balls = self._balls
        if balls is None or self.graph.directed or len(u) == 0:
            return bound
        ptr, row, ball_km = balls.by_node(self.graph.n_nodes)
        ut, t_of = np.unique(v, return_inverse=True)
        t_of = t_of.reshape(-1)
        # the balls holding each pair's source end: (pair, centre row, km)
        counts = ptr[u + 1] - ptr[u]
        pair = np.repeat(np.arange(len(u)), counts)
        entry = np.arange(len(pair)) + np.repeat(ptr[u] - (np.cumsum(counts) - counts), counts)
        centre, to_u = row[entry], ball_km[entry]
        to_v = np.full(len(pair), np.inf)
        # km(centre -> target) from a dense (centre, target) table, a block of targets at a time
        step = max(1, PAIR_BOUND_TABLE_CELLS // max(len(balls.source), 1))
        for lo in range(0, len(ut), step):
            block = ut[lo : lo + step]
            table = np.full((len(balls.source), len(block)), np.inf)
            c = ptr[block + 1] - ptr[block]
            col = np.repeat(np.arange(len(block)), c)
            e = np.arange(len(col)) + np.repeat(ptr[block] - (np.cumsum(c) - c), c)
            table[row[e], col] = ball_km[e]
            t = t_of[pair] - lo
            here = np.flatnonzero((t >= 0) & (t < len(block)))
            to_v[here] = table[centre[here], t[here]]
        through = to_u + to_v
        has = np.flatnonzero(counts > 0)
        if len(has):
            starts = (np.cumsum(counts) - counts)[has]
            bound[has] = np.minimum.reduceat(through, starts)
        return bound

    def _bounded_pairs(self, u: np.ndarray, v: np.ndarray, limit: np.ndarray) -> np.ndarray:
        """Network km of node pairs (u[k], v[k]) when at most ``limit[k]`` (inf otherwise;
        farther ones may be found too, exactly): a search from each unique node of the side
        with fewer (forward from the sources, or backward from the targets on the transposed
        graph, as ``within`` chooses), bounded by the largest limit of its pairs, 16 per scipy
        call, similar limits together."""
        g = self.graph
        out = np.full(len(u), np.inf)
        forward = len(np.unique(u)) <= len(np.unique(v))
        here, there = (u, v) if forward else (v, u)
        centres, c_of = np.unique(here, return_inverse=True)
        c_of = c_of.reshape(-1)
        node_limit = np.zeros(len(centres))
        np.maximum.at(node_limit, c_of, limit)
        members = np.argsort(c_of, kind="stable")
        ptr = np.zeros(len(centres) + 1, dtype=np.int64)
        np.cumsum(np.bincount(c_of, minlength=len(centres)), out=ptr[1:])
        rank = g.search_rank
        csr = g.search_csr(None, reverse=not forward)
        order = np.lexsort((rank[centres], node_limit))
        for start in range(0, len(centres), self.chunk_size):
            rows = order[start : start + self.chunk_size]
            lim = float(np.nextafter(node_limit[rows].max(), np.inf))
            d = dijkstra(csr, directed=True, indices=rank[centres[rows]], limit=lim)
            e, k = _expand(rows, ptr, members)
            out[k] = d[e, rank[there[k]]]
        return out

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

    def earliest_arrival(
        self,
        sources: Points,
        start_minutes: np.ndarray,
        targets: Points,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> Arrivals:
        """For each target, the source that arrives first when source ``i`` sets off after
        ``start_minutes[i]`` (see :func:`routing.provider.earliest_arrival`).

        Two ways, chosen by their estimated work (nodes settled): searches backwards from
        each target node, bounded (see :meth:`_arrivals_backwards`), when there are at most
        ``EARLIEST_ARRIVAL_PER_TARGET_MAX`` target nodes and their bounded searches together
        should settle at most ``EARLIEST_ARRIVAL_WORK_SHARE`` times the graph's nodes;
        otherwise one multi-source search from a virtual node joined to each source's node by
        its start (in network units) plus its off-network leg (:meth:`_arrivals_forwards`),
        whose cost does not grow with the number of targets (nor with their distance to the
        sources). Targets a bounded search cannot settle go to the multi-source search too.
        Minutes agree with ``start + matrix`` to float rounding (~1e-15); among sources at one
        node ties go to the lowest index."""
        p = get_profile(profile)
        src = as_latlon_array(sources)
        start = np.asarray(start_minutes, dtype=float).reshape(-1)
        if len(start) != len(src):
            raise ValueError(f"start_minutes has {len(start)} entries, sources has {len(src)}")
        ss, ts = self.snap(src), self.snap(targets)
        winner = np.full(len(ts), -1, dtype=np.int64)
        best = np.full(len(ts), np.inf)
        ok = np.flatnonzero(ss.snapped & np.isfinite(start))
        if len(ok) == 0 or not ts.snapped.any():
            return Arrivals(winner, best)
        # network units: km (national graph, minutes = km at the profile speed) or minutes
        by_time = self.has_edge_speeds
        per_minute = 1.0 if by_time else p.speed_kmh / 60.0
        off_min_s = self._off(ss, p)[ok] / p.off_network_speed_kmh * 60.0
        head = (start[ok] + off_min_s) * per_minute
        # the best source at each node: smallest head, then lowest index
        order = np.lexsort((ok, head, ss.node[ok]))
        node_sorted = ss.node[ok][order]
        first = np.r_[True, node_sorted[1:] != node_sorted[:-1]]
        seed_node, seed_src, seed_head = node_sorted[first], ok[order][first], head[order][first]
        cap = p.speed_kmh if by_time else None
        t_ok = np.flatnonzero(ts.snapped)
        ut, t_inv = np.unique(ts.node[t_ok], return_inverse=True)
        if len(ut) <= EARLIEST_ARRIVAL_PER_TARGET_MAX:
            node_src, node_arrival = self._arrivals_backwards(
                ut, seed_node, seed_src, seed_head, cap
            )
        else:
            node_src, node_arrival = self._arrivals_forwards(
                ut, seed_node, seed_src, seed_head, cap
            )
        t_inv = t_inv.reshape(-1)
        off_min_t = self._off(ts, p)[t_ok] / p.off_network_speed_kmh * 60.0
        reached = node_src[t_inv] >= 0
        winner[t_ok[reached]] = node_src[t_inv][reached]
        best[t_ok[reached]] = node_arrival[t_inv][reached] / per_minute + off_min_t[reached]
        return Arrivals(winner, best)

    def _arrivals_forwards(
        self,
        target_node: np.ndarray,
        seed_node: np.ndarray,
        seed_src: np.ndarray,
        seed_head: np.ndarray,
        cap: float | None,
        limit: float = np.inf,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(winning source, arrival in network units) per target node by one search from a
        virtual node with an edge of weight ``seed_head`` to each seed node; -1 and inf where
        none arrives (or, with a ``limit``, none arrives by then). Among seeds at different
        nodes that arrive at exactly the same float, the search picks one."""
        g = self.graph
        n = g.n_nodes
        seeds = g.search_rank[seed_node]
        csr = g.search_csr(cap, reverse=False)
        aug = csr_matrix(
            (
                np.r_[csr.data, seed_head],
                np.r_[csr.indices, seeds],
                np.r_[csr.indptr, csr.indptr[-1] + len(seeds)],
            ),
            shape=(n + 1, n + 1),
        )
        dist, pred = dijkstra(aug, directed=True, indices=n, return_predecessors=True, limit=limit)
        # the seed each node was reached from: follow predecessors up to a seed, by doubling
        root = pred.astype(np.int64)
        own = (root < 0) | (root == n)  # unreached, the virtual node, or a seed reached directly
        root[own] = np.flatnonzero(own)
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        seed_of_rank = np.full(n + 1, -1, dtype=np.int64)
        seed_of_rank[seeds] = seed_src
        t_rank = g.search_rank[target_node]
        arrival = dist[t_rank]
        src = np.where(np.isfinite(arrival), seed_of_rank[root[t_rank]], -1)
        return src, arrival

    @cached_property
    def _node_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The centres (lat/lon rows) and node counts of the non-empty
        ``EARLIEST_ARRIVAL_GRID_DEG`` cells of the graph."""
        g = self.graph
        step = EARLIEST_ARRIVAL_GRID_DEG
        cells = np.column_stack((np.floor(g.lat / step), np.floor(g.lon / step)))
        uniq, count = np.unique(cells, axis=0, return_counts=True)
        return (uniq + 0.5) * step, count

    def _search_work(self, node: np.ndarray, radius_km: np.ndarray) -> np.ndarray:
        """Estimated nodes settled by a search from each node out to ``radius_km[k]``
        straight-line km: the nodes of the grid cells whose centre lies within it (an
        estimate: cells straddle the edge, and roads wind)."""
        g = self.graph
        centres, count = self._node_grid
        km = haversine_km(np.column_stack((g.lat[node], g.lon[node])), centres)
        work: np.ndarray = np.where(km <= radius_km[:, None], count[None, :], 0).sum(axis=1)
        return work

    def _arrivals_backwards(
        self,
        target_node: np.ndarray,
        seed_node: np.ndarray,
        seed_src: np.ndarray,
        seed_head: np.ndarray,
        cap: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`_arrivals_forwards` for a few targets: a search backwards from each
        (``chunk_size`` per scipy call, similar bounds together), bounded by twice its
        straight-line best guess; a target is settled when no seed beyond the bound could
        arrive earlier than the best one within it (ties: the lowest source index).

        When the bounded searches would settle more than ``EARLIEST_ARRIVAL_WORK_SHARE`` times
        the graph's nodes (estimated by :meth:`_search_work`: sources far from the targets, or
        late, make each search cover much of the graph), the one forward search costs less
        and answers instead. Targets the bounded searches leave unsettled get more rounds
        (x4, then unbounded: :data:`BACKWARD_GROWTH`) while their work, predicted from what
        they settled, stays small; else they go to the forward search, bounded by the latest
        arrival found for them (unbounded when one found none), instead of an unbounded
        backward search each. Both
        give the same sources and the same minutes to float rounding; only exact float ties
        between sources at different nodes may be broken otherwise by the forward search."""
        g = self.graph
        order = np.argsort(seed_src, kind="stable")  # ties go to the lowest source index
        seed_node, seed_src, seed_head = seed_node[order], seed_src[order], seed_head[order]
        # network units per straight-line km, a lower bound (road km >= ratio x straight km)
        unit_km = g.min_length_ratio * (1.0 if cap is None else 60.0 / self._fastest(cap))
        t_ll = np.column_stack((g.lat[target_node], g.lon[target_node]))
        s_ll = np.column_stack((g.lat[seed_node], g.lon[seed_node]))
        lower = (seed_head[None, :] + haversine_km(t_ll, s_ll) * unit_km).min(axis=1)
        bound = 2.0 * lower + 20.0 * unit_km
        seed_rank = g.search_rank[seed_node]
        csr = g.search_csr(cap, reverse=True)
        src = np.full(len(target_node), -1, dtype=np.int64)
        arrival = np.full(len(target_node), np.inf)
        pending = np.arange(len(target_node))
        settled = np.zeros(len(target_node))  # nodes each target's last search settled
        last_settled = np.full(len(target_node), -1.0)  # and the one before
        for grow in BACKWARD_GROWTH:  # the bound, x4, unbounded; or the forward search
            if grow == BACKWARD_GROWTH[0]:
                chunk_limit = bound
            else:
                # predicted from what the last round settled: an area grows with the square
                # of its bound; a search that settled no more with a 4x bound has run out of
                # graph (an isolated target) and an unbounded one settles the same
                ran_out = settled[pending] <= last_settled[pending]
                per = np.where(ran_out, settled[pending], g.n_nodes if math.isinf(grow)
                               else np.minimum(settled[pending] * 16.0, g.n_nodes))  # fmt: skip
                if per.sum() > EARLIEST_ARRIVAL_WORK_SHARE * g.n_nodes:
                    break
                chunk_limit = grow * bound
            rows_by_bound = pending[np.argsort(bound[pending], kind="stable")]
            chunks = [
                rows_by_bound[lo : lo + self.chunk_size]
                for lo in range(0, len(rows_by_bound), self.chunk_size)
            ]
            limit = np.zeros(len(target_node))
            for rows in chunks:  # a scipy call searches all its targets to the largest bound
                limit[rows] = chunk_limit[rows].max()
            if grow == BACKWARD_GROWTH[0]:
                radius = limit / unit_km if unit_km > 0 else np.full(len(limit), np.inf)
                if self._search_work(target_node, radius).sum() > (
                    EARLIEST_ARRIVAL_WORK_SHARE * g.n_nodes
                ):  # nothing searched yet: the one forward search for all
                    return self._arrivals_forwards(target_node, seed_node, seed_src, seed_head, cap)
            last_settled = settled.copy()
            left = []
            for rows in chunks:
                lim = float(limit[rows[0]])
                full = dijkstra(
                    csr, directed=True, indices=g.search_rank[target_node[rows]], limit=lim
                )
                settled[rows] = np.isfinite(full).sum(axis=1)
                d = full[:, seed_rank]
                arr = seed_head[None, :] + d
                k = np.argmin(arr, axis=1)
                got = arr[np.arange(len(rows)), k]
                beyond = np.where(np.isinf(d), seed_head[None, :], np.inf).min(axis=1) + lim
                done = (got <= beyond) | math.isinf(lim)
                src[rows[done]] = np.where(np.isfinite(got[done]), seed_src[k[done]], -1)
                arrival[rows[done]] = got[done]
                arrival[rows[~done]] = np.minimum(arrival[rows[~done]], got[~done])  # upper bound
                left.append(rows[~done])
            pending = np.concatenate(left)
            if not len(pending):
                break
        if len(pending):
            # the seeds arriving by the latest upper bound (a hair more: float rounding of the
            # sums in the other order) are all the forward search needs to reach
            latest = float(arrival[pending].max())
            reach = latest + abs(latest) * 1e-9
            src[pending], arrival[pending] = self._arrivals_forwards(
                target_node[pending], seed_node, seed_src, seed_head, cap, limit=reach
            )
        return src, arrival

    def _fastest(self, cap: float) -> float:
        speeds = self.graph.edge_speed_kmh
        return cap if speeds is None else min(cap, float(speeds.max()))

    # ------------------------------------------------------------------ kept balls

    def keep_balls(
        self,
        points: Points,
        radius_km: float,
        *,
        cache_dir: str | Path | None = None,
    ) -> int:
        """Keep the road-km balls of ``radius_km`` around the snapped nodes of ``points``
        (fixed places: the service stations), so that later :meth:`within` calls from these
        nodes with budgets up to ``radius_km`` read them instead of searching. Exact: a ball
        holds what the bounded search would find. Balls come from / go to ``cache_dir``
        (default: the provider's ``ball_cache_dir``; none: memory only), keyed by the graph's
        fingerprint and the radius. A larger radius than the kept one replaces the kept balls.
        Returns the number of balls computed now (0 when all were kept or on disk)."""
        if not radius_km > 0 or math.isinf(radius_km):
            raise ValueError(f"radius_km must be a finite number > 0, got {radius_km!r}")
        snap = self.snap(points)
        nodes = np.unique(snap.node[snap.snapped])
        directory = Path(cache_dir) if cache_dir is not None else self.ball_cache_dir
        with self._balls_lock:
            kept = self._balls
            if kept is not None and kept.radius_km < radius_km:
                kept = None
            if kept is not None and (kept.rows(nodes) >= 0).all():
                return 0
            radius = float(radius_km) if kept is None else kept.radius_km
            if directory is not None:
                on_disk = load_balls(directory, self.graph, radius)
                if on_disk is not None:
                    kept = on_disk if kept is None else kept.merged(on_disk)
            missing = nodes if kept is None else nodes[kept.rows(nodes) < 0]
            if len(missing):
                fresh = compute_balls(self.graph, missing, radius)
                kept = fresh if kept is None else kept.merged(fresh)
                if directory is not None:
                    save_balls(directory, kept)
            if kept is not None:  # build what lookups need now, not in the first cycle
                kept.by_node(self.graph.n_nodes)
                self.graph.search_csr(None, reverse=False)
            self._balls = kept
            return len(missing)

    @property
    def kept_balls(self) -> NodeBalls | None:
        """The balls :meth:`keep_balls` keeps (``None`` before the first call)."""
        return self._balls

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
            cached = RoadGraphProvider(load_graph(p, cache_dir=cache_dir), ball_cache_dir=cache_dir)
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
