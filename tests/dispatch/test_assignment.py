"""The sparse assignment core: exact on OR-Library instances and on brute-forced small ones."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.assignment import (
    CostOverflowError,
    InfeasibleAssignmentError,
    max_safe_cost,
    read_orlib_assignment,
    solve_assignment,
)

ORLIB = Path(__file__).parents[1] / "data" / "orlib_assign"
OPTIMA = {
    "assign100": 305,
    "assign200": 475,
    "assign300": 626,
    "assign400": 804,
    "assign500": 991,
    "assignp800": 2239,
    "assignp1500": 5839,
}


@pytest.mark.parametrize("name", sorted(OPTIMA))
def test_orlib_known_optimum(name: str) -> None:
    """Every OR-Library assign/assignp instance solves to its published optimum."""
    inst = read_orlib_assignment(ORLIB / f"{name}.txt")
    result = inst.solve()
    assert result.objective == OPTIMA[name]
    assert result.assigned_count == inst.n
    assert len(set(result.row_to_col.tolist())) == inst.n


def test_reader_rejects_truncated_dense_file(tmp_path: Path) -> None:
    """A dense file with fewer than n*n costs is refused with the count in the message."""
    f = tmp_path / "assign3.txt"
    f.write_text("3\n1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="expected 9 costs"):
        read_orlib_assignment(f)


def test_perfect_assignment_infeasible_raises() -> None:
    """Without unassigned costs, a row with no arc makes the problem infeasible."""
    with pytest.raises(InfeasibleAssignmentError, match="2 rows"):
        solve_assignment(2, 2, np.array([0, 0]), np.array([0, 1]), np.array([1, 1]))


def test_unassigned_cost_decides_when_to_leave_a_row() -> None:
    """A row stays unassigned exactly when its penalty is cheaper than any way to serve it."""
    rows, cols, costs = np.array([0, 1]), np.array([0, 0]), np.array([5, 3])
    r = solve_assignment(2, 1, rows, cols, costs, unassigned_cost=np.array([100, 1]))
    assert r.row_to_col.tolist() == [0, -1]
    assert (r.cost, r.unassigned_cost) == (5, 1)


def test_bad_costs_are_refused() -> None:
    """Negative, float or overflowing costs raise ValueError naming the problem."""
    one = np.array([0])
    with pytest.raises(ValueError, match="must be >= 0"):
        solve_assignment(1, 1, one, one, np.array([-1]))
    with pytest.raises(ValueError, match="integers"):
        solve_assignment(1, 1, one, one, np.array([1.5]))
    with pytest.raises(CostOverflowError, match="safe bound"):
        solve_assignment(1, 1, one, one, np.array([max_safe_cost(1, 1) + 1]))
    with pytest.raises(ValueError, match="row index out of range"):
        solve_assignment(1, 1, np.array([3]), one, np.array([1]))


def test_empty_problem() -> None:
    """No rows: an empty assignment with objective 0."""
    r = solve_assignment(0, 3, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    assert r.objective == 0 and r.assigned_count == 0


@st.composite
def sparse_instances(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, int]], list[int]]:
    n_rows = draw(st.integers(1, 4))
    n_cols = draw(st.integers(1, 4))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, n_rows - 1), st.integers(0, n_cols - 1), st.integers(0, 50)),
            max_size=12,
        )
    )
    penalties = draw(st.lists(st.integers(0, 120), min_size=n_rows, max_size=n_rows))
    return n_rows, n_cols, pairs, penalties


@settings(max_examples=150, deadline=None)
@given(sparse_instances())
def test_optimal_equals_brute_force(
    inst: tuple[int, int, list[tuple[int, int, int]], list[int]],
) -> None:
    """On tiny instances the objective equals enumerating every partial assignment, and no
    column is used twice."""
    n_rows, n_cols, pairs, penalties = inst
    cost = {}
    for r, c, w in pairs:
        cost[(r, c)] = min(w, cost.get((r, c), w))
    best = None
    for choice in itertools.product(*[[-1, *range(n_cols)] for _ in range(n_rows)]):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)) or any(
            c >= 0 and (r, c) not in cost for r, c in enumerate(choice)
        ):
            continue
        total = sum(cost[(r, c)] if c >= 0 else penalties[r] for r, c in enumerate(choice))
        best = total if best is None else min(best, total)
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    result = solve_assignment(
        n_rows, n_cols, arr[:, 0], arr[:, 1], arr[:, 2], unassigned_cost=np.array(penalties)
    )
    assert result.objective == best
    chosen = result.row_to_col[result.row_to_col >= 0].tolist()
    assert len(chosen) == len(set(chosen))
