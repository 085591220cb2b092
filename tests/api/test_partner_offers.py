"""Partners and crews in the loop: offers with expiry, accept / decline / lapse and re-offer,
the accept race, partner rescue escalation, the scope of partner and crew tokens, crew
acknowledgement and its timeout."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.exceptions import Conflict
from api.partners import service as svc
from api.security import Role
from tests.api.conftest import request_body

Headers = dict[str, str]
URUMQI = {"lat": 43.825, "lon": 87.617}
"""Far from every Shandong station: no own van covers it (province 650000)."""


def post(client: TestClient, **overrides: Any) -> dict[str, Any]:
    r = client.post("/v1/requests", json=request_body(**overrides))
    assert r.status_code == 201, r.text
    return dict(r.json())


def run(client: TestClient, dispatcher: Headers) -> dict[str, Any]:
    r = client.post("/v1/dispatch/runs", headers=dispatcher)
    assert r.status_code == 200, r.text
    return dict(r.json())


def needs_truck(client: TestClient, dispatcher: Headers) -> str:
    """A request with cargo whose diagnosis needs a replacement truck, its van released."""
    rid = post(client)["id"]
    run(client, dispatcher)
    for status in ("en_route", "on_site"):
        client.post(f"/v1/requests/{rid}/status", json={"status": status}, headers=dispatcher)
    d = client.post(
        f"/v1/requests/{rid}/diagnosis", json={"estimated_repair_hours": 30}, headers=dispatcher
    )
    assert d.json()["status"] == "awaiting_replacement"
    return str(rid)


def add_provider(client: TestClient, admin: Headers, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "xj-tow",
        "partner_id": client.get("/v1/partners", headers=admin).json()[0]["id"],
        "name": "Xinjiang road rescue (synthetic)",
        "provinces": ["650000"],
        "base_lat": 43.80,
        "base_lon": 87.60,
        "capabilities": ["mobile_mechanic", "heavy_tow"],
        "promised_response_minutes": 30.0,
        "callout_fee_cny": 500.0,
        "per_km_cny": 8.0,
        "capacity_jobs": 2,
    }
    body.update(overrides)
    r = client.post("/v1/partner-providers", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


def events(client: TestClient, dispatcher: Headers, rid: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/requests/{rid}/events", headers=dispatcher).json())


def test_declined_and_expired_truck_offers_go_to_the_next_partner(
    client: TestClient,
    dispatcher: Headers,
    scoped_token: Callable[..., Headers],
    seeded: Engine,
) -> None:
    """A declined truck offer is offered to another partner in the next cycle; so is one that
    lapsed unanswered (expiry counts as a decline); neither refusing partner is asked again,
    and the event log tells the story in order."""
    rid = needs_truck(client, dispatcher)
    first = run(client, dispatcher)["offered"]
    assert [(o["request_id"], o["kind"]) for o in first] == [(rid, "truck")]
    a = first[0]
    declined = client.post(
        f"/v1/partner/offers/{a['offer_id']}/decline",
        json={"reason": "no driver free"},
        headers=scoped_token(partner_id=a["partner_id"]),
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    second = run(client, dispatcher)["offered"]
    assert len(second) == 1 and second[0]["partner_id"] != a["partner_id"]
    b = second[0]
    # silence: the offer lapses at its expiry (moved into the past here)
    with transaction(session_factory(seeded)) as db:
        db.execute(
            update(m.PartnerOffer)
            .where(m.PartnerOffer.id == b["offer_id"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    third = run(client, dispatcher)
    assert third["expired"] == [b["offer_id"]]
    refusers = {a["partner_id"], b["partner_id"]}
    assert all(o["partner_id"] not in refusers for o in third["offered"])
    late = client.post(
        f"/v1/partner/offers/{b['offer_id']}/accept",
        json={"eta_minutes": 30},
        headers=scoped_token(partner_id=b["partner_id"]),
    )
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    story = [
        (e["kind"], e["data"].get("partner_id"))
        for e in events(client, dispatcher, rid)
        if e["kind"].startswith("offer_")
    ]
    assert story[:4] == [
        ("offer_made", a["partner_id"]),
        ("offer_declined", a["partner_id"]),
        ("offer_made", b["partner_id"]),
        ("offer_expired", b["partner_id"]),
    ]
    assert len(story) == 4 + len(third["offered"])


def test_breakdown_without_own_van_gets_a_partner_rescue_offer_at_once(
    client: TestClient,
    dispatcher: Headers,
    staff: Callable[[Role], Headers],
    scoped_token: Callable[..., Headers],
) -> None:
    """No own van in radius: the same cycle offers the job to the partner rescue provider;
    the customer sees 'looking for a partner', then the partner and its ETA once accepted."""
    provider = add_provider(client, staff(Role.ADMIN))
    body = post(client, location=URUMQI, cargo=None)
    result = run(client, dispatcher)
    assert [u["reason"] for u in result["unassigned"]] == ["no_van_in_radius"]
    (offer,) = result["offered"]
    assert (offer["kind"], offer["provider_id"], offer["request_id"]) == (
        "rescue",
        provider["id"],
        body["id"],
    )
    track = {"Authorization": f"Bearer {body['tracking_token']}"}
    view = client.get(f"/v1/requests/{body['id']}", headers=track).json()
    assert view["status"] == "received"
    assert view["partner"]["status"] == "looking_for_partner"
    assert run(client, dispatcher)["offered"] == []  # the open offer holds the job
    partner = scoped_token(partner_id=provider["partner_id"])
    before = client.get("/v1/partner/offers", headers=partner).json()
    assert before[0]["job"]["customer_phone"] is None  # not before it takes the job
    ok = client.post(
        f"/v1/partner/offers/{offer['offer_id']}/accept", json={"eta_minutes": 50}, headers=partner
    )
    assert ok.status_code == 200 and ok.json()["job"]["customer_phone"] == "13800000000"
    view = client.get(f"/v1/requests/{body['id']}", headers=track).json()
    assert view["status"] == "assigned" and view["partner"]["status"] == "accepted"
    assert view["partner"]["partner_name"] != "" and view["partner"]["eta_at"] is not None
    providers = client.get("/v1/partner-providers", headers=staff(Role.ADMIN)).json()
    assert providers[0]["active_jobs"] == 1


def _concurrent_accepts(engine: Engine, offers: list[m.PartnerOffer]) -> list[str]:
    factory = session_factory(engine)
    barrier = threading.Barrier(len(offers))
    outcomes: list[str] = []

    def accept(offer_id: int, partner_id: str) -> None:
        barrier.wait()
        try:
            with transaction(factory) as db:
                svc.accept_offer(
                    db_session=db, offer_id=offer_id, partner_id=partner_id, eta_minutes=40,
                    actor="partner:test", now=dt.datetime.now(dt.UTC),
                )  # fmt: skip
            outcomes.append("accepted")
        except Conflict as exc:
            outcomes.append(f"409 {exc}")

    threads = [threading.Thread(target=accept, args=(o.id, o.partner_id)) for o in offers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_partners_accepting_at_once_one_wins(
    make_client: Callable[..., TestClient],
    staff: Callable[[Role], Headers],
    seeded: Engine,
) -> None:
    """Two providers offered the same job (fan-out 2) accept in two threads at once: one is
    accepted, the other gets a conflict naming the reason; exactly one accepted offer."""
    client = make_client(offer_fanout=2)
    admin, dispatcher = staff(Role.ADMIN), staff(Role.DISPATCHER)
    partners = [p["id"] for p in client.get("/v1/partners", headers=admin).json()]
    add_provider(client, admin, id="xj-a", partner_id=partners[0])
    add_provider(client, admin, id="xj-b", partner_id=partners[1], callout_fee_cny=600.0)
    rid = post(client, location=URUMQI, cargo=None)["id"]
    assert len(run(client, dispatcher)["offered"]) == 2
    with transaction(session_factory(seeded)) as db:
        offers = list(db.scalars(select(m.PartnerOffer).where(m.PartnerOffer.request_id == rid)))
        db.expunge_all()
    outcomes = _concurrent_accepts(seeded, offers)
    assert sorted(o.split(" ")[0] for o in outcomes) == ["409", "accepted"]
    assert "already accepted" in next(o for o in outcomes if o.startswith("409"))
    with transaction(session_factory(seeded)) as db:
        statuses = sorted(
            db.scalars(select(m.PartnerOffer.status).where(m.PartnerOffer.request_id == rid))
        )
    assert statuses == ["accepted", "offered"]
    # the next cycle withdraws the loser's offer: the job is taken
    assert run(client, dispatcher)["offered"] == []


def test_scope_matrix_of_partner_and_crew_tokens(
    client: TestClient,
    dispatcher: Headers,
    staff: Callable[[Role], Headers],
    scoped_token: Callable[..., Headers],
) -> None:
    """A partner sees and answers its own offers only (another partner's offer: 404), never
    the dispatcher's routes or the requests; a crew acts for its own van only (403)."""
    rid = needs_truck(client, dispatcher)
    (offer,) = run(client, dispatcher)["offered"]
    mine = scoped_token(partner_id=offer["partner_id"])
    others = [p["id"] for p in client.get("/v1/partners", headers=dispatcher).json()]
    other = scoped_token(partner_id=next(p for p in others if p != offer["partner_id"]))
    assert [o["id"] for o in client.get("/v1/partner/offers", headers=mine).json()] == [
        offer["offer_id"]
    ]
    assert client.get("/v1/partner/offers", headers=other).json() == []
    for verb, body in (("accept", {"eta_minutes": 30}), ("decline", {"reason": "x"})):
        r = client.post(f"/v1/partner/offers/{offer['offer_id']}/{verb}", json=body, headers=other)
        assert r.status_code == 404 and "no offer" in r.json()["detail"]
    assert client.get("/v1/offers", headers=mine).status_code == 403
    assert client.get(f"/v1/requests/{rid}", headers=mine).status_code == 403
    assert client.get("/v1/requests", headers=mine).status_code == 403
    assert client.get("/v1/partner/offers", headers=dispatcher).status_code == 403
    assert client.get("/v1/partner/offers", headers=staff(Role.ADMIN)).status_code == 403
    in_flight = client.get("/v1/offers", params={"status": "offered"}, headers=dispatcher)
    assert [o["id"] for o in in_flight.json()] == [offer["offer_id"]]
    assert in_flight.json()[0]["expires_at"] is not None
    vans = [v["id"] for v in client.get("/v1/vans", headers=dispatcher).json()]
    crew = scoped_token(van_id=vans[0])
    pos = {"lat": 36.6, "lon": 117.0}
    assert client.put(f"/v1/vans/{vans[0]}/position", json=pos, headers=crew).status_code == 200
    r = client.put(f"/v1/vans/{vans[1]}/position", json=pos, headers=crew)
    assert r.status_code == 403 and vans[0] in r.json()["detail"]
    assert client.post(f"/v1/vans/{vans[1]}/assignments/1/ack", headers=crew).status_code == 403
    assert client.get(f"/v1/requests/{rid}", headers=crew).status_code == 403
    assert client.get("/v1/offers", headers=crew).status_code == 403
    assert client.post("/v1/dispatch/runs", headers=crew).status_code == 403


def test_crew_acknowledges_and_unacknowledged_assignments_are_replanned(
    make_client: Callable[..., TestClient],
    dispatcher: Headers,
    scoped_token: Callable[..., Headers],
    seeded: Engine,
) -> None:
    """The crew of the assigned van acknowledges (once; another van's crew cannot); an
    assignment left unacknowledged past the timeout is ended in the next cycle, its van set
    off shift, and the request is sent another van in that same cycle."""
    client = make_client(crew_ack_timeout_minutes=5.0)
    acked, ignored = post(client, cargo=None)["id"], post(client, cargo=None)["id"]
    assigned = {a["request_id"]: a["van_id"] for a in run(client, dispatcher)["assigned"]}
    with transaction(session_factory(seeded)) as db:
        ids = {
            a.request_id: a.id
            for a in db.scalars(select(m.VanAssignment).where(m.VanAssignment.active.is_(True)))
        }
        db.execute(
            update(m.VanAssignment).values(
                created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
            )
        )
    van = assigned[acked]
    url = f"/v1/vans/{van}/assignments/{ids[acked]}/ack"
    ok = client.post(url, headers=scoped_token(van_id=van))
    assert ok.status_code == 200 and ok.json()["request_id"] == acked
    wrong = client.post(
        f"/v1/vans/{van}/assignments/{ids[ignored]}/ack", headers=scoped_token(van_id=van)
    )
    assert wrong.status_code == 404
    second = run(client, dispatcher)
    assert second["replanned"] == [ignored]
    reassigned = {a["request_id"]: a["van_id"] for a in second["assigned"]}
    assert set(reassigned) == {ignored} and reassigned[ignored] != assigned[ignored]
    vans = {v["id"]: v for v in client.get("/v1/vans", headers=dispatcher).json()}
    assert vans[assigned[ignored]]["status"] == "off_shift"
    kinds = [e["kind"] for e in events(client, dispatcher, ignored)]
    assert "assignment_ack_timeout" in kinds
    ended = client.post(
        f"/v1/vans/{assigned[ignored]}/assignments/{ids[ignored]}/ack",
        headers=scoped_token(van_id=assigned[ignored]),
    )
    assert ended.status_code == 409 and "crew did not acknowledge" in ended.json()["detail"]


def test_bad_answers_and_providers_are_refused_naming_the_field(
    client: TestClient,
    dispatcher: Headers,
    staff: Callable[[Role], Headers],
    scoped_token: Callable[..., Headers],
) -> None:
    """An ETA that is not a positive number, an empty decline reason, a provider of an
    unknown partner or without coverage: 422 naming the field; nothing changes."""
    needs_truck(client, dispatcher)
    (offer,) = run(client, dispatcher)["offered"]
    partner = scoped_token(partner_id=offer["partner_id"])
    url = f"/v1/partner/offers/{offer['offer_id']}"
    for body in ({"eta_minutes": 0}, {"eta_minutes": "30"}, {}):
        r = client.post(f"{url}/accept", json=body, headers=partner)
        assert r.status_code == 422 and "eta_minutes" in r.text
    r = client.post(f"{url}/decline", json={"reason": ""}, headers=partner)
    assert r.status_code == 422 and "reason" in r.text
    # ids beyond the integer columns: 422 naming the path parameter, not a database overflow
    huge = 2**63
    r = client.post(f"/v1/partner/offers/{huge}/accept", json={"eta_minutes": 30}, headers=partner)
    assert r.status_code == 422 and "offer_id" in r.text
    van = client.get("/v1/vans", headers=dispatcher).json()[0]["id"]
    crew = scoped_token(van_id=van)
    r = client.post(f"/v1/vans/{van}/assignments/{huge}/ack", headers=crew)
    assert r.status_code == 422 and "assignment_id" in r.text
    assert client.get("/v1/partner/offers", headers=partner).json()[0]["status"] == "offered"
    admin = staff(Role.ADMIN)
    base = {
        "id": "p1", "name": "x", "base_lat": 36.0, "base_lon": 117.0,
        "capabilities": ["tyre"], "promised_response_minutes": 30.0, "callout_fee_cny": 1.0,
        "per_km_cny": 1.0, "capacity_jobs": 1,
    }  # fmt: skip
    r = client.post("/v1/partner-providers", json=base | {"partner_id": "nope"}, headers=admin)
    assert r.status_code == 422 and "partner_id" in r.json()["detail"]
    pid = offer["partner_id"]
    r = client.post("/v1/partner-providers", json=base | {"partner_id": pid}, headers=admin)
    assert r.status_code == 422 and "radius_km" in r.json()["detail"]
    assert client.get("/v1/partner-providers", headers=admin).json() == []
    assert client.get("/v1/partner-providers", headers=dispatcher).status_code == 403


@pytest.mark.parametrize(
    ("role", "kwargs", "message"),
    [
        (Role.PARTNER, {}, "partner_id"),
        (Role.PARTNER, {"partner_id": "nope"}, "partner_id"),
        (Role.CREW, {"van_id": "nope"}, "van_id"),
        (Role.DISPATCHER, {"van_id": "x"}, "van_id"),
    ],
)
def test_scoped_tokens_need_an_existing_binding(
    seeded: Engine, role: Role, kwargs: dict[str, str], message: str
) -> None:
    """A partner token needs an existing partner, a crew token an existing van; staff
    tokens take no binding."""
    from api.security import create_staff_token

    with pytest.raises(ValueError, match=message), transaction(session_factory(seeded)) as db:
        create_staff_token(db_session=db, role=role, **kwargs)  # type: ignore[arg-type]


def test_attention_panel_shows_refused_and_expiring_offers(
    client: TestClient,
    dispatcher: Headers,
    scoped_token: Callable[..., Headers],
    seeded: Engine,
) -> None:
    """The console's attention panel tells the dispatcher when an open partner offer is about
    to lapse unanswered and when a partner refused a job (with its reason); once the next
    cycle offers the job to another partner, the refusal is no longer something to act on."""

    def offer_items() -> list[dict[str, Any]]:
        items = client.get("/v1/attention", headers=dispatcher).json()["items"]
        return [i for i in items if i["request_id"] == rid and i["kind"].startswith("offer_")]

    rid = needs_truck(client, dispatcher)
    (a,) = run(client, dispatcher)["offered"]
    assert offer_items() == []  # just offered: the partner has its whole response time
    with transaction(session_factory(seeded)) as db:
        db.execute(
            update(m.PartnerOffer)
            .where(m.PartnerOffer.id == a["offer_id"])
            .values(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
        )
    (expiring,) = offer_items()
    assert (expiring["kind"], expiring["action"]) == ("offer_expiring", "call_partner")
    declined = client.post(
        f"/v1/partner/offers/{a['offer_id']}/decline",
        json={"reason": "no driver free"},
        headers=scoped_token(partner_id=a["partner_id"]),
    )
    assert declined.status_code == 200
    (refused,) = offer_items()
    assert refused["kind"] == "offer_refused" and "no driver free" in refused["detail"]
    assert len(run(client, dispatcher)["offered"]) == 1
    assert offer_items() == []
