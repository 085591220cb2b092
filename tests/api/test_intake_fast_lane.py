"""The intake fast lane (``api/requests/fast_lane.py``): a valid hot-path intake answered
without FastAPI's routing stores and answers exactly what the route does; everything it cannot
answer the same way reaches the app untouched; the rate limit counts each intake once; errors
past validation get the app's own answers. On SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.errors import PARSED_JSON_KEY
from api.requests.fast_lane import IntakeFastLane
from tests.api.conftest import request_body

# The route itself (not the lane) answers a JSON body sent as application/problem+json: FastAPI
# reads any +json type as JSON, the lane only application/json.
VIA_ROUTE = {"Content-Type": "application/problem+json"}
VIA_LANE = {"Content-Type": "application/json"}

SKIP = {"id", "created_at", "updated_at", "tracking_token_hash"}


def _post(client: TestClient, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post("/v1/requests", content=json.dumps(body).encode(), headers=headers)


def _stored(engine: Engine, request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with transaction(session_factory(engine)) as db:
        row = db.get(m.RescueRequest, request_id)
        assert row is not None
        event = db.scalars(select(m.Event).where(m.Event.request_id == request_id)).one()
        values = {c.key: getattr(row, c.key) for c in m.RescueRequest.__table__.columns}
        return (
            {k: v for k, v in values.items() if k not in SKIP},
            {"kind": event.kind, "actor": event.actor, "data": event.data},
        )


@pytest.mark.parametrize(
    "overrides",
    [{}, {"cargo": None}, {"fault": {"description": "no code: unknown fault"}}],
    ids=["cargo", "no-cargo", "no-fault-code"],
)
def test_the_lane_stores_and_answers_what_the_route_does(
    client: TestClient, seeded: Engine, overrides: dict[str, Any]
) -> None:
    body = request_body(**overrides)
    lane, route = _post(client, body, VIA_LANE), _post(client, body, VIA_ROUTE)
    assert lane.status_code == route.status_code == 201
    assert lane.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert len(lane.headers["x-request-id"]) == 32
    a, b = lane.json(), route.json()
    assert a.keys() == b.keys() == {"id", "status", "tracking_token", "created_at", "estimate"}
    assert a["estimate"] == b["estimate"] and a["status"] == b["status"] == "received"
    assert a["id"] != b["id"]
    assert _stored(seeded, a["id"]) == _stored(seeded, b["id"])
    # The lane's tracking token opens its request, as the route's does.
    tracked = client.get(
        f"/v1/requests/{a['id']}", headers={"Authorization": f"Bearer {a['tracking_token']}"}
    )
    assert tracked.status_code == 200 and tracked.json()["id"] == a["id"]


def test_an_unknown_fault_code_gets_the_routes_422(client: TestClient) -> None:
    """An error past validation (triage refuses the code) is answered by the app's handler."""
    body = request_body(fault={"code": "WARP_CORE_BREACH", "description": "x"})
    lane, route = _post(client, body, VIA_LANE), _post(client, body, VIA_ROUTE)
    assert lane.status_code == route.status_code == 422
    assert lane.json() == route.json()
    assert lane.json()["errors"][0]["field"] == "fault.code"


def test_the_rate_limit_counts_each_intake_once(make_client: Callable[..., TestClient]) -> None:
    """Limit 2: an invalid body (handed to the app, counted there) and a valid one (counted in
    the lane) use the budget; the third is refused. Counting an intake twice would refuse the
    second; not counting in the lane would accept the third."""
    client = make_client(rate_limit_per_minute=2)
    invalid = _post(client, request_body(location={"lat": 48.857, "lon": 2.352}), VIA_LANE)
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "location"
    assert _post(client, request_body(), VIA_LANE).status_code == 201
    refused = _post(client, request_body(), VIA_LANE)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "too many requests from this address: at most 2 per minute"}
    assert int(refused.headers["Retry-After"]) >= 1


# -- what the lane hands to the app ------------------------------------------------------------


def _scope(app: Any, body: dict[str, Any] | None, **changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/requests",
        "raw_path": b"/v1/requests",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "app": app,
    }
    if body is not None:
        scope[PARSED_JSON_KEY] = body
    scope.update(changes)
    return scope


def _through_lane(app: Any, scope: dict[str, Any]) -> tuple[list[str], list[int]]:
    """Run ``scope`` through a lane whose inner app only records that it was reached; the
    statuses the lane itself sent."""
    reached: list[str] = []
    sent: list[int] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    asyncio.run(IntakeFastLane(inner)(scope, receive, send))
    return reached, sent


def test_the_lane_answers_a_valid_hot_path_intake_itself(client: TestClient) -> None:
    assert _through_lane(client.app, _scope(client.app, request_body())) == ([], [201])


@pytest.mark.parametrize(
    ("case", "body", "changes"),
    [
        ("get", request_body(), {"method": "GET"}),
        ("other path", request_body(), {"path": "/v1/requests/x"}),
        ("mounted under a root path", request_body(), {"root_path": "/api"}),
        ("a query string", request_body(), {"query_string": b"x=1"}),
        (
            "an Idempotency-Key",
            request_body(),
            {"headers": [(b"content-type", b"application/json"), (b"idempotency-key", b"k1")]},
        ),
        ("no content type", request_body(), {"headers": []}),
        ("text/plain", request_body(), {"headers": [(b"content-type", b"text/plain")]}),
        ("nothing parsed by the guard", None, {}),
        ("not an object", None, {PARSED_JSON_KEY: [request_body()]}),
        ("invalid", request_body(location={"lat": 0.0, "lon": 0.0}), {}),
        ("unknown field", {**request_body(), "extra": 1}, {}),
        (
            "a designated station",
            request_body(
                vehicle={"plate": "鲁A1", "vehicle_class": "tractor", "designated_station_id": "X"}
            ),
            {},
        ),
    ],
)
def test_the_lane_hands_over_what_it_cannot_answer_the_same_way(
    client: TestClient, case: str, body: dict[str, Any] | None, changes: dict[str, Any]
) -> None:
    reached, sent = _through_lane(client.app, _scope(client.app, body, **changes))
    assert (reached, sent) == ([changes.get("path", "/v1/requests")], []), case
