"""The engine's parts: the van trip timeline, the van schedule, the fleet tables, the record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fleet.model import VehicleClass
from simulations.demand import VEHICLE_CLASSES, Breakdowns, draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.results import Escalation
from simulations.scenario import RepairSpec, load_scenario
from simulations.tables import build_tables
from simulations.van_model import (
    RescueRequests,
    VanFleet,
    VanSchedule,
    VanTrip,
    capability_key,
    plan_van_trip,
)

TRACTOR = VEHICLE_CLASSES.index(VehicleClass.TRACTOR)
HEAVY_SERVICE, WRECKER = 0, 1  # the small scenario's vans JN-1 and JN-2


def _breakdowns(rows: list[dict[str, float | bool]]) -> Breakdowns:
    """Hand-made breakdowns at demand point 0, tractors, one row per dict."""
    n = len(rows)

    def col(key: str, default: float | bool, dtype: type) -> np.ndarray:
        return np.array([r.get(key, default) for r in rows], dtype=dtype)

    return Breakdowns(
        t=np.arange(n, dtype=float) * 10.0,
        point=np.zeros(n, dtype=np.int64),
        vehicle=np.full(n, TRACTOR, dtype=np.int64),
        fault=np.zeros(n, dtype=np.int64),
        fixed_on_site=col("fixed", False, bool),
        on_site_hours=col("on_site_h", 1.0, float),
        workshop_hours=col("workshop_h", 2.0, float),
        technician_hours=col("technician_h", 2.0, float),
        needs_tow=col("needs_tow", False, bool),
        priority=np.ones(n),
        has_cargo=col("cargo", False, bool),
        cargo_kind=np.zeros(n, dtype=np.int64),
        cargo_t=np.full(n, 20.0),
        destination=np.zeros(n, dtype=np.int64),
        daily_counts=np.array([n]),
    )


@pytest.fixture
def small(small_toml: Path):  # type: ignore[no-untyped-def]
    s = load_scenario(small_toml)
    return s, build_tables(s)


def test_van_trip_timelines(small) -> None:  # type: ignore[no-untyped-def]
    """Each branch of a trip, to the minute (diagnosis 30, hook-up 10): fixed on site; towed by
    a wrecker after the diagnosis or at once when triaged as a tow; a service van that can
    neither fix nor tow asks for a follow-up tow; the follow-up tow itself. A first call is
    diagnosed at the end of the diagnosis or when the van leaves, if sooner."""
    scenario, tables = small
    fleet = VanFleet.build(scenario, tables)
    b = _breakdowns(
        [
            {"fixed": True, "on_site_h": 2.0, "cargo": True, "workshop_h": 30.0},
            {"cargo": True, "workshop_h": 30.0},
            {"needs_tow": True, "cargo": True, "workshop_h": 30.0},
            {},
        ]
    )
    requests = RescueRequests(b, tables)
    repairs = RepairSpec(diagnosis_minutes=30.0, tow_hookup_minutes=10.0)

    def trip(request: int, van: int):  # type: ignore[no-untyped-def]
        return plan_van_trip(
            requests, fleet, repairs, request=request, van=van, now=100.0,
            eta_minutes=20.0, drive_minutes=15.0, tow_minutes=25.0,
        )  # fmt: skip

    fixed = trip(0, HEAVY_SERVICE)
    assert (fixed.on_site_at, fixed.leaves_site_at, fixed.home_at) == (120.0, 240.0, 255.0)
    assert not fixed.tows and not fixed.needs_followup_tow
    assert fixed.diagnosed_at == 150.0
    towed = trip(1, WRECKER)
    assert (towed.leaves_site_at, towed.home_at, towed.tows) == (160.0, 185.0, True)
    assert towed.diagnosed_at == 150.0  # at the end of the diagnosis
    triaged = trip(2, WRECKER)
    assert (triaged.leaves_site_at, triaged.home_at) == (130.0, 155.0)
    assert triaged.diagnosed_at == 130.0  # the van leaves before a diagnosis ends
    gave_up = trip(3, HEAVY_SERVICE)
    assert (gave_up.leaves_site_at, gave_up.home_at) == (150.0, 165.0)
    assert gave_up.needs_followup_tow and not gave_up.tows
    assert gave_up.diagnosed_at == 150.0
    followup = requests.followup_tow_of(1)
    assert followup == 5 and requests.breakdown_of(followup) == 1
    assert requests.is_followup_tow(followup) and requests.needs_tow(followup)
    assert not requests.needs_tow(1) and requests.needs_tow(2)
    assert requests.capability_key(1) == capability_key(TRACTOR, False)
    assert requests.capability_key(2) == requests.capability_key(followup)
    assert requests.capability_key(followup) == capability_key(TRACTOR, True)
    assert requests.point(followup) == requests.point(1) == 0
    tow = trip(followup, WRECKER)
    assert (tow.leaves_site_at, tow.home_at, tow.tows) == (130.0, 155.0, True)
    assert tow.diagnosed_at is None  # the first call was diagnosed


def test_van_schedule_counts_busy_minutes_inside_the_window() -> None:
    """Busy from when the van is free (now, or when it gets home) until home again, clipped
    to the measured window; the van leaves its site at the trip's leave time."""
    schedule = VanSchedule(2, measured_from=100.0, measured_until=1000.0)
    schedule.book(0, _trip(leaves=150.0, home=200.0), now=50.0)
    assert schedule.busy_minutes.tolist() == [100.0, 0.0]
    assert (schedule.leaves_site_at[0], schedule.home_at[0]) == (150.0, 200.0)
    schedule.book(0, _trip(leaves=900.0, home=1200.0), now=150.0)  # queued behind the trip
    assert schedule.busy_minutes.tolist() == [900.0, 0.0]
    schedule.book(1, _trip(leaves=20.0, home=90.0), now=0.0)  # all in the warm-up
    assert schedule.busy_minutes.tolist() == [900.0, 0.0]


def _trip(*, leaves: float, home: float) -> VanTrip:
    return VanTrip(leaves - 10.0, leaves, home, False, False, None)


def test_fleet_tables(small) -> None:  # type: ignore[no-untyped-def]
    """Arcs lie within their van's radius; covers_point says whether some capable van's arc
    reaches the point; shifts follow the station hours (ZB 06-22, the others 24 h)."""
    scenario, tables = small
    fleet = VanFleet.build(scenario, tables)
    radius = np.array([v.service_radius_km for v in fleet.vans])
    assert len(fleet.arc_van) > 0
    assert np.all(fleet.arc_km <= radius[fleet.arc_van])
    for point in range(len(tables.points)):
        start, stop = fleet.arcs(point)
        for key in range(fleet.can_handle.shape[0]):
            capable = fleet.can_handle[key, fleet.arc_van[start:stop]].any()
            assert fleet.covers_point[key, point] == capable
    tow_key = capability_key(TRACTOR, True)
    assert fleet.can_handle[tow_key].tolist() == [False, True, False, False]
    zb = fleet.index_of["ZB-1"]
    all_vans = np.arange(len(fleet.vans))
    assert fleet.on_shift(all_vans, 5 * 60.0).tolist() == [True, True, False, True]
    assert fleet.on_shift(all_vans, 1440.0 + 6 * 60.0)[zb]
    assert not fleet.on_shift(all_vans, 22 * 60.0)[zb]


def test_run_record_accounting_and_immutability(small) -> None:  # type: ignore[no-untyped-def]
    """The record of a run closes: a request has a van exactly when it was assigned, never
    also escalated or still open; follow-up tows come only from breakdowns whose first van
    gave up; bookings were requested first. Its arrays cannot be written."""
    scenario, tables = small
    breakdowns = draw_breakdowns(scenario, tables, replication_streams(scenario.seed, 0))
    sim = Simulation(scenario, tables, breakdowns)
    sim.run()
    record = sim.record()
    n = record.breakdown_count
    assert n == len(breakdowns) and len(record.reported_at) == 2 * n
    sent = record.van >= 0
    assert np.array_equal(sent, ~np.isnan(record.assigned_at))
    assert np.array_equal(sent, ~np.isnan(record.on_site_at))
    assert np.all(record.on_site_at[sent] >= record.assigned_at[sent])
    assert np.all(record.assigned_at[sent] >= record.reported_at[sent])
    assert not np.any(sent & (record.escalation != Escalation.NONE))
    assert not np.any(sent[record.open_at_end])
    asked_tow = ~np.isnan(record.reported_at[n:])
    assert asked_tow.any() and not np.any(asked_tow & ~record.followup_tow)
    booked = ~np.isnan(record.replacement_booked_at)
    assert booked.any()
    assert np.all(record.replacement_booked_at[booked] >= record.replacement_requested_at[booked])
    assert not np.any(booked & record.replacement_failed)
    assert record.events > 0 and record.dispatch_batches > 0
    with pytest.raises(ValueError, match="read-only"):
        record.on_site_at[0] = 0.0
