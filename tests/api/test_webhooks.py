"""Notifications: the transactional outbox, signed webhooks (Standard Webhooks), the delivery
worker's retries and claims, the SMS log adapter, and delivery across a kill -9 of the server.

Receivers are real HTTP servers on 127.0.0.1 that verify every signature with the
``standardwebhooks`` verifier and answer 401 to a bad one."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from api.db import models as m
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.network.seeding import seed_network
from api.notifications.delivery import BATCH, OutboxWorker, backoff_seconds
from api.requests.service import cancel_request
from api.security import Role, create_staff_token
from api.state import get_session_factory
from fleet import VanCapability, VehicleClass
from tests.api.conftest import JINAN, app_settings, request_body, shandong_network

OUTBOX_TABLES = {"notification_endpoints", "outbox_messages", "outbox_deliveries"}


# -- a real receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """Records every POST; verifies it with the secret registered for its path; answers the
    next status of ``statuses`` (then 200); holds each request while ``hold`` is set."""

    url: str
    secrets: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        try:
            Webhook(self.secrets[path]).verify(body, headers)
            verified = True
        except (KeyError, WebhookVerificationError):
            verified = False
        with self.lock:
            self.received.append(Received(path, headers, body, verified))
            code = self.statuses.pop(0) if self.statuses else 200
        if self.hold.is_set():
            self.release.wait(30)
        return code if verified else 401

    def ok(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.verified]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: Receiver

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            code = state.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            try:
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender was killed meanwhile

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    """Poll ``condition`` (bounded: a failing test ends, it never hangs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def admin(staff: Callable[[Role], dict[str, str]]) -> dict[str, str]:
    return staff(Role.ADMIN)


def register(client: TestClient, admin: dict[str, str], url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, **fields}, headers=admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def new_request(client: TestClient) -> tuple[str, str]:
    response = client.post("/v1/requests", json=request_body())
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["tracking_token"]


def deliveries(engine: Engine) -> list[tuple[m.OutboxDelivery, m.OutboxMessage]]:
    with transaction(session_factory(engine)) as db:
        rows = db.execute(
            select(m.OutboxDelivery, m.OutboxMessage)
            .join(m.OutboxMessage, m.OutboxMessage.id == m.OutboxDelivery.message_id)
            .order_by(m.OutboxDelivery.id)
        ).all()
        return [(d, msg) for d, msg in rows]


def worker_for(engine: Engine, db_url: str, **overrides: Any) -> OutboxWorker:
    settings = app_settings(db_url, outbox_worker=False, **overrides)
    return OutboxWorker(session_factory(engine), settings, rng=random.Random(7))


@pytest.fixture
def quiet_client(make_client: Callable[..., TestClient]) -> TestClient:
    """An app without the background worker: the tests drive deliveries themselves."""
    return make_client(outbox_worker=False)


# -- routes ------------------------------------------------------------------------------------


def test_webhook_routes_are_admin_only(
    quiet_client: TestClient, dispatcher: dict[str, str], admin: dict[str, str]
) -> None:
    """401 without a token, 403 for a dispatcher, on all three routes; an admin creates (the
    secret shown once), lists (no secret) and deletes (then 404)."""
    body = {"url": "https://crm.example.com/hooks"}
    assert quiet_client.post("/v1/webhooks", json=body).status_code == 401
    assert quiet_client.get("/v1/webhooks").status_code == 401
    assert quiet_client.delete("/v1/webhooks/1").status_code == 401
    denied = quiet_client.post("/v1/webhooks", json=body, headers=dispatcher)
    assert denied.status_code == 403
    assert "needs one of admin" in denied.json()["detail"]
    assert quiet_client.get("/v1/webhooks", headers=dispatcher).status_code == 403
    assert quiet_client.delete("/v1/webhooks/1", headers=dispatcher).status_code == 403

    created = register(quiet_client, admin, body["url"], event_types=["request.cancelled"])
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a valid Standard Webhooks secret
    assert created["event_types"] == ["request.cancelled"]
    listed = quiet_client.get("/v1/webhooks", headers=admin).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert listed[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0, "cancelled": 0}
    assert quiet_client.delete(f"/v1/webhooks/{created['id']}", headers=admin).status_code == 204
    assert quiet_client.get("/v1/webhooks", headers=admin).json() == []
    gone = quiet_client.delete(f"/v1/webhooks/{created['id']}", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["detail"] == f"webhook {created['id']} not found"


BAD_WEBHOOKS: list[tuple[dict[str, Any], str, str]] = [
    ({"url": "http://crm.example.com/hooks"}, "url", "only on a loopback address"),
    ({"url": "ftp://127.0.0.1/hooks"}, "url", "must be an absolute https:// URL"),
    ({"url": "crm.example.com/hooks"}, "url", "must be an absolute https:// URL"),
    ({"url": "https://user:pw@crm.example.com/"}, "url", "must not carry credentials"),
    ({"url": "http://127.0.0.1:99999/"}, "url", "is not a valid URL"),
    ({"url": "https://a.example", "event_types": ["request.teleported"]}, "event_types",
     "unknown type(s) request.teleported"),
    ({"url": "https://a.example", "secret": "hunter2"}, "secret", "must start with 'whsec_'"),
    ({"url": "https://a.example", "secret": "whsec_c2hvcnQ="}, "secret", "24-64 bytes"),
    ({"url": "https://a.example", "colour": "red"}, "colour", "Extra inputs"),
]  # fmt: skip


def test_bad_webhook_is_refused_naming_the_field(
    quiet_client: TestClient, admin: dict[str, str]
) -> None:
    """422 naming the field and the reason; nothing is stored."""
    for fields, field_name, reason in BAD_WEBHOOKS:
        response = quiet_client.post("/v1/webhooks", json=fields, headers=admin)
        assert response.status_code == 422, fields
        detail = response.json()["detail"]
        assert detail.startswith(f"{field_name}: "), detail
        assert reason in detail, detail
    assert quiet_client.get("/v1/webhooks", headers=admin).json() == []


def test_loopback_http_and_given_secret_are_accepted(
    quiet_client: TestClient, admin: dict[str, str]
) -> None:
    """http on 127.0.0.1, [::1] and localhost is fine; a given secret is kept as given."""
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    for url in ("http://127.0.0.1:9/h", "http://[::1]:9/h", "http://localhost/h"):
        assert register(quiet_client, admin, url, secret=secret)["secret"] == secret


# -- the outbox is written with the change -----------------------------------------------------


def test_one_message_per_change_and_one_delivery_per_subscribed_endpoint(
    quiet_client: TestClient,
    seeded: Engine,
    admin: dict[str, str],
    dispatcher: dict[str, str],
) -> None:
    """A manual assignment and a cancellation each write one message; each goes to the
    endpoints that subscribe to its type (all types, or that one), not to the others. The
    body is the customer's view: status, van and ETA, masked name and phone."""
    everything = register(quiet_client, admin, "https://all.example/h")
    cancels = register(
        quiet_client, admin, "https://c.example/h", event_types=["request.cancelled"]
    )
    register(quiet_client, admin, "https://a.example/h", event_types=["request.arrived"])
    request_id, _ = new_request(quiet_client)
    assert deliveries(seeded) == []  # intake is not a notification
    van = quiet_client.get("/v1/vans", headers=dispatcher).json()[0]["id"]
    assigned = quiet_client.post(
        f"/v1/requests/{request_id}/assignment",
        json={"van_id": van, "reason": "nearest"},
        headers=dispatcher,
    )
    assert assigned.status_code == 200, assigned.text
    cancelled = quiet_client.post(
        f"/v1/requests/{request_id}/cancel", json={"reason": "fixed it"}, headers=dispatcher
    )
    assert cancelled.status_code == 200

    rows = deliveries(seeded)
    got = sorted((msg.event_type, d.endpoint_id) for d, msg in rows)
    assert got == sorted(
        [
            ("request.assigned", everything["id"]),
            ("request.cancelled", everything["id"]),
            ("request.cancelled", cancels["id"]),
        ]
    )
    assert all(d.status == "pending" and d.attempts == 0 for d, _ in rows)
    messages = {msg.event_type: msg for _, msg in rows}
    assert len({msg.message_id for _, msg in rows}) == 2
    assigned_body = json.loads(messages["request.assigned"].body)
    assert assigned_body["type"] == "request.assigned"
    data = assigned_body["data"]
    assert data["request_id"] == request_id
    assert data["status"] == "assigned"
    assert data["van"]["id"] == van
    assert data["van"]["eta_minutes"] is not None
    assert dt.datetime.fromisoformat(data["van"]["eta_at"]) == messages["request.assigned"].eta_at
    assert data["customer"] == {"name": "张**", "phone": "138****0000"}
    assert "tracking_token" not in messages["request.assigned"].body
    assert "13800000000" not in messages["request.assigned"].body
    cancel_data = json.loads(messages["request.cancelled"].body)["data"]
    assert (cancel_data["status"], cancel_data["van"]) == ("cancelled", None)


def test_a_rolled_back_change_leaves_no_outbox_row(
    quiet_client: TestClient, seeded: Engine, admin: dict[str, str]
) -> None:
    """The outbox row belongs to the change's transaction: rolled back together; committed
    together."""
    register(quiet_client, admin, "https://all.example/h")
    request_id, _ = new_request(quiet_client)
    factory = session_factory(seeded)
    with pytest.raises(RuntimeError, match="after the change"), transaction(factory) as db:
        cancel_request(db_session=db, request_id=request_id, actor="test")
        raise RuntimeError("failure after the change")
    assert deliveries(seeded) == []
    with transaction(factory) as db:
        assert db.get(m.RescueRequest, request_id).status == "received"  # type: ignore[union-attr]
        cancel_request(db_session=db, request_id=request_id, actor="test")
    assert [msg.event_type for _, msg in deliveries(seeded)] == ["request.cancelled"]


def test_no_subscriber_no_outbox_row(quiet_client: TestClient, seeded: Engine) -> None:
    """Without endpoints a change writes nothing to the outbox (and costs one lookup)."""
    request_id, token = new_request(quiet_client)
    headers = {"Authorization": f"Bearer {token}"}
    response = quiet_client.post(f"/v1/requests/{request_id}/cancel", json={}, headers=headers)
    assert response.status_code == 200
    assert deliveries(seeded) == []


def test_a_later_eta_by_more_than_15_minutes_is_a_delay(
    quiet_client: TestClient,
    seeded: Engine,
    admin: dict[str, str],
    dispatcher: dict[str, str],
) -> None:
    """Overriding the nearest van with the farthest one moves the ETA told by hours: a
    ``request.delayed`` (with its size and the previous ETA) comes before the new
    ``request.assigned``. Going back to the nearest van (earlier) is no delay."""
    register(quiet_client, admin, "https://all.example/h")
    created = quiet_client.post("/v1/requests", json=request_body()).json()
    request_id, needs_tow = created["id"], created["estimate"]["needs_tow"]
    stations = {s["id"]: s for s in quiet_client.get("/v1/stations", headers=dispatcher).json()}
    vans = [
        v
        for v in quiet_client.get("/v1/vans", headers=dispatcher).json()
        if VanCapability(v["capability"]).can_handle(VehicleClass.TRACTOR, needs_tow=needs_tow)
    ]

    def km_from_jinan(van: dict[str, Any]) -> float:
        station = stations[van["station_id"]]
        return math.dist((station["lat"], station["lon"]), (JINAN["lat"], JINAN["lon"]))

    vans.sort(key=km_from_jinan)
    near, far = vans[0]["id"], vans[-1]["id"]
    for van in (near, far, near):
        response = quiet_client.post(
            f"/v1/requests/{request_id}/assignment",
            json={"van_id": van, "reason": "test"},
            headers=dispatcher,
        )
        assert response.status_code == 200, response.text
    messages = [msg for _, msg in deliveries(seeded)]
    assert [msg.event_type for msg in messages] == [
        "request.assigned",
        "request.delayed",
        "request.assigned",
        "request.assigned",
    ]
    first, delayed, second, third = messages
    assert first.eta_at is not None and second.eta_at is not None and third.eta_at is not None
    assert delayed.eta_at == second.eta_at
    assert second.eta_at - first.eta_at > dt.timedelta(minutes=15)
    assert third.eta_at < second.eta_at
    data = json.loads(delayed.body)["data"]
    assert data["van"]["id"] == far
    late = (second.eta_at - first.eta_at).total_seconds() / 60.0
    assert data["delay_minutes"] == round(late, 1)
    assert dt.datetime.fromisoformat(data["previous_eta_at"]) == first.eta_at


# -- delivery ----------------------------------------------------------------------------------


def test_delivery_is_signed_and_verified_by_a_real_receiver(
    quiet_client: TestClient,
    seeded: Engine,
    db_url: str,
    admin: dict[str, str],
    receiver: Receiver,
) -> None:
    """The receiver verifies webhook-id / webhook-timestamp / webhook-signature with the
    endpoint's secret; a wrong secret is refused (401) and stays pending."""
    good = register(quiet_client, admin, receiver.url + "/good")
    bad = register(quiet_client, admin, receiver.url + "/bad")
    receiver.secrets["/good"] = good["secret"]
    receiver.secrets["/bad"] = "whsec_" + "A" * 43 + "="  # not the endpoint's secret
    request_id, _ = new_request(quiet_client)
    cancel(quiet_client, request_id)
    worker = worker_for(seeded, db_url)
    try:
        assert worker.run_once() == 2
    finally:
        worker.close()
    (good_copy,) = [r for r in receiver.received if r.path == "/good"]
    assert good_copy.verified
    assert good_copy.headers["webhook-signature"].startswith("v1,")
    assert good_copy.headers["content-type"] == "application/json"
    assert good_copy.payload["type"] == "request.cancelled"
    assert good_copy.payload["data"]["request_id"] == request_id
    (bad_copy,) = [r for r in receiver.received if r.path == "/bad"]
    assert not bad_copy.verified
    assert bad_copy.webhook_id == good_copy.webhook_id  # one message, two endpoints
    state = {d.endpoint_id: (d.status, d.last_status_code) for d, _ in deliveries(seeded)}
    assert state == {good["id"]: ("delivered", 200), bad["id"]: ("pending", 401)}


def cancel(client: TestClient, request_id: str) -> None:
    """Cancel through the service, in its own transaction (a customer-visible change)."""
    with transaction(get_session_factory(client.app)) as db:  # type: ignore[arg-type]
        cancel_request(db_session=db, request_id=request_id, actor="customer")


def test_failing_receiver_is_retried_with_growing_waits_and_the_same_webhook_id(
    quiet_client: TestClient,
    seeded: Engine,
    db_url: str,
    admin: dict[str, str],
    receiver: Receiver,
) -> None:
    """500, 500, 500, then 200: four attempts, each wait longer than the one before and within
    the equal-jitter bounds of base * 2^(n-1); every copy has the same id and body."""
    created = register(quiet_client, admin, receiver.url + "/h")
    receiver.secrets["/h"] = created["secret"]
    receiver.statuses = [500, 500, 500]
    request_id, _ = new_request(quiet_client)
    cancel(quiet_client, request_id)
    worker = worker_for(seeded, db_url, webhook_backoff_base_s=10.0)
    waits = []
    now = dt.datetime.now(dt.UTC)
    try:
        for attempt in range(1, 5):
            assert worker.run_once(now) == 1
            ((row, _),) = deliveries(seeded)
            assert row.attempts == attempt
            if attempt < 4:
                assert (row.status, row.last_status_code, row.last_error) == (
                    "pending", 500, "HTTP 500",
                )  # fmt: skip
                assert worker.run_once(row.next_attempt_at - dt.timedelta(seconds=0.01)) == 0
                waits.append((row.next_attempt_at - now).total_seconds())
                now = row.next_attempt_at
    finally:
        worker.close()
    assert (row.status, row.last_status_code, row.delivered_at) == ("delivered", 200, now)
    assert waits == sorted(waits) and len(set(waits)) == 3
    for n, wait in enumerate(waits, start=1):
        full = 10.0 * 2 ** (n - 1)
        assert full / 2 <= wait <= full
    copies = receiver.ok()
    assert len(copies) == 4
    assert len({c.webhook_id for c in copies}) == 1
    assert len({c.body for c in copies}) == 1
    assert len({c.headers["webhook-timestamp"] for c in copies}) == 4  # signed per attempt


def test_backoff_waits_grow_until_the_cap_then_stay_within_it() -> None:
    """Equal jitter: wait n lies in [full/2, full] with full = min(cap, base * 2^(n-1)), so
    below the cap wait n+1 >= wait n whatever the random draws; at the cap waits stay in
    [cap/2, cap]."""
    rng = random.Random(0)
    for _ in range(200):
        waits = [backoff_seconds(n, base_s=5, max_s=300, rng=rng) for n in range(1, 12)]
        uncapped = waits[:6]  # full = 5, 10, 20, 40, 80, 160
        assert uncapped == sorted(uncapped)
        assert all(
            5 * 2 ** (n - 1) / 2 <= w <= 5 * 2 ** (n - 1) for n, w in enumerate(waits[:6], 1)
        )
        assert all(150 <= w <= 300 for w in waits[6:])


def test_a_delivery_is_given_up_after_the_maximum_age(
    quiet_client: TestClient,
    seeded: Engine,
    db_url: str,
    admin: dict[str, str],
    receiver: Receiver,
) -> None:
    """Still failing when the message is older than the maximum age: status failed, no more
    attempts."""
    created = register(quiet_client, admin, receiver.url + "/h")
    receiver.secrets["/h"] = created["secret"]
    receiver.statuses = [503]
    request_id, _ = new_request(quiet_client)
    cancel(quiet_client, request_id)
    with transaction(session_factory(seeded)) as db:  # written two hours ago
        two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        db.execute(update(m.OutboxMessage).values(created_at=two_hours_ago))
    worker = worker_for(seeded, db_url, webhook_max_age_hours=1.0)
    try:
        assert worker.run_once() == 1
        assert worker.run_once(dt.datetime.now(dt.UTC) + dt.timedelta(days=30)) == 0
    finally:
        worker.close()
    ((row, _),) = deliveries(seeded)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, 503)


def test_a_claimed_delivery_is_not_taken_by_another_worker_until_its_lease_ends(
    quiet_client: TestClient, seeded: Engine, db_url: str, admin: dict[str, str]
) -> None:
    """Two workers never send the same delivery at once: the claim counts the attempt and
    moves it one lease ahead; after the lease (the first worker died) it is due again."""
    for i in range(BATCH + 2):
        register(quiet_client, admin, f"https://e{i}.example/h")
    request_id, _ = new_request(quiet_client)
    cancel(quiet_client, request_id)
    first, second = worker_for(seeded, db_url), worker_for(seeded, db_url)
    try:
        now = dt.datetime.now(dt.UTC)
        a = first.claim(now)
        b = second.claim(now)
        assert (len(a), len(b)) == (BATCH, 2)
        assert not {j.delivery_id for j in a} & {j.delivery_id for j in b}
        assert second.claim(now) == []
        again = second.claim(now + first.lease)
        assert sorted(j.delivery_id for j in again) == sorted(j.delivery_id for j in a)
        assert {j.attempt for j in again} == {2}
    finally:
        first.close()
        second.close()


def test_deleting_an_endpoint_cancels_its_pending_deliveries(
    quiet_client: TestClient, seeded: Engine, admin: dict[str, str]
) -> None:
    created = register(quiet_client, admin, "https://gone.example/h")
    request_id, _ = new_request(quiet_client)
    cancel(quiet_client, request_id)
    quiet_client.delete(f"/v1/webhooks/{created['id']}", headers=admin)
    ((row, _),) = deliveries(seeded)
    assert (row.status, row.last_error) == ("cancelled", "endpoint deleted")


def test_sms_log_adapter_sends_through_the_same_outbox(
    quiet_client: TestClient,
    seeded: Engine,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With RESCUE_SMS_GATEWAY=log the worker keeps one SMS endpoint; a change reaches it as a
    delivery like a webhook, and the log adapter writes the text with the number masked."""
    worker = worker_for(seeded, db_url, sms_gateway="log")
    try:
        worker.sync_sms_endpoint()
        worker.sync_sms_endpoint()  # idempotent
        request_id, _ = new_request(quiet_client)
        cancel(quiet_client, request_id)
        with caplog.at_level(logging.INFO, logger="api.notifications.sms"):
            assert worker.run_once() == 1
    finally:
        worker.close()
    ((row, _),) = deliveries(seeded)
    assert row.status == "delivered"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "api.notifications.sms"]
    assert "138****0000" in line and "13800000000" not in line
    assert f"[rescue {request_id[:8]}] your rescue request is cancelled" in line
    off = worker_for(seeded, db_url)
    try:
        off.sync_sms_endpoint()
    finally:
        off.close()
    with transaction(session_factory(seeded)) as db:
        assert db.scalar(select(func.count()).where(m.NotificationEndpoint.active)) == 0


def test_the_app_worker_delivers_in_the_background(
    make_client: Callable[..., TestClient], admin: dict[str, str], receiver: Receiver
) -> None:
    """The lifespan starts the worker: a cancellation reaches the receiver without any
    explicit delivery call."""
    client = make_client(outbox_interval_s=0.2)
    created = register(client, admin, receiver.url + "/h", event_types=["request.cancelled"])
    receiver.secrets["/h"] = created["secret"]
    request_id, token = new_request(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/v1/requests/{request_id}/cancel", json={}, headers=headers).is_success
    assert wait_until(lambda: len(receiver.ok()) == 1, 30)
    assert receiver.ok()[0].payload["data"]["request_id"] == request_id


def test_migration_matches_the_models(engine: Engine) -> None:
    """The 0004 migration creates the outbox tables exactly as the models declare them."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    ours = [d for d in diff if any(table in repr(d) for table in OUTBOX_TABLES)]
    assert ours == []


# -- kill -9 during delivery -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(db_url: str, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RESCUE_DISPATCH_INTERVAL_S": "0",
        "RESCUE_DISPATCH_ON_REQUEST": "false",
        "RESCUE_RATE_LIMIT_PER_MINUTE": "0",
        "RESCUE_TRAVEL_PROVIDER": "great_circle",
        "RESCUE_OUTBOX_INTERVAL_S": "0.2",
        "RESCUE_WEBHOOK_TIMEOUT_S": "1",
        "RESCUE_WEBHOOK_BACKOFF_BASE_S": "0.5",
    }
    log = open(cwd / f"server-{port}.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--db", db_url],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_kill_9_during_delivery_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    """The real server is killed (SIGKILL) while the receiver holds its webhook POSTs; after
    a restart every message arrives, verified, and the copies of a message share one
    webhook-id and one body. While the receiver hangs, intake still answers 201."""
    db_url = f"sqlite:///{tmp_path / 'rescue.sqlite'}"
    engine = make_engine(db_url)
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
        admin_token = create_staff_token(db_session=db, role=Role.ADMIN)
    engine.dispose()
    admin = {"Authorization": f"Bearer {admin_token}"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(db_url, port, tmp_path)
    try:
        assert wait_until(lambda: _up(base), 120), (tmp_path / f"server-{port}.log").read_text()
        http = httpx.Client(base_url=base, timeout=30)
        created = http.post("/v1/webhooks", json={"url": receiver.url + "/h"}, headers=admin)
        assert created.status_code == 201, created.text
        receiver.secrets["/h"] = created.json()["secret"]
        receiver.hold.set()
        cancelled = []
        for _ in range(4):
            r = http.post("/v1/requests", json=request_body())
            assert r.status_code == 201
            rid, token = r.json()["id"], r.json()["tracking_token"]
            cancel = http.post(
                f"/v1/requests/{rid}/cancel", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert cancel.status_code == 200
            cancelled.append(rid)
        assert wait_until(lambda: len(receiver.received) >= 1, 30)
        # The receiver hangs on a delivery: intake still answers at once.
        for _ in range(3):
            assert http.post("/v1/requests", json=request_body()).status_code == 201
        held = {r.webhook_id for r in receiver.received}
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        receiver.hold.clear()
        receiver.release.set()
        before_restart = len(receiver.received)

        server = _serve(db_url, port, tmp_path)
        assert wait_until(lambda: _up(base), 120)

        def all_delivered() -> bool:
            arrived = {r.payload["data"]["request_id"] for r in receiver.ok()}
            webhooks = http.get("/v1/webhooks", headers=admin).json()
            return set(cancelled) <= arrived and webhooks[0]["deliveries"]["pending"] == 0

        assert wait_until(all_delivered, 90), (tmp_path / f"server-{port}.log").read_text()
        listed = http.get("/v1/webhooks", headers=admin).json()
        assert listed[0]["deliveries"]["delivered"] == 4
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    copies = receiver.ok()
    assert len(copies) == len(receiver.received)  # every copy verified
    by_id: dict[str, set[bytes]] = {}
    for c in copies:
        by_id.setdefault(c.webhook_id, set()).add(c.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    ids_of_request: dict[str, set[str]] = {}
    for c in copies:
        ids_of_request.setdefault(c.payload["data"]["request_id"], set()).add(c.webhook_id)
    assert sorted(ids_of_request) == sorted(cancelled)
    assert all(len(ids) == 1 for ids in ids_of_request.values())
    # what was in flight at the kill came again after the restart, with the same id
    again = {c.webhook_id for c in copies[before_restart:]}
    assert held and held <= again
