"""Under the ``promise`` objective a van not yet free because of work (driving home from a job:
``VanState.busy``) is not given a request it would reach late; a crew's turnout (an idle van
whose on-duty or on-call crew needs time to leave) never counts as work. On events, a batch
runs when a van gets home, so the held-back request gets it then."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dispatch.vans import MatchParams
from simulations.batch_match import match_batch
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.scenario import CrewSpec, Scenario, resolve_scenario
from simulations.tables import build_tables


def _one_late_request(busy: bool) -> dict[str, np.ndarray]:
    """One request that has waited 100 min; one van free in 10 min, 15 min away: it would
    arrive at 100 + 10 + 15 = 125 min, after a 120-min promise."""
    return {
        "arc_row": np.array([0]),
        "arc_column": np.array([0]),
        "arc_km": np.array([12.0]),
        "arc_minutes": np.array([15.0]),
        "row_priority": np.array([1.0]),
        "row_waited_minutes": np.array([100.0]),
        "column_free_in_minutes": np.array([10.0]),
        "column_radius_km": np.array([150.0]),
        "column_breadth": np.array([5]),
        "column_busy": np.array([busy]),
    }


@pytest.mark.parametrize(
    ("objective", "busy", "assigned"),
    [
        ("promise", True, False),  # driving home and late: held back
        ("promise", False, True),  # a crew's 10-min turnout: sent
        ("eta", True, True),  # the eta objective: unchanged
        ("eta", False, True),
    ],
)
def test_a_busy_van_that_would_be_late_is_held_back_only_under_promise(
    objective: str, busy: bool, assigned: bool
) -> None:
    m = match_batch(
        **_one_late_request(busy), params=MatchParams(objective=objective, promise_minutes=120.0)
    )
    assert m.row_arc.tolist() == ([0] if assigned else [-1])
    assert m.arc_eta.tolist() == [25.0]


def test_a_busy_van_on_time_is_sent() -> None:
    """Waited 95 min: the busy van arrives at exactly 120 min, within the promise."""
    batch = {**_one_late_request(True), "row_waited_minutes": np.array([95.0])}
    m = match_batch(**batch, params=MatchParams(objective="promise", promise_minutes=120.0))
    assert m.row_arc.tolist() == [0]


class _Recording(Simulation):
    """Every dispatch: late at the decision (waited + ETA > promise), the van still driving
    home, the van got home this minute, the van idle with a crew's turnout."""

    decisions: list[tuple[bool, bool, bool, bool]]

    def dispatch_van(  # type: ignore[no-untyped-def]
        self, request: int, van: int, arc: int, now: float, eta: float, **kw
    ) -> None:
        waited = now - float(self.requests.reported_at[request])
        home_at = float(self.schedule.home_at[van])
        late = waited + eta > self.match_params.promise_minutes
        turnout = home_at <= now and self.idle_state(van, now).free_in_minutes > 0
        self.decisions.append((late, home_at > now, home_at == now, turnout))
        super().dispatch_van(request, van, arc, now, eta, **kw)


def _decisions(objective: str, crews: bool) -> np.ndarray:
    """Three busy days in Shandong (three times the demand, a 60-min promise), production's
    trigger: a batch on every arrival and whenever a van becomes free."""
    base = resolve_scenario("shandong").with_days(3.0)
    scenario: Scenario = replace(
        base,
        warmup_days=1.0,
        travel=replace(base.travel, provider="great-circle"),
        promise=replace(base.promise, arrival_minutes=60.0),
        demand=replace(base.demand, breakdowns_per_day=3 * base.demand.breakdowns_per_day),
        dispatch=replace(base.dispatch, trigger="arrival", objective=objective),
    )
    if crews:
        scenario = replace(
            scenario, crews=CrewSpec(turnout_minutes=5.0, hours_per_day=16.0, night_on_call=True)
        )
    tables = build_tables(scenario)
    sim = _Recording(
        scenario, tables, draw_breakdowns(scenario, tables, replication_streams(scenario.seed, 0))
    )
    sim.decisions = []
    sim.run()
    assert len(sim.decisions) > 400
    return np.array(sim.decisions, dtype=bool).reshape(-1, 4)


def test_promise_never_sends_a_van_driving_home_late_but_waits_for_it_to_get_home() -> None:
    late, on_road, just_home, _ = _decisions("promise", crews=False).T
    assert not (late & on_road).any()
    assert (late & just_home).sum() > 0  # the batch run when a van got home served them


def test_on_call_turnout_is_not_held_back() -> None:
    late, on_road, _, turnout = _decisions("promise", crews=True).T
    assert not (late & on_road).any()
    assert (late & turnout).sum() > 10  # late requests still get an on-call crew's van


def test_eta_objective_still_sends_vans_driving_home_late() -> None:
    late, on_road, _, _ = _decisions("eta", crews=False).T
    assert (late & on_road).sum() > 0
