"""Move-up: reposition idle vans between stations when busy vans leave holes in the coverage.

MEXCLP-style (Daskin's maximum expected covering location problem): a demand point covered
within the promise by ``k`` idle vans is reached in time with probability ``1 - q**k``, where
``q`` is the probability that a van is busy when needed; the expected coverage is
``sum_i demand_i * (1 - q**k_i)``. :func:`plan_move_ups` moves idle vans one at a time, each
time the single move (an idle van from station ``a`` to station ``b``) with the largest gain in
expected coverage (net of what ``a``'s points lose), while the gain is at least ``min_gain`` of
the total demand and within the limits: at most ``max_moves`` moves, each at most
``max_move_km`` road km. A move only fills a hole: ``b`` must have fewer idle vans than are
based there (its own vans are busy), so with no busy vans nothing moves, and the planned
placement is never "improved" behind the planner's back. A station's vans all cover the same
points (the station's coverage row), so a move is a change of counts.

Pure: numpy in, a list of moves out. The simulation and the API's suggestion route are the
intended callers (see docs/simulations.md for what is wired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from simulations.scenario import Scenario
from simulations.tables import TravelTables


@dataclass(frozen=True, slots=True)
class MoveUp:
    """Move one idle van from station ``from_station`` to ``to_station`` (indices)."""

    from_station: int
    to_station: int
    km: float
    gain: float
    """Expected covered demand gained (same units as ``demand``)."""


@dataclass(frozen=True, eq=False)
class Coverage:
    """Which stations cover which demand points within the promise, in the two shapes the
    greedy needs: ``dense`` (stations x points, bool) for a hole's columns, ``sparse`` (CSR,
    0/1 floats) for the per-point counts and per-station sums. A station covers a few hundred
    of the thousands of points, so the sparse products cost a few per cent of dense ones
    (a national run with road demand: 938 x 13,000 points)."""

    dense: np.ndarray
    sparse: sp.csr_matrix
    sparse_t: sp.csr_matrix
    """``sparse`` transposed (points x stations), kept: scipy rebuilds a transpose each time."""

    @classmethod
    def of(cls, covers: np.ndarray | Coverage) -> Coverage:
        if isinstance(covers, Coverage):
            return covers
        dense = np.asarray(covers, dtype=bool)
        sparse = sp.csr_matrix(dense, dtype=float)
        return cls(dense, sparse, sp.csr_matrix(sparse.T))

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.dense.shape
        return rows, cols

    def idle_per_point(self, idle: np.ndarray) -> np.ndarray:
        """Per point: the idle vans whose station covers it (``idle`` per station)."""
        return np.asarray(self.sparse_t @ np.asarray(idle, dtype=float)).ravel()

    def points_of(self, station: int) -> np.ndarray:
        m = self.sparse
        return m.indices[m.indptr[station] : m.indptr[station + 1]]


def expected_coverage(
    covers: np.ndarray | Coverage, demand: np.ndarray, idle: np.ndarray, q: float
) -> float:
    """``sum_i demand_i (1 - q ** k_i)`` with ``k_i`` = idle vans whose station covers point i
    (``covers``: stations x points, bool, or a :class:`Coverage` when calling often)."""
    if isinstance(covers, Coverage):
        k = covers.idle_per_point(idle)
    else:
        k = np.asarray(idle, dtype=float) @ np.asarray(covers, dtype=float)
    # einsum, not @: a BLAS dot of two vectors this size took ~20 ms on the loaded 2-core
    # machine (BLAS threads waiting for a core), half of a national run on road demand
    return float(np.einsum("i,i->", demand, 1.0 - q**k))


def plan_move_ups(
    *,
    covers: np.ndarray | Coverage,
    demand: np.ndarray,
    idle: np.ndarray,
    based: np.ndarray,
    station_km: np.ndarray,
    busy_probability: float,
    max_moves: int,
    max_move_km: float,
    min_gain: float = 0.001,
    movable: np.ndarray | None = None,
) -> list[MoveUp]:
    """The greedy MEXCLP move-ups (module docstring).

    ``covers``: (stations, points) bool, station covers the point within the promise (or
    its :class:`Coverage`, built once by a caller that plans often);
    ``demand``: (points,) weights; ``idle``: (stations,) idle van counts there now; ``based``:
    (stations,) vans based there by the plan; ``station_km``:
    (stations, stations) road km (inf = unreachable); ``min_gain``: share of the total demand
    a move must gain; ``movable``: (stations,) idle vans there that may move (default all idle;
    the simulation leaves out vans already moved, so a van is never more than one move from
    home and its way back is within the limit too). Raises ``ValueError`` naming a bad limit.
    """
    if not isinstance(max_moves, int) or max_moves < 1:
        raise ValueError(f"max_moves must be an integer >= 1, got {max_moves!r}")
    if not max_move_km > 0:
        raise ValueError(f"max_move_km must be > 0, got {max_move_km!r}")
    if not 0 < busy_probability < 1:
        raise ValueError(f"busy_probability must be in (0, 1), got {busy_probability!r}")
    coverage = Coverage.of(covers)
    demand = np.asarray(demand, dtype=float)
    counts = np.asarray(idle, dtype=np.int64).copy()
    based = np.asarray(based, dtype=np.int64)
    spare = counts.copy() if movable is None else np.asarray(movable, dtype=np.int64).copy()
    n_stations = coverage.shape[0]
    if (
        counts.shape != (n_stations,)
        or based.shape != (n_stations,)
        or station_km.shape != (n_stations, n_stations)
    ):
        raise ValueError("idle, based and station_km must have one row per station of covers")
    q = float(busy_probability)
    threshold = min_gain * float(demand.sum())
    reachable = (station_km <= max_move_km) & ~np.eye(n_stations, dtype=bool)
    moves: list[MoveUp] = []
    received = np.zeros(n_stations, dtype=bool)
    dense = coverage.dense
    while len(moves) < max_moves:
        k = coverage.idle_per_point(counts)
        # one more idle van at a point: + d q^k (1 - q); one fewer: - d q^(k-1) (1 - q)
        add = demand * q**k * (1.0 - q)
        remove = np.where(k >= 1, demand * q ** np.maximum(k - 1.0, 0.0) * (1.0 - q), 0.0)
        add_at = coverage.sparse @ add  # per station: what one more van there adds
        remove_at = coverage.sparse @ remove  # and what one fewer takes away
        net = add - remove
        has_idle = (spare > 0) & ~received  # a van just sent somewhere is on its way
        best: MoveUp | None = None
        # a move into b gains at most add_at[b] (b's points, none lost): holes by that bound,
        # largest first, until it cannot beat the best move found (ties: lower b, as a scan
        # by index would pick)
        holes = np.nonzero((counts < based) & (add_at > threshold))[0]
        for b in holes[np.argsort(-add_at[holes], kind="stable")].tolist():
            if best is not None and add_at[b] < best.gain:
                break
            sources = np.nonzero(reachable[:, b] & has_idle)[0]
            if not len(sources):
                continue
            # a -> b gains b's points a does not cover and loses a's points b does not:
            # add(b) - add(a & b) - (remove(a) - remove(a & b)), a & b on b's columns only
            cols = coverage.points_of(b)
            shared = np.einsum("ij,j->i", dense[np.ix_(sources, cols)], net[cols])
            gain = add_at[b] - remove_at[sources] - shared
            t = int(np.argmax(gain))
            if gain[t] > threshold and (
                best is None
                or gain[t] > best.gain
                or (gain[t] == best.gain and b < best.to_station)
            ):
                a = int(sources[t])
                best = MoveUp(a, b, float(station_km[a, b]), float(gain[t]))
        if best is None:
            break
        counts[best.from_station] -= 1
        spare[best.from_station] -= 1
        counts[best.to_station] += 1
        received[best.to_station] = True
        moves.append(best)
    return moves


class MoveUpModel:
    """The simulation's side of move-up (``[dispatch] move_up = true``, limits in
    ``[move_up]``): every ``check_minutes`` it sends vans back whose hole has closed, then
    plans new moves with :func:`plan_move_ups` on the stations' coverage within the promise.

    A moving van is busy for the drive; once there it is dispatched from that station (arcs from
    the travel tables, radius measured from there) and, after its next job, drives to its own
    home station. Station-to-station road km are great-circle km x the run's median detour
    (road km / great-circle km on its station arcs); minutes at the rescue van's speed.
    """

    def __init__(
        self,
        *,
        covers: np.ndarray,
        demand: np.ndarray,
        station_km: np.ndarray,
        station_minutes: np.ndarray,
        max_moves_per_hour: float,
        max_move_km: float,
        check_minutes: float,
        min_gain: float,
    ) -> None:
        self.covers = covers
        self.coverage = Coverage.of(covers)
        """``covers`` in the shapes the frequent checks and plans need."""
        self.demand = demand
        self.station_km = station_km
        self.station_minutes = station_minutes
        self.max_moves_per_hour = max_moves_per_hour
        self.max_move_km = max_move_km
        self.check_minutes = check_minutes
        self.min_gain = min_gain
        self.moves = 0
        self.km = 0.0
        self.move_times: list[float] = []
        """When each move started (for the per-hour limit and the tests)."""
        self.move_km: list[float] = []

    def moves_allowed(self, now: float) -> int:
        """How many moves the per-hour limit still allows in the hour ending now."""
        recent = sum(1 for t in self.move_times if t > now - 60.0)
        return int(self.max_moves_per_hour) - recent

    def should_check(self, idle_counts: np.ndarray, based: np.ndarray, q: float) -> bool:
        """Coverage dropped: some station is short of its vans and the expected coverage is
        at least ``min_gain`` of the demand below that of every van idle at its base."""
        if (idle_counts >= based).all():
            return False
        full = expected_coverage(self.coverage, self.demand, based, q)
        now = expected_coverage(self.coverage, self.demand, idle_counts, q)
        return full - now >= self.min_gain * float(self.demand.sum())

    def record_move(self, now: float, km: float) -> None:
        self.moves += 1
        self.km += km
        self.move_times.append(now)
        self.move_km.append(km)


def build_move_up_model(scenario: Scenario, tables: TravelTables) -> MoveUpModel:
    """The run's move-up model: stations' coverage of the demand points within the promise
    (road minutes on the tables' arcs), station-to-station km and minutes (class docstring)."""
    from simulations.after_job import great_circle_km

    spec = scenario.move_up
    n_st, n_pts = len(tables.station_ids), len(tables.points)
    point_of_arc = np.repeat(np.arange(n_pts), np.diff(tables.arc_ptr))
    covers = np.zeros((n_st, n_pts), dtype=bool)
    within = tables.arc_minutes <= scenario.promise.arrival_minutes
    covers[tables.arc_station[within], point_of_arc[within]] = True
    stations = scenario.network.station_by_id
    lat = np.array([stations[s].location.lat for s in tables.station_ids])
    lon = np.array([stations[s].location.lon for s in tables.station_ids])
    gc_arc = great_circle_km(
        lat[tables.arc_station], lon[tables.arc_station],
        tables.points.lat[point_of_arc], tables.points.lon[point_of_arc],
    )  # fmt: skip
    ok = gc_arc > 5.0
    detour = float(np.median(tables.arc_km[ok] / gc_arc[ok])) if ok.any() else 1.3
    gc = great_circle_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    station_km = gc * detour
    speed_kmh = scenario.travel.profile("rescue_van").speed_kmh
    return MoveUpModel(
        covers=covers,
        demand=tables.points.weight,
        station_km=station_km,
        station_minutes=station_km / speed_kmh * 60.0,
        max_moves_per_hour=spec.max_moves_per_hour,
        max_move_km=spec.max_move_km,
        check_minutes=spec.check_minutes,
        min_gain=spec.min_gain,
    )
