"""The dispatch cycle against the database: decisions equal the pure dispatch core's, one
leader at a time, all-or-nothing writes, and no double booking under concurrency (two cycles
from stale snapshots, manual overrides and cancellations at once; PostgreSQL and SQLite)."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from api.cli import app as cli
from api.clock import utcnow
from api.db import models as m
from api.db.engine import make_engine, session_factory, transaction
from api.dispatching.cycle import (
    Snapshot,
    cycle_leadership,
    load_snapshot,
    match_params,
    run_cycle,
    solve,
)
from api.dispatching.decisions import CycleResult, write_decisions
from api.exceptions import Conflict
from api.requests import service as svc
from api.requests.intake import create_request
from api.schemas import RequestCreate
from api.settings import Settings
from dispatch import OpenRequest, RequestStatus, VanState, build_van_matching_problem, match_vans
from fleet.model import GeoPoint, RescueVan, VanCapability, VehicleClass
from routing import GreatCircleProvider
from tests.api.conftest import request_body

GC = GreatCircleProvider()
CITIES = [(36.65, 117.12), (36.07, 120.38), (37.46, 121.45), (35.41, 116.59), (34.81, 117.32)]


def add_requests(engine: Engine, n: int, seed: int = 0, cargo: bool = False) -> list[str]:
    rng = random.Random(seed)
    ids = []
    with transaction(session_factory(engine)) as db:
        for _ in range(n):
            lat, lon = rng.choice(CITIES)
            body = request_body(
                location={"lat": lat + rng.uniform(-0.3, 0.3), "lon": lon + rng.uniform(-0.3, 0.3)}
            )
            if not cargo:
                body.pop("cargo")
            intake = create_request(
                db_session=db,
                body=RequestCreate.model_validate(body),
                threshold_hours=24.0,
                token_secret=b"test-secret",
            )
            ids.append(intake.request.id)
    return ids


def cycle(engine: Engine) -> CycleResult:
    return run_cycle(factory=session_factory(engine), provider=GC, respect_shifts=False)


def assert_consistent(engine: Engine) -> dict[str, int]:
    """No van or truck double-booked; each request's status agrees with its active rows;
    each van's status agrees with its assignment."""
    with transaction(session_factory(engine)) as db:
        per_van = db.execute(
            select(m.VanAssignment.van_id, func.count())
            .where(m.VanAssignment.active.is_(True))
            .group_by(m.VanAssignment.van_id)
        ).all()
        assert all(c == 1 for _, c in per_van)
        per_truck = db.execute(
            select(m.ReplacementBooking.truck_id, func.count())
            .where(m.ReplacementBooking.active.is_(True))
            .group_by(m.ReplacementBooking.truck_id)
        ).all()
        assert all(c == 1 for _, c in per_truck)
        active = {
            a.request_id: a.van_id
            for a in db.scalars(select(m.VanAssignment).where(m.VanAssignment.active.is_(True)))
        }
        assert len(active) == len(per_van)
        statuses: dict[str, int] = {}
        for r in db.scalars(select(m.RescueRequest)):
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status in ("assigned", "en_route"):
                assert r.id in active, f"{r.id} is {r.status} without a van"
            else:
                assert r.id not in active, f"{r.id} is {r.status} but holds van {active[r.id]}"
        busy = set(active.values())
        for v in db.scalars(select(m.Van)):
            assert (v.status == "assigned") == (v.id in busy), (v.id, v.status)
    return statuses


def test_cycle_stores_what_the_pure_core_decides(seeded: Engine) -> None:
    """The cycle's assignments are exactly match_vans on the loaded snapshot (same vans,
    same ETAs), stored with eta_at = now + ETA, and every request gets a van or a reason."""
    add_requests(seeded, 12)
    factory = session_factory(seeded)
    with transaction(factory) as db:
        snap = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    expected = match_vans(build_van_matching_problem(snap.requests, snap.vans, GC), provider=GC)
    result = cycle(seeded)
    got = {(a.request_id, a.van_id) for a in result.assigned}
    assert got == {(a.request_id, a.van_id) for a in expected.assignments}
    assert len(result.assigned) + len(result.unassigned) == 12
    with transaction(factory) as db:
        rows = db.scalars(select(m.VanAssignment).where(m.VanAssignment.active.is_(True))).all()
        for row in rows:
            a = expected.assignment_for(row.request_id)
            assert a is not None and row.eta_at is not None
            assert (row.eta_at - result.started_at).total_seconds() / 60 == pytest.approx(
                a.eta_minutes, abs=1e-3
            )
    assert_consistent(seeded)


def test_only_one_cycle_runs_at_a_time(seeded: Engine) -> None:
    """While another caller holds the cycle lock, a cycle is skipped and changes nothing."""
    add_requests(seeded, 2)
    with cycle_leadership(seeded) as leader:
        assert leader
        skipped = cycle(seeded)
    assert skipped.ran is False and "another dispatch cycle" in (skipped.skipped_reason or "")
    assert assert_consistent(seeded) == {"received": 2}
    assert len(cycle(seeded).assigned) == 2


def test_failed_write_leaves_nothing_half_written(seeded: Engine) -> None:
    """write_decisions never commits on its own: when the unit of work fails after it, no
    assignment, event or status change of the cycle remains."""
    ids = add_requests(seeded, 5)
    factory = session_factory(seeded)
    with transaction(factory) as db:
        snap = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    vans, reps = solve(snap, GC)
    result = CycleResult(cycle_id="t", started_at=snap.now, provider="gc")
    with pytest.raises(RuntimeError, match="boom"), transaction(factory) as db:
        write_decisions(
            db_session=db, snapshot=snap, van_matching=vans, replacements=reps, result=result
        )
        assert len(result.assigned) == 5
        raise RuntimeError("boom")
    assert assert_consistent(seeded) == {"received": 5}
    with transaction(factory) as db:
        assert db.scalar(select(func.count()).select_from(m.VanAssignment)) == 0
        kinds = set(db.scalars(select(m.Event.kind).where(m.Event.request_id.in_(ids))))
    assert kinds == {"request_received"}


def test_stale_decisions_are_dropped_as_conflicts(seeded: Engine) -> None:
    """Two cycles solved on the same snapshot and written one after the other: the second
    finds every request taken and records conflicts instead of double-booking."""
    add_requests(seeded, 6)
    factory = session_factory(seeded)
    with transaction(factory) as db:
        snap = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    decisions = solve(snap, GC)
    results = []
    for name in ("a", "b"):
        result = CycleResult(cycle_id=name, started_at=snap.now, provider="gc")
        with transaction(factory) as db:
            write_decisions(
                db_session=db, snapshot=snap, van_matching=decisions[0],
                replacements=decisions[1], result=result,
            )  # fmt: skip
        results.append(result)
    assert len(results[0].assigned) == 6 and results[1].assigned == []
    assert len(results[1].conflicts) == 6
    assert assert_consistent(seeded) == {"assigned": 6}


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def inner() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return inner

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_concurrent_cycles_overrides_and_cancellations(seeded: Engine, db_url: str) -> None:
    """Stale-snapshot cycles, leader-elected cycles, manual overrides, cancellations and
    status changes run at once in threads on the same open requests; afterwards no van or
    truck is double-booked and every request is in one consistent state. On PostgreSQL this
    exercises the row locks and partial unique indexes under real concurrency."""
    ids = add_requests(seeded, 30, seed=1, cargo=True)
    engine = make_engine(db_url, pool_size=12, max_overflow=4)
    factory = session_factory(engine)
    with transaction(factory) as db:
        van_ids = [
            v.id for v in db.scalars(select(m.Van).where(m.Van.capability != "light_service_van"))
        ]
    with transaction(factory) as db:
        snap = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    stale = solve(snap, GC)
    barrier = threading.Barrier(6)
    outcomes: dict[str, int] = {"conflicts": 0, "assigned": 0, "overrides": 0, "refused": 0}
    lock = threading.Lock()

    def stale_writer() -> None:
        barrier.wait()
        result = CycleResult(cycle_id="stale", started_at=snap.now, provider="gc")
        with transaction(factory) as db:
            write_decisions(
                db_session=db, snapshot=snap, van_matching=stale[0], replacements=stale[1],
                result=result,
            )  # fmt: skip
        with lock:
            outcomes["conflicts"] += len(result.conflicts)
            outcomes["assigned"] += len(result.assigned)

    def leader_cycles() -> None:
        barrier.wait()
        for _ in range(3):
            r = run_cycle(factory=factory, provider=GC, respect_shifts=False)
            with lock:
                outcomes["assigned"] += len(r.assigned)

    def overrides(seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(seed)
            barrier.wait()
            for _ in range(15):
                try:
                    with transaction(factory) as db:
                        svc.assign_van(
                            db_session=db, request_id=rng.choice(ids), van_id=rng.choice(van_ids),
                            reason="test override", actor="test", provider=GC,
                            override_reason="any van, near or far",
                        )  # fmt: skip
                    with lock:
                        outcomes["overrides"] += 1
                except Conflict:
                    with lock:
                        outcomes["refused"] += 1

        return run

    def cancellations() -> None:
        rng = random.Random(7)
        barrier.wait()
        for rid in rng.sample(ids, 8):
            try:
                with transaction(factory) as db:
                    if rng.random() < 0.5:
                        svc.cancel_request(db_session=db, request_id=rid, actor="test")
                    else:
                        svc.change_status(
                            db_session=db,
                            request_id=rid,
                            target=RequestStatus.RECEIVED,
                            actor="test",
                        )
            except Conflict:
                pass

    errors = run_threads(
        [stale_writer, stale_writer, leader_cycles, overrides(1), overrides(2), cancellations]
    )
    assert errors == []
    statuses = assert_consistent(engine)
    assert sum(statuses.values()) == 30
    assert outcomes["assigned"] >= 1 and outcomes["overrides"] >= 1
    engine.dispose()


def test_rescue_dispatch_cli_prints_decisions(seeded: Engine, db_url: str) -> None:
    """`rescue dispatch --db URL` runs one cycle and prints each assignment and reason."""
    add_requests(seeded, 2)
    out = CliRunner().invoke(cli, ["dispatch", "--db", db_url, "--great-circle"])
    assert out.exit_code == 0, out.output
    assert out.output.count("  assigned ") + out.output.count("  waiting  ") == 2
    assert "great_circle times" in out.output
    again = CliRunner().invoke(cli, ["dispatch", "--db", db_url, "--great-circle", "--json"])
    second = json.loads(again.output)
    assert second["ran"] is True and second["open_requests"] == out.output.count("  waiting  ")
    bad = CliRunner().invoke(cli, ["dispatch", "--db", "mysql+nope://x/y"])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_promise_objective_is_a_setting_the_cycle_uses() -> None:
    """``RESCUE_DISPATCH_OBJECTIVE=promise``: the cycle's pure solve gives the near van to the
    request that has waited 100 of its 120 minutes (the ETA objective would send the far one
    and make it late); a bad value names the setting."""

    def at_km(km: float) -> GeoPoint:
        return GeoPoint(36.0, 117.0 + km / 90.0)  # ~90 km per degree of longitude at 36 N

    vans = tuple(
        VanState(RescueVan(f"V{x}", f"S{x}", VanCapability.HEAVY_SERVICE), at_km(x))
        for x in (0, 45)
    )
    requests = (
        OpenRequest("waited", at_km(20), VehicleClass.TRACTOR, waited_minutes=100.0),
        OpenRequest("new", at_km(-5), VehicleClass.TRACTOR),
    )
    snapshot = Snapshot(dt.datetime(2026, 11, 29, tzinfo=dt.UTC), requests, vans, (), ())
    provider = GreatCircleProvider(1.2)

    def chosen(objective: str) -> dict[str, str]:
        params = match_params(Settings(dispatch_objective=objective, promise_minutes=120))
        matching, _ = solve(snapshot, provider, params)
        assert matching is not None
        return {a.request_id: a.van_id for a in matching.assignments}

    assert chosen("eta") == {"waited": "V45", "new": "V0"}
    assert chosen("promise") == {"waited": "V0", "new": "V45"}
    with pytest.raises(ValueError, match="dispatch_objective"):
        Settings(dispatch_objective="cheapest")  # type: ignore[arg-type]
