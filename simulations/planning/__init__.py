"""Location planning: where to base rescue vans.

Pure optimisation on plain arrays (numpy / scipy / OR-Tools), no web or DB imports:

* :func:`solve_mclp` — maximal covering: most demand within the radius with ``p`` sites,
  optionally maximising backup (double) coverage second.
* :func:`solve_pmedian` — p-median: least demand-weighted distance with ``p`` sites (exact
  radius formulation with row generation, seeded by vertex substitution).
* :func:`solve_min_facilities` — fewest sites that cover a target share of demand.

Each returns a :class:`PlanResult` with the objective, the open sites, whether the answer is
proven optimal, the best bound and the gap.
"""

from simulations.planning.coverage import (
    coverage_from_distances,
    solve_mclp,
    solve_min_facilities,
)
from simulations.planning.pmedian import pmedian_cost, pmedian_local_search, solve_pmedian
from simulations.planning.result import PlanResult

__all__ = [
    "PlanResult",
    "coverage_from_distances",
    "pmedian_cost",
    "pmedian_local_search",
    "solve_mclp",
    "solve_min_facilities",
    "solve_pmedian",
]
