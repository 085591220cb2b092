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
