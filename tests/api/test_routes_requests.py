"""Routes of the customer and dispatcher API: happy paths and every error path, on SQLite and
(when available) PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.kpis.service import live_kpis
from api.requests import service as svc
from api.requests.intake import create_request
from api.schemas import KpiRead, RequestCreate
from api.security import Role
from dispatch import RequestStatus, estimate_repair
from dispatch.triage import TriageContext
from fleet import build_national_network
from routing import GreatCircleProvider
from tests.api.conftest import request_body

Headers = dict[str, str]


def count(engine: Engine, model: type[m.Base]) -> int:
    with transaction(session_factory(engine)) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def post(client: TestClient, **overrides: Any) -> dict[str, Any]:
    r = client.post("/v1/requests", json=request_body(**overrides))
    assert r.status_code == 201, r.text
    return dict(r.json())


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def accept_truck_offers(
    client: TestClient, run: dict[str, Any], partner: Callable[..., Headers]
) -> list[dict[str, Any]]:
    """Each truck offer of a dispatch run accepted by its partner at the proposed ETA: the
    bookings (request and truck) the cycle used to make on its own."""
    out = []
    for o in run["offered"]:
        if o["kind"] != "truck":
            continue
        r = client.post(
            f"/v1/partner/offers/{o['offer_id']}/accept",
            json={"eta_minutes": max(1.0, o["proposed_eta_minutes"])},
            headers=partner(partner_id=o["partner_id"]),
        )
        assert r.status_code == 200, r.text
        out.append({"request_id": o["request_id"], "truck_id": o["truck_id"]})
    return out


# -- intake ----------------------------------------------------------------------------------


def test_create_stores_request_event_and_triage(client: TestClient, seeded: Engine) -> None:
    """201 with id, status received, a tracking token shown once (only its hash stored) and
    the catalogue estimate of dispatch.triage with the workshop the vehicle would be towed to
    (Jinan's AAA station, 0.5 km away: 0.5 h hook-up + 0.01 h, rounded to 0.1 h); the first event
    is stored with the request."""
    body = post(client)
    assert body["status"] == "received" and body["tracking_token"].startswith("trk_")
    jinan = build_national_network().station_by_id["AAA-370100"]
    context = TriageContext(workshop_station=jinan, tow_leg_hours=0.5)
    expected = estimate_repair("ENGINE_NO_START", "tractor", context)
    assert body["estimate"]["expected_repair_hours"] == pytest.approx(expected.expected_hours)
    assert body["estimate"]["needs_replacement"] is False
    with transaction(session_factory(seeded)) as db:
        row = db.get(m.RescueRequest, body["id"])
        assert row is not None and row.province_adcode == "370000"
        assert body["tracking_token"] not in row.tracking_token_hash
        kinds = db.scalars(select(m.Event.kind).where(m.Event.request_id == body["id"])).all()
    assert kinds == ["request_received"]


def test_replacement_is_decided_at_intake(client: TestClient) -> None:
    """A fault whose expected repair exceeds the 24 h threshold (ENGINE_MAJOR, 48.7 h) with
    cargo needs a replacement from the start; the same fault without cargo does not."""
    fault = {"code": "ENGINE_MAJOR", "description": "knocking, oil pressure lost"}
    with_cargo = post(client, fault=fault)
    assert with_cargo["estimate"]["needs_replacement"] is True
    assert with_cargo["estimate"]["expected_repair_hours"] > 24
    without = post(client, fault=fault, cargo=None)
    assert without["estimate"]["needs_replacement"] is False


BAD_INPUT = [
    ({"location": {"lat": 95, "lon": 117.1}}, "location.lat", "less than or equal to 90"),
    (
        {"vehicle": {"plate": "鲁A1", "vehicle_class": "spaceship"}},
        "vehicle.vehicle_class",
        "tractor",
    ),
    (
        {"cargo": {"weight_t": -3, "destination": {"lat": 31.2, "lon": 121.4}}},
        "cargo.weight_t",
        "greater than 0",
    ),
    (
        {
            "cargo": {
                "weight_t": 3,
                "destination": {"lat": 31.2, "lon": 121.4},
                "deadline": "2020-01-01T00:00:00+08:00",
            }
        },
        "cargo.deadline",
        "in the past",
    ),
    ({"fault": {"code": "WARP_CORE", "description": "x"}}, "fault.code", "unknown fault code"),
    ({"customer": {"name": "张伟", "phone": "call me"}}, "customer.phone", "pattern"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    (
        {"vehicle": {"plate": "鲁A\u00001", "vehicle_class": "tractor"}},
        "vehicle.plate",
        "NUL character",
    ),
]


@pytest.mark.parametrize(("override", "field", "reason"), BAD_INPUT)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, seeded: Engine, override: dict[str, Any], field: str, reason: str
) -> None:
    """Each invalid field gets a 422 whose detail names the field and the reason; nothing is
    stored."""
    r = client.post("/v1/requests", json=request_body(**override))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"{field}: " in detail and reason in detail
    assert count(seeded, m.RescueRequest) == 0


def test_malformed_json_is_400_and_huge_body_413(client: TestClient, seeded: Engine) -> None:
    """Malformed JSON is a 400 naming the problem; a 10 MB body is refused with 413 before it
    is parsed; nothing is stored."""
    bad = client.post(
        "/v1/requests", content=b'{"customer": ', headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["detail"].startswith("malformed JSON body")
    huge = json.dumps({**request_body(), "pad": "x" * (10 * 1024 * 1024)}).encode()
    r = client.post("/v1/requests", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert count(seeded, m.RescueRequest) == 0


def test_idempotency_key_replays_or_conflicts(client: TestClient, seeded: Engine) -> None:
    """The same key and body return the same request (one row, replay header, the same
    tracking token, and both copies open it); the same key with another body is a 409."""
    key = {"Idempotency-Key": "call-42"}
    body = request_body()
    first = client.post("/v1/requests", json=body, headers=key)
    again = client.post("/v1/requests", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["tracking_token"] == first.json()["tracking_token"]
    assert count(seeded, m.RescueRequest) == 1
    rid = first.json()["id"]
    for answer in (first, again):
        token = answer.json()["tracking_token"]
        assert client.get(f"/v1/requests/{rid}", headers=bearer(token)).is_success
    other = request_body(location={"lat": 36.0, "lon": 117.0})
    conflict = client.post("/v1/requests", json=other, headers=key)
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.json()["detail"]
    assert count(seeded, m.RescueRequest) == 1


def test_concurrent_replays_all_return_a_working_token(client: TestClient, seeded: Engine) -> None:
    """30 identical requests with one Idempotency-Key at once: one request is stored and every
    one of the 30 answers carries the same tracking token, which opens it."""
    key = {"Idempotency-Key": "storm-30"}
    body = request_body()
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: client.post("/v1/requests", json=body, headers=key), range(30))
        )
    assert [a.status_code for a in answers] == [201] * 30
    assert count(seeded, m.RescueRequest) == 1
    assert len({a.json()["id"] for a in answers}) == 1
    tokens = {a.json()["tracking_token"] for a in answers}
    assert len(tokens) == 1
    rid = answers[0].json()["id"]
    assert client.get(f"/v1/requests/{rid}", headers=bearer(tokens.pop())).is_success


def test_tracking_tokens_survive_a_restart_with_the_stored_secret(
    make_client: Callable[..., TestClient], seeded: Engine
) -> None:
    """Without RESCUE_TOKEN_SECRET the secret is generated once and stored: a second app on the
    same database (another process, or a restart) derives the same token on replay."""
    key = {"Idempotency-Key": "restart-1"}
    body = request_body()
    first = make_client().post("/v1/requests", json=body, headers=key)
    again = make_client().post("/v1/requests", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["tracking_token"] == first.json()["tracking_token"]
    with transaction(session_factory(seeded)) as db:
        assert len(db.scalars(select(m.ServerSecret)).all()) == 1


def test_rate_limit_per_address(make_client: Callable[..., TestClient]) -> None:
    """Beyond RESCUE_RATE_LIMIT_PER_MINUTE posts from one address get 429 with Retry-After."""
    client = make_client(rate_limit_per_minute=2)
    assert [post(client)["status"] for _ in range(2)] == ["received", "received"]
    r = client.post("/v1/requests", json=request_body())
    assert r.status_code == 429 and "at most 2 per minute" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1


def test_secrets_and_phone_numbers_stay_out_of_logs(
    client: TestClient, dispatcher: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    """Intake, tracking and staff calls log neither tokens nor the customer's phone."""
    caplog.set_level(logging.DEBUG)
    body = post(client)
    client.get(f"/v1/requests/{body['id']}", headers=bearer(body["tracking_token"]))
    client.post("/v1/dispatch/runs", headers=dispatcher)
    client.get("/v1/requests", headers={"Authorization": "Bearer rsk_wrong"})
    text = caplog.text
    assert body["tracking_token"] not in text
    assert dispatcher["Authorization"].split()[1] not in text and "rsk_wrong" not in text
    assert "13800000000" not in text


# -- tracking --------------------------------------------------------------------------------


def test_tracking_token_opens_only_its_request(client: TestClient, dispatcher: Headers) -> None:
    """The tracking token shows its request (name and phone masked); another request is a
    403; no token 401; a bad staff token 401; staff see everything; unknown id 404."""
    a, b = post(client), post(client)
    mine = client.get(f"/v1/requests/{a['id']}", headers=bearer(a["tracking_token"]))
    assert mine.status_code == 200
    assert mine.json()["customer"] == {"name": "张**", "phone": "138****0000"}
    other = client.get(f"/v1/requests/{b['id']}", headers=bearer(a["tracking_token"]))
    assert other.status_code == 403
    assert client.get(f"/v1/requests/{a['id']}").status_code == 401
    assert client.get(f"/v1/requests/{a['id']}", headers=bearer("rsk_x")).status_code == 401
    staff_view = client.get(f"/v1/requests/{a['id']}", headers=dispatcher).json()
    assert staff_view["customer"]["phone"] == "13800000000"
    missing = client.get("/v1/requests/nope", headers=dispatcher)
    assert missing.status_code == 404 and missing.json() == {"detail": "request not found"}


@pytest.mark.parametrize("path", ["/v1/requests/{id}", "/v1/requests/{id}/cancel"])
def test_ids_cannot_be_probed_without_a_valid_token(client: TestClient, path: str) -> None:
    """Authentication comes before existence: any bearer string gets the same status and body
    for an existing request id as for an unknown one (403 for a tracking-looking token, 401
    for anything else); the input is never echoed."""
    a = post(client)
    method = client.post if path.endswith("cancel") else client.get
    kwargs: dict[str, Any] = {"json": {}} if path.endswith("cancel") else {}
    for token, code in (("trk_guess", 403), ("rsk_guess", 401), ("anything", 401)):
        known = method(path.format(id=a["id"]), headers=bearer(token), **kwargs)
        unknown = method(path.format(id="no-such-id"), headers=bearer(token), **kwargs)
        assert known.status_code == unknown.status_code == code, (token, known.text)
        assert known.json() == unknown.json()
        assert token not in known.text and "no-such-id" not in unknown.text


def test_customer_sees_van_eta_and_truck_etas(
    client: TestClient, dispatcher: Headers, scoped_token: Callable[..., Headers]
) -> None:
    """After dispatch the tracking view shows the van with its ETA (timestamp and minutes);
    after a long diagnosis and the next cycle, 'looking for a partner' while the truck is
    offered; once its partner accepts, the truck with pickup and delivery ETAs."""
    body = post(client)
    client.post("/v1/dispatch/runs", headers=dispatcher)
    view = client.get(f"/v1/requests/{body['id']}", headers=bearer(body["tracking_token"])).json()
    assert view["status"] == "assigned" and view["van"]["eta_at"] is not None
    assert 0 <= view["van"]["eta_minutes"] < 120
    for status in ("en_route", "on_site"):
        client.post(
            f"/v1/requests/{body['id']}/status", json={"status": status}, headers=dispatcher
        )
    client.post(
        f"/v1/requests/{body['id']}/diagnosis",
        json={"estimated_repair_hours": 30},
        headers=dispatcher,
    )
    run = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    assert run["booked"] == [] and [o["kind"] for o in run["offered"]] == ["truck"]
    view = client.get(f"/v1/requests/{body['id']}", headers=bearer(body["tracking_token"])).json()
    assert view["status"] == "awaiting_replacement" and view["replacement"] is None
    assert view["partner"] == {
        "kind": "truck",
        "status": "looking_for_partner",
        "partner_name": "",
        "eta_at": None,
    }
    offer = run["offered"][0]
    accepted = client.post(
        f"/v1/partner/offers/{offer['offer_id']}/accept",
        json={"eta_minutes": 45},
        headers=scoped_token(partner_id=offer["partner_id"]),
    )
    assert accepted.status_code == 200, accepted.text
    view = client.get(f"/v1/requests/{body['id']}", headers=bearer(body["tracking_token"])).json()
    assert view["status"] == "replacement_assigned" and view["van"] is None
    assert view["partner"] is None
    rep = view["replacement"]
    assert rep["truck_type"] == "tractor" and rep["capacity_t"] >= 28
    assert rep["pickup_eta_at"] < rep["delivery_eta_at"] and rep["cost_cny"] is None


# -- dispatcher ------------------------------------------------------------------------------


def test_queue_needs_staff_and_filters(
    client: TestClient, staff: Callable[[Role], Headers], dispatcher: Headers
) -> None:
    """The queue: 401 without a token, open to planners, filtered by status (repeatable) and
    by open; an unknown status is a 422 naming the parameter."""
    a, b = post(client), post(client)
    client.post(f"/v1/requests/{b['id']}/cancel", json={"reason": "test"}, headers=dispatcher)
    assert client.get("/v1/requests").status_code == 401
    planner = staff(Role.PLANNER)
    every = client.get("/v1/requests", headers=planner).json()
    assert [r["id"] for r in every] == [a["id"], b["id"]]
    received = client.get("/v1/requests", params={"status": "received"}, headers=planner).json()
    assert [r["id"] for r in received] == [a["id"]]
    both = client.get(
        "/v1/requests", params=[("status", "received"), ("status", "cancelled")], headers=planner
    ).json()
    assert len(both) == 2
    assert [r["id"] for r in client.get("/v1/requests?open=true", headers=planner).json()] == [
        a["id"]
    ]
    bad = client.get("/v1/requests", params={"status": "lost"}, headers=planner)
    assert bad.status_code == 422 and "query parameter status" in bad.json()["detail"]


def test_dispatch_run_assigns_and_explains(
    client: TestClient, staff: Callable[[Role], Headers], dispatcher: Headers
) -> None:
    """A run assigns the Jinan breakdown to a van (with ETA and event) and explains the one
    in Xinjiang (no van of the Shandong network in radius); planners may not run it."""
    jinan = post(client)
    far = post(client, location={"lat": 43.8, "lon": 87.6}, cargo=None)
    assert client.post("/v1/dispatch/runs", headers=staff(Role.PLANNER)).status_code == 403
    assert client.post("/v1/dispatch/runs").status_code == 401
    run = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    assert run["ran"] is True and run["open_requests"] == 2
    assert [a["request_id"] for a in run["assigned"]] == [jinan["id"]]
    assert run["assigned"][0]["eta_minutes"] < 60
    assert [(u["request_id"], u["reason"]) for u in run["unassigned"]] == [
        (far["id"], "no_van_in_radius")
    ]
    events = client.get(f"/v1/requests/{jinan['id']}/events", headers=dispatcher).json()
    assert [e["kind"] for e in events] == ["request_received", "van_assigned"]
    assert events[1]["van_id"] == run["assigned"][0]["van_id"]
    again = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    assert again["assigned"] == [] and len(again["unassigned"]) == 1


def test_lifecycle_transitions_and_errors(client: TestClient, dispatcher: Headers) -> None:
    """Transitions follow dispatch.lifecycle; invalid moves are 409s naming both states;
    'assigned' is only reachable through an assignment; closing releases the van."""
    body = post(client, cargo=None)
    rid = body["id"]
    url = f"/v1/requests/{rid}/status"
    no_van = client.post(url, json={"status": "en_route"}, headers=dispatcher)
    assert no_van.status_code == 409 and "invalid transition received -> en_route" in no_van.text
    via = client.post(url, json={"status": "assigned"}, headers=dispatcher)
    assert via.status_code == 409 and "/assignment" in via.json()["detail"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    van_id = client.get(f"/v1/requests/{rid}", headers=dispatcher).json()["van"]["id"]
    for status in ("en_route", "on_site", "repaired"):
        r = client.post(url, json={"status": status}, headers=dispatcher)
        assert r.status_code == 200 and r.json()["status"] == status
    vans = {v["id"]: v for v in client.get("/v1/vans", headers=dispatcher).json()}
    assert vans[van_id]["status"] == "available" and vans[van_id]["lat"] == pytest.approx(36.651)
    bad = client.post(url, json={"status": "on_site"}, headers=dispatcher)
    assert bad.status_code == 409 and "allowed: closed" in bad.json()["detail"]
    unknown = client.post(url, json={"status": "flying"}, headers=dispatcher)
    assert unknown.status_code == 422 and "status" in unknown.json()["detail"]
    assert client.post(url, json={"status": "closed"}, headers=dispatcher).json()["status"] == (
        "closed"
    )
    assert client.post("/v1/requests/nope/status", json={"status": "closed"},
                       headers=dispatcher).status_code == 404  # fmt: skip


def test_diagnosis_over_threshold_triggers_replacement(
    client: TestClient, dispatcher: Headers, scoped_token: Callable[..., Headers]
) -> None:
    """On site, a diagnosis over 24 h moves the request to awaiting_replacement, the next
    cycle offers a fitting truck, its partner accepts; cargo transferred, delivered (truck
    released at the destination), closed; a diagnosis on the closed request is a 409 naming
    its status."""
    rid = post(client)["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    for status in ("en_route", "on_site"):
        client.post(f"/v1/requests/{rid}/status", json={"status": status}, headers=dispatcher)
    d = client.post(
        f"/v1/requests/{rid}/diagnosis", json={"estimated_repair_hours": 30}, headers=dispatcher
    )
    assert d.status_code == 200 and d.json()["status"] == "awaiting_replacement"
    assert d.json()["estimate"]["source"] == "diagnosis"
    run = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    booked = accept_truck_offers(client, run, scoped_token)
    assert [b["request_id"] for b in booked] == [rid]
    truck_id = booked[0]["truck_id"]
    for status in ("replacement_assigned", "cargo_transferred", "delivered", "closed"):
        if status == "replacement_assigned":
            got = client.get(f"/v1/requests/{rid}", headers=dispatcher).json()["status"]
            assert got == status
            continue
        r = client.post(f"/v1/requests/{rid}/status", json={"status": status}, headers=dispatcher)
        assert r.status_code == 200, r.text
    trucks = {t["id"]: t for t in client.get("/v1/replacement-trucks", headers=dispatcher).json()}
    assert trucks[truck_id]["status"] == "available"
    closed = client.post(
        f"/v1/requests/{rid}/diagnosis", json={"estimated_repair_hours": 2}, headers=dispatcher
    )
    assert closed.status_code == 409 and "is closed" in closed.json()["detail"]
    neg = client.post(
        f"/v1/requests/{rid}/diagnosis", json={"estimated_repair_hours": -1}, headers=dispatcher
    )
    assert neg.status_code == 422 and "estimated_repair_hours" in neg.json()["detail"]


def test_diagnosis_within_threshold_releases_booking(
    client: TestClient, dispatcher: Headers, scoped_token: Callable[..., Headers]
) -> None:
    """A request booked at intake (ENGINE_MAJOR) whose diagnosis is short releases the truck."""
    rid = post(client, fault={"code": "ENGINE_MAJOR", "description": "x"})["id"]
    run = client.post("/v1/dispatch/runs", headers=dispatcher).json()
    assert [b["request_id"] for b in accept_truck_offers(client, run, scoped_token)] == [rid]
    d = client.post(
        f"/v1/requests/{rid}/diagnosis", json={"estimated_repair_hours": 3}, headers=dispatcher
    ).json()
    assert d["estimate"]["needs_replacement"] is False and d["replacement"] is None


def test_manual_assignment_and_override(client: TestClient, dispatcher: Headers) -> None:
    """A dispatcher assigns a van with a reason, then overrides it: the first van is released,
    the override and its reason are in the history. Busy, incapable or unknown vans and a
    missing reason are refused."""
    rid = post(client, cargo=None)["id"]
    other = post(client, cargo=None)["id"]
    vans = client.get("/v1/vans", headers=dispatcher).json()
    heavy = [v["id"] for v in vans if v["capability"] == "heavy_service_van"]
    light = [v["id"] for v in vans if v["capability"] == "light_service_van"]
    url = f"/v1/requests/{rid}/assignment"
    first = client.post(url, json={"van_id": heavy[0], "reason": "nearest"}, headers=dispatcher)
    assert first.status_code == 200 and first.json()["van"]["source"] == "manual"
    second = client.post(url, json={"van_id": heavy[1], "reason": "VIP"}, headers=dispatcher)
    assert second.json()["van"]["id"] == heavy[1] and second.json()["van"]["reason"] == "VIP"
    events = client.get(f"/v1/requests/{rid}/events", headers=dispatcher).json()
    override = [e for e in events if e["kind"] == "assignment_override"]
    assert override[0]["data"]["previous_van_id"] == heavy[0]
    assert override[0]["data"]["reason"] == "VIP"
    status = {v["id"]: v["status"] for v in client.get("/v1/vans", headers=dispatcher).json()}
    assert status[heavy[0]] == "available" and status[heavy[1]] == "assigned"
    busy = client.post(
        f"/v1/requests/{other}/assignment", json={"van_id": heavy[1], "reason": "x"},
        headers=dispatcher,
    )  # fmt: skip
    assert busy.status_code == 409 and f"assigned to request {rid}" in busy.json()["detail"]
    weak = client.post(
        f"/v1/requests/{other}/assignment", json={"van_id": light[0], "reason": "x"},
        headers=dispatcher,
    )  # fmt: skip
    assert weak.status_code == 409 and "cannot handle a tractor" in weak.json()["detail"]
    ghost = client.post(url, json={"van_id": "V-nope", "reason": "x"}, headers=dispatcher)
    assert ghost.status_code == 404
    silent = client.post(url, json={"van_id": heavy[2]}, headers=dispatcher)
    assert silent.status_code == 422 and "reason: Field required" in silent.json()["detail"]


def test_cancel_by_customer_and_dispatcher(
    client: TestClient, dispatcher: Headers, staff: Callable[[Role], Headers]
) -> None:
    """The customer cancels with the tracking token (the van is released); cancelling twice
    is a 409; another request's token is a 403; planners may not cancel."""
    body = post(client)
    client.post("/v1/dispatch/runs", headers=dispatcher)
    van = client.get(f"/v1/requests/{body['id']}", headers=dispatcher).json()["van"]["id"]
    url = f"/v1/requests/{body['id']}/cancel"
    other = post(client)
    assert client.post(url, json={}, headers=bearer(other["tracking_token"])).status_code == 403
    assert client.post(url, json={}, headers=staff(Role.PLANNER)).status_code == 403
    done = client.post(url, json={"reason": "fixed it"}, headers=bearer(body["tracking_token"]))
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    status = {v["id"]: v["status"] for v in client.get("/v1/vans", headers=dispatcher).json()}
    assert status[van] == "available"
    twice = client.post(url, json={}, headers=dispatcher)
    assert twice.status_code == 409 and "cancelled -> cancelled" in twice.json()["detail"]


def test_van_position(
    client: TestClient, dispatcher: Headers, staff: Callable[[Role], Headers]
) -> None:
    """A position report is stored with an event; a van holding a request cannot go off
    shift; bad coordinates 422; unknown van 404; planners 403."""
    van = client.get("/v1/vans", headers=dispatcher).json()[0]["id"]
    url = f"/v1/vans/{van}/position"
    r = client.put(url, json={"lat": 36.7, "lon": 117.0, "status": "off_shift"}, headers=dispatcher)
    assert r.status_code == 200 and r.json()["status"] == "off_shift" and r.json()["lat"] == 36.7
    r = client.put(url, json={"lat": 36.7, "lon": 117.0, "status": "available"}, headers=dispatcher)
    assert r.json()["status"] == "available"
    rid = post(client, cargo=None)["id"]
    client.post(
        f"/v1/requests/{rid}/assignment", json={"van_id": van, "reason": "x"}, headers=dispatcher
    )
    busy = client.put(url, json={"lat": 36.7, "lon": 117.0, "status": "off_shift"},
                      headers=dispatcher)  # fmt: skip
    assert busy.status_code == 409 and rid in busy.json()["detail"]
    lifecycle = client.put(url, json={"lat": 36.7, "lon": 117.0, "status": "on_site"},
                           headers=dispatcher)  # fmt: skip
    assert lifecycle.status_code == 422 and lifecycle.json()["detail"].startswith("status: ")
    bad = client.put(url, json={"lat": 95, "lon": 117.0}, headers=dispatcher)
    assert bad.status_code == 422 and "lat" in bad.json()["detail"]
    assert client.put("/v1/vans/V-nope/position", json={"lat": 1, "lon": 1},
                      headers=dispatcher).status_code == 404  # fmt: skip
    assert client.put(url, json={"lat": 1, "lon": 1},
                      headers=staff(Role.PLANNER)).status_code == 403  # fmt: skip


def test_kpis(client: TestClient, dispatcher: Headers) -> None:
    """KPIs count open / waiting / assigned requests, and the share within the promise from
    the requests whose outcome is known. Two fresh requests (one assigned, one with no van)
    can still make the promise: nothing is counted yet, so the share is null, not 0% (the
    old definition counted every request still waiting for a van as a miss, so a storm's
    first minutes read about 0%). Once one van arrives, that arrival is the only outcome
    known: 100%, with the other request still waiting within its promise left out."""
    rid = post(client)["id"]
    post(client, location={"lat": 43.8, "lon": 87.6}, cargo=None)
    client.post("/v1/dispatch/runs", headers=dispatcher)
    k = client.get("/v1/kpis", headers=dispatcher).json()
    assert (k["open"], k["received"], k["assigned"]) == (2, 1, 1)
    assert (k["arrived"], k["waiting_for_van"], k["overdue"]) == (0, 2, 0)
    assert k["within_promise"] is None and k["within_promise_count"] == 0
    assert 0 <= k["mean_eta_minutes"] < 120 and k["vans_busy"] == 1
    for target in ("en_route", "on_site"):
        r = client.post(f"/v1/requests/{rid}/status", json={"status": target}, headers=dispatcher)
        assert r.status_code == 200, r.text
    k = client.get("/v1/kpis", headers=dispatcher).json()
    assert (k["arrived"], k["waiting_for_van"], k["overdue"]) == (1, 1, 0)
    assert k["within_promise_count"] == 1 and k["within_promise"] == 1.0
    assert client.get("/v1/kpis").status_code == 401


KPI_T0 = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)
GC = GreatCircleProvider()
JINAN_VANS = ("V-370100-1", "V-370100-2", "V-370100-3")
"""The three vans of Jinan's station (each can handle a car)."""


def kpi_at(engine: Engine, minutes: float) -> KpiRead:
    """The KPIs at ``minutes`` after :data:`KPI_T0`, with the default 120-minute promise."""
    with transaction(session_factory(engine)) as db:
        return live_kpis(
            db_session=db, promise_minutes=120.0, now=KPI_T0 + dt.timedelta(minutes=minutes)
        )


def test_kpis_count_a_request_once_its_outcome_against_the_promise_is_known(
    seeded: Engine,
) -> None:
    """With a controlled clock (promise 120 min): requests still waiting for a van within
    their promise are not misses (not counted: share null while nothing is known); a van
    arriving 60 minutes after the request is within, one arriving after 150 minutes is late; a
    request waiting past the promise, with no van (received) or with one still on its way
    (assigned), is overdue, a miss already; one waiting exactly 120 minutes is not yet (a van
    arriving then would still be within), one minute later it is."""
    factory = session_factory(seeded)

    def new(minutes: float) -> str:
        with transaction(factory) as db:
            body = request_body(cargo=None, vehicle={"plate": "鲁A12345", "vehicle_class": "car"})
            return create_request(
                db_session=db, body=RequestCreate.model_validate(body),
                threshold_hours=24.0, token_secret=b"test-secret",
                now=KPI_T0 + dt.timedelta(minutes=minutes),
            ).request.id  # fmt: skip

    def assign(rid: str, van: str, minutes: float) -> None:
        with transaction(factory) as db:
            svc.assign_van(
                db_session=db, request_id=rid, van_id=van, reason="test", actor="t",
                provider=GC, now=KPI_T0 + dt.timedelta(minutes=minutes),
            )  # fmt: skip

    def status(rid: str, target: RequestStatus, minutes: float) -> None:
        with transaction(factory) as db:
            svc.change_status(
                db_session=db, request_id=rid, target=target, actor="t", provider=GC,
                now=KPI_T0 + dt.timedelta(minutes=minutes),
            )  # fmt: skip

    on_time, late, no_van, van_late = new(0), new(0), new(0), new(0)
    for rid, van in zip((on_time, late, van_late), JINAN_VANS, strict=True):
        assign(rid, van, 1)
    k = kpi_at(seeded, 5)
    assert (k.waiting_for_van, k.overdue, k.arrived) == (4, 0, 0)
    assert k.within_promise is None and k.within_promise_count == 0

    status(on_time, RequestStatus.EN_ROUTE, 10)
    exactly_at_promise = new(30)
    status(on_time, RequestStatus.ON_SITE, 60)
    k = kpi_at(seeded, 60)
    assert (k.arrived, k.within_promise_count, k.overdue, k.waiting_for_van) == (1, 1, 0, 4)
    assert k.within_promise == 1.0

    fresh = new(100)
    status(late, RequestStatus.EN_ROUTE, 110)
    status(late, RequestStatus.ON_SITE, 150)
    k = kpi_at(seeded, 150)
    # Waiting: no_van and van_late (150 min: overdue), exactly_at_promise (120 min: not yet),
    # fresh (50 min). Counted: the two arrivals and the two overdue.
    assert (k.arrived, k.within_promise_count, k.waiting_for_van, k.overdue) == (2, 1, 4, 2)
    assert k.within_promise == 0.25
    assert (k.received, k.assigned) == (3, 1)
    k = kpi_at(seeded, 151)
    assert (k.overdue, k.waiting_for_van, k.within_promise) == (3, 4, 0.2)
    with transaction(factory) as db:
        statuses = dict(db.execute(select(m.RescueRequest.id, m.RescueRequest.status)).all())
    assert [statuses[r] for r in (no_van, van_late, exactly_at_promise, fresh)] == [
        "received",
        "assigned",
        "received",
        "received",
    ]


def test_live_stream_sends_events(client: TestClient, dispatcher: Headers) -> None:
    """The SSE stream replays events after Last-Event-ID as id/event/data messages."""
    rid = post(client)["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    headers = {**dispatcher, "Last-Event-ID": "0"}
    with client.stream("GET", "/v1/live?max_seconds=0.5", headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    kinds = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    assert kinds[:4] == ["hello", "request_received", "van_assigned", "dispatch_cycle"]
    data = [json.loads(x[6:]) for x in text.splitlines() if x.startswith('data: {"id"')]
    assert data[0]["request_id"] == rid
    assert client.get("/v1/live").status_code == 401


def test_console_and_map_data_are_served(client: TestClient) -> None:
    """/console serves the page and its script (no external URLs); the province outlines are
    small (< 300 kB) and cover the 34 provincial units."""
    page = client.get("/console/")
    assert page.status_code == 200 and "Rescue dispatch" in page.text
    script = client.get("/console/console.js").text
    for text in (page.text, script):
        assert "https://" not in text and "http://" not in text.replace(
            "http://www.w3.org/2000/svg", ""
        )
    geo = client.get("/v1/geo/provinces")
    assert len(geo.content) < 300_000 and len(geo.json()["features"]) >= 34
    codes = {f["code"] for f in client.get("/v1/fault-codes").json()}
    assert {"ENGINE_NO_START", "UNKNOWN"} <= codes


def test_openapi_documents_routes_examples_and_enums(client: TestClient) -> None:
    """Every public route of DESIGN.md is in the OpenAPI schema, the request body carries
    its example and the vehicle classes and statuses are enums."""
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/requests", "post"), ("/v1/requests/{request_id}", "get"), ("/v1/requests", "get"),
        ("/v1/requests/{request_id}/diagnosis", "post"),
        ("/v1/requests/{request_id}/status", "post"), ("/v1/dispatch/runs", "post"),
        ("/v1/stations", "get"), ("/v1/vans", "get"), ("/v1/partners", "get"),
        ("/v1/replacement-trucks", "get"), ("/v1/kpis", "get"), ("/health", "get"),
        ("/v1/vans/{van_id}/position", "put"), ("/v1/requests/{request_id}/assignment", "post"),
        ("/v1/requests/{request_id}/cancel", "post"), ("/v1/requests/{request_id}/events", "get"),
    ]:  # fmt: skip
        assert method in paths[path], (path, method)
    schemas = spec["components"]["schemas"]
    assert schemas["RequestCreate"]["examples"][0]["vehicle"]["vehicle_class"] == "tractor"
    assert {"tractor", "rigid_truck", "light_truck", "van", "car"} <= set(
        schemas["VehicleClass"]["enum"]
    )
    assert "awaiting_replacement" in schemas["RequestStatus"]["enum"]


def test_intake_response_equals_the_stored_rows_view(
    client: TestClient, seeded: Engine, dispatcher: Headers
) -> None:
    """The 201 body (built without re-validation on the hot path) has the id, status,
    created_at and estimate that GET /v1/requests/{id} shows the customer for the stored row;
    staff see the same plus the risk and the contract."""
    cases: list[tuple[dict[str, str], Any]] = [
        ({"code": "ENGINE_MAJOR", "description": "x"}, ...),
        ({"code": "ENGINE_MAJOR", "description": "x"}, None),
        ({"code": "TYRE_PUNCTURE", "description": "x"}, ...),
        ({"description": "no code"}, None),
    ]
    for fault, cargo in cases:
        created = (
            post(client, fault=fault) if cargo is ... else post(client, fault=fault, cargo=None)
        )
        token = bearer(created["tracking_token"])
        view = client.get(f"/v1/requests/{created['id']}", headers=token).json()
        assert created["estimate"] == view["estimate"]
        assert (created["status"], created["created_at"]) == (view["status"], view["created_at"])
        staff_view = client.get(f"/v1/requests/{created['id']}", headers=dispatcher).json()
        staff_only = {"p_exceeds_threshold", "contract_id", "booking_probability",
                      "workshop_station_id"}  # fmt: skip
        assert {k: v for k, v in staff_view["estimate"].items() if k not in staff_only} == {
            k: v for k, v in created["estimate"].items() if k not in staff_only
        }
        assert staff_view["estimate"]["contract_id"] == "standard"


def test_concurrent_intake_stores_every_201(client: TestClient, seeded: Engine) -> None:
    """Eight threads posting at once (the in-process writer lock on SQLite): every request
    is answered 201 and stored with its first event; the ids are distinct."""
    from concurrent.futures import ThreadPoolExecutor

    before = count(seeded, m.RescueRequest), count(seeded, m.Event)

    def one(i: int) -> tuple[int, str]:
        r = client.post("/v1/requests", json=request_body(vehicle={"plate": f"鲁A{i:05d}",
                        "vehicle_class": "tractor"}))  # fmt: skip
        return r.status_code, r.json().get("id", "")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(80)))
    assert [s for s, _ in results] == [201] * 80
    assert len({i for _, i in results}) == 80
    assert count(seeded, m.RescueRequest) == before[0] + 80
    assert count(seeded, m.Event) == before[1] + 80
