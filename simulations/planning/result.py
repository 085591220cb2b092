"""The result record every planning solver returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PlanResult:
    """Outcome of one location model.

    ``objective`` is the model's primary value (covered demand for covering models,
    demand-weighted distance for p-median, number of open sites for min-facilities).
    ``best_bound`` is the solver's proven bound on that value (an upper bound when maximising,
    a lower bound when minimising) and ``gap`` the relative distance between the two,
    ``|objective - best_bound| / max(|objective|, 1)``; ``proven_optimal`` is true only when
    the bound meets the objective (for integral data: within rounding of the next integer).
    ``sites`` are the column indices of the open sites, ascending.
    """

    objective: float
    sites: tuple[int, ...]
    proven_optimal: bool
    best_bound: float
    gap: float
    seconds: float
    method: str
    covered_demand: float | None = None
    """Demand within the radius of at least one open site (covering models)."""
    backup_covered_demand: float | None = None
    """Demand within the radius of at least two open sites (MCLP with ``backup=True``)."""

    @property
    def p(self) -> int:
        return len(self.sites)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict (the gap is always present; it is 0.0 when proven optimal)."""
        out: dict[str, Any] = {
            "objective": _plain(self.objective),
            "p": self.p,
            "proven_optimal": self.proven_optimal,
            "best_bound": _plain(self.best_bound),
            "gap": round(self.gap, 6),
            "seconds": round(self.seconds, 3),
            "method": self.method,
        }
        if self.covered_demand is not None:
            out["covered_demand"] = _plain(self.covered_demand)
        if self.backup_covered_demand is not None:
            out["backup_covered_demand"] = _plain(self.backup_covered_demand)
        return out


def _plain(value: float) -> float | int:
    """Integral floats as ints (so JSON shows 5819, not 5819.0)."""
    if math.isfinite(value) and abs(value - round(value)) < 1e-6:
        return round(value)
    return round(value, 6)


def relative_gap(objective: float, bound: float) -> float:
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return math.inf
    return abs(objective - bound) / max(abs(objective), 1.0)
