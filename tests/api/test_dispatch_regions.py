"""Dispatch per region across processes: the partition, the locks, the border rule, and two
worker processes sharing one database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.db.engine import session_factory, transaction
from api.dispatching import queries as q
from api.dispatching.cycle import escalate_to_partners, load_snapshot, solve
from api.dispatching.decisions import CycleResult, write_decisions
from api.dispatching.leadership import NETWORK_LOCK, NETWORK_SHARED, hold_locks, is_held
from api.dispatching.regions import (
    BORDER,
    BORDER_LOCK,
    RegionMap,
    load_region_map,
    partition_provinces,
)
from api.dispatching.travel import travel_provider
from api.dispatching.worker import DispatchWorker
from api.network.seeding import seed_network
from api.partners.service import OfferPolicy
from api.requests.intake import create_request
from api.schemas import RequestCreate
from api.settings import Settings
from dispatch.partner_rescue import RescueCapability
from fleet import Network, build_national_network
from tests.api.conftest import request_body
from tests.api.test_dispatch_cycle import assert_consistent

SHANDONG, JIANGSU = "370000", "320000"
# Linyi's south, in Shandong, ~40 km from Jiangsu's Xinyi and Lianyungang stations.
BORDER_POINT = (34.75, 118.55)


def two_province_network() -> Network:
    national = build_national_network()
    provinces = {SHANDONG, JIANGSU}
    stations = tuple(s for s in national.stations if s.province_adcode in provinces)
    ids = {s.id for s in stations}
    partners = tuple(p for p in national.partners if p.provinces & provinces)
    pids = {p.id for p in partners}
    return Network(
        name="shandong-jiangsu",
        stations=stations,
        vans=tuple(v for v in national.vans if v.station_id in ids),
        partners=partners,
        trucks=tuple(t for t in national.trucks if t.partner_id in pids),
        faults=national.faults,
    )


@pytest.fixture
def two_provinces(engine: Engine) -> Engine:
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=two_province_network(), source="test")
    return engine


def add_requests_near_stations(engine: Engine, per_province: int, seed: int = 0) -> list[str]:
    """Requests a few km from random stations of each province, and one at the border point."""
    rng = random.Random(seed)
    network = two_province_network()
    points = [BORDER_POINT]
    for province in (SHANDONG, JIANGSU):
        stations = [s for s in network.stations if s.province_adcode == province]
        for s in rng.sample(stations, per_province):
            points.append((s.location.lat + rng.uniform(-0.03, 0.03), s.location.lon))
    return _add_requests(engine, points)


def first_van(db: Session, province: str, *where: Any) -> m.Van:
    """The van with the lowest id among those of ``province``'s stations meeting ``where``."""
    van = db.scalars(
        select(m.Van)
        .join(m.Station, m.Van.station_id == m.Station.id)
        .where(m.Station.province_adcode == province, *where)
        .order_by(m.Van.id)
    ).first()
    assert van is not None, f"no van in province {province}"
    return van


def region_map_of(engine: Engine, count: int = 2) -> RegionMap:
    with transaction(session_factory(engine)) as db:
        return load_region_map(db, count)


def test_partition_is_contiguous_west_to_east_and_balanced() -> None:
    """Provinces are cut in order of longitude where the running van count passes each share;
    asking for more regions than provinces is refused, naming the field and the limit."""
    provinces = {"A": (100.0, 10), "B": (110.0, 10), "C": (120.0, 10), "D": (105.0, 10)}
    regions = partition_provinces(provinces, 2)
    assert [sorted(r.provinces) for r in regions] == [["A", "D"], ["B", "C"]]
    assert [r.name for r in regions] == ["r1of2", "r2of2"]
    heavy_west = {"A": (100.0, 30), "B": (110.0, 5), "C": (120.0, 5)}
    assert [sorted(r.provinces) for r in partition_provinces(heavy_west, 2)] == [["A"], ["B", "C"]]
    assert [len(r.provinces) for r in partition_provinces(provinces, 4)] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="regions must be <= the 4 provinces with vans, got 5"):
        partition_provinces(provinces, 5)
    with pytest.raises(ValueError, match="regions must be >= 1, got 0"):
        partition_provinces(provinces, 0)


def test_region_locks_exclude_the_same_region_and_the_whole_network(two_provinces: Engine) -> None:
    """Two regions' cycles may run at once; the same region's may not; a whole-network cycle
    excludes every region cycle and the other way round."""
    west, east = (r.lock for r in region_map_of(two_provinces).regions)
    with hold_locks(two_provinces, [NETWORK_SHARED, west]) as got:
        assert got
        with hold_locks(two_provinces, [NETWORK_SHARED, east]) as other:
            assert other
        with hold_locks(two_provinces, [NETWORK_SHARED, west]) as same:
            assert not same
        with hold_locks(two_provinces, [NETWORK_LOCK]) as whole:
            assert not whole
    with hold_locks(two_provinces, [NETWORK_LOCK]) as whole:
        assert whole
        with hold_locks(two_provinces, [NETWORK_SHARED, east]) as region:
            assert not region


def test_border_rule_splits_requests_without_gap_or_overlap(two_provinces: Engine) -> None:
    """Shandong and Jiangsu become two regions; the border point (in Shandong, within reach
    of Jiangsu vans) goes to the border cycle, and every open request is read by exactly one
    domain's snapshot: the regions' interiors and the border are disjoint and cover all. A
    region reads only its own stations' vans; the border reads the vans of every station
    that reaches one of its requests, on both sides."""
    ids = add_requests_near_stations(two_provinces, 8)
    region_map = region_map_of(two_provinces)
    assert [sorted(r.provinces) for r in region_map.regions] == [[SHANDONG], [JIANGSU]]
    assert [d.name for d in region_map.domains] == ["r1of2", "r2of2", "border"]
    point = np.array([BORDER_POINT])
    assert region_map.reachable_from_elsewhere(point, 0).tolist() == [True]
    with transaction(session_factory(two_provinces)) as db:
        now = utcnow()
        snapshots = {
            d.index: load_snapshot(db_session=db, now=now, scope=region_map.scope(d.index))
            for d in region_map.domains
        }
        station_province = {s.id: s.province_adcode for s in db.scalars(select(m.Station))}
    interiors = [{r.id for r in snapshots[i].requests} for i in (0, 1)]
    border = {r.id for r in snapshots[BORDER].requests}
    assert ids[0] in border and not any(ids[0] in i for i in interiors)
    assert not interiors[0] & interiors[1] and not (interiors[0] | interiors[1]) & border
    assert interiors[0] | interiors[1] | border == set(ids)
    assert interiors[0] and interiors[1]
    van_provinces = [
        {station_province[v.van.station_id] for v in snapshots[i].vans} for i in (0, 1, BORDER)
    ]
    assert van_provinces == [{SHANDONG}, {JIANGSU}, {SHANDONG, JIANGSU}]
    border_vans = {v.van.id for v in snapshots[BORDER].vans}
    assert border_vans < {v.van.id for i in (0, 1) for v in snapshots[i].vans}


def _worker(db_url: str, *args: str) -> subprocess.Popen[str]:
    env = os.environ | {"RESCUE_RESPECT_SHIFTS": "false", "RESCUE_TRAVEL_PROVIDER": "great_circle"}
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "dispatch", "--db", db_url, "--regions", "2",
         "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _results(proc: subprocess.Popen[str]) -> list[dict[str, object]]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _statuses(engine: Engine) -> dict[str, str]:
    with transaction(session_factory(engine)) as db:
        return {r.id: r.status for r in db.scalars(select(m.RescueRequest))}


def test_a_region_is_dispatched_while_another_process_leads_the_other(
    two_provinces: Engine, db_url: str
) -> None:
    """While this process leads Shandong (as a worker in the middle of its cycle would), a
    worker process dispatches Jiangsu's interior requests; its border cycle then waits for
    Shandong's lock instead of skipping, and runs in the same pass as soon as the lock is
    let go. Shandong's interior requests wait, untouched, for the next pass."""
    ids = add_requests_near_stations(two_provinces, 6)
    region_map = region_map_of(two_provinces)
    with transaction(session_factory(two_provinces)) as db:
        points = [(r.id, r.lat, r.lon, r.province_adcode) for r in q.open_request_rows(db)]
    province = {i: p for i, _, _, p in points}
    interior = set(region_map.domain_request_ids(points, 0)) | set(
        region_map.domain_request_ids(points, 1)
    )
    jiangsu = {i for i in interior if province[i] == JIANGSU}
    shandong = {i for i in interior if province[i] == SHANDONG}
    border = set(ids) - interior
    assert jiangsu and shandong and ids[0] in border
    with hold_locks(two_provinces, [NETWORK_SHARED, region_map.regions[0].lock]) as got:
        assert got
        worker = _worker(db_url)
        deadline = time.monotonic() + 120
        while not (
            jiangsu <= {i for i, s in _statuses(two_provinces).items() if s == "assigned"}
            and is_held(two_provinces, BORDER_LOCK)  # the pass is at its border cycle
        ):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "Jiangsu's cycle did not run"
            time.sleep(0.1)
        # The border cycle now waits for Shandong's lock: nothing else was touched.
        assert {i for i, s in _statuses(two_provinces).items() if s == "assigned"} == jiangsu
        assert worker.poll() is None
    results = {r["region"]: r for r in _results(worker)}
    assert results["r1of2"]["ran"] is False
    assert results["r2of2"]["ran"] is True
    assert {a["request_id"] for a in results["r2of2"]["assigned"]} == jiangsu  # type: ignore[attr-defined]
    assert results["border"]["ran"] is True
    assert {a["request_id"] for a in results["border"]["assigned"]} == border  # type: ignore[attr-defined]
    assert {i for i, s in _statuses(two_provinces).items() if s == "assigned"} == jiangsu | border
    after = {r["region"]: r for r in _results(_worker(db_url))}
    assert {a["request_id"] for a in after["r1of2"]["assigned"]} == shandong  # type: ignore[attr-defined]
    assert assert_consistent(two_provinces) == {"assigned": len(ids)}


def test_the_border_cycle_lets_go_after_its_bounded_wait(two_provinces: Engine) -> None:
    """The border cycle takes the border lock, then waits for each region's lock in order:
    while a region's lock stays held past ``wait_s`` it gets nothing and holds nothing (the
    border lock is free again); when the region's cycle ends during the wait, it gets all."""
    region_map = region_map_of(two_provinces)
    border = region_map.domains[-1]
    assert border.locks[0] == BORDER_LOCK and border.wait
    region = region_map.regions[1].lock
    with hold_locks(two_provinces, [NETWORK_SHARED, region]) as got:
        assert got
        with hold_locks(two_provinces, border.locks, wait_s=0.2, first_try=1) as waited:
            assert not waited
        with hold_locks(two_provinces, [BORDER_LOCK]) as free:
            assert free
    released = threading.Event()
    with hold_locks(two_provinces, [NETWORK_SHARED, region]) as got:
        assert got

        def let_go_soon() -> None:
            time.sleep(0.3)
            released.set()

        threading.Thread(target=let_go_soon).start()
        released.wait()
    with hold_locks(two_provinces, border.locks, wait_s=60, first_try=1) as waited:
        assert waited
        with hold_locks(two_provinces, [NETWORK_SHARED, region]) as region_cycle:
            assert not region_cycle


def test_a_van_near_the_border_serves_a_request_on_the_other_side(
    two_provinces: Engine, db_url: str
) -> None:
    """Every Shandong van is in the workshop; the breakdown at the border point (in
    Shandong) is served by a Jiangsu van, in the border cycle of a two-region pass."""
    with transaction(session_factory(two_provinces)) as db:
        shandong_stations = select(m.Station.id).where(m.Station.province_adcode == SHANDONG)
        for van in db.scalars(select(m.Van).where(m.Van.station_id.in_(shandong_stations))):
            van.status = "maintenance"
    (request_id,) = _add_requests(two_provinces, [BORDER_POINT])
    worker = DispatchWorker(_settings(db_url), factory=session_factory(two_provinces))
    results = {r.region: r for r in worker.run_pass()}
    assert not results["r1of2"].assigned and not results["r2of2"].assigned
    (assignment,) = results["border"].assigned
    assert assignment.request_id == request_id
    with transaction(session_factory(two_provinces)) as db:
        sent = db.get(m.Van, assignment.van_id)
        assert sent is not None
        station = db.get(m.Station, sent.station_id)
        assert station is not None and station.province_adcode == JIANGSU
    assert assert_consistent(two_provinces) == {"assigned": 1}


def test_two_regions_never_offer_one_provider_more_than_its_slots(two_provinces: Engine) -> None:
    """No van is free; one partner provider serves both provinces with one slot. Each
    region's cycle reads the provider free and chooses to offer it its interior breakdown;
    the second write re-counts the slots under the provider's row lock: one offer is made,
    the other is a conflict naming the provider, and its request stays open."""
    with transaction(session_factory(two_provinces)) as db:
        for van in db.scalars(select(m.Van)):
            van.status = "maintenance"
        partner = db.scalars(select(m.Partner).order_by(m.Partner.id)).first()
        assert partner is not None
        db.add(
            m.PartnerProvider(
                id="both-sides", partner_id=partner.id, name="both sides", provinces=[SHANDONG,
                JIANGSU], base_lat=34.0, base_lon=119.0, radius_km=0.0,
                capabilities=[c.value for c in RescueCapability], promised_response_minutes=30.0,
                callout_fee_cny=100.0, per_km_cny=1.0, capacity_jobs=1,
            )
        )  # fmt: skip
    yantai, suzhou = _add_requests(two_provinces, [(37.46, 121.44), (31.30, 120.62)])
    region_map = region_map_of(two_provinces)
    factory = session_factory(two_provinces)
    provider, _ = travel_provider(_settings("unused"))
    now = utcnow()
    decided = []
    for index in (0, 1):  # both snapshots and solves before either write
        with transaction(factory) as db:
            snapshot = load_snapshot(db_session=db, now=now, scope=region_map.scope(index))
        van_matching, replacements = solve(snapshot, provider)
        offers = escalate_to_partners(snapshot, van_matching, OfferPolicy())
        assert [(o.request_id, o.provider_id) for o in offers] == [
            ((yantai, suzhou)[index], "both-sides")
        ]
        decided.append((snapshot, van_matching, replacements, offers))
    results: list[CycleResult] = []
    for snapshot, van_matching, replacements, offers in decided:
        result = CycleResult(cycle_id=f"c{len(results)}", started_at=now, provider="gc")
        with transaction(factory) as db:
            write_decisions(
                db_session=db, snapshot=snapshot, van_matching=van_matching,
                replacements=replacements, result=result, rescue_offers=offers,
            )  # fmt: skip
        results.append(result)
    assert [o.request_id for o in results[0].offered] == [yantai]
    assert results[1].offered == []
    assert results[1].conflicts == [
        f"request {suzhou}: provider both-sides has no free slot left (1 of 1 taken "
        "meanwhile); not asked"
    ]
    with transaction(factory) as db:
        offers_made = db.scalars(select(m.PartnerOffer)).all()
        assert [(o.request_id, o.provider_id) for o in offers_made] == [(yantai, "both-sides")]
    assert _statuses(two_provinces)[suzhou] == "received"


def _settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url, dispatch_regions=2, respect_shifts=False,
        travel_provider="great_circle",
    )  # fmt: skip


def _add_requests(engine: Engine, points: list[tuple[float, float]]) -> list[str]:
    ids = []
    with transaction(session_factory(engine)) as db:
        for lat, lon in points:
            body = request_body(location={"lat": lat, "lon": lon})
            body.pop("cargo")
            intake = create_request(
                db_session=db,
                body=RequestCreate.model_validate(body),
                threshold_hours=24.0,
                token_secret=b"test-regions-token-secret",
            )
            ids.append(intake.request.id)
    return ids


def test_two_worker_processes_book_no_van_twice(two_provinces: Engine, db_url: str) -> None:
    """Two worker processes run passes side by side until idle on the same database: every
    request gets one van, no van gets two, and no write met a conflict (the region locks kept
    the workers apart, the database's re-check had nothing to catch)."""
    ids = add_requests_near_stations(two_provinces, 25, seed=3)
    workers = [_worker(db_url, "--loop", "--until-idle", "--interval", "0.1") for _ in range(2)]
    results = [r for w in workers for r in _results(w)]
    assert assert_consistent(two_provinces) == {"assigned": len(ids)}
    assigned = Counter(a["request_id"] for r in results for a in r["assigned"])  # type: ignore[attr-defined]
    assert set(assigned) == set(ids) and set(assigned.values()) == {1}
    assert not any(r["conflicts"] for r in results)
    assert {r["region"] for r in results} >= {"r1of2", "r2of2", "border"}


def test_each_job_in_progress_is_re_planned_by_exactly_one_domain(
    two_provinces: Engine, db_url: str
) -> None:
    """After a pass every request has a van on its way. Each job is read for re-planning by
    one domain only: a region's when its request is interior and its van is of that region,
    the border's otherwise (the border point's job; and an interior Shandong job once a
    Jiangsu van holds it, as after a dispatcher's override)."""
    ids = add_requests_near_stations(two_provinces, 4)
    factory = session_factory(two_provinces)
    worker = DispatchWorker(_settings(db_url), factory=factory)
    worker.run_pass()
    region_map = worker.region_map
    assert region_map is not None
    not_before = utcnow() - dt.timedelta(days=1)

    def owners() -> dict[int, set[str]]:
        with transaction(factory) as db:
            return {
                d.index: {
                    r.id
                    for r, *_ in region_map.scope(d.index).replannable_rows(
                        db, not_before=not_before
                    )
                }
                for d in region_map.domains
            }

    owned = owners()
    assert set().union(*owned.values()) == set(ids)
    assert sum(len(v) for v in owned.values()) == len(ids)
    assert ids[0] in owned[BORDER]
    with transaction(factory) as db:
        points = [(r.id, r.lat, r.lon, r.province_adcode) for r in db.scalars(
            select(m.RescueRequest).where(m.RescueRequest.id.in_(ids)))]  # fmt: skip
        shandong_job = sorted(region_map.domain_request_ids(points, 0))[0]
        jiangsu_van = first_van(db, JIANGSU, m.Van.status == "available").id
        job = db.scalars(
            select(m.VanAssignment).where(
                m.VanAssignment.request_id == shandong_job, m.VanAssignment.active.is_(True)
            )
        ).one()
        job.van_id = jiangsu_van
    after = owners()
    assert shandong_job in owned[0] and shandong_job not in after[0]
    assert shandong_job in after[BORDER]


def test_region_cycles_hold_back_while_a_border_cycle_waits(
    two_provinces: Engine, db_url: str
) -> None:
    """While a border cycle holds the border lock (waiting for the region locks), a worker's
    region cycles do not start: they would only keep the border's requests waiting. Once it
    is let go, they run."""
    add_requests_near_stations(two_provinces, 3)
    worker = DispatchWorker(_settings(db_url), factory=session_factory(two_provinces))
    with hold_locks(two_provinces, [BORDER_LOCK]) as got:
        assert got
        held_back = {r.region: r for r in worker.run_pass()}
    assert not any(r.ran for r in held_back.values())
    for name in ("r1of2", "r2of2"):
        assert "the border cycle is waiting for it" in (held_back[name].skipped_reason or "")
    assert all(r.ran for r in worker.run_pass())


def test_a_worker_reads_the_partition_again_and_keeps_an_unchanged_one(
    two_provinces: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers must agree on the partition (their locks are keyed by it): each reads it again
    every ``REGION_MAP_CHECK_S``. Unchanged, the same map is kept (with the domains it
    remembers); once a Jiangsu van's radius grows to 1,000 km, the next pass uses the new map,
    in which the Shandong request that was interior is now a border one."""
    import api.dispatching.worker as worker_module

    monkeypatch.setattr(worker_module, "REGION_MAP_CHECK_S", 0.0)
    (yantai,) = _add_requests(two_provinces, [(37.46, 121.44)])  # far from Jiangsu
    factory = session_factory(two_provinces)
    worker = DispatchWorker(_settings(db_url), factory=factory)
    first = worker.region_map
    assert first is not None
    with transaction(factory) as db:
        points = [(r.id, r.lat, r.lon, r.province_adcode) for r in q.open_request_rows(db)]
    assert first.domain_request_ids(points, 0) == [yantai]
    worker.run_pass()
    assert worker.region_map is first
    with transaction(factory) as db:
        van = first_van(db, JIANGSU)
        van.service_radius_km = 1000.0
    worker.run_pass()
    changed = worker.region_map
    assert changed is not first and changed is not None
    assert not changed.same_partition(first)
    assert changed.domain_request_ids(points, BORDER) == [yantai]


def test_a_van_moved_up_across_the_line_serves_from_its_new_region(
    two_provinces: Engine, db_url: str
) -> None:
    """A Shandong van a dispatcher moved up to Suzhou's station (Jiangsu, far from the border)
    serves from there: the Shandong cycle no longer reads it, the Jiangsu cycle does and sends
    it to a breakdown near Suzhou while every Jiangsu van is in the workshop. Moved home again,
    it is Shandong's once more."""
    from api.dispatching.move_ups import confirm_move_up
    from routing import GreatCircleProvider

    factory = session_factory(two_provinces)
    with transaction(factory) as db:
        jiangsu_stations = select(m.Station.id).where(m.Station.province_adcode == JIANGSU)
        for van in db.scalars(select(m.Van).where(m.Van.station_id.in_(jiangsu_stations))):
            van.status = "maintenance"
        stations = db.scalars(select(m.Station)).all()
        suzhou = min(
            (s for s in stations if s.province_adcode == JIANGSU),
            key=lambda s: (s.lat - 31.30) ** 2 + (s.lon - 120.62) ** 2,
        )
        moved = first_van(db, SHANDONG)
        moved_id, home_id, suzhou_id = moved.id, moved.station_id, suzhou.id
        confirm_move_up(
            db_session=db, van_id=moved_id, to_station_id=suzhou_id, actor="dispatcher:test",
            provider=GreatCircleProvider(), now=utcnow(),
        )  # fmt: skip
    region_map = region_map_of(two_provinces)

    def readers() -> set[int]:
        with transaction(factory) as db:
            return {
                d.index
                for d in region_map.domains
                if moved_id in {v.id for v, _ in region_map.scope(d.index).free_van_rows(db)}
            }

    assert readers() == {1}
    (request_id,) = _add_requests(two_provinces, [(31.32, 120.62)])
    worker = DispatchWorker(_settings(db_url), factory=factory)
    results = {r.region: r for r in worker.run_pass()}
    assert [(a.request_id, a.van_id) for a in results["r2of2"].assigned] == [(request_id, moved_id)]
    assert assert_consistent(two_provinces) == {"assigned": 1}
    with transaction(factory) as db:
        svc_van = db.get(m.Van, moved_id)
        assert svc_van is not None
        home = db.get(m.Station, home_id)
        assert home is not None
        # the job done and the van back home (as the crew's position report would put it)
        db.execute(
            m.VanAssignment.__table__.update()
            .where(m.VanAssignment.van_id == moved_id)
            .values(active=False)
        )
        db.execute(
            m.RescueRequest.__table__.update()
            .where(m.RescueRequest.id == request_id)
            .values(status="closed")
        )
        svc_van.status, svc_van.lat, svc_van.lon = "available", home.lat, home.lon
    assert readers() == {0}
