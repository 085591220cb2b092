"""The sparse assignment core shared by van matching, replacement matching and the bench.

One function, :func:`solve_assignment`: rows (requests) to columns (vans, trucks), each used at
most once, over an explicit list of feasible arcs with integer costs. It is a min-cost flow
(OR-Tools ``SimpleMinCostFlow``):

    row r --(cost c, cap 1)--> column j --(cap 1)--> sink
    row r --(cost unassigned_cost[r], cap 1)--> sink        (only when rows may stay unassigned)

A column may take more than one row when ``column_capacity`` says so (a partner rescue
provider with several free slots is one column of capacity k); by default each takes one.

With ``unassigned_cost=None`` every row must be assigned (the OR-Library instances); otherwise a
row is left unassigned exactly when that is cheaper overall, which is how callers express a
lexicographic objective ("serve as many as possible, then the cheapest way") with a big
per-row penalty. The result is optimal (not greedy).

OR-Tools' cost-scaling algorithm multiplies every cost by the number of nodes + 1, so the costs
must satisfy ``max|cost| * (nodes + 1) < 2**63``; :func:`max_safe_cost` gives the bound and the
solver refuses (``CostOverflowError``) instead of returning garbage.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_INT64_MAX = np.iinfo(np.int64).max


class CostOverflowError(ValueError):
    """The integer costs are too large for the min-cost-flow solver's internal scaling."""


class InfeasibleAssignmentError(ValueError):
    """Every row had to be assigned, but the arcs do not allow it."""


@dataclass(frozen=True)
class SparseAssignment:
    """The optimal assignment: for every row the chosen column and arc, ``-1`` = unassigned."""

    row_to_col: np.ndarray
    row_arc: np.ndarray
    cost: int
    """Sum of the chosen arcs' costs."""
    unassigned_cost: int
    """Sum of the penalties of the rows left unassigned."""

    @property
    def objective(self) -> int:
        return self.cost + self.unassigned_cost

    @property
    def assigned_count(self) -> int:
        return int((self.row_to_col >= 0).sum())


def max_safe_cost(n_rows: int, n_cols: int) -> int:
    """Largest absolute arc cost the solver accepts for a problem of this size."""
    nodes = n_rows + n_cols + 1
    return _INT64_MAX // (nodes + 2)


def solve_assignment(
    n_rows: int,
    n_cols: int,
    arc_row: np.ndarray,
    arc_col: np.ndarray,
    arc_cost: np.ndarray,
    *,
    unassigned_cost: np.ndarray | None = None,
    column_capacity: np.ndarray | None = None,
) -> SparseAssignment:
    """Minimum-cost assignment of rows to distinct columns over the given arcs.

    ``arc_cost`` must be integers >= 0. ``unassigned_cost`` (per row, integers >= 0) lets rows
    stay unassigned at that price; without it, a row that cannot be assigned raises
    :class:`InfeasibleAssignmentError`. ``column_capacity`` (per column, integers >= 0;
    default 1 each) is how many rows a column may take.
    """
    from ortools.graph.python import min_cost_flow

    arc_row = np.asarray(arc_row, dtype=np.int64)
    arc_col = np.asarray(arc_col, dtype=np.int64)
    costs = np.asarray(arc_cost)
    if not (len(arc_row) == len(arc_col) == len(costs)):
        raise ValueError(
            f"arc arrays differ in length: rows {len(arc_row)}, cols {len(arc_col)}, "
            f"costs {len(costs)}"
        )
    if n_rows < 0 or n_cols < 0:
        raise ValueError(f"n_rows and n_cols must be >= 0, got {n_rows}, {n_cols}")
    if len(costs) and costs.dtype.kind not in "iu":  # signed or unsigned integers
        raise ValueError(f"arc costs must be integers, got dtype {costs.dtype}")
    costs = costs.astype(np.int64, copy=False)
    cost_max = 0
    if len(arc_row):
        if arc_row.min() < 0 or arc_row.max() >= n_rows:
            raise ValueError(f"arc row index out of range [0, {n_rows})")
        if arc_col.min() < 0 or arc_col.max() >= n_cols:
            raise ValueError(f"arc column index out of range [0, {n_cols})")
        cost_min, cost_max = int(costs.min()), int(costs.max())
        if cost_min < 0:
            raise ValueError(f"arc costs must be >= 0, got {cost_min}")
    if unassigned_cost is not None:
        penalties = _non_negative_integers(unassigned_cost, n_rows, "unassigned_cost", "row")
    capacity = np.ones(n_cols, dtype=np.int64)
    if column_capacity is not None:
        capacity = _non_negative_integers(column_capacity, n_cols, "column_capacity", "column")
    empty_rows = np.zeros(n_rows, dtype=np.int64) - 1
    if n_rows == 0:
        return SparseAssignment(empty_rows, empty_rows.copy(), 0, 0)

    limit = max_safe_cost(n_rows, n_cols)
    biggest = max(cost_max, int(penalties.max()) if unassigned_cost is not None else 0)
    if biggest > limit:
        raise CostOverflowError(
            f"largest cost {biggest} exceeds the solver's safe bound {limit} for "
            f"{n_rows} rows x {n_cols} columns; use a coarser cost scale"
        )

    sink = n_rows + n_cols
    smcf = min_cost_flow.SimpleMinCostFlow()
    # one call, arcs in this order: row -> column (the given arcs, ids 0..m-1), column -> sink,
    # then row -> sink when rows may stay unassigned
    m = len(arc_row)
    tails = [arc_row, np.arange(n_rows, sink, dtype=np.int64)]
    heads = [n_rows + arc_col, np.full(n_cols, sink, dtype=np.int64)]
    unit_costs = [costs, np.zeros(n_cols, dtype=np.int64)]
    capacities = [np.ones(m, dtype=np.int64), capacity]
    if unassigned_cost is not None:
        tails.append(np.arange(n_rows, dtype=np.int64))
        heads.append(np.full(n_rows, sink, dtype=np.int64))
        unit_costs.append(penalties)
        capacities.append(np.ones(n_rows, dtype=np.int64))
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails),
        np.concatenate(heads),
        np.concatenate(capacities),
        np.concatenate(unit_costs),
    )
    arcs = np.arange(m, dtype=np.int64)
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n_rows] = 1
    supplies[sink] = -n_rows
    smcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int64), supplies)
    status = smcf.solve()
    if status == smcf.INFEASIBLE:
        raise InfeasibleAssignmentError(
            f"no assignment covers all {n_rows} rows with {len(arc_row)} arcs over {n_cols} columns"
        )
    if status == smcf.BAD_COST_RANGE:  # pragma: no cover - guarded above
        raise CostOverflowError("min-cost flow rejected the cost range")
    if status != smcf.OPTIMAL:  # pragma: no cover - defensive
        raise RuntimeError(f"min-cost flow ended with status {status}")

    flows = smcf.flows(arcs) if len(arc_row) else np.zeros(0, dtype=np.int64)
    chosen = np.nonzero(flows > 0)[0]
    row_to_col = empty_rows.copy()
    row_arc = empty_rows.copy()
    row_to_col[arc_row[chosen]] = arc_col[chosen]
    row_arc[arc_row[chosen]] = chosen
    cost = int(costs[chosen].sum())
    penalty = 0
    if unassigned_cost is not None:
        penalty = int(penalties[row_to_col < 0].sum())
    return SparseAssignment(row_to_col, row_arc, cost, penalty)


# -- OR-Library instances -----------------------------------------------------------------


@dataclass(frozen=True)
class AssignmentInstance:
    """An n x n assignment instance as sparse arcs (0-based)."""

    name: str
    n: int
    arc_row: np.ndarray
    arc_col: np.ndarray
    arc_cost: np.ndarray

    def solve(self) -> SparseAssignment:
        return solve_assignment(self.n, self.n, self.arc_row, self.arc_col, self.arc_cost)


def read_orlib_assignment(path: str | Path) -> AssignmentInstance:
    """Read an OR-Library ``assignN`` (dense) or ``assignpN`` (sparse pairs) file.

    Dense: ``n`` then n*n costs row by row. Sparse: ``n`` (or ``n m``) on the first line, then
    lines ``i j c`` (1-based). The format is told by the file name (``assignp`` = sparse), else
    by a two-number first line.
    """
    p = Path(path)
    text = p.read_text()
    lines = text.strip().splitlines()
    if not lines:
        raise ValueError(f"{p}: empty file")
    first = lines[0].split()
    sparse = bool(re.match(r"assignp", p.stem)) or len(first) == 2
    try:
        numbers = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError(f"{p}: expected whitespace-separated integers") from None
    if sparse:
        n = int(numbers[0])
        body = numbers[len(first) :]
        m = len(body) // 3
        if len(body) % 3 or (len(first) == 2 and int(first[1]) != m):
            raise ValueError(f"{p}: the pair lines are not complete 'i j c' triples")
        triples = body.reshape(m, 3)
        rows, cols, costs = triples[:, 0] - 1, triples[:, 1] - 1, triples[:, 2]
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n:
            raise ValueError(f"{p}: pair index outside 1..{n}")
    else:
        n = int(numbers[0])
        body = numbers[1:]
        if len(body) != n * n:
            raise ValueError(f"{p}: expected {n * n} costs for n={n}, found {len(body)}")
        rows, cols = np.divmod(np.arange(n * n, dtype=np.int64), n)
        costs = body
    return AssignmentInstance(p.stem, n, rows, cols, costs)


def _non_negative_integers(values: Any, n: int, name: str, per: str) -> np.ndarray:
    """``values`` as int64, one entry per ``per``; ``ValueError`` naming ``name`` otherwise."""
    given = np.asarray(values)
    if given.shape != (n,):
        raise ValueError(f"{name} must have one entry per {per} ({n})")
    if n and given.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {given.dtype}")
    out = given.astype(np.int64, copy=False)
    if n and out.min() < 0:
        raise ValueError(f"{name} must be >= 0")
    return out
