"""Move-up (MEXCLP-style repositioning): fills the hole a test constructs, respects its limits,
moves nothing without busy vans, and its gains are the exact change of expected coverage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.move_up import Coverage, expected_coverage, plan_move_ups

# stations A (km 0), B (km 50), C (km 100) on a road; points p0, p1 near A and B, p2 near C
COVERS = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
KM = np.array([[0.0, 50.0, 100.0], [50.0, 0.0, 50.0], [100.0, 50.0, 0.0]])
DEMAND = np.ones(3)
BASED = np.array([2, 1, 1])


def plan(idle: list[int], **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "covers": COVERS, "demand": DEMAND, "idle": np.array(idle), "based": BASED,
        "station_km": KM, "busy_probability": 0.3, "max_moves": 3, "max_move_km": 150.0,
    }  # fmt: skip
    args.update(kw)
    return plan_move_ups(**args)  # type: ignore[arg-type]


def test_fills_the_hole_left_by_a_busy_van() -> None:
    """C's only van is out: p2 is uncovered. One van moves to C; the gain is p2's 1 - q = 0.7
    less what p0 and p1 lose going from 3 idle vans to 2: 2 x q^2 (1 - q) = 0.126. Then C has
    its van count back and nothing more moves."""
    moves = plan([2, 1, 0])
    assert len(moves) == 1
    assert moves[0].to_station == 2
    assert moves[0].gain == pytest.approx(0.7 - 2 * 0.09 * 0.7)


def test_distance_limit_picks_the_near_van_or_none() -> None:
    """At most 80 km: only B (50 km) may go; at most 40 km: nothing may."""
    moves = plan([2, 1, 0], max_move_km=80.0)
    assert [(m.from_station, m.to_station, m.km) for m in moves] == [(1, 2, 50.0)]
    assert plan([2, 1, 0], max_move_km=40.0) == []


def test_no_busy_vans_no_moves() -> None:
    """Every van idle at its base: no hole, nothing moves (even if another placement would
    cover more)."""
    assert plan([2, 1, 1]) == []


def test_a_move_must_gain_enough() -> None:
    """The hole's gain (0.574 of 3 = 19%) is below a 25% threshold: no move."""
    assert plan([2, 1, 0], min_gain=0.25) == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_moves": 0}, "max_moves must be an integer >= 1, got 0"),
        ({"max_move_km": 0.0}, "max_move_km must be > 0, got 0.0"),
        ({"busy_probability": 1.0}, r"busy_probability must be in \(0, 1\), got 1.0"),
    ],
)
def test_bad_limits_raise(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan([2, 1, 0], **kw)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_random_instances_respect_limits_and_gain_exactly(seed: int) -> None:
    """On random networks: at most max_moves moves, none longer than max_move_km, only into
    stations below their based count, and the expected coverage rises by the sum of the
    gains."""
    rng = np.random.default_rng(seed)
    n_s, n_p = 6, 15
    covers = rng.random((n_s, n_p)) < 0.35
    demand = rng.random(n_p)
    based = rng.integers(0, 3, n_s)
    idle = np.array([rng.integers(0, b + 1) for b in based])
    xy = rng.random((n_s, 2)) * 200
    km = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    q = 0.4
    moves = plan_move_ups(
        covers=covers, demand=demand, idle=idle, based=based, station_km=km,
        busy_probability=q, max_moves=2, max_move_km=90.0, min_gain=0.0,
    )  # fmt: skip
    assert len(moves) <= 2
    counts = idle.copy()
    for m in moves:
        assert m.km <= 90.0
        assert counts[m.to_station] < based[m.to_station]
        assert counts[m.from_station] >= 1
        counts[m.from_station] -= 1
        counts[m.to_station] += 1
    before = expected_coverage(covers, demand, idle, q)
    after = expected_coverage(covers, demand, counts, q)
    assert after - before == pytest.approx(sum(m.gain for m in moves), abs=1e-9)
    if (idle == based).all():
        assert moves == []


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_each_move_is_the_best_single_move_by_brute_force(seed: int) -> None:
    """The greedy's first move (computed on the sparse coverage, a hole's columns only) is the
    feasible move whose change of the expected coverage, computed whole, is largest; its gain
    is that change."""
    rng = np.random.default_rng(seed)
    n_s, n_p = 7, 30
    covers = rng.random((n_s, n_p)) < 0.3
    demand = rng.random(n_p)
    based = rng.integers(1, 3, n_s)
    idle = np.array([rng.integers(0, b + 1) for b in based])
    km = rng.random((n_s, n_s)) * 150
    q = 0.35
    moves = plan_move_ups(
        covers=Coverage.of(covers), demand=demand, idle=idle, based=based, station_km=km,
        busy_probability=q, max_moves=1, max_move_km=100.0, min_gain=0.0,
    )  # fmt: skip
    base = expected_coverage(covers, demand, idle, q)
    best = 0.0
    for a in range(n_s):
        for b in range(n_s):
            if a == b or idle[a] < 1 or idle[b] >= based[b] or km[a, b] > 100.0:
                continue
            after = idle.copy()
            after[a] -= 1
            after[b] += 1
            best = max(best, expected_coverage(covers, demand, after, q) - base)
    if best <= 1e-12:
        assert moves == []
    else:
        (m,) = moves
        assert m.gain == pytest.approx(best, abs=1e-9)
