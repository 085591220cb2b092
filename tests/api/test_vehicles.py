"""The vehicle registry in the product: plate lookup, intake with the plate's station and
contract (risk, workshop, tow leg), the risk in the views, and diagnosis on the risk rule."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.requests.intake import TOW_LEG_STEP_HOURS
from api.requests.reference import IntakeReference, great_circle_km
from dispatch.triage import (
    TriageContext,
    apply_diagnosis,
    choose_workshop,
    estimate_repair,
    tow_leg_hours,
)
from fleet import GeoPoint, VehicleClass, build_national_network
from fleet.demo import DEMO_CONTRACTS
from tests.api.conftest import JINAN, JINAN_STATION, PREMIUM_PLATE, request_body

Headers = dict[str, str]
PREMIUM = next(c for c in DEMO_CONTRACTS if c.id == "premium")
STANDARD = next(c for c in DEMO_CONTRACTS if c.id == "standard")


def post(client: TestClient, **overrides: Any) -> dict[str, Any]:
    r = client.post("/v1/requests", json=request_body(**overrides))
    assert r.status_code == 201, r.text
    return dict(r.json())


def stored(engine: Engine, request_id: str) -> m.RescueRequest:
    with transaction(session_factory(engine)) as db:
        row = db.get(m.RescueRequest, request_id)
        assert row is not None
        db.expunge(row)
        return row


def expected_estimate(station_id: str, fault: str, contract: Any, threshold: float) -> Any:
    """The estimate of a tractor broken down in Jinan repaired at ``station_id``."""
    station = build_national_network().station_by_id[station_id]
    km = great_circle_km(GeoPoint(**JINAN), station.location)
    tow = round(tow_leg_hours(km) / TOW_LEG_STEP_HOURS) * TOW_LEG_STEP_HOURS
    context = TriageContext(
        workshop_station=station, tow_leg_hours=tow, contract=contract, threshold_hours=threshold
    )
    return estimate_repair(fault, VehicleClass.TRACTOR, context)


def test_vehicle_lookup_by_plate(client: TestClient, dispatcher: Headers) -> None:
    """Staff look a plate up in any spelling: class, designated station, contract; an unknown
    plate is a 404 naming it and the default contract; no token is a 401."""
    r = client.get(f"/v1/vehicles/{quote('鲁a·88888')}", headers=dispatcher)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "plate": PREMIUM_PLATE,
        "registered": True,
        "vehicle_class": "tractor",
        "designated_station_id": JINAN_STATION,
        "contract": {
            "id": "premium",
            "name": "premium 8 h",
            "threshold_hours": 8.0,
            "booking_probability": 0.3,
            "downtime_cost_per_hour_cny": 800.0,
        },
    }
    unknown = client.get(f"/v1/vehicles/{quote('京Z00001')}", headers=dispatcher)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == (
        "no registered vehicle with plate '京Z00001' (its requests get the default contract "
        "'standard')"
    )
    assert client.get(f"/v1/vehicles/{quote(PREMIUM_PLATE)}").status_code == 401


def test_registered_plate_brings_station_and_contract(
    client: TestClient, dispatcher: Headers, seeded: Engine
) -> None:
    """A registered plate's request takes its designated station and contract untyped: the
    stored estimate carries the premium threshold (8 h), its booking probability and the risk
    computed with that workshop and the tow leg to it. The customer sees the threshold only;
    staff see the risk and the contract."""
    created = post(client, vehicle={"plate": "鲁A 88888", "vehicle_class": "tractor"})
    expected = expected_estimate(JINAN_STATION, "ENGINE_NO_START", PREMIUM, 8.0)
    row = stored(seeded, created["id"])
    assert (row.designated_station_id, row.workshop_station_id) == (JINAN_STATION, JINAN_STATION)
    assert (row.contract_id, row.replacement_threshold_hours, row.booking_probability) == (
        "premium",
        8.0,
        0.3,
    )
    assert row.p_exceeds_threshold == pytest.approx(expected.p_exceeds_threshold, abs=1e-12)
    assert row.estimated_repair_hours == pytest.approx(expected.expected_hours, abs=1e-12)
    # ENGINE_NO_START at Jinan's AAA station (parts stocked): p ~ 0.41 >= 0.3 books.
    assert 0.3 <= row.p_exceeds_threshold < 0.5
    assert row.needs_replacement is True

    customer = created["estimate"]
    assert customer["threshold_hours"] == 8.0 and customer["needs_replacement"] is True
    assert customer["p_exceeds_threshold"] is None and customer["contract_id"] is None
    staff_view = client.get(f"/v1/requests/{created['id']}", headers=dispatcher).json()
    assert staff_view["estimate"]["p_exceeds_threshold"] == pytest.approx(
        expected.p_exceeds_threshold
    )
    assert staff_view["estimate"]["contract_id"] == "premium"
    assert staff_view["estimate"]["booking_probability"] == 0.3
    assert staff_view["vehicle"]["designated_station_id"] == JINAN_STATION


def test_unknown_plate_gets_default_contract_and_nearest_workshop(
    client: TestClient, seeded: Engine
) -> None:
    """An unknown plate: the default contract with the configured threshold (24 h), no
    designated station, the nearest capable station as the workshop."""
    created = post(client)
    row = stored(seeded, created["id"])
    stations = [s for s in build_national_network().stations if s.province_adcode == "370000"]
    nearest = choose_workshop(stations, GeoPoint(**JINAN), "tractor", great_circle_km)
    assert nearest is not None
    expected = expected_estimate(nearest.station.id, "ENGINE_NO_START", STANDARD, 24.0)
    assert (row.contract_id, row.replacement_threshold_hours, row.designated_station_id) == (
        "standard",
        24.0,
        None,
    )
    assert row.workshop_station_id == nearest.station.id
    assert row.p_exceeds_threshold == pytest.approx(expected.p_exceeds_threshold, abs=1e-12)
    assert row.needs_replacement is False


def test_diagnosis_books_and_releases_on_the_contract_risk(
    client: TestClient, dispatcher: Headers, seeded: Engine
) -> None:
    """On the premium contract (8 h, p 0.3), a figure of 7.5 h still to go books (risk 0.4:
    the old strict rule would not have), 5 h releases (risk ~0.03); the stored risk is
    apply_diagnosis's with the hours elapsed since the report."""
    rid = post(client, vehicle={"plate": PREMIUM_PLATE, "vehicle_class": "tractor"})["id"]
    client.post("/v1/dispatch/runs", headers=dispatcher)
    for status in ("en_route", "on_site"):
        r = client.post(f"/v1/requests/{rid}/status", json={"status": status}, headers=dispatcher)
        assert r.status_code == 200, r.text
    base = expected_estimate(JINAN_STATION, "ENGINE_NO_START", PREMIUM, 8.0)
    for hours, books in ((5.0, False), (7.5, True)):
        d = client.post(
            f"/v1/requests/{rid}/diagnosis",
            json={"estimated_repair_hours": hours},
            headers=dispatcher,
        )
        assert d.status_code == 200, d.text
        assert d.json()["estimate"]["needs_replacement"] is books
        assert d.json()["estimate"]["source"] == "diagnosis"
        with transaction(session_factory(seeded)) as db:
            event = db.scalars(
                select(m.Event)
                .where(m.Event.request_id == rid, m.Event.kind == "diagnosis")
                .order_by(m.Event.id.desc())
            ).first()
            assert event is not None
            data = dict(event.data)
        want = apply_diagnosis(base, hours, 8.0, elapsed_hours=data["elapsed_hours"])
        assert data["p_exceeds_threshold"] == pytest.approx(want.p_exceeds_threshold, abs=1e-4)
        assert want.needs_replacement is books
    assert d.json()["status"] == "awaiting_replacement"


def test_reference_workshop_equals_choose_workshop_over_all_stations() -> None:
    """The intake's pre-selected workshop is the one choose_workshop picks from every station
    (200 random points in China, each vehicle class, with and without a designated station)."""
    net = build_national_network()
    reference = IntakeReference(net.registry, net.stations)
    rng = np.random.default_rng(7)
    designated = [None, "AAA-370100", net.stations[-1].id]
    for i in range(200):
        point = GeoPoint(float(rng.uniform(22, 45)), float(rng.uniform(85, 125)))
        klass = list(VehicleClass)[i % len(VehicleClass)]
        station_id = designated[i % len(designated)]
        got = reference.workshop_for(point, klass, station_id)
        want = choose_workshop(
            net.stations, point, klass, great_circle_km, designated_station_id=station_id
        )
        assert got == want


def test_workshop_grid_is_exact_on_cell_edges_and_in_dense_areas() -> None:
    """The grid's candidates always hold the nearest station: points on and next to cell
    boundaries (multiples of 0.5 degrees, where a bound that is too tight would show first)
    and in the densest part of the network (Shandong, Jiangsu) get the full pass's answer."""
    net = build_national_network()
    reference = IntakeReference(net.registry, net.stations)
    points = [
        GeoPoint(lat + d, lon + d)
        for lat in np.arange(30.0, 38.5, 0.5)
        for lon in np.arange(114.0, 122.5, 1.5)
        for d in (0.0, -1e-9, 0.249999)
    ]
    rng = np.random.default_rng(11)
    points += [
        GeoPoint(float(rng.uniform(31, 38)), float(rng.uniform(115, 122))) for _ in range(150)
    ]
    for i, point in enumerate(points):
        klass = (VehicleClass.TRACTOR, VehicleClass.CAR)[i % 2]
        got = reference.workshop_for(point, klass, None)
        want = choose_workshop(net.stations, point, klass, great_circle_km)
        assert got == want, point
