"""The data behind the dispatcher's console: candidate vans, the radius override, the
attention panel fed by the automatic cycle's recorded reasons, offline docs, place names."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.db import models as m
from api.db.engine import session_factory
from api.dispatching.reasons import UNASSIGNED_KIND
from api.security import Role
from api.site.redoc import TRANSPARENT_PIXEL
from routing.provider import get_profile
from tests.api.conftest import request_body

Headers = dict[str, str]
URUMQI = {"lat": 43.825, "lon": 87.617}
"""Far from every Shandong station: no van's radius covers it."""


def post(client: TestClient, **overrides: Any) -> dict[str, Any]:
    res = client.post("/v1/requests", json=request_body(**overrides))
    assert res.status_code == 201, res.text
    return dict(res.json())


def event_count(engine: Engine) -> int:
    with session_factory(engine)() as db:
        return int(db.scalar(select(func.count()).select_from(m.Event)) or 0)


def test_candidates_feasible_first_then_beyond_radius_then_excluded(
    client: TestClient, dispatcher: Headers, staff: Callable[[Role], Headers]
) -> None:
    """For a tractor at Jinan: feasible vans first by ETA, each with road km, ETA = free-in +
    travel, home km within its radius; vans beyond their radius next (assignable, with the
    reason naming the radius); light vans excluded as unable to handle a tractor."""
    rid = post(client, cargo=None)["id"]
    res = client.get(f"/v1/requests/{rid}/candidates?limit=60", headers=dispatcher)
    assert res.status_code == 200, res.text
    body = res.json()
    vans = body["vans"]
    assert body["request_id"] == rid and body["vehicle_class"] == "tractor"
    assert len(vans) == 60 and body["not_listed"] > 0
    feasible = [c for c in vans if c["feasible"]]
    speed_kmh = get_profile("rescue_van").speed_kmh
    beyond = [c for c in vans if c["assignable"] and not c["feasible"]]
    excluded = [c for c in vans if not c["assignable"]]
    assert feasible and beyond and excluded
    assert vans[: len(feasible)] == feasible  # feasible ones lead
    etas = [c["eta_minutes"] for c in feasible]
    assert etas == sorted(etas)
    for c in feasible:
        assert c["home_km"] <= c["service_radius_km"] and c["excluded_reason"] is None
        travel_min = c["road_km"] / speed_kmh * 60.0  # great-circle provider in these tests
        assert abs(c["eta_minutes"] - c["free_in_minutes"] - travel_min) <= 0.2
    for c in beyond:
        assert c["home_km"] > c["service_radius_km"]
        assert "beyond its 150 km service radius" in c["excluded_reason"]
        assert c["station_name"] in c["excluded_reason"]
    light = [c for c in vans if c["capability"] == "light_service_van"]
    assert light and all(c["excluded_reason"] == "light_service_van cannot handle a tractor"
                         for c in light)  # fmt: skip
    assert (
        client.get(f"/v1/requests/{rid}/candidates", headers=staff(Role.PLANNER)).status_code == 403
    )
    missing = client.get("/v1/requests/nope/candidates", headers=dispatcher)
    assert missing.status_code == 404 and missing.json()["detail"] == "request not found"


def test_candidate_busy_van_names_the_request_it_serves(
    client: TestClient, dispatcher: Headers
) -> None:
    """A van already sent to another request is listed as busy with that request's id, not
    assignable; for its own request it is the current van."""
    first = post(client, cargo=None)["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    van = client.get(f"/v1/requests/{first}", headers=dispatcher).json()["van"]["id"]
    second = post(client, cargo=None)["id"]
    listed = client.get(f"/v1/requests/{second}/candidates?limit=200", headers=dispatcher).json()
    busy = next(c for c in listed["vans"] if c["van_id"] == van)
    assert busy["excluded_reason"] == f"busy with request {first}" and not busy["assignable"]
    own = client.get(f"/v1/requests/{first}/candidates", headers=dispatcher).json()
    assert [c["van_id"] for c in own["vans"] if c["current"]] == [van]


def test_assigning_beyond_the_radius_needs_an_override_reason(
    client: TestClient, dispatcher: Headers, seeded: Engine
) -> None:
    """Without `override_reason` a van beyond its radius is refused with a 422 naming the
    field, the distance and the radius, and nothing changes; with it the van is sent and the
    reason and the home km are in the history."""
    rid = post(client, cargo=None)["id"]
    vans = client.get(f"/v1/requests/{rid}/candidates?limit=200", headers=dispatcher).json()
    far = next(c for c in vans["vans"] if c["assignable"] and not c["feasible"])
    before = event_count(seeded)
    url = f"/v1/requests/{rid}/assignment"
    refused = client.post(url, json={"van_id": far["van_id"], "reason": "x"}, headers=dispatcher)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail.startswith(f"override_reason: van {far['van_id']} is ")
    assert "beyond its 150 km service radius" in detail
    assert event_count(seeded) == before
    after = client.get(f"/v1/requests/{rid}", headers=dispatcher).json()
    assert after["status"] == "received" and after["van"] is None
    status = {v["id"]: v["status"] for v in client.get("/v1/vans", headers=dispatcher).json()}
    assert status[far["van_id"]] == "available"
    sent = client.post(
        url,
        json={"van_id": far["van_id"], "reason": "x", "override_reason": "nobody nearer"},
        headers=dispatcher,
    )
    assert sent.status_code == 200 and sent.json()["van"]["id"] == far["van_id"]
    events = client.get(f"/v1/requests/{rid}/events", headers=dispatcher).json()
    assigned = [e for e in events if e["kind"] == "van_assigned"][-1]
    assert assigned["data"]["override_reason"] == "nobody nearer"
    assert assigned["data"]["home_km"] > 150


def test_cycle_records_why_a_request_waits_once_and_attention_shows_it(
    client: TestClient, dispatcher: Headers, seeded: Engine
) -> None:
    """A request no van's radius covers: each cycle finds no van, but the reason is recorded
    once (not per cycle); the attention panel shows it, urgent, with the suggestion and the
    'choose a van' action, before anything else; once a van is sent it leaves the panel."""
    stuck = post(client, location=URUMQI, cargo=None)["id"]
    ok = post(client, cargo=None)["id"]
    for _ in range(3):
        client.post("/v1/dispatch/runs", headers=dispatcher)
    events = client.get(f"/v1/requests/{stuck}/events", headers=dispatcher).json()
    reasons = [e for e in events if e["kind"] == UNASSIGNED_KIND]
    assert len(reasons) == 1
    assert reasons[0]["data"]["reason"] == "no_van_in_radius"
    panel = client.get("/v1/attention", headers=dispatcher).json()
    items = [i for i in panel["items"] if i["request_id"] == stuck]
    assert len(items) == 1
    item = items[0]
    assert item["kind"] == "no_van" and item["urgent"] and item["action"] == "choose_van"
    assert item["title"] == "No van: no van in radius"
    assert item["detail"] == reasons[0]["data"]["suggestion"] and item["plate"] == "鲁A12345"
    assert panel["items"][0]["urgent"]
    assert ok not in {i["request_id"] for i in panel["items"]}  # a van is on its way in time
    far = client.get(f"/v1/requests/{stuck}/candidates", headers=dispatcher).json()["vans"][0]
    client.post(
        f"/v1/requests/{stuck}/assignment",
        json={"van_id": far["van_id"], "reason": "x", "override_reason": "only option"},
        headers=dispatcher,
    ).raise_for_status()
    panel = client.get("/v1/attention", headers=dispatcher).json()
    kinds = {i["kind"] for i in panel["items"] if i["request_id"] == stuck}
    assert kinds == {"late"}  # sent from Shandong to Xinjiang: far beyond the promise


def test_attention_flags_vans_late_against_the_promise(
    make_client: Callable[..., TestClient], dispatcher: Headers
) -> None:
    """With a 1-minute promise a van sent from 20 km away is late: the item says by how much
    and names the van; it is a warning, not urgent (a van is on its way)."""
    client = make_client(promise_minutes=1.0)
    rid = post(client, cargo=None, location={"lat": 36.80, "lon": 117.35})["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    van = client.get(f"/v1/requests/{rid}", headers=dispatcher).json()["van"]
    items = client.get("/v1/attention", headers=dispatcher).json()["items"]
    assert len(items) == 1
    item = items[0]
    assert item["kind"] == "late" and not item["urgent"] and item["request_id"] == rid
    assert item["title"].startswith("Late by ") and van["id"] in item["detail"]
    late_by = float(item["title"].split()[2])
    assert abs(late_by - (van["eta_minutes"] + 0.0 - 1.0)) <= 1.5


def test_attention_needs_staff(client: TestClient) -> None:
    res = client.get("/v1/attention")
    assert res.status_code == 401


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    """/docs and /redoc load their scripts and styles from the app itself (works offline)."""
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        assert "https://" not in page.text and "http://" not in page.text
        assert "/static-offline-docs/" in page.text
    js = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


def test_redoc_loads_no_logo_from_the_internet(client: TestClient) -> None:
    """ReDoc's script shows a decorative "powered by" logo from https://cdn.redoc.ly: the
    /redoc page loads the app's copy of the script, whose images are inline (a transparent
    pixel), and no image of it names an external host; the rest of the script is the
    package's, byte for byte."""
    page = client.get("/redoc")
    assert page.status_code == 200
    (src,) = re.findall(r'<script src="([^"]+)"', page.text)
    assert src == "/docs-assets/redoc.standalone.js"
    assert "https://" not in page.text and "http://" not in page.text
    served = client.get(src)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/javascript")
    original = (Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js").read_text(
        "utf-8"
    )
    assert 'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"' in original  # what it replaces
    js = served.content.decode("utf-8")
    assert re.findall(r'src:"(https?://[^"]*)"', js) == []
    assert "cdn.redoc.ly" not in js
    assert js == original.replace(
        'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', f'src:"{TRANSPARENT_PIXEL}"'
    )
    assert TRANSPARENT_PIXEL.startswith("data:image/gif;base64,")


def test_place_names_for_the_console(client: TestClient) -> None:
    """County and prefecture seats with names: the console names a breakdown at Jinan after
    the nearest seat."""
    places = client.get("/v1/geo/places").json()["places"]
    assert len(places) > 2800
    lat, lon = 36.651, 117.120
    nearest = min(places, key=lambda p: (p[0] - lat) ** 2 + (p[1] - lon) ** 2)
    assert nearest[3] == "济南市"
