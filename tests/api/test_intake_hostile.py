"""Intake isolation and plausibility: hostile bodies sent concurrently with valid ones (so they
share the intake writer's group commits) are each refused with a 4xx, never a 500, and never
cost a valid request its 201; implausible places and loose types are refused naming the field.
On SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from api import state
from api.app import create_app
from api.db import models as m
from api.db.engine import session_factory, transaction
from tests.api.conftest import app_settings, request_body

# -- hostile values: each makes a body invalid wherever it is put -----------------------------

FAR_DEADLINES = [
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00+14:00",
    "2020-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z",
]
BAD_TEXT = ["\x00", "\ud800", "a\udfffb", "x" * 5000]
BAD_NUMBERS: list[Any] = [True, False, "36.6", None, [], {}, 1e309, -1e309, 10**400, "NaN"]
OUTSIDE = [
    {"lat": 48.857, "lon": 2.352},  # Paris
    {"lat": -33.925, "lon": 18.424},  # Cape Town
    {"lat": 0.0, "lon": 0.0},
    {"lat": 90.0, "lon": 0.0},
    {"lat": -90.0, "lon": 120.0},
    {"lat": 40.713, "lon": -74.006},  # New York
    {"lat": 25.033, "lon": 121.565},  # Taipei: outside the mainland service area
]


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """A valid body with one part made hostile, serialised as the raw JSON bytes sent."""
    body = request_body()
    kind = draw(st.sampled_from(["deadline", "text", "number", "place", "extra", "shape"]))
    if kind == "deadline":
        body = _set(body, ("cargo", "deadline"), draw(st.sampled_from(FAR_DEADLINES)))
    elif kind == "text":
        path = draw(
            st.sampled_from([("customer", "name"), ("vehicle", "plate"), ("fault", "description")])
        )
        body = _set(body, path, "鲁A" + draw(st.sampled_from(BAD_TEXT)))
    elif kind == "number":
        path = draw(
            st.sampled_from(
                [
                    ("location", "lat"),
                    ("location", "lon"),
                    ("cargo", "weight_t"),
                    ("cargo", "destination", "lat"),
                ]
            )
        )
        body = _set(body, path, draw(st.sampled_from(BAD_NUMBERS)))
    elif kind == "place":
        where = draw(st.sampled_from([("location",), ("cargo", "destination")]))
        body = _set(body, where, draw(st.sampled_from(OUTSIDE)))
    elif kind == "extra":
        body = _set(body, ("customer", draw(st.sampled_from(["id", "role", "lat"]))), 1)
    else:
        body = _set(
            body, (draw(st.sampled_from(["location", "cargo", "fault"])),), draw(st.integers())
        )
    # json.dumps escapes lone surrogates (\ud800), writes 1e309 as Infinity and big ints
    # exactly: the server sees them as a client would send them.
    return json.dumps(body).encode()


def stored_count(engine: Engine) -> int:
    with transaction(session_factory(engine)) as db:
        return int(db.scalar(select(func.count()).select_from(m.RescueRequest)) or 0)


async def post_mixed(app: Any, valid: list[bytes], hostile: list[bytes]) -> list[httpx.Response]:
    """All bodies at once, valid and hostile interleaved (one group commit takes several)."""
    mixed = [b for pair in zip(valid, hostile, strict=False) for b in pair]
    mixed += valid[len(hostile) :] + hostile[len(valid) :]
    transport = httpx.ASGITransport(app=app)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(
            *(client.post("/v1/requests", content=b, headers=headers) for b in mixed)
        )


def test_hostile_bodies_never_fail_valid_ones(seeded: Engine, db_url: str) -> None:
    """Property: for any mix of hostile and valid bodies posted together, every valid one is
    stored (201), every hostile one is refused with 400 or 422 naming the problem, none
    gets a 5xx, and exactly the valid ones are stored."""
    app = create_app(app_settings(db_url), engine=seeded)
    valid_json = json.dumps(request_body()).encode()

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(hostile=st.lists(hostile_bodies(), min_size=1, max_size=8), valid=st.integers(1, 8))
    def check(hostile: list[bytes], valid: int) -> None:
        before = stored_count(seeded)
        responses = asyncio.run(post_mixed(app, [valid_json] * valid, hostile))
        codes = sorted(r.status_code for r in responses)
        assert all(c < 500 for c in codes), [r.text for r in responses if r.status_code >= 500]
        assert codes.count(201) == valid, [r.text for r in responses if r.status_code != 201]
        refused = [r for r in responses if r.status_code != 201]
        assert len(refused) == len(hostile)
        assert all(r.status_code in (400, 422) and r.json()["detail"] for r in refused)
        assert stored_count(seeded) == before + valid

    try:
        check()
    finally:
        state.get_intake_writer(app).stop()


# -- the findings, one by one ----------------------------------------------------------------

PLACES = [
    ("location", {"lat": 48.857, "lon": 2.352}),
    ("location", {"lat": -33.925, "lon": 18.424}),
    ("location", {"lat": 0.0, "lon": 0.0}),
    ("location", {"lat": 90.0, "lon": 0.0}),
    ("location", {"lat": -90.0, "lon": 0.0}),
    ("cargo.destination", {"lat": 40.713, "lon": -74.006}),
]


@pytest.mark.parametrize(("field", "point"), PLACES)
def test_places_outside_the_service_area_are_refused(
    client: TestClient, seeded: Engine, field: str, point: dict[str, float]
) -> None:
    """Paris, Cape Town, (0, 0), the poles and a New York cargo destination: 422 naming the
    field and saying where service is available; the coordinates are not echoed."""
    body = request_body()
    if field == "location":
        body["location"] = point
    else:
        body["cargo"]["destination"] = point
    r = client.post("/v1/requests", json=body)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": field,
            "message": "outside the service area: service is available in mainland China",
        }
    ]
    assert str(point["lat"]) not in r.text
    assert stored_count(seeded) == 0


@pytest.mark.parametrize(
    "point",
    [
        {"lat": 36.067, "lon": 120.383},  # Qingdao, on the coast
        {"lat": 18.252, "lon": 109.512},  # Sanya, Hainan
        {"lat": 43.825, "lon": 87.617},  # Urumqi
        {"lat": 36, "lon": 117},  # integers are numbers
    ],
)
def test_places_in_mainland_china_are_accepted(client: TestClient, point: dict[str, float]) -> None:
    r = client.post("/v1/requests", json=request_body(location=point))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("location", "lat"), True),
        (("location", "lat"), "36.6"),
        (("location", "lon"), False),
        (("cargo", "weight_t"), "28"),
        (("cargo", "destination", "lon"), True),
    ],
)
def test_numbers_are_never_coerced(
    client: TestClient, seeded: Engine, path: tuple[str, ...], value: Any
) -> None:
    """``"lat": true`` was stored as 1.0 and ``"lat": "36.6"`` coerced: both are 422 now."""
    r = client.post("/v1/requests", json=_set(request_body(), path, value))
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": ".".join(path), "message": "Input should be a valid number"}
    ]
    assert stored_count(seeded) == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            b'{"customer": {"name": "a", "name": "b", "phone": "13800000000"}}',
            "an object repeats a key",
        ),
        (b'{"location": {"lat": NaN, "lon": 117}}', "NaN is not a JSON number"),
        (b'{"location": {"lat": 36.6, "lon": Infinity}}', "Infinity is not a JSON number"),
        (b'{"customer": {"name": "\xff"}}', "not UTF-8"),
    ],
)
def test_ambiguous_json_is_400(client: TestClient, seeded: Engine, raw: bytes, reason: str) -> None:
    """Repeated keys (the parser used to keep the last one silently), NaN / Infinity literals
    and non-UTF-8 bytes are malformed JSON: 400 saying why."""
    r = client.post("/v1/requests", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("malformed JSON body: ") and reason in r.text
    assert stored_count(seeded) == 0


def test_far_deadline_is_422_not_a_storage_error(client: TestClient, seeded: Engine) -> None:
    """9999-12-31T23:59:59-12:00 used to pass validation and overflow at the insert."""
    body = _set(request_body(), ("cargo", "deadline"), "9999-12-31T23:59:59-12:00")
    r = client.post("/v1/requests", json=body)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "cargo.deadline", "message": "the deadline is more than 366 days ahead"}
    ]


def test_deadline_is_stored_in_utc(client: TestClient, dispatcher: dict[str, str]) -> None:
    body = _set(request_body(), ("cargo", "deadline"), "2027-06-01T18:00:00+08:00")
    created = client.post("/v1/requests", json=body).json()
    view = client.get(f"/v1/requests/{created['id']}", headers=dispatcher).json()
    assert view["cargo"]["deadline"] == "2027-06-01T10:00:00Z"


def test_chunked_body_over_the_limit_is_413(
    make_client: Callable[..., TestClient], seeded: Engine
) -> None:
    """A body without Content-Length (chunked) over RESCUE_MAX_BODY_BYTES used to get 400."""
    client = make_client(max_body_bytes=4096)

    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1024

    r = client.post("/v1/requests", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413
    assert r.json() == {"detail": "request body too large: the limit is 4096 bytes"}
    assert stored_count(seeded) == 0
