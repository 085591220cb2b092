"""The simulation's batch step on arrays: the assignment ``dispatch.match_vans`` returns, without
building the batch's dataclasses.

Why: a simulated national year is 84,000 batches (every 5 minutes) or 220,000 (triggered as
production triggers its cycle), each a few requests and a few dozen vans. The general matcher's
fixed cost per batch (validated ``OpenRequest`` / ``VanState`` objects, the
``VanMatchingProblem``, ``_prepare``, the explanation of unassigned requests that the
simulation ignores, the OR-Tools model even for one request) was 0.5-1 ms, 60-70% of a run.

:func:`match_batch` takes the batch as the simulation holds it (arcs as row, column, road km and
drive minutes; per row the priority and minutes waited; per column the minutes until the van is
free and its radius) and returns, per row, the arc chosen or -1: exactly what ``match_vans``
returns for ``VanMatchingProblem.from_arrays`` of the same batch with the vans on shift, not
pinned, no designated station and every arc capable (the simulation filters capability before).
It computes the integer costs with ``match_vans``' own function
(:func:`dispatch.vans.integer_costs`: the same formula, the same cost-scale fallback) and then:

- when every row with an arc has a unique cheapest arc, those arcs use distinct vans and each
  costs less than leaving its row unassigned, that assignment is the unique optimum (any other
  puts some row on a dearer arc or unassigned), so the min-cost flow would return it: taken
  without the solver (``method == "argmin"``; one request alone is always this case unless two
  vans tie, e.g. two vans of one station; a lone request whose tied vans include exactly one
  narrowest takes that one without the solver too, ``"tie"``: whatever the solver picked,
  the tie rule below would end there). Not when the costs come near int64's limit (over
  ``2**63 / (8 x nodes**2)``, never in a simulation: minutes x 100 x priority), where OR-Tools
  may refuse the network instead (``CostOverflowError``, as the general matcher raises);
- otherwise the same network as ``dispatch.assignment.solve_assignment`` builds (the same
  nodes, arcs in the same order, the same costs) goes to OR-Tools' min-cost flow
  (``"flow"``), so ties are broken as the general matcher breaks them: the solver's choice,
  then ``dispatch.vans.prefer_narrow_vans`` (a tied van is swapped for a strictly narrower
  unused one, e.g. a station's service van for its wrecker). (The solver's tie-breaking is
  the cost-scaling algorithm's, not a rule that can be restated: among vans of one station
  it mostly, not always, takes the highest index.)

``tests/simulations/test_batch_match.py`` compares it with ``match_vans`` on random batches
full of ties, and whole runs of each dispatch configuration through both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from dispatch.assignment import CostOverflowError
from dispatch.vans import MatchParams, integer_costs, prefer_narrow_vans

_NO_ARC = np.iinfo(np.int64).max
_SOLVER_FREE_BOUND = int(np.iinfo(np.int64).max)


@dataclass(frozen=True, slots=True)
class BatchMatch:
    """Per row, the chosen arc (index into the arrays given) or -1, and per arc its ETA."""

    row_arc: np.ndarray
    arc_eta: np.ndarray
    """Minutes until the van is free + drive minutes (``VanAssignment.eta_minutes``)."""
    method: str
    """``"argmin"`` (the unique optimum, no solver), ``"tie"`` (one request, its tied vans
    with exactly one narrowest: no solver), ``"flow"`` (min-cost flow) or ``"empty"``."""


def match_batch(
    *,
    arc_row: np.ndarray,
    arc_column: np.ndarray,
    arc_km: np.ndarray,
    arc_minutes: np.ndarray,
    row_priority: np.ndarray,
    row_waited_minutes: np.ndarray,
    column_free_in_minutes: np.ndarray,
    column_radius_km: np.ndarray,
    column_breadth: np.ndarray,
    params: MatchParams,
    column_busy: np.ndarray | None = None,
) -> BatchMatch:
    """The optimal matching of the batch, as ``match_vans`` finds it (module docstring).

    ``column_busy`` per column: its ``free_in`` is work still to finish (``VanState.busy``:
    driving home from a job), not a crew's turnout; under the ``promise`` objective such a
    van's late arcs are dropped, as ``match_vans`` drops them (``None``: none busy).

    ``arc_km`` is both the radius check and the travel km, as in the simulation; rows are the
    requests in batch order, columns the vans; ``column_breadth`` is each van's
    ``dispatch.vans.capability_breadth`` (of tied vans the narrowest goes, as in
    ``match_vans``). Raises ``ValueError`` like ``match_vans`` when
    the costs cannot fit int64 even at one unit per minute."""
    n_rows, n_cols = len(row_priority), len(column_free_in_minutes)
    row_arc = np.full(n_rows, -1, dtype=np.int64)
    eta = column_free_in_minutes[arc_column] + arc_minutes
    # VanMatchingProblem.from_arrays drops unreachable arcs and arcs beyond the radius (an
    # infinite or NaN km fails the comparison)
    keep = np.isfinite(arc_minutes) & (arc_km <= column_radius_km[arc_column])
    if params.objective == "promise" and column_busy is not None and column_busy.any():
        # a van still at work that would be late is no candidate (match_vans' _prepare)
        held = column_busy[arc_column] & (column_free_in_minutes[arc_column] > 0)
        keep &= ~(held & (row_waited_minutes[arc_row] + eta > params.promise_minutes))
    if not keep.any():
        return BatchMatch(row_arc, eta, "empty")
    if keep.all():
        sel = np.arange(len(keep))
        rows, cols, minutes = arc_row, arc_column, eta
    else:
        sel = np.flatnonzero(keep)
        rows, cols, minutes = arc_row[sel], arc_column[sel], eta[sel]
    # match_vans adds the soft penalties (none here: no designated station, no pins)
    if n_rows == 1 and params.objective == "eta":
        return _one_request(
            row_arc, eta, sel, cols, minutes, row_priority, n_cols, column_breadth, params
        )
    weights = np.rint(row_priority * params.priority_resolution).astype(np.int64)
    late = None
    if params.objective == "promise":
        late = row_waited_minutes[rows] + minutes > params.promise_minutes
    arc_cost, unassigned_cost, _ = integer_costs(
        minutes, weights, rows, n_cols=n_cols, resolution=params.time_resolution, late=late
    )
    # OR-Tools may refuse costs near int64's limit (its node potentials would overflow: the
    # general matcher then raises); far below it, a unique optimum is its only answer
    nodes = n_rows + n_cols + 2
    solver_free = int(unassigned_cost.max()) <= _SOLVER_FREE_BOUND // (8 * nodes * nodes)
    if solver_free and n_rows == 1:  # the common batch: one request
        cheapest_cost = arc_cost.min()
        cheapest = np.flatnonzero(arc_cost == cheapest_cost)
        if len(cheapest) == 1 and cheapest_cost < unassigned_cost[0]:
            row_arc[0] = sel[cheapest[0]]
            return BatchMatch(row_arc, eta, "argmin")
    elif solver_free:
        # each row's cheapest arc: one per row, distinct vans, cheaper than no van -> the
        # unique optimum
        row_min = np.full(n_rows, _NO_ARC, dtype=np.int64)
        np.minimum.at(row_min, rows, arc_cost)
        cheapest = np.flatnonzero(arc_cost == row_min[rows])
        served = row_min < _NO_ARC
        if (
            len(cheapest) == int(served.sum())
            and len(np.unique(cols[cheapest])) == len(cheapest)
            and bool((row_min[served] < unassigned_cost[served]).all())
        ):
            row_arc[rows[cheapest]] = sel[cheapest]
            return BatchMatch(row_arc, eta, "argmin")
    chosen = _min_cost_flow(n_rows, n_cols, rows, cols, arc_cost, unassigned_cost)
    local = np.full(n_rows, -1, dtype=np.int64)
    local[rows[chosen]] = chosen
    local = prefer_narrow_vans(local, rows, cols, arc_cost, column_breadth)
    hit = local >= 0
    row_arc[hit] = sel[local[hit]]
    return BatchMatch(row_arc, eta, "flow")


def _one_request(
    row_arc: np.ndarray,
    eta: np.ndarray,
    sel: np.ndarray,
    cols: np.ndarray,
    minutes: np.ndarray,
    row_priority: np.ndarray,
    n_cols: int,
    column_breadth: np.ndarray,
    params: MatchParams,
) -> BatchMatch:
    """:func:`match_batch` for the commonest batch, one request under the ``eta`` objective:
    :func:`one_request_arc` on its arcs."""
    weight = np.rint(row_priority * params.priority_resolution).astype(np.int64)
    k, method = one_request_arc(
        minutes, lambda: cols, weight[0], n_cols, params, lambda: column_breadth
    )
    row_arc[0] = sel[k] if k >= 0 else -1
    return BatchMatch(row_arc, eta, method)


def one_request_arc(
    arc_eta: np.ndarray,
    arc_column: Callable[[], np.ndarray],
    weight: np.integer,
    n_cols: int,
    params: MatchParams,
    column_breadth: Callable[[], np.ndarray],
) -> tuple[int, str]:
    """:func:`match_batch`'s decision for one request under the ``eta`` objective: the arc
    (index into ``arc_eta``, its reachable arcs within the radius; at least one) or -1 (left
    unassigned), and the method (``"argmin"``, ``"tie"``: tied arcs of which one van is the
    narrowest, or ``"flow"``). ``weight`` is its integer
    priority weight, ``n_cols`` the batch's vans; ``arc_column`` gives each arc's column (the
    van's rank in the batch) and ``column_breadth`` each column's capability breadth, asked
    for only when the solver decides (a tie): its tie-breaking depends on the columns, and of
    tied vans the narrowest goes (``dispatch.vans.prefer_narrow_vans``)."""
    arc_cost, unassigned_cost, _ = integer_costs(
        arc_eta, np.array([weight]), n_cols=n_cols, resolution=params.time_resolution
    )
    unassigned = int(unassigned_cost[0])
    nodes = n_cols + 3
    columns = None
    if unassigned <= _SOLVER_FREE_BOUND // (8 * nodes * nodes):
        cheapest_cost = arc_cost.min()
        cheapest = np.flatnonzero(arc_cost == cheapest_cost)
        if cheapest_cost < unassigned:
            if len(cheapest) == 1:
                return int(cheapest[0]), "argmin"
            # A tie (two vans of one station at the same minute): whichever tied van the
            # solver takes, prefer_narrow_vans swaps it for the narrowest tied one when that
            # one is strictly narrower than every other tied van; so that arc is the answer.
            columns = arc_column()
            breadth = column_breadth()[columns[cheapest]]
            narrowest = np.flatnonzero(breadth == breadth.min())
            if len(narrowest) == 1:
                return int(cheapest[narrowest[0]]), "tie"
    rows = np.zeros(len(arc_cost), dtype=np.int64)
    if columns is None:
        columns = arc_column()
    chosen = _min_cost_flow(1, n_cols, rows, columns, arc_cost, unassigned_cost)
    if not len(chosen):
        return -1, "flow"
    local = prefer_narrow_vans(chosen[:1], rows, columns, arc_cost, column_breadth())
    return int(local[0]), "flow"


def _min_cost_flow(
    n_rows: int,
    n_cols: int,
    rows: np.ndarray,
    cols: np.ndarray,
    costs: np.ndarray,
    unassigned_cost: np.ndarray,
) -> np.ndarray:
    """The arcs with flow in ``dispatch.assignment.solve_assignment``'s network, built the
    same way (nodes, arcs in the same order, same supplies: the solver breaks ties by them)
    without its input checks, which the costs computed above satisfy; its
    ``CostOverflowError`` when OR-Tools rejects the cost range."""
    sink = n_rows + n_cols
    flow = min_cost_flow.SimpleMinCostFlow()
    tail = np.concatenate([rows, np.arange(n_rows, sink), np.arange(n_rows)])
    head = np.concatenate(
        [n_rows + cols, np.full(n_cols, sink, dtype=np.int64), np.full(n_rows, sink, np.int64)]
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        tail,
        head,
        np.ones(len(tail), dtype=np.int64),
        np.concatenate([costs, np.zeros(n_cols, dtype=np.int64), unassigned_cost]),
    )
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n_rows] = 1
    supplies[sink] = -n_rows
    flow.set_nodes_supplies(np.arange(sink + 1, dtype=np.int64), supplies)
    status = flow.solve()
    if status == flow.BAD_COST_RANGE:  # as solve_assignment says it
        raise CostOverflowError("min-cost flow rejected the cost range")
    if status != flow.OPTIMAL:  # pragma: no cover - every row may stay unassigned
        raise RuntimeError(f"min-cost flow ended with status {status}")
    return np.flatnonzero(flow.flows(np.arange(len(rows), dtype=np.int64)) > 0)


__all__ = ["BatchMatch", "match_batch", "one_request_arc"]
