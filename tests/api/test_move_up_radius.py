"""A van a dispatcher moved up serves the station it was moved to: its service radius is
measured from there in the dispatch cycle, the candidate list and a manual assignment (as the
simulation measures it), until its next job; moved home, it serves its home area again.

The network is two stations 90 km apart on one parallel (A at 117.0 E, B at 118.0 E, 36 N)
and one van based at A with a 60 km radius; great-circle travel x 1.2. A breakdown 36 km east
of B is 43 road km from B and 151 from A; one 36 km west of A the other way round."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from api.candidates.service import van_candidates
from api.clock import utcnow
from api.db import models as m
from api.db.engine import session_factory, transaction
from api.dispatching.cycle import load_snapshot, run_cycle
from api.dispatching.move_ups import confirm_move_up
from api.dispatching.posts import posted_station
from api.exceptions import InvalidInput
from api.network.seeding import seed_network
from api.requests import service as svc
from api.requests.intake import create_request
from api.schemas import RequestCreate
from dispatch import RequestStatus, UnassignedReason, build_van_matching_problem, match_vans
from fleet import GeoPoint, Network, RescueVan, ServiceStation, StationGrade, VanCapability
from routing import GreatCircleProvider
from tests.api.conftest import request_body

GC = GreatCircleProvider(1.2)
LAT = 36.0
KM_PER_DEG = 111.195 * 0.80902  # great-circle km per degree of longitude at 36 N (cos 36)


def _station(sid: str, lon: float) -> ServiceStation:
    return ServiceStation(
        id=sid, name=f"station {sid}", grade=StationGrade.AAA, location=GeoPoint(LAT, lon),
        adcode="370100", prefecture_adcode="370100", province_adcode="370000",
    )  # fmt: skip


@pytest.fixture
def two_stations(engine: Engine) -> Engine:
    network = Network(
        name="two-stations",
        stations=(_station("A", 117.0), _station("B", 118.0)),
        vans=(RescueVan("V1", "A", VanCapability.HEAVY_SERVICE, service_radius_km=60.0),),
    )
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=network, source="test")
    return engine


def _request(engine: Engine, lon: float) -> str:
    body = request_body(location={"lat": LAT, "lon": lon})
    body.pop("cargo")
    with transaction(session_factory(engine)) as db:
        intake = create_request(
            db_session=db, body=RequestCreate.model_validate(body), threshold_hours=24.0,
            token_secret=b"test-secret",
        )  # fmt: skip
        return intake.request.id


def _decide(engine: Engine) -> tuple[dict[str, str], dict[str, UnassignedReason]]:
    """What the cycle's pure solve decides on the snapshot now (nothing is written)."""
    with transaction(session_factory(engine)) as db:
        snap = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    matching = match_vans(build_van_matching_problem(snap.requests, snap.vans, GC), provider=GC)
    return (
        {a.request_id: a.van_id for a in matching.assignments},
        {u.request_id: u.reason for u in matching.unassigned},
    )


def _move(engine: Engine, to_station: str) -> None:
    with transaction(session_factory(engine)) as db:
        confirm_move_up(
            db_session=db, van_id="V1", to_station_id=to_station, actor="dispatcher:test",
            provider=GC, now=utcnow(),
        )  # fmt: skip


def test_moved_van_serves_the_area_of_the_station_it_was_moved_to(two_stations: Engine) -> None:
    """At home the van takes the breakdown near A and cannot reach the one near B within its
    radius; moved up to B it is the other way round (the one near A: no van in radius); moved
    home again, as at first."""
    near_b = _request(two_stations, 118.0 + 36.0 / KM_PER_DEG)
    near_a = _request(two_stations, 117.0 - 36.0 / KM_PER_DEG)
    at_home = ({near_a: "V1"}, {near_b: UnassignedReason.NO_VAN_IN_RADIUS})
    assert _decide(two_stations) == at_home
    _move(two_stations, "B")
    assert _decide(two_stations) == (
        {near_b: "V1"},
        {near_a: UnassignedReason.NO_VAN_IN_RADIUS},
    )
    _move(two_stations, "A")
    assert _decide(two_stations) == at_home


def test_cycle_assigns_the_moved_van_within_its_radius_of_the_new_station(
    two_stations: Engine,
) -> None:
    """The cycle stores the moved van on the breakdown near B, timed from B (36 x 1.2 km at
    80 km/h), and leaves the one near A waiting: no van's radius covers it."""
    _move(two_stations, "B")
    near_b = _request(two_stations, 118.0 + 36.0 / KM_PER_DEG)
    near_a = _request(two_stations, 117.0 - 36.0 / KM_PER_DEG)
    result = run_cycle(factory=session_factory(two_stations), provider=GC, respect_shifts=False)
    assert [(a.request_id, a.van_id) for a in result.assigned] == [(near_b, "V1")]
    assert [(u.request_id, u.reason) for u in result.unassigned] == [
        (near_a, UnassignedReason.NO_VAN_IN_RADIUS.value)
    ]
    with transaction(session_factory(two_stations)) as db:
        job = db.scalars(select(m.VanAssignment).where(m.VanAssignment.active.is_(True))).one()
        assert job.request_id == near_b
        assert job.travel_km == pytest.approx(36.0 * 1.2, abs=0.05)


def test_candidates_and_manual_assignment_measure_the_radius_from_the_new_station(
    two_stations: Engine,
) -> None:
    """The candidate list shows the moved van within its radius of the breakdown near B (km
    from B, posted at B) and beyond it for the one near A; assigning it there by hand needs an
    override reason that names the station it was moved to, and changes nothing without one."""
    near_b = _request(two_stations, 118.0 + 36.0 / KM_PER_DEG)
    near_a = _request(two_stations, 117.0 - 36.0 / KM_PER_DEG)
    _move(two_stations, "B")
    factory = session_factory(two_stations)
    with transaction(factory) as db:
        (b,) = van_candidates(db_session=db, request_id=near_b, provider=GC).vans
        (a,) = van_candidates(db_session=db, request_id=near_a, provider=GC).vans
    assert (b.within_radius, b.feasible, b.posted_station_id, b.station_id) == (
        True, True, "B", "A",
    )  # fmt: skip
    assert b.home_km == pytest.approx(36.0 * 1.2, abs=0.05)
    assert (a.within_radius, a.feasible, a.assignable, a.posted_station_id) == (
        False, False, True, "B",
    )  # fmt: skip
    assert a.home_km == pytest.approx(126.0 * 1.2, abs=0.2)
    assert a.excluded_reason is not None and "from station B" in a.excluded_reason
    with transaction(factory) as db, pytest.raises(InvalidInput) as err:
        svc.assign_van(
            db_session=db, request_id=near_a, van_id="V1", reason="test", actor="d", provider=GC
        )
    assert err.value.field == "override_reason"
    assert "from the station it was moved to station B, beyond its 60 km" in str(err.value)
    with transaction(factory) as db:
        assert db.scalars(select(m.VanAssignment)).all() == []
        assert db.get(m.Van, "V1").status == "available"  # type: ignore[union-attr]
        row = svc.assign_van(
            db_session=db, request_id=near_b, van_id="V1", reason="test", actor="d", provider=GC
        )
        assert row.request_id == near_b


def test_after_its_job_the_moved_van_serves_its_home_area_again(two_stations: Engine) -> None:
    """The moved van takes the breakdown near B, drives there, repairs it: it is free at the
    breakdown, no longer at B, and its radius is its home station's again (the breakdown near
    A is within it), as the simulation sends a moved van home after its job."""
    near_b = _request(two_stations, 118.0 + 36.0 / KM_PER_DEG)
    _move(two_stations, "B")
    factory = session_factory(two_stations)
    run_cycle(factory=factory, provider=GC, respect_shifts=False)
    for target in (RequestStatus.EN_ROUTE, RequestStatus.ON_SITE, RequestStatus.REPAIRED):
        with transaction(factory) as db:
            svc.change_status(
                db_session=db, request_id=near_b, target=target, actor="crew", provider=GC
            )
    near_a = _request(two_stations, 117.0 - 36.0 / KM_PER_DEG)
    with transaction(factory) as db:
        van = db.get(m.Van, "V1")
        assert van is not None and van.status == "available"
        (a,) = van_candidates(db_session=db, request_id=near_a, provider=GC).vans
    assert (a.within_radius, a.posted_station_id) == (True, None)
    assert a.home_km == pytest.approx(36.0 * 1.2, abs=0.05)
    assert _decide(two_stations)[0] == {near_a: "V1"}


@pytest.mark.parametrize(("east_km", "posted"), [(0.0, "B"), (0.3, "B"), (0.8, None)])
def test_posted_within_half_a_km_of_the_station(
    two_stations: Engine, east_km: float, posted: str | None
) -> None:
    """A free van whose last position is within 0.5 km of another station (a GPS report
    beside it) is posted there; farther, it is just a van on the road."""
    with transaction(session_factory(two_stations)) as db:
        van = db.get(m.Van, "V1")
        assert van is not None
        van.lat, van.lon = LAT, 118.0 + east_km / KM_PER_DEG
        db.flush()
        station = posted_station(db, van)
        assert (station.id if station else None) == posted
