"""Live operations with a controlled clock: a van driven along its road path with position
reports (ETA re-timing, lateness, at-risk, the delay webhook, re-planning with hysteresis),
vans finishing a job as candidates for the next one, escalation, and bad position reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.dispatching.cycle import CyclePolicy, run_cycle
from api.dispatching.decisions import CycleResult
from api.network.service import update_position
from api.requests import service as svc
from api.requests.intake import create_request
from api.requests.views import request_view
from api.schemas import RequestCreate, RequestRead
from dispatch import RequestStatus
from fleet import VanStatus
from routing import GreatCircleProvider, RoadGraphProvider, TravelTimeProvider, load_road_provider
from tests.api.conftest import request_body

T0 = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)
POLICY = CyclePolicy(respect_shifts=False)
"""The settings' defaults: re-planning on, gain 15 min, freeze 15 min, soon-free 60 min,
grace 10 min."""
JINAN_VAN, TAIAN_VAN = "V-370100-1", "V-370900-1"
JINAN = (36.65077, 117.11397)
NEAR_TAIAN = (36.25, 117.10)
"""A breakdown on the Jinan - Tai'an road, 5 km north of Tai'an's station."""


@pytest.fixture(scope="module")
def road(road_graph_cache_dir: Path) -> RoadGraphProvider:
    return load_road_provider(cache_dir=road_graph_cache_dir)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def only_vans(engine: Engine, available: set[str]) -> None:
    """Every other van in maintenance (so the test decides which vans exist)."""
    with transaction(session_factory(engine)) as db:
        db.execute(update(m.Van).where(m.Van.id.not_in(available)).values(status="maintenance"))


def new_request(engine: Engine, lat: float, lon: float, *, now: dt.datetime, **body: Any) -> str:
    payload = request_body(location={"lat": lat, "lon": lon}, cargo=None, **body)
    with transaction(session_factory(engine)) as db:
        intake = create_request(
            db_session=db,
            body=RequestCreate.model_validate(payload),
            threshold_hours=24.0,
            token_secret=b"test-secret",
            now=now,
        )
        return intake.request.id


def cycle(
    engine: Engine, provider: TravelTimeProvider, now: dt.datetime, policy: CyclePolicy = POLICY
) -> CycleResult:
    result = run_cycle(factory=session_factory(engine), provider=provider, policy=policy, now=now)
    assert result.ran
    return result


def report(
    engine: Engine,
    provider: TravelTimeProvider,
    van_id: str,
    lat: float,
    lon: float,
    now: dt.datetime,
    status: str | None = None,
) -> None:
    with transaction(session_factory(engine)) as db:
        update_position(
            db_session=db, van_id=van_id, lat=lat, lon=lon, actor="crew", provider=provider,
            grace_minutes=POLICY.eta_grace_minutes, now=now,
            status=VanStatus(status) if status else None,
        )  # fmt: skip


def view(engine: Engine, request_id: str, now: dt.datetime) -> RequestRead:
    from api.requests.views import request_views

    with transaction(session_factory(engine)) as db:
        row = db.get(m.RescueRequest, request_id)
        assert row is not None
        return request_views(db_session=db, rows=[row], staff=True, now=now)[0]


def events(engine: Engine, request_id: str, kind: str) -> list[m.Event]:
    with transaction(session_factory(engine)) as db:
        rows = db.scalars(
            select(m.Event)
            .where(m.Event.request_id == request_id, m.Event.kind == kind)
            .order_by(m.Event.id)
        ).all()
        db.expunge_all()
        return list(rows)


def subscribe_all(engine: Engine) -> None:
    """One webhook endpoint for every notification type (nothing is sent: the outbox rows are
    what is checked)."""
    with transaction(session_factory(engine)) as db:
        db.add(
            m.NotificationEndpoint(
                channel="webhook", url="http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32,
                event_types=[], description="test", active=True, created_at=T0,
            )
        )  # fmt: skip


def outbox_count(engine: Engine, request_id: str, event_type: str) -> int:
    with transaction(session_factory(engine)) as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(m.OutboxMessage)
                .where(
                    m.OutboxMessage.request_id == request_id,
                    m.OutboxMessage.event_type == event_type,
                )
            )
            or 0
        )


def road_stops(
    road: RoadGraphProvider, origin: tuple[float, float], breakdown: tuple[float, float]
) -> list[tuple[tuple[float, float], float]]:
    """Vertices of the van's road path at about 20, 40, 60, 80 and 95% of the way, each with
    the modelled minutes left from there (decreasing: they are on the shortest path)."""
    points = road.path(origin, breakdown, "rescue_van").points[1:-1]
    picks = [points[min(len(points) - 1, round(f * (len(points) - 1)))]
             for f in (0.2, 0.4, 0.6, 0.8, 0.95)]  # fmt: skip
    return [(p, road.leg(p, breakdown, "rescue_van").minutes) for p in picks]


# -- the replay harness -------------------------------------------------------------------


def _dispatch_jinan_van(engine: Engine, road: TravelTimeProvider) -> tuple[str, float]:
    """The Tai'an van in maintenance, so the Jinan van takes the breakdown near Tai'an at T0;
    (request id, promised ETA minutes)."""
    only_vans(engine, {JINAN_VAN, TAIAN_VAN})
    with transaction(session_factory(engine)) as db:
        db.execute(update(m.Van).where(m.Van.id == TAIAN_VAN).values(status="maintenance"))
    rid = new_request(engine, *NEAR_TAIAN, now=T0)
    first = cycle(engine, road, T0)
    assert [(a.request_id, a.van_id) for a in first.assigned] == [(rid, JINAN_VAN)]
    return rid, first.assigned[0].eta_minutes


def test_position_reports_re_time_the_eta_by_road_and_its_error_shrinks(
    seeded: Engine, road: RoadGraphProvider
) -> None:
    """Driving the Jinan van along its road path at 90% of the modelled speed (traffic), with
    a report at five points of the path: each report re-times the ETA by road from there,
    so the error against the true arrival shrinks toward arrival (10% of what is left); the
    van stays within the grace, so the job is never at risk."""
    pace = 0.9
    rid, promised = _dispatch_jinan_van(seeded, road)
    assert promised == pytest.approx(road.leg(JINAN, NEAR_TAIAN, "rescue_van").minutes, abs=0.1)
    true_arrival = at(promised / pace)
    errors, lefts = [], []
    for (lat, lon), left in road_stops(road, JINAN, NEAR_TAIAN):
        lefts.append(left)
        now = at((promised - left) / pace)
        report(seeded, road, JINAN_VAN, lat, lon, now)
        v = view(seeded, rid, now).van
        assert v is not None and v.eta_at is not None
        assert v.eta_minutes == pytest.approx(left, abs=0.06)
        assert v.last_position_at == now and not v.at_risk
        errors.append((true_arrival - v.eta_at).total_seconds() / 60.0)
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.35 * errors[0], errors
    assert errors == pytest.approx([left * (1 / pace - 1) for left in lefts], abs=0.05)
    assert len(events(seeded, rid, "eta_updated")) == 5
    assert events(seeded, rid, "job_at_risk") == []


def _stop_for_30_minutes(
    engine: Engine, road: RoadGraphProvider
) -> tuple[str, float, tuple[float, float]]:
    """Drive 40% of the way, then stand still 30 minutes, reporting every 7 minutes."""
    subscribe_all(engine)
    rid, promised = _dispatch_jinan_van(engine, road)
    stop, left = road_stops(road, JINAN, NEAR_TAIAN)[1]
    start = promised - left  # on time so far
    for waited in (0, 7, 14, 21, 28, 30):
        report(engine, road, JINAN_VAN, *stop, at(start + waited))
    return rid, start + 30, stop


def test_a_30_minute_stop_makes_the_job_at_risk_and_tells_the_customer_once(
    seeded: Engine, road: RoadGraphProvider
) -> None:
    """Standing still 30 minutes: the ETA grows with each report, the job is at risk (late
    beyond the 10 min grace against the promise), the customer gets exactly one
    request.delayed; with no better van the next cycle moves nothing."""
    rid, now, _stop = _stop_for_30_minutes(seeded, road)
    v = view(seeded, rid, at(now)).van
    assert v is not None and v.id == JINAN_VAN and v.at_risk
    assert v.late_by_minutes == pytest.approx(30.0, abs=0.2)
    assert v.promised_eta_at is not None and v.eta_at is not None
    assert v.eta_at - v.promised_eta_at == pytest.approx(
        dt.timedelta(minutes=30), abs=dt.timedelta(seconds=12)
    )
    assert len(events(seeded, rid, "job_at_risk")) == 1
    assert outbox_count(seeded, rid, "request.delayed") == 1
    result = cycle(seeded, road, at(now + 1))
    assert result.replanned_jobs == 1 and result.reassigned == [] and result.released == []
    assert view(seeded, rid, at(now + 1)).van.id == JINAN_VAN  # type: ignore[union-attr]
    assert events(seeded, rid, "assignment_override") == []


def test_a_better_van_takes_over_a_stuck_job_with_the_reason_logged(
    seeded: Engine, road: RoadGraphProvider
) -> None:
    """During the stop the Tai'an van, 5 km from the breakdown, comes back on duty: the next
    cycle gives it the job (the gain beats 15 min), frees the Jinan van where it stands and
    logs the move with its reason; the promise the lateness is measured against is kept."""
    rid, now, stop = _stop_for_30_minutes(seeded, road)
    with transaction(session_factory(seeded)) as db:
        promised = db.scalar(
            select(m.VanAssignment.promised_eta_at).where(m.VanAssignment.active.is_(True))
        )
    report(seeded, road, TAIAN_VAN, 36.200002, 117.081546, at(now), status="available")
    result = cycle(seeded, road, at(now + 1))
    assert [(r.request_id, r.van_id, r.previous_van_id) for r in result.reassigned] == [
        (rid, TAIAN_VAN, JINAN_VAN)
    ]
    (moved,) = events(seeded, rid, "assignment_override")
    assert moved.data["source"] == "replan" and moved.van_id == TAIAN_VAN
    assert moved.data["reason"].startswith(f"re-planned: van {TAIAN_VAN} arrives in ")
    assert f"with van {JINAN_VAN}" in moved.data["reason"]
    v = view(seeded, rid, at(now + 1)).van
    assert v is not None and v.id == TAIAN_VAN and v.promised_eta_at == promised
    with transaction(session_factory(seeded)) as db:
        jinan = db.get(m.Van, JINAN_VAN)
        assert jinan is not None and jinan.status == "available" and jinan.busy_until is None
        assert (jinan.lat, jinan.lon) == stop
    again = cycle(seeded, road, at(now + 2))
    assert again.reassigned == []  # no flapping back


def test_a_small_gain_does_not_move_a_van(seeded: Engine) -> None:
    """Hysteresis: a free van only a few minutes closer than the assigned one does not take
    the job over (the gain must beat RESCUE_REPLAN_GAIN_MINUTES, priority-weighted); with a
    lower threshold it does."""
    provider = GreatCircleProvider()
    only_vans(seeded, {JINAN_VAN})
    rid = new_request(seeded, 36.40, 117.11, now=T0)  # 28 km south of Jinan's station
    assert [a.van_id for a in cycle(seeded, provider, T0).assigned] == [JINAN_VAN]
    # Another van appears 3 km closer (about 3 minutes sooner).
    with transaction(session_factory(seeded)) as db:
        other = db.get(m.Van, "V-370100-2")
        assert other is not None
        other.status, other.lat, other.lon = "available", 36.623, 117.11
    assert cycle(seeded, provider, at(1)).reassigned == []
    eager = CyclePolicy(respect_shifts=False, replan_gain_minutes=1.0)
    moved = cycle(seeded, provider, at(2), eager).reassigned
    assert [(r.request_id, r.van_id) for r in moved] == [(rid, "V-370100-2")]


def test_a_van_close_to_arrival_is_never_moved(seeded: Engine) -> None:
    """A van due within RESCUE_REPLAN_FREEZE_MINUTES keeps its job whatever else is free."""
    provider = GreatCircleProvider()
    only_vans(seeded, {JINAN_VAN})
    rid = new_request(seeded, 36.55, 117.11, now=T0)  # ~13 km: due in about 11 minutes
    (a,) = cycle(seeded, provider, T0).assigned
    assert a.eta_minutes < POLICY.replan_freeze_minutes
    with transaction(session_factory(seeded)) as db:
        other = db.get(m.Van, "V-370100-2")
        assert other is not None
        other.status, other.lat, other.lon = "available", 36.551, 117.11
    result = cycle(seeded, provider, at(1), CyclePolicy(respect_shifts=False,
                                                         replan_gain_minutes=0.0))  # fmt: skip
    assert result.replanned_jobs == 0 and result.reassigned == []
    assert view(seeded, rid, at(1)).van.id == JINAN_VAN  # type: ignore[union-attr]


def test_the_cycle_flags_an_overdue_van_without_any_report(seeded: Engine) -> None:
    """No position report: once the ETA plus the grace has passed, the next cycle flags the
    job at risk (once); the view shows a negative eta_minutes and the lateness, never 0."""
    provider = GreatCircleProvider()
    only_vans(seeded, {JINAN_VAN})
    rid = new_request(seeded, 36.40, 117.11, now=T0)
    (a,) = cycle(seeded, provider, T0).assigned
    assert cycle(seeded, provider, at(a.eta_minutes + 9)).at_risk == []
    late = at(a.eta_minutes + 11)
    assert cycle(seeded, provider, late).at_risk == [rid]
    assert cycle(seeded, provider, at(a.eta_minutes + 12)).at_risk == []
    v = view(seeded, rid, late).van
    assert v is not None and v.at_risk
    assert v.eta_minutes == pytest.approx(-11.0, abs=0.1)
    assert v.late_by_minutes == pytest.approx(11.0, abs=0.1)
    with transaction(session_factory(seeded)) as db:
        svc.change_status(db_session=db, request_id=rid, target=RequestStatus.EN_ROUTE,
                          actor="t", now=late)  # fmt: skip
        svc.change_status(db_session=db, request_id=rid, target=RequestStatus.ON_SITE,
                          actor="t", provider=provider, now=late)  # fmt: skip
    v = view(seeded, rid, at(a.eta_minutes + 20)).van
    assert v is not None and not v.at_risk and v.eta_minutes is None
    assert v.arrived_at == late and v.late_by_minutes == pytest.approx(11.0, abs=0.1)


# -- vans that will be free soon ------------------------------------------------------------


def test_a_van_finishing_nearby_beats_an_idle_van_far_away(seeded: Engine) -> None:
    """The Tai'an van is finishing a job 10 km from a new breakdown (free in 20 min); the
    only idle van is Jinan's, 120 km away by road: the new job goes to the Tai'an van, queued
    behind its current one and timed from that site; when the first job ends it starts."""
    provider = GreatCircleProvider()
    only_vans(seeded, {TAIAN_VAN})
    first = new_request(seeded, 36.20, 117.20, now=T0)  # 10.6 km east of Tai'an
    assert [a.van_id for a in cycle(seeded, provider, T0).assigned] == [TAIAN_VAN]
    with transaction(session_factory(seeded)) as db:
        for target in (RequestStatus.EN_ROUTE, RequestStatus.ON_SITE):
            svc.change_status(db_session=db, request_id=first, target=target, actor="crew",
                              provider=provider, now=at(20))  # fmt: skip
        taian = db.get(m.Van, TAIAN_VAN)
        assert taian is not None and taian.busy_until is not None
        taian.busy_until = at(40)  # the crew expects to finish in 20 minutes
        jinan = db.get(m.Van, JINAN_VAN)
        assert jinan is not None
        jinan.status, jinan.lat, jinan.lon = "available", 37.10, 117.20  # ~100 km north
    second = new_request(seeded, 36.20, 117.31, now=at(20))  # 10 km east of the first
    idle_eta = provider.leg((37.10, 117.20), (36.20, 117.31), "rescue_van").minutes
    nearby_eta = 20 + provider.leg((36.20, 117.20), (36.20, 117.31), "rescue_van").minutes
    assert idle_eta > nearby_eta + 30
    result = cycle(seeded, provider, at(20))
    assert [(a.request_id, a.van_id, a.queued) for a in result.assigned] == [
        (second, TAIAN_VAN, True)
    ]
    assert result.assigned[0].eta_minutes == pytest.approx(nearby_eta, abs=0.1)
    with (
        transaction(session_factory(seeded)) as db,
        pytest.raises(Exception, match=f"assigned to request {first}"),
    ):
        update_position(db_session=db, van_id=TAIAN_VAN, lat=36.2, lon=117.2,
                        status=VanStatus.OFF_SHIFT, actor="crew", now=at(21))  # fmt: skip
    with transaction(session_factory(seeded)) as db:
        taian = db.get(m.Van, TAIAN_VAN)
        assert taian is not None and taian.status == "on_site"  # still on its first job
        with pytest.raises(Exception, match="still on its previous job"):
            svc.change_status(db_session=db, request_id=second, target=RequestStatus.EN_ROUTE,
                              actor="crew", now=at(25))  # fmt: skip
    with transaction(session_factory(seeded)) as db:
        svc.change_status(db_session=db, request_id=first, target=RequestStatus.REPAIRED,
                          actor="crew", now=at(35))  # fmt: skip
    with transaction(session_factory(seeded)) as db:
        taian = db.get(m.Van, TAIAN_VAN)
        assert taian is not None and taian.status == "assigned"
        job = db.scalar(
            select(m.VanAssignment).where(
                m.VanAssignment.active.is_(True), m.VanAssignment.van_id == TAIAN_VAN
            )
        )
        assert job is not None and job.request_id == second and not job.queued
        travel = nearby_eta - 20
        assert job.eta_at == pytest.approx(at(35 + travel), abs=dt.timedelta(seconds=1))
    assert len(events(seeded, second, "queued_job_started")) == 1


@pytest.mark.parametrize("objective", ["eta", "promise"])
def test_under_promise_a_late_request_waits_for_a_van_free_now(
    seeded: Engine, objective: str
) -> None:
    """The Tai'an van, the only one in service, is at a job until minute 40; a breakdown 10 km
    away is reported at minute 20 with a 25-min promise: queued behind that job it would
    arrive after minute 48, late. ``eta`` queues it there; ``promise`` does not give a late
    request to a van still at work (all_busy: it waits) and sends the van at the first cycle
    after it is free (job finished at minute 35), from the finished job's site."""
    provider = GreatCircleProvider()
    only_vans(seeded, {TAIAN_VAN})
    policy = CyclePolicy(respect_shifts=False, objective=objective, promise_minutes=25.0)
    first = new_request(seeded, 36.20, 117.20, now=T0)
    assert [a.van_id for a in cycle(seeded, provider, T0, policy).assigned] == [TAIAN_VAN]
    with transaction(session_factory(seeded)) as db:
        for target in (RequestStatus.EN_ROUTE, RequestStatus.ON_SITE):
            svc.change_status(db_session=db, request_id=first, target=target, actor="crew",
                              provider=provider, now=at(20))  # fmt: skip
        taian = db.get(m.Van, TAIAN_VAN)
        assert taian is not None
        taian.busy_until = at(40)
    second = new_request(seeded, 36.20, 117.31, now=at(20))
    travel = provider.leg((36.20, 117.20), (36.20, 117.31), "rescue_van").minutes
    assert 20 + travel > 25  # late behind the first job
    result = cycle(seeded, provider, at(20), policy)
    if objective == "eta":
        assert [(a.request_id, a.van_id, a.queued) for a in result.assigned] == [
            (second, TAIAN_VAN, True)
        ]
        return
    assert result.assigned == []
    assert [(u.request_id, u.reason) for u in result.unassigned] == [(second, "all_busy")]
    with transaction(session_factory(seeded)) as db:
        svc.change_status(db_session=db, request_id=first, target=RequestStatus.REPAIRED,
                          actor="crew", now=at(35))  # fmt: skip
    result = cycle(seeded, provider, at(36), policy)
    assert [(a.request_id, a.van_id, a.queued) for a in result.assigned] == [
        (second, TAIAN_VAN, False)
    ]
    assert result.assigned[0].eta_minutes == pytest.approx(travel, abs=0.1)


# -- escalation and bad reports -----------------------------------------------------------


def test_a_breakdown_no_own_van_covers_is_escalated_at_once(
    make_client: Callable[..., TestClient], dispatcher: dict[str, str]
) -> None:
    """A point in China but outside every van's radius (Urumqi, with the Shandong network):
    the cycle escalates it, the customer's view says so instead of an endless received."""
    client = make_client()
    created = client.post(
        "/v1/requests", json=request_body(location={"lat": 43.8, "lon": 87.6}, cargo=None)
    ).json()
    run = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    assert run["escalated"] == [created["id"]]
    customer = {"Authorization": f"Bearer {created['tracking_token']}"}
    seen = client.get(f"/v1/requests/{created['id']}", headers=customer).json()
    assert seen["status"] == "received" and seen["escalated"] is True
    assert seen["escalation_reason"] == "no_van_in_radius"
    assert client.post("/v1/dispatch/runs", headers=dispatcher).json()["escalated"] == []


@pytest.mark.parametrize("replan", [True, False])
def test_a_breakdown_only_a_van_at_work_covers_waits_for_it(seeded: Engine, replan: bool) -> None:
    """The Tai'an van, the only one in service, is sent to a first breakdown; a second one 60
    km north of its station (in its radius, beyond its redirect distance) waits for it
    (all_busy, not escalated as one no van covers): the van will be back. Once the first job
    is done, the van takes it."""
    provider = GreatCircleProvider()
    only_vans(seeded, {TAIAN_VAN})
    policy = CyclePolicy(respect_shifts=False, replan=replan)
    first = new_request(seeded, *NEAR_TAIAN, now=T0)
    assert [a.van_id for a in cycle(seeded, provider, T0, policy).assigned] == [TAIAN_VAN]
    second = new_request(seeded, 36.75, 117.12, now=at(1))
    result = cycle(seeded, provider, at(1), policy)
    assert result.assigned == [] and result.escalated == []
    assert [(u.request_id, u.reason) for u in result.unassigned] == [(second, "all_busy")]
    with transaction(session_factory(seeded)) as db:
        for target in (RequestStatus.EN_ROUTE, RequestStatus.ON_SITE, RequestStatus.REPAIRED):
            svc.change_status(db_session=db, request_id=first, target=target, actor="crew",
                              provider=provider, now=at(30))  # fmt: skip
    assert [a.request_id for a in cycle(seeded, provider, at(31), policy).assigned] == [second]
    assert events(seeded, second, "escalated") == []


@pytest.mark.parametrize(
    "raw",
    ['{"lat": NaN, "lon": 117.0}', '{"lat": 36.6, "lon": Infinity}', '{"lat": "36,6", "lon": 1}',
     '{"lat": 36.6}', "not json"],
)  # fmt: skip
def test_garbage_position_reports_are_refused_and_change_nothing(
    client: TestClient, dispatcher: dict[str, str], seeded: Engine, raw: str
) -> None:
    """NaN, infinities, strings or missing coordinates: 4xx naming the problem; the van's
    position and the event log are untouched."""
    r = client.put(
        f"/v1/vans/{JINAN_VAN}/position",
        content=raw,
        headers={**dispatcher, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"].startswith(("lat", "lon", "body"))
    with transaction(session_factory(seeded)) as db:
        van = db.get(m.Van, JINAN_VAN)
        assert van is not None and van.lat is None and van.position_updated_at is None
        assert db.scalar(select(func.count()).select_from(m.Event)) == 0


def test_the_position_route_re_times_the_job_and_reports_it(
    client: TestClient, dispatcher: dict[str, str], seeded: Engine
) -> None:
    """Through HTTP: the report answers the van, the staff view of its job then shows the
    re-timed ETA, the time of the last position and the promise."""
    only_vans(seeded, {JINAN_VAN})
    rid = client.post("/v1/requests", json=request_body(cargo=None)).json()["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    far = {"lat": 37.5, "lon": 117.1}  # ~95 km north: far later than promised
    r = client.put(f"/v1/vans/{JINAN_VAN}/position", json=far, headers=dispatcher)
    assert r.status_code == 200, r.text
    seen = client.get(f"/v1/requests/{rid}", headers=dispatcher).json()["van"]
    assert seen["eta_minutes"] > 60 and seen["at_risk"] is True
    assert seen["late_by_minutes"] > 50 and seen["last_position_at"] is not None
    with transaction(session_factory(seeded)) as db:
        assert request_view(db_session=db, request_id=rid).van is not None
