"""A thin numpy/scipy front end to OR-Tools' MIP wrapper (``model_builder``).

The models here are built as a sparse constraint matrix in one call
(``fill_model_from_sparse_data``), which is orders of magnitude faster than adding tens of
thousands of rows one Python call at a time. The default back end is HiGHS, bundled with
OR-Tools >= 9.12; SCIP (also bundled) can be chosen instead.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

SOLVERS = ("highs", "scip")

# Solver parameters: silence the log (stdout is the CLI's JSON stream) and ask for a zero
# relative gap, so that OPTIMAL means proven optimal, not "within 0.01 %".
_PARAMS = {
    "highs": "output_flag=false\nmip_rel_gap=0\nmip_abs_gap=1e-9",
    "scip": "limits/gap = 0\nlimits/absgap = 1e-9",
}


@dataclass(frozen=True, slots=True)
class MipSolution:
    status: str
    values: np.ndarray | None
    objective: float
    bound: float
    seconds: float
    reduced_costs: np.ndarray | None = None
    """Only for pure LPs (no integer variables)."""

    @property
    def has_solution(self) -> bool:
        return self.values is not None


def solve_mip(
    *,
    objective: np.ndarray,
    matrix: sp.csr_matrix,
    row_lb: np.ndarray,
    row_ub: np.ndarray,
    var_lb: np.ndarray,
    var_ub: np.ndarray,
    integer: np.ndarray,
    maximize: bool,
    time_limit_s: float,
    offset: float = 0.0,
    cutoff: float | None = None,
    solver: str = "highs",
    extra_params: str = "",
) -> MipSolution:
    """Solve ``opt c.x + offset  s.t.  row_lb <= A x <= row_ub,  var_lb <= x <= var_ub`` with
    ``x[integer]`` integral. Returns the incumbent (if any), its objective and the solver's
    best bound (for a pure LP both are the LP optimum, plus the reduced costs).

    ``cutoff`` (HiGHS only) prunes every node that cannot beat it: the solver then reports
    ``INFEASIBLE`` when nothing better than the cutoff exists. (OR-Tools 9.15's HiGHS back end
    crashes on solution hints, so a known solution is passed this way instead.)

    ``extra_params`` are appended to the solver-specific parameter text (one
    ``name = value`` per line for SCIP)."""
    from ortools.linear_solver.python import model_builder as mb

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    started = time.perf_counter()
    model = mb.Model()
    helper = model.helper
    # (the stubs spell the array types in a way numpy's own annotations never match)
    lower: Any = np.asarray(var_lb, dtype=np.float64)
    upper: Any = np.asarray(var_ub, dtype=np.float64)
    costs: Any = np.asarray(objective, dtype=np.float64)
    row_lower: Any = np.asarray(row_lb, dtype=np.float64)
    row_upper: Any = np.asarray(row_ub, dtype=np.float64)
    helper.fill_model_from_sparse_data(
        lower, upper, costs, row_lower, row_upper, sp.csr_matrix(matrix, dtype=np.float64)
    )
    for index in np.flatnonzero(integer):
        helper.set_var_integrality(int(index), True)
    helper.set_objective_offset(float(offset))
    helper.set_maximize(bool(maximize))
    params = _PARAMS[solver]
    if cutoff is not None and solver == "highs":
        params += f"\nobjective_bound={float(cutoff)!r}"
    if extra_params:
        params += "\n" + extra_params
    engine = mb.Solver(solver)
    engine.enable_output(False)
    engine.set_solver_specific_parameters(params)
    engine.set_time_limit_in_seconds(max(float(time_limit_s), 0.01))
    status = engine.solve(model)
    name = status.name
    values: np.ndarray | None = None
    reduced: np.ndarray | None = None
    value = math.nan
    bound = math.nan
    if name in ("OPTIMAL", "FEASIBLE"):
        values = np.asarray(engine.values(model.get_variables()).to_numpy(), dtype=np.float64)
        value = float(engine.objective_value)
        bound = float(engine.best_objective_bound)
        if not integer.any():
            bound = value if name == "OPTIMAL" else -math.inf if not maximize else math.inf
            if name == "OPTIMAL":
                reduced = np.asarray(
                    engine.reduced_costs(model.get_variables()).to_numpy(), dtype=np.float64
                )
    seconds = time.perf_counter() - started
    logger.debug("%s: %s obj=%s bound=%s in %.3fs", solver, name, value, bound, seconds)
    return MipSolution(
        status=name,
        values=values,
        objective=value,
        bound=bound,
        seconds=seconds,
        reduced_costs=reduced,
    )


def proven(objective: float, bound: float, *, maximize: bool, integral: bool) -> bool:
    """Whether ``bound`` proves ``objective`` optimal.

    With integral data the objective is an integer, so a bound within less than one unit
    proves it (the solver's own tolerance is 1e-9 anyway); otherwise a relative 1e-9."""
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return False
    slack = (bound - objective) if maximize else (objective - bound)
    if integral:
        return slack < 1.0 - 1e-6
    return slack <= 1e-9 * max(1.0, abs(objective))
