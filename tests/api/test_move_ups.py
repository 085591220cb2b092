"""GET /v1/dispatch/move-ups: suggestions to move idle vans into holes left by busy ones;
nothing moves, nothing is suggested while every van is idle, limits are honoured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.security import Role


def _statuses(engine: Engine) -> dict[str, str]:
    with transaction(session_factory(engine)) as db:
        return {v.id: v.status for v in db.scalars(select(m.Van))}


def test_no_busy_vans_no_suggestions(
    make_client: Callable[..., TestClient], dispatcher: dict[str, str]
) -> None:
    """Every van idle at its station: no hole, no suggestion, coverage as planned."""
    client = make_client(respect_shifts=False, travel_provider="great_circle")
    body = client.get("/v1/dispatch/move-ups", headers=dispatcher).json()
    assert body["suggestions"] == []
    assert body["busy_share"] == 0.0
    assert body["expected_coverage"] == body["expected_coverage_all_idle"] > 0


def test_busy_station_gets_a_neighbour_suggested(
    make_client: Callable[..., TestClient], dispatcher: dict[str, str], seeded: Engine
) -> None:
    """With a 30-minute promise (local coverage), the vans of the best-staffed station go into
    maintenance: a van of another station is suggested to move there, within 100 km, the
    expected coverage after the moves is above now's; no van changes."""
    with transaction(session_factory(seeded)) as db:
        by_station = Counter(v.station_id for v in db.scalars(select(m.Van)))
        hole = max(sorted(by_station), key=lambda s: by_station[s])
        db.execute(update(m.Van).where(m.Van.station_id == hole).values(status="maintenance"))
    before = _statuses(seeded)
    client = make_client(respect_shifts=False, travel_provider="great_circle", promise_minutes=30)
    body = client.get(
        "/v1/dispatch/move-ups", params={"max_moves": 2, "max_move_km": 100}, headers=dispatcher
    ).json()
    assert 1 <= len(body["suggestions"]) <= 2
    assert body["suggestions"][0]["to_station_id"] == hole
    assert all(s["km"] <= 100 and s["from_station_id"] != hole for s in body["suggestions"])
    assert body["expected_coverage_after"] > body["expected_coverage"]
    assert body["expected_coverage"] < body["expected_coverage_all_idle"]
    assert _statuses(seeded) == before


def test_bad_limits_and_roles(
    make_client: Callable[..., TestClient], staff: Callable[..., dict[str, str]]
) -> None:
    """max_moves 0 is a 422 naming it; only dispatchers may ask."""
    client = make_client(travel_provider="great_circle")
    res = client.get("/v1/dispatch/move-ups", params={"max_moves": 0}, headers=staff())
    assert res.status_code == 422
    assert "max_moves" in str(res.json()["detail"])
    assert client.get("/v1/dispatch/move-ups", headers=staff(Role.PLANNER)).status_code == 403
    assert client.get("/v1/dispatch/move-ups").status_code == 401


def _make_hole(seeded: Engine) -> str:
    """The vans of the best-staffed station go into maintenance; returns that station."""
    with transaction(session_factory(seeded)) as db:
        by_station = Counter(v.station_id for v in db.scalars(select(m.Van)))
        hole = max(sorted(by_station), key=lambda s: by_station[s])
        db.execute(update(m.Van).where(m.Van.station_id == hole).values(status="maintenance"))
    return hole


def test_confirm_moves_the_van_logs_it_and_the_next_suggestion_counts_it(
    make_client: Callable[..., TestClient], dispatcher: dict[str, str], seeded: Engine
) -> None:
    """Confirming the suggestion puts the van's position at the hole's station (status and
    home unchanged), logs `van_moved_up`; the next suggestion counts it idle there (the
    expected coverage now equals the first answer's "after") and does not move it again;
    moving it to its own station brings it home."""
    hole = _make_hole(seeded)
    client = make_client(respect_shifts=False, travel_provider="great_circle", promise_minutes=30)
    first = client.get("/v1/dispatch/move-ups", params={"max_moves": 1}, headers=dispatcher).json()
    (s,) = first["suggestions"]
    res = client.post(
        "/v1/dispatch/move-ups/confirm",
        json={"van_id": s["van_id"], "to_station_id": s["to_station_id"]},
        headers=dispatcher,
    )
    assert res.status_code == 200, res.text
    body = res.json()
    with transaction(session_factory(seeded)) as db:
        van = db.get(m.Van, s["van_id"])
        target = db.get(m.Station, hole)
        assert van is not None and target is not None
        home = van.station_id
        assert (van.lat, van.lon, van.status) == (target.lat, target.lon, "available")
        events = list(
            db.scalars(
                select(m.Event).where(m.Event.kind == "van_moved_up", m.Event.van_id == van.id)
            )
        )
    assert body == {
        "van_id": s["van_id"], "home_station_id": home, "from_station_id": s["from_station_id"],
        "to_station_id": hole, "km": body["km"], "lat": target.lat, "lon": target.lon,
    }  # fmt: skip
    assert home == s["from_station_id"] and 0 < body["km"] <= 100 * 1.5
    assert len(events) == 1
    assert events[0].data["to_station_id"] == hole and events[0].data["home_station_id"] == home
    again = client.get("/v1/dispatch/move-ups", params={"max_moves": 1}, headers=dispatcher).json()
    assert again["expected_coverage"] == first["expected_coverage_after"]
    assert all(x["van_id"] != s["van_id"] for x in again["suggestions"])

    back = client.post(
        "/v1/dispatch/move-ups/confirm",
        json={"van_id": s["van_id"], "to_station_id": home},
        headers=dispatcher,
    )
    assert back.status_code == 200, back.text
    assert back.json()["from_station_id"] == hole and back.json()["to_station_id"] == home
    assert (
        client.get("/v1/dispatch/move-ups", params={"max_moves": 1}, headers=dispatcher).json()[
            "expected_coverage"
        ]
        == first["expected_coverage"]
    )


def test_confirm_refuses_bad_moves_and_changes_nothing(
    make_client: Callable[..., TestClient],
    dispatcher: dict[str, str],
    staff: Callable[..., dict[str, str]],
    seeded: Engine,
) -> None:
    """Unknown van or station: 404 naming it; a van in maintenance or already at the station:
    409; an unknown field: 422 naming it; a planner: 403. No van moves, no event."""
    hole = _make_hole(seeded)
    with transaction(session_factory(seeded)) as db:
        broken = next(iter(db.scalars(select(m.Van).where(m.Van.station_id == hole)))).id
        free = db.scalars(select(m.Van).where(m.Van.station_id != hole).order_by(m.Van.id)).first()
        assert free is not None
        free_id, own = free.id, free.station_id
    before = _statuses(seeded)
    client = make_client(respect_shifts=False, travel_provider="great_circle")
    post = lambda body, h=dispatcher: client.post(  # noqa: E731
        "/v1/dispatch/move-ups/confirm", json=body, headers=h
    )
    res = post({"van_id": "nope", "to_station_id": hole})
    assert res.status_code == 404 and "van nope not found" in res.json()["detail"]
    res = post({"van_id": free_id, "to_station_id": "nowhere"})
    assert res.status_code == 404 and "to_station_id" in res.json()["detail"]
    res = post({"van_id": broken, "to_station_id": own})
    assert res.status_code == 409 and "maintenance" in res.json()["detail"]
    res = post({"van_id": free_id, "to_station_id": own})
    assert res.status_code == 409 and "already at station" in res.json()["detail"]
    res = post({"van_id": free_id, "to_station_id": hole, "km": 3})
    assert res.status_code == 422 and "km" in res.json()["detail"]
    assert post({"van_id": free_id, "to_station_id": hole}, staff(Role.PLANNER)).status_code == 403
    assert _statuses(seeded) == before
    with transaction(session_factory(seeded)) as db:
        assert db.scalars(select(m.Event).where(m.Event.kind == "van_moved_up")).first() is None
        van = db.get(m.Van, free_id)
        assert van is not None and van.lat is None
