"""Fixtures of the API tests: a seeded database (a one-province network keeps them fast), an
app on it, staff tokens and a valid request body."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.db.engine import session_factory, transaction
from api.network.seeding import seed_network
from api.security import Role, create_staff_token
from api.settings import Settings
from fleet import Network, VehicleClass, build_national_network
from fleet.contracts import RegisteredVehicle, VehicleRegistry

SHANDONG = "370000"
JINAN = {"lat": 36.651, "lon": 117.120}


PREMIUM_PLATE = "鲁A88888"
"""A registered tractor of the test network: premium contract (8 h, p 0.3), Jinan's station."""
JINAN_STATION = "AAA-370100"


def shandong_network() -> Network:
    """Shandong's stations and vans, the partners serving Shandong with their trucks, and a
    registry: the demo contracts, the demo vehicles designated in Shandong and
    :data:`PREMIUM_PLATE`."""
    national = build_national_network()
    stations = tuple(s for s in national.stations if s.province_adcode == SHANDONG)
    ids = {s.id for s in stations}
    partners = tuple(p for p in national.partners if p.serves(SHANDONG))
    pids = {p.id for p in partners}
    registry = VehicleRegistry(
        contracts=national.registry.contracts,
        vehicles=(
            *(v for v in national.registry.vehicles if v.designated_station_id in ids),
            RegisteredVehicle(PREMIUM_PLATE, VehicleClass.TRACTOR, JINAN_STATION, "premium"),
        ),
        station_ids=frozenset(ids),
    )
    return Network(
        name="shandong",
        stations=stations,
        vans=tuple(v for v in national.vans if v.station_id in ids),
        partners=partners,
        trucks=tuple(t for t in national.trucks if t.partner_id in pids),
        faults=national.faults,
        registry=registry,
    )


def request_body(**overrides: Any) -> dict[str, Any]:
    """The DESIGN.md example body (deadline moved into the future), with overrides."""
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    body: dict[str, Any] = {
        "customer": {"name": "张伟", "phone": "13800000000"},
        "vehicle": {"plate": "鲁A12345", "vehicle_class": "tractor", "model": "HOWO T7H"},
        "location": dict(JINAN),
        "fault": {"code": "ENGINE_NO_START", "description": "engine cranks but will not start"},
        "cargo": {
            "weight_t": 28.0,
            "destination": {"lat": 31.230, "lon": 121.474},
            "deadline": deadline,
        },
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return copy.deepcopy(body)


def app_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "dispatch_interval_s": 0,
        "travel_provider": "great_circle",
        "respect_shifts": False,
        "rate_limit_per_minute": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    return engine


@pytest.fixture
def make_client(seeded: Engine, db_url: str) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(app_settings(db_url, **overrides), engine=seeded)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def staff(seeded: Engine) -> Callable[[Role], dict[str, str]]:
    def make(role: Role = Role.DISPATCHER) -> dict[str, str]:
        with transaction(session_factory(seeded)) as db:
            secret = create_staff_token(db_session=db, role=role)
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
def dispatcher(staff: Callable[[Role], dict[str, str]]) -> dict[str, str]:
    return staff(Role.DISPATCHER)


@pytest.fixture
def scoped_token(seeded: Engine) -> Callable[..., dict[str, str]]:
    """Headers of a partner token (``partner_id=``) or a crew token (``van_id=``)."""

    def make(*, partner_id: str | None = None, van_id: str | None = None) -> dict[str, str]:
        role = Role.PARTNER if partner_id is not None else Role.CREW
        with transaction(session_factory(seeded)) as db:
            secret = create_staff_token(
                db_session=db, role=role, partner_id=partner_id, van_id=van_id
            )
        return {"Authorization": f"Bearer {secret}"}

    return make
