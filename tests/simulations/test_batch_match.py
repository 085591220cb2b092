"""The simulation's batch step on arrays (``simulations.batch_match``) makes the decisions of
``dispatch.match_vans``: the same van, the same ETA for every request, on random batches full
of ties (vans of one station, equal drives) and in whole runs of every dispatch configuration
(interval and arrival triggers, both objectives, next-from-site, move-up, crews)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace

import numpy as np
import pytest

from dispatch.vans import (
    MatchParams,
    OpenRequest,
    VanMatchingProblem,
    VanState,
    capability_breadth,
    match_vans,
)
from fleet.model import GeoPoint, RescueVan, VanCapability, VehicleClass
from simulations.batch_match import match_batch
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.results import RunRecord
from simulations.scenario import CrewSpec, Scenario, resolve_scenario
from simulations.tables import build_tables

HOME = GeoPoint(36.0, 117.0)
RADIUS_KM = 150.0


def _random_batch(rng: np.random.Generator, *, huge: bool = False) -> dict[str, np.ndarray]:
    """A batch as the simulation builds it: rows x stations' vans, drives shared by a
    station's vans (ties), some arcs beyond the radius or unreachable, some vans busy, heavy
    service vans and wreckers (both serve a tractor; of tied vans the narrower goes)."""
    n_rows = int(rng.integers(1, 6))
    station_vans = [int(k) for k in rng.integers(1, 4, size=int(rng.integers(1, 7)))]
    first_van = np.cumsum([0, *station_vans])
    rows, cols, km, minutes = [], [], [], []
    scale = 10.0 ** float(rng.choice([9, 10, 11, 12, 16])) if huge else 1.0
    for r in range(n_rows):
        for s, count in enumerate(station_vans):
            if rng.random() < 0.3:
                continue
            drive = float(rng.choice([20.0, 35.5, 35.5, 60.0, 90.25, 140.0]))
            drive *= scale
            if rng.random() < 0.05:
                drive = np.inf
            dist = float(rng.choice([30.0, 80.0, 149.9, 150.0, 151.0]))
            for j in range(first_van[s], first_van[s] + count):
                rows.append(r)
                cols.append(j)
                km.append(dist)
                minutes.append(drive)
    n_vans = int(first_van[-1])
    busy = rng.random(n_vans) < 0.3
    # of the vans not free now, some are at work (busy: held back from late requests under
    # promise), the others a crew's turnout (never held back)
    at_work = busy & (rng.random(n_vans) < 0.6)
    capability = rng.choice([VanCapability.HEAVY_SERVICE, VanCapability.WRECKER], size=n_vans)
    return {
        "arc_row": np.array(rows, dtype=np.int64),
        "arc_column": np.array(cols, dtype=np.int64),
        "arc_km": np.array(km),
        "arc_minutes": np.array(minutes),
        "row_priority": rng.choice([1.0, 1.0, 1.5, 2.0, 3.0], size=n_rows),
        "row_waited_minutes": rng.choice([0.0, 30.0, 100.0, 130.0], size=n_rows),
        "column_free_in_minutes": np.where(busy, rng.choice([5.0, 40.0], size=n_vans), 0.0),
        "column_radius_km": np.full(n_vans, RADIUS_KM),
        "column_breadth": np.array([capability_breadth(c) for c in capability], dtype=np.int64),
        "column_busy": at_work,
    }


_BY_BREADTH = {capability_breadth(c): c for c in VanCapability}


def _general(batch: dict[str, np.ndarray], params: MatchParams) -> dict[int, tuple[int, float]]:
    """``match_vans`` on the same batch: row -> (column, ETA)."""
    requests = [
        OpenRequest(
            id=str(r),
            location=HOME,
            vehicle_class=VehicleClass.TRACTOR,
            priority=float(p),
            waited_minutes=float(w),
        )
        for r, (p, w) in enumerate(
            zip(batch["row_priority"], batch["row_waited_minutes"], strict=True)
        )
    ]
    vans = [
        VanState(
            RescueVan(f"V{j}", "S", _BY_BREADTH[int(breadth)], float(radius)),
            HOME,
            free_in_minutes=float(free_in),
            busy=bool(at_work),
        )
        for j, (free_in, radius, breadth, at_work) in enumerate(
            zip(
                batch["column_free_in_minutes"],
                batch["column_radius_km"],
                batch["column_breadth"],
                batch["column_busy"],
                strict=True,
            )
        )
    ]
    problem = VanMatchingProblem.from_arrays(
        requests, vans, batch["arc_row"], batch["arc_column"], batch["arc_km"],
        batch["arc_km"], batch["arc_minutes"],
    )  # fmt: skip
    matching = match_vans(problem, params=params)
    return {int(a.request_id): (int(a.van_id[1:]), a.eta_minutes) for a in matching.assignments}


def _arrays(batch: dict[str, np.ndarray], params: MatchParams) -> tuple[dict, str]:  # type: ignore[type-arg]
    m = match_batch(**batch, params=params)
    out = {
        r: (int(batch["arc_column"][a]), float(m.arc_eta[a]))
        for r, a in enumerate(m.row_arc.tolist())
        if a >= 0
    }
    return out, m.method


@pytest.mark.parametrize("objective", ["eta", "promise"])
def test_random_batches_match_the_general_matcher(objective: str) -> None:
    """1,000 random batches per objective: every request gets the van and the ETA
    ``match_vans`` gives it, ties included; both the solver-free and the solver path run."""
    rng = np.random.default_rng(14)
    params = MatchParams(objective=objective, promise_minutes=120.0)
    methods: dict[str, int] = {}
    held_back = 0  # batches the busy vans' rule changes (promise only)
    for k in range(1000):
        batch = _random_batch(rng)
        fast, method = _arrays(batch, params)
        methods[method] = methods.get(method, 0) + 1
        assert fast == _general(batch, params), k
        no_busy = {**batch, "column_busy": np.zeros_like(batch["column_busy"])}
        held_back += _arrays(no_busy, params)[0] != fast
    assert (held_back > 20) if objective == "promise" else (held_back == 0), held_back
    assert methods.get("argmin", 0) > 100 and methods.get("flow", 0) > 300, methods
    if objective == "eta":  # lone requests with tied vans, one of them the narrowest
        assert methods.get("tie", 0) > 20, methods


def _outcome(fn: Callable[[], object]) -> object:
    """What ``fn`` returns, or the type and message of the ``ValueError`` it raises."""
    try:
        return fn()
    except ValueError as exc:
        return (type(exc).__name__, str(exc))


def test_cost_scale_fallback_matches_the_general_matcher() -> None:
    """Drives so long that the cost scale must be lowered, or the batch is refused: the same
    decisions, or the same error, as ``match_vans``."""
    rng = np.random.default_rng(7)
    params = MatchParams()
    refused = 0
    for k in range(300):
        batch = _random_batch(rng, huge=True)
        expected = _outcome(lambda: _general(batch, params))  # noqa: B023
        assert _outcome(lambda: _arrays(batch, params)[0]) == expected, k  # noqa: B023
        refused += isinstance(expected, tuple)
    assert 50 < refused < 250


def test_no_reachable_arc_is_an_empty_match() -> None:
    """Every arc beyond the radius or unreachable: nobody is assigned, without a solver."""
    batch = {
        "arc_row": np.array([0, 1]),
        "arc_column": np.array([0, 0]),
        "arc_km": np.array([151.0, 20.0]),
        "arc_minutes": np.array([30.0, np.inf]),
        "row_priority": np.array([1.0, 2.0]),
        "row_waited_minutes": np.zeros(2),
        "column_free_in_minutes": np.zeros(1),
        "column_radius_km": np.full(1, RADIUS_KM),
        "column_breadth": np.full(1, 5),
    }
    m = match_batch(**batch, params=MatchParams())
    assert m.method == "empty"
    assert m.row_arc.tolist() == [-1, -1]


def _record(scenario: Scenario, *, array_matching: bool) -> RunRecord:
    tables = build_tables(scenario)
    sim = Simulation(
        scenario, tables, draw_breakdowns(scenario, tables, replication_streams(scenario.seed, 0))
    )
    sim.array_matching = array_matching
    sim.run()
    return sim.record()


def _variants() -> dict[str, Scenario]:
    base = resolve_scenario("shandong").with_days(3.0)
    base = replace(base, warmup_days=1.0, travel=replace(base.travel, provider="great-circle"))
    d = base.dispatch
    return {
        "interval-eta": base,
        "interval-promise-short-escalation": replace(
            base, dispatch=replace(d, objective="promise", escalate_after_minutes=45.0)
        ),
        "arrival-promise-next-from-site-move-up": replace(
            base,
            dispatch=replace(
                d, trigger="arrival", objective="promise", after_job="next-from-site", move_up=True
            ),
        ),
        "arrival-promise-crews-night-on-call": replace(
            base,
            dispatch=replace(d, trigger="arrival", objective="promise"),
            crews=CrewSpec(turnout_minutes=5.0, hours_per_day=16.0, night_on_call=True),
        ),
        "arrival-crews-night-on-call": replace(
            base,
            dispatch=replace(d, trigger="arrival"),
            crews=CrewSpec(turnout_minutes=5.0, hours_per_day=16.0, night_on_call=True),
        ),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_whole_runs_are_identical_through_either_matcher(name: str) -> None:
    """A run through the array batch step equals the run through ``match_vans``, field by
    field (every request's van, times, escalations, replacements, busy minutes, counts)."""
    scenario = _variants()[name]
    general = _record(scenario, array_matching=False)
    arrays = _record(scenario, array_matching=True)
    assert general.dispatch_batches > 50
    assert int((general.van >= 0).sum()) > 100
    for f in fields(RunRecord):
        if f.name == "match_seconds":
            continue
        a, b = getattr(general, f.name), getattr(arrays, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name
