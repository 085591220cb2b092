"""Replacement-truck pool sizing (``simulations.truck_pool``) and what it relies on in the
replacement model: idle twins booked before busy ones, the holding time of each booking."""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from fleet.model import TruckType
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.erlang import erlang_c
from simulations.replacement_model import ReplacementModel
from simulations.scenario import Scenario, scenario_from_mapping
from simulations.tables import TravelTables, build_tables
from simulations.truck_pool import TruckPlan, check_options, modelled_share, plan_trucks
from tests.simulations.conftest import SMALL

POOL = SMALL.replace("breakdowns_per_day = 30", "breakdowns_per_day = 90")
"""The small network with more breakdowns: ~30 replacement requests in 20 days."""


@cache
def _scenario() -> tuple[Scenario, TravelTables]:
    s = scenario_from_mapping(tomllib.loads(POOL), source="pool.toml", text=POOL)
    return s, build_tables(s)


@cache
def _plan(target: float, hours: float = 4.0) -> TruckPlan:
    s, tables = _scenario()
    return plan_trucks(s, target_share=target, within_hours=hours, tables=tables)


def _twins(busy_first: bool) -> tuple[ReplacementModel, np.ndarray]:
    """Two identical tractors at one depot, the first busy for a day; one cargo waiting."""
    s, tables = _scenario()
    t1 = s.network.trucks[0]
    net = replace(s.network, trucks=(t1, replace(t1, id="T1-twin")))
    s = replace(s, network=net)
    b = draw_breakdowns(s, tables, replication_streams(s.seed, 0))
    model = ReplacementModel(s, tables, b)
    if busy_first:
        model.truck_free_at[0] = 1440.0
    semi = np.nonzero(b.has_cargo & (b.cargo_kind == 0))[0]
    return model, semi


def test_an_idle_twin_is_booked_before_a_busy_one() -> None:
    """Identical trucks cost the same, and the matcher's cost has no term for a truck's wait:
    the model offers only the soonest free of each twin group, so the idle twin is booked
    and the cargo is reached after the empty drive alone; the booking records when its truck
    is back home."""
    model, semi = _twins(busy_first=True)
    k = int(semi[0])
    model.request(k, 0.0)
    model.match(0.0)
    assert model.truck_of[k] == 1
    assert model.drive_out_at[k] == 0.0
    point = int(model.breakdowns.point[k])
    assert model.pickup_at[k] == pytest.approx(float(model.tables.empty_minutes[0, point]))
    assert model.truck_back_at[k] == model.truck_free_at[1] > model.pickup_at[k]
    # both requests of a batch may take a twin: the busy one is offered as the second
    model, semi = _twins(busy_first=True)
    for j in semi[:2].tolist():
        model.request(j, 0.0)
    model.match(0.0)
    assert sorted(model.truck_of[semi[:2]].tolist()) == [0, 1]


def test_modelled_share_is_erlang_on_measured_reach() -> None:
    """With reach 0 for every request the modelled share is P(W <= Y) of M/M/c exactly; it
    grows with the trucks, never exceeds the share the drive alone allows, and is 0 for an
    unstable pool."""
    lam, h, y = 0.5, 3.0, 120.0  # per hour, hours, minutes
    reach = np.zeros(10)
    for c in (2, 3, 5):
        expected = 1 - erlang_c(lam * h, c) * math.exp(-(c / h - lam) * y / 60)
        assert modelled_share(reach, y, lam, h, c) == pytest.approx(expected, abs=1e-12)
    mixed = np.array([0.0, 60.0, 119.0, 130.0])  # one request beyond Y by the drive alone
    shares = [modelled_share(mixed, y, lam, h, c) for c in range(1, 8)]
    assert shares == sorted(shares) and shares[-1] <= 0.75 and shares[-1] > 0.74
    assert modelled_share(mixed, y, lam, h, 1) == 0.0  # load 1.5 on one truck


def test_recommendation_meets_the_target_in_the_simulated_check() -> None:
    """On the small scenario the recommended pool reaches the target share within 4 h in the
    simulation (same breakdowns), where today's two trucks do not; every pool with requests
    gets a truck, the counts match the network built, and the M/M/c answer is where the
    check started."""
    plan = _plan(0.9)
    (check,) = plan.checks
    assert check.province == "370000" and check.requests >= 25
    assert plan.met and check.plan_share >= 0.9 > check.today_share
    assert check.today_trucks == 2
    assert check.plan_trucks == sum(c.recommended for c in plan.cells) == len(plan.network.trucks)
    by_type = {c.truck_type: c for c in plan.cells}
    for cell in plan.cells:
        assert (cell.recommended >= 1) == (cell.requests > 0)
        assert cell.recommended >= cell.erlang_trucks
        built = sum(1 for t in plan.network.trucks if t.truck_type is cell.truck_type)
        assert built == cell.recommended
    tractor = by_type[TruckType.TRACTOR]
    assert tractor.requests > 0 and tractor.mean_hold_hours > 0
    assert tractor.offered_load == pytest.approx(
        tractor.requests_per_day / 24 * tractor.mean_hold_hours
    )
    d = plan.to_dict()
    assert d["objective"] == "trucks" and d["met"] is True
    assert d["trucks_recommended"] == check.plan_trucks
    assert d["provinces"][0]["plan_share"] == round(check.plan_share, 4)


def test_a_larger_target_never_recommends_fewer_trucks() -> None:
    """Per province and truck type, a higher target share asks for at least as many trucks,
    both from the M/M/c model and after the simulated check."""
    plans = [_plan(t) for t in (0.6, 0.9, 0.99)]
    for low, high in [(0, 1), (1, 2)]:
        for a, b in zip(plans[low].cells, plans[high].cells, strict=True):
            assert (a.province, a.truck_type) == (b.province, b.truck_type)
            assert a.erlang_trucks <= b.erlang_trucks, (low, high, a.truck_type)
            assert a.recommended <= b.recommended, (low, high, a.truck_type)
    assert sum(c.recommended for c in plans[2].cells) > sum(c.recommended for c in plans[0].cells)


@pytest.mark.parametrize(
    ("share", "hours", "message"),
    [
        (0.0, 4.0, r"^--target-share must be in \(0, 1\], got 0\.0$"),
        (1.2, 4.0, r"^--target-share must be in \(0, 1\], got 1\.2$"),
        (-0.5, 4.0, r"^--target-share must be in \(0, 1\], got -0\.5$"),
        (0.9, 0.0, r"^--within-hours must be > 0, got 0\.0$"),
        (0.9, -2.0, r"^--within-hours must be > 0, got -2\.0$"),
        (0.9, math.inf, r"^--within-hours must be > 0, got inf$"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    share: float, hours: float, message: str
) -> None:
    """A share outside (0, 1] or hours <= 0 is refused before anything is simulated."""
    with pytest.raises(ValueError, match=message):
        check_options(share, hours)
    s, tables = _scenario()
    with pytest.raises(ValueError, match=message):
        plan_trucks(s, target_share=share, within_hours=hours, tables=tables)


def test_holding_time_runs_from_leaving_the_depot_to_being_back() -> None:
    """Every booking in a run holds its truck from leaving the depot to being back there, at
    least the pickup, the transfer and the delivery; a truck is never booked twice at once."""
    s, tables = _scenario()
    b = draw_breakdowns(s, tables, replication_streams(s.seed, 0))
    sim = Simulation(s, tables, b)
    sim.run()
    r = sim.replacements
    booked = np.nonzero(~np.isnan(r.booked_at))[0]
    assert len(booked) > 10
    assert np.all(r.drive_out_at[booked] <= r.pickup_at[booked])
    assert np.all(r.pickup_at[booked] < r.delivered_at[booked])
    assert np.all(r.delivered_at[booked] <= r.truck_back_at[booked])
    for k in set(r.truck_of[booked].tolist()):
        mine = booked[r.truck_of[booked] == k]
        order = np.argsort(r.drive_out_at[mine])
        starts, ends = r.drive_out_at[mine][order], r.truck_back_at[mine][order]
        assert np.all(starts[1:] >= ends[:-1] - 1e-9)
