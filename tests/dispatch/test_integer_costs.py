"""The one integer-cost formula of the van matching (``dispatch.vans.integer_costs``), used by
``match_vans`` and by the simulation's array batch step (``simulations.batch_match``): exact
costs on a batch computed by hand, the promise tier, the cost-scale fallback and its error."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.assignment import max_safe_cost
from dispatch.vans import IntegerCosts, integer_costs


def _two_rows(**kw: np.ndarray) -> IntegerCosts:
    """Rows of weights 100 and 200 (priorities 1 and 2); row 0 one arc of 10.5 minutes, row
    1 two of 20 and 30, at 1/100 minute."""
    return integer_costs(
        np.array([10.5, 20.0, 30.0]),
        np.array([100, 200], dtype=np.int64),
        np.array([0, 1, 1]),
        n_cols=3,
        resolution=100,
        **kw,
    )


def test_costs_of_a_small_batch_by_hand() -> None:
    """Two rows, priorities 1 and 2 (weights 100, 200), ETAs 10.5 and 20 and 30 minutes at
    1/100 minute: arcs weight x ETA x 100; ``big`` = the sum of the rows' dearest arcs + 1 =
    105,000 + 600,000 + 1; leaving a row unserved costs its weight x ``big``."""
    costs = _two_rows()
    assert costs.resolution == 100
    assert costs.arc_cost.dtype == np.int64
    assert costs.arc_cost.tolist() == [105_000, 400_000, 600_000]
    assert costs.unassigned_cost.tolist() == [100 * 705_001, 200 * 705_001]


def test_late_arcs_cost_one_tier_more_and_unserved_rows_the_tiers_above() -> None:
    """The promise objective: the late arc (row 1's 30 minutes) costs ``big`` more; leaving a
    row unserved costs weight x ``big`` x (late rows + 1)."""
    costs = _two_rows(late=np.array([False, False, True]))
    big = 705_001
    assert costs.arc_cost.tolist() == [105_000, 400_000, 600_000 + big]
    assert costs.unassigned_cost.tolist() == [100 * 2 * big, 200 * 2 * big]


def test_unassigned_weights_price_leaving_a_row_unserved() -> None:
    """Re-planning weighs a pinned request more when left without a van: only the bypass
    changes, the arcs keep the priority weights."""
    costs = integer_costs(
        np.array([10.0, 20.0]),
        np.array([100, 100], dtype=np.int64),
        np.array([0, 1]),
        n_cols=2,
        resolution=100,
        unassigned_weights=np.array([100, 200], dtype=np.int64),
    )
    assert costs.arc_cost.tolist() == [100_000, 200_000]
    assert costs.unassigned_cost.tolist() == [100 * 300_001, 200 * 300_001]


def test_one_row_without_rows_equals_the_row_form() -> None:
    """``rows=None`` (every arc on the one row: the simulation's one-request batch) gives the
    same costs as the row form with every arc on row 0, also under the promise tier."""
    minutes = np.array([12.34, 56.78, 12.34, 99.5])
    weight = np.array([250], dtype=np.int64)
    for late in (None, np.array([False, True, False, True])):
        short = integer_costs(minutes, weight, n_cols=4, resolution=100, late=late)
        full = integer_costs(
            minutes, weight, np.zeros(4, dtype=np.int64), n_cols=4, resolution=100, late=late
        )
        assert short.arc_cost.tolist() == full.arc_cost.tolist()
        assert short.unassigned_cost.tolist() == full.unassigned_cost.tolist()
        assert short.resolution == full.resolution == 100


def test_the_cost_scale_is_lowered_until_int64_fits_then_refused() -> None:
    """ETAs so large that 1/100 minute would overflow int64 are costed at 1/10 (the bypass
    then stays within half the solver's limit); larger still, a ValueError says so."""
    limit = max_safe_cost(1, 2)
    eta = limit / 1e6  # weight 100 x ETA x 100 = limit: too much at 1/100, limit / 10 at 1/10
    costs = integer_costs(
        np.array([eta, eta / 2]), np.array([100], dtype=np.int64), n_cols=2, resolution=100
    )
    assert costs.resolution == 10
    assert costs.arc_cost.tolist() == [100 * round(eta * 10), 100 * round(eta / 2 * 10)]
    assert int(costs.unassigned_cost[0]) <= limit // 2
    with pytest.raises(ValueError, match=r"overflow int64 even at 1 unit per minute \(1 requests"):
        integer_costs(
            np.array([limit / 10.0]), np.array([100], dtype=np.int64), n_cols=2, resolution=100
        )
