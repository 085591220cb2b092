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


@dataclass(frozen=True, slots=True)
class MoveUp:
    """Move one idle van from station ``from_station`` to ``to_station`` (indices)."""

    from_station: int
    to_station: int
    km: float
    gain: float
    """Expected covered demand gained (same units as ``demand``)."""


def expected_coverage(covers: np.ndarray, demand: np.ndarray, idle: np.ndarray, q: float) -> float:
    """``sum_i demand_i (1 - q ** k_i)`` with ``k_i`` = idle vans whose station covers point i
    (``covers``: stations x points bool)."""
    k = idle.astype(float) @ covers
    return float(demand @ (1.0 - q**k))


def plan_move_ups(
    *,
    covers: np.ndarray,
    demand: np.ndarray,
    idle: np.ndarray,
    based: np.ndarray,
    station_km: np.ndarray,
    busy_probability: float,
    max_moves: int,
    max_move_km: float,
    min_gain: float = 0.001,
) -> list[MoveUp]:
    """The greedy MEXCLP move-ups (module docstring).

    ``covers``: (stations, points) bool, station covers the point within the promise;
    ``demand``: (points,) weights; ``idle``: (stations,) idle van counts there now; ``based``:
    (stations,) vans based there by the plan; ``station_km``:
    (stations, stations) road km (inf = unreachable); ``min_gain``: share of the total demand
    a move must gain. Raises ``ValueError`` naming a bad limit.
    """
    if not isinstance(max_moves, int) or max_moves < 1:
        raise ValueError(f"max_moves must be an integer >= 1, got {max_moves!r}")
    if not max_move_km > 0:
        raise ValueError(f"max_move_km must be > 0, got {max_move_km!r}")
    if not 0 < busy_probability < 1:
        raise ValueError(f"busy_probability must be in (0, 1), got {busy_probability!r}")
    covers = np.asarray(covers, dtype=bool)
    demand = np.asarray(demand, dtype=float)
    counts = np.asarray(idle, dtype=np.int64).copy()
    based = np.asarray(based, dtype=np.int64)
    n_stations = covers.shape[0]
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
    cover_f = covers.astype(float)
    while len(moves) < max_moves:
        k = counts.astype(float) @ cover_f
        # one more idle van at a point: + d q^k (1 - q); one fewer: - d q^(k-1) (1 - q)
        add = demand * q**k * (1.0 - q)
        remove = np.where(k >= 1, demand * q ** np.maximum(k - 1.0, 0.0) * (1.0 - q), 0.0)
        sources = np.nonzero(counts > 0)[0]
        if not len(sources):
            break
        best: MoveUp | None = None
        holes = counts < based
        for a in sources.tolist():
            targets = np.nonzero(reachable[a] & holes)[0]
            if not len(targets):
                continue
            only_b = covers[targets] & ~covers[a]
            only_a = covers[a] & ~covers[targets]
            gain = only_b.astype(float) @ add - only_a.astype(float) @ remove
            t = int(np.argmax(gain))
            if gain[t] > threshold and (best is None or gain[t] > best.gain):
                b = int(targets[t])
                best = MoveUp(a, b, float(station_km[a, b]), float(gain[t]))
        if best is None:
            break
        counts[best.from_station] -= 1
        counts[best.to_station] += 1
        moves.append(best)
    return moves
