"""Dispatch per region across processes: the partition, the locks, the border rule, and two
worker processes sharing one database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import Engine, select

from api.clock import utcnow
from api.db import models as m
from api.db.engine import session_factory, transaction
from api.dispatching.cycle import load_snapshot
from api.dispatching.leadership import NETWORK_LOCK, NETWORK_SHARED, hold_locks
from api.dispatching.regions import RegionMap, load_region_map, partition_provinces
from api.network.seeding import seed_network
from api.requests.intake import create_request
from api.schemas import RequestCreate
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
    of Jiangsu vans) goes to the border pass, and every open request is decided by exactly
    one pass: the main passes' interiors and the border are disjoint and cover all."""
    ids = add_requests_near_stations(two_provinces, 8)
    region_map = region_map_of(two_provinces)
    assert [sorted(r.provinces) for r in region_map.regions] == [[SHANDONG], [JIANGSU]]
    shandong = region_map.regions[0]
    point = np.array([BORDER_POINT])
    assert region_map.reachable_from_elsewhere(point, 0).tolist() == [True]
    with transaction(session_factory(two_provinces)) as db:
        now = utcnow()
        interiors = []
        for index, region in enumerate(region_map.regions):
            snapshot = load_snapshot(db_session=db, now=now, provinces=region.provinces)
            interiors.append({r.id for r in region_map.interior(snapshot, index).requests})
        border = {
            r.id
            for r in region_map.border(
                load_snapshot(db_session=db, now=now), region_map.interior_ids(db)
            ).requests
        }
    assert ids[0] in border and not any(ids[0] in i for i in interiors)
    assert not interiors[0] & interiors[1] and not (interiors[0] | interiors[1]) & border
    assert interiors[0] | interiors[1] | border == set(ids)
    assert interiors[0] and interiors[1]
    assert shandong.name == "r1of2"


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


def test_a_region_is_dispatched_while_another_process_leads_the_other(
    two_provinces: Engine, db_url: str
) -> None:
    """While this process leads Shandong (as a worker in the middle of its cycle would), a
    worker process dispatches Jiangsu's interior requests; Shandong's and the border point
    wait, untouched, and are dispatched by the next pass once the lock is free."""
    ids = add_requests_near_stations(two_provinces, 6)
    region_map = region_map_of(two_provinces)
    with transaction(session_factory(two_provinces)) as db:
        interior, _ = region_map.interior_ids(db)
        province = {r.id: r.province_adcode for r in db.scalars(select(m.RescueRequest))}
    jiangsu = {i for i in interior if province[i] == JIANGSU}
    shandong = {i for i in interior if province[i] == SHANDONG}
    border = set(ids) - interior
    assert jiangsu and shandong and ids[0] in border
    with hold_locks(two_provinces, [NETWORK_SHARED, region_map.regions[0].lock]) as got:
        assert got
        results = {r["region"]: r for r in _results(_worker(db_url))}
    assert results["r1of2"]["ran"] is False
    assert results["border"]["ran"] is False
    assert results["r2of2"]["ran"] is True
    assert {a["request_id"] for a in results["r2of2"]["assigned"]} == jiangsu  # type: ignore[attr-defined]
    with transaction(session_factory(two_provinces)) as db:
        statuses = {r.id: r.status for r in db.scalars(select(m.RescueRequest))}
    assert {i for i, s in statuses.items() if s == "assigned"} == jiangsu
    after = {r["region"]: r for r in _results(_worker(db_url))}
    assert {a["request_id"] for a in after["r1of2"]["assigned"]} == shandong  # type: ignore[attr-defined]
    assert {a["request_id"] for a in after["border"]["assigned"]} == border  # type: ignore[attr-defined]
    assert assert_consistent(two_provinces) == {"assigned": len(ids)}


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
