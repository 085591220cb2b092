"""/health for anyone; network listings for staff tokens only (401 without, 403 wrong role)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.db.engine import session_factory, transaction
from api.network.seeding import seed_network
from api.security import Role, create_staff_token
from api.settings import Settings
from fleet import build_national_network


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[TestClient]:
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=build_national_network(), source="test")
    app = create_app(Settings(database_url=db_url, dispatch_interval_s=0), engine=engine)
    with TestClient(app) as c:
        yield c


def token(engine: Engine, role: Role) -> dict[str, str]:
    with transaction(session_factory(engine)) as db:
        secret = create_staff_token(db_session=db, role=role)
    return {"Authorization": f"Bearer {secret}"}


def test_health_shows_network_counts(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["network"]["stations"] == 938 and body["network"]["vans"] == 1276


def test_listings_need_a_staff_token(client: TestClient, engine: Engine) -> None:
    assert client.get("/v1/stations").status_code == 401
    bad = client.get("/v1/stations", headers={"Authorization": "Bearer rsk_nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "invalid, expired or revoked token"}
    stations = client.get("/v1/stations", headers=token(engine, Role.DISPATCHER))
    assert stations.status_code == 200 and len(stations.json()) == 938


def test_listings_filter(client: TestClient, engine: Engine) -> None:
    h = token(engine, Role.PLANNER)
    shandong = client.get("/v1/stations", params={"province": "370000", "grade": "AAA"}, headers=h)
    assert len(shandong.json()) == 16
    assert len(client.get("/v1/vans", headers=h).json()) == 1276
    assert len(client.get("/v1/partners", headers=h).json()) == 77
    trucks = client.get("/v1/replacement-trucks", params={"status": "available"}, headers=h)
    assert len(trucks.json()) == 676
    assert client.get("/v1/vans", params={"status": "flying"}, headers=h).status_code == 422
