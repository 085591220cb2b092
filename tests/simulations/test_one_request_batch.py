"""The one-request batch step (``Simulation._dispatch_one_request``, production triggers' commonest
batch) makes the decisions of the general step and of ``dispatch.match_vans``: whole runs with
the ``eta`` objective under either trigger are identical field by field, and the step both
decides by the unique cheapest van, and by the solver on ties (vans of one station), in
those runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest

from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.results import RunRecord
from simulations.scenario import Scenario, resolve_scenario
from simulations.tables import build_tables


class _CountingSimulation(Simulation):
    """The simulation, counting how the one-request step decided its batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.methods: Counter[str] = Counter()

    def _dispatch_one_request(self, request: int, now: float) -> str:
        method = super()._dispatch_one_request(request, now)
        self.methods[method] += 1
        return method


def _run(scenario: Scenario, *, array_matching: bool) -> _CountingSimulation:
    tables = build_tables(scenario)
    sim = _CountingSimulation(
        scenario, tables, draw_breakdowns(scenario, tables, replication_streams(scenario.seed, 0))
    )
    sim.array_matching = array_matching
    sim.run()
    return sim


def _scenario(name: str, trigger: str, days: float, escalate_minutes: float) -> Scenario:
    s = resolve_scenario(name).with_days(days)
    return replace(
        s,
        warmup_days=1.0,
        travel=replace(s.travel, provider="great-circle"),
        dispatch=replace(s.dispatch, trigger=trigger, escalate_after_minutes=escalate_minutes),
    )


VARIANTS = {
    "shandong-arrival": ("shandong", "arrival", 3.0, 240.0),
    "shandong-interval-short-escalation": ("shandong", "interval", 3.0, 45.0),
    "national-arrival": ("national", "arrival", 1.0, 45.0),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_whole_runs_are_identical_with_the_one_request_step(name: str) -> None:
    """A run through the array step (with the one-request step) equals the run through
    ``match_vans`` (which never takes it), field by field; the one-request step decided
    batches with a unique cheapest van and ties of a station's vans (one of them the
    narrowest) without the solver."""
    scenario = _scenario(*VARIANTS[name])
    general = _run(scenario, array_matching=False)
    arrays = _run(scenario, array_matching=True)
    assert not general.methods
    assert arrays.methods["argmin"] > 50, arrays.methods
    assert arrays.methods["tie"] > 0, arrays.methods
    a_record, g_record = arrays.record(), general.record()
    assert int((g_record.van >= 0).sum()) > 100
    for f in fields(RunRecord):
        if f.name == "match_seconds":
            continue
        a, b = getattr(g_record, f.name), getattr(a_record, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def test_promise_objective_never_takes_the_one_request_step() -> None:
    """The step computes only the ``eta`` objective: a run with the promise objective (its
    tiers depend on the minutes waited) never enters it."""
    s = _scenario("shandong", "arrival", 2.0, 240.0)
    s = replace(s, dispatch=replace(s.dispatch, objective="promise"))
    sim = _run(s, array_matching=True)
    assert sim.dispatch_batches > 50
    assert not sim.methods
