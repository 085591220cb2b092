"""One home for the rules: the API's dispatch cycle and the simulation's batch steps, fed the
same snapshot, make the same decisions (which van goes where and when; which truck carries
which cargo, at what cost)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from api.dispatching.cycle import Snapshot, solve
from dispatch import ReplacementRequest, TruckState
from fleet.model import GeoPoint
from simulations.demand import CARGO_KINDS, draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.scenario import Scenario, load_scenario
from simulations.tables import TravelTables, build_tables, make_provider

NOW_MINUTES = 12 * 60.0
"""Noon of the first day: every station of the small network is open."""


@pytest.fixture
def small(small_toml):  # type: ignore[no-untyped-def]
    s = load_scenario(small_toml)
    return s, build_tables(s)


def _simulation(scenario: Scenario, tables: TravelTables) -> Simulation:
    """A simulation holding the first breakdowns of the replication's draws, nothing run."""
    b = draw_breakdowns(scenario, tables, replication_streams(scenario.seed, 0))
    return Simulation(scenario, tables, b)


def test_van_decisions_match(small) -> None:  # type: ignore[no-untyped-def]
    """Eight open requests (more than the four vans) at their demand points: the API's
    ``solve`` and the simulation's ``dispatch_batch`` serve the same requests with the same
    ETAs, from the same stations and with the same vans (ties between a station's vans aside)."""
    scenario, tables = small
    sim = _simulation(scenario, tables)
    reqs = sim.requests
    batch = [k for k in range(len(sim.breakdowns)) if sim.fleet.covers_point[
        reqs.capability_key(k), reqs.point(k)]][:8]  # fmt: skip
    assert len(batch) == 8
    for k in batch:
        sim.requests.reported_at[k] = NOW_MINUTES
        sim.waiting[k] = reqs.open_request(k)
    sim.dispatch_batch(NOW_MINUTES)
    simulated = {str(k): (sim.fleet.vans[int(reqs.van[k])].id, float(reqs.on_site_at[k]))
                 for k in batch if reqs.van[k] >= 0}  # fmt: skip
    assert 0 < len(simulated) <= len(sim.fleet.vans)

    snapshot = Snapshot(
        now=dt.datetime(2026, 11, 29, 4, tzinfo=dt.UTC),
        requests=tuple(reqs.open_request(k) for k in batch),
        vans=sim.fleet.at_home,
        replacement_requests=(),
        trucks=(),
    )
    van_matching, _ = solve(snapshot, make_provider(scenario))
    assert van_matching is not None
    api = {a.request_id: (a.van_id, NOW_MINUTES + a.eta_minutes)
           for a in van_matching.assignments}  # fmt: skip
    assert api.keys() == simulated.keys()
    station_of = {v.id: v.station_id for v in scenario.network.vans}
    for request_id, (van_id, on_site) in api.items():
        # two vans of one station are interchangeable: a tie may go either way
        assert station_of[simulated[request_id][0]] == station_of[van_id], request_id
        assert simulated[request_id][1] == pytest.approx(on_site, abs=1e-6), request_id
    assert {v for v, _ in api.values()} == {v for v, _ in simulated.values()}


def test_replacement_decisions_match(small) -> None:  # type: ignore[no-untyped-def]
    """Cargo waiting for trucks: the API's ``solve`` and the simulation's replacement batch
    book the same truck for the same cargo at the same cost and delivery time."""
    scenario, tables = small
    sim = _simulation(scenario, tables)
    b, model = sim.breakdowns, sim.replacements
    cargo = [int(k) for k in np.nonzero(b.has_cargo)[0][:6]]
    for k in cargo:
        model.request(k, NOW_MINUTES)
    deadlines = dict(model.waiting)
    model.match(NOW_MINUTES)
    simulated = {
        str(k): (float(model.cost_cny[k]), float(model.delivered_at[k]))
        for k in cargo
        if not np.isnan(model.booked_at[k])
    }
    assert simulated

    points = tables.points
    requests = tuple(
        ReplacementRequest(
            id=str(k),
            location=GeoPoint(float(points.lat[b.point[k]]), float(points.lon[b.point[k]])),
            province_adcode=points.province[int(b.point[k])],
            cargo_weight_t=float(b.cargo_t[k]),
            cargo_kind=CARGO_KINDS[int(b.cargo_kind[k])],
            destination=GeoPoint(*map(float, tables.dest_latlon[int(b.destination[k])])),
            deadline_minutes_from_now=deadlines[k] - NOW_MINUTES,
        )
        for k in cargo
    )
    trucks = tuple(
        TruckState(t, scenario.network.partner_by_id[t.partner_id]) for t in scenario.network.trucks
    )
    snapshot = Snapshot(dt.datetime(2026, 11, 29, 4, tzinfo=dt.UTC), (), (), requests, trucks)
    _, matching = solve(snapshot, make_provider(scenario))
    assert matching is not None
    api = {
        bk.request_id: (bk.cost_cny, NOW_MINUTES + bk.delivery_eta_minutes)
        for bk in matching.bookings
    }
    assert api.keys() == simulated.keys()
    for request_id, (cost, delivered) in api.items():
        assert simulated[request_id][0] == pytest.approx(cost, rel=1e-9), request_id
        assert simulated[request_id][1] == pytest.approx(delivered, abs=1e-6), request_id
