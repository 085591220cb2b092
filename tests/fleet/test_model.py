"""The network value types validate themselves and encode who can rescue what."""

import math

import numpy as np
import pytest

from fleet import (
    ContractRates,
    GeoPoint,
    OpeningHours,
    PartnerCompany,
    ReplacementTruck,
    RescueVan,
    ServiceStation,
    StationGrade,
    TruckType,
    VanCapability,
    VehicleClass,
    is_on_shift,
)


def test_geopoint_rejects_out_of_range_and_nan() -> None:
    """Latitude and longitude outside WGS84 ranges or NaN are refused, naming the value."""
    with pytest.raises(ValueError, match=r"latitude 95 is outside \[-90, 90\]"):
        GeoPoint(95, 10)
    with pytest.raises(ValueError, match="longitude 181"):
        GeoPoint(10, 181)
    with pytest.raises(ValueError, match="latitude nan"):
        GeoPoint(math.nan, 10)
    assert GeoPoint(-90, 180).lat == -90


@pytest.mark.parametrize(
    ("capability", "vehicle", "tow", "expected"),
    [
        (VanCapability.LIGHT_SERVICE, VehicleClass.CAR, False, True),
        (VanCapability.LIGHT_SERVICE, VehicleClass.TRACTOR, False, False),
        (VanCapability.HEAVY_SERVICE, VehicleClass.TRACTOR, False, True),
        (VanCapability.HEAVY_SERVICE, VehicleClass.TRACTOR, True, False),
        (VanCapability.WRECKER, VehicleClass.TRACTOR, True, True),
        (VanCapability.FLATBED, VehicleClass.CAR, True, True),
        (VanCapability.FLATBED, VehicleClass.RIGID_TRUCK, True, False),
    ],
)
def test_van_capability_rules(
    capability: VanCapability, vehicle: VehicleClass, tow: bool, expected: bool
) -> None:
    """Heavy vehicles need heavy kit; a tow needs a wrecker (any) or a flatbed (light only)."""
    assert capability.can_handle(vehicle, needs_tow=tow) is expected


def test_van_radius_must_be_positive() -> None:
    """A van with a zero or negative service radius is refused, naming the van."""
    with pytest.raises(ValueError, match="van V1: service_radius_km must be > 0"):
        RescueVan("V1", "S1", VanCapability.HEAVY_SERVICE, service_radius_km=0)
    assert RescueVan("V2", "S1", VanCapability.WRECKER).service_radius_km == 150.0


def test_truck_capacity_and_rates_validated() -> None:
    """Negative capacity and negative prices are refused."""
    with pytest.raises(ValueError, match="truck T1: capacity_t must be > 0"):
        ReplacementTruck("T1", "P1", TruckType.TRACTOR, -5, GeoPoint(30, 110), "420100")
    with pytest.raises(ValueError, match="per_empty_km_cny must be >= 0"):
        ContractRates(100, -1, 2)


def test_trip_cost_is_callout_plus_km_rates() -> None:
    """Contract cost = call-out fee + empty km x rate + loaded km x rate."""
    rates = ContractRates(callout_fee_cny=500, per_empty_km_cny=5, per_loaded_km_cny=8)
    assert rates.trip_cost(empty_km=40, loaded_km=100) == 500 + 200 + 800


def test_partner_serves_its_provinces_only() -> None:
    partner = PartnerCompany("P", "p", frozenset({"370000"}), ContractRates(1, 1, 1))
    assert partner.serves("370000")
    assert not partner.serves("320000")


def test_opening_hours() -> None:
    """06-22 is open at 6:00 and 21:59, closed at 22:00 and 3:00; bad windows are refused."""
    hours = OpeningHours(6, 22)
    assert hours.is_open(6) and hours.is_open(21.99)
    assert not hours.is_open(22) and not hours.is_open(3)
    assert OpeningHours().always_open
    with pytest.raises(ValueError, match="opening hours 22-6"):
        OpeningHours(22, 6)


@pytest.mark.parametrize("bays", [0, -2, 1.5, True])
def test_station_workshop_bays_must_be_a_positive_integer(bays: object) -> None:
    """Bays are counted (None = not tracked); 0, negatives, fractions and booleans are refused
    naming the station."""
    with pytest.raises(ValueError, match=r"station S9: workshop_bays must be an integer >= 1"):
        ServiceStation(
            id="S9",
            name="s",
            grade=StationGrade.AA,
            location=GeoPoint(36.0, 117.0),
            adcode="370100",
            prefecture_adcode="370100",
            province_adcode="370000",
            workshop_bays=bays,  # type: ignore[arg-type]
        )


def test_shift_rule_scalar_and_per_van_agree() -> None:
    """is_on_shift is the one shift rule: [open, close) local hours, hour taken modulo 24, the
    same answer for one station and for an array of vans; OpeningHours.is_open delegates."""
    assert is_on_shift(6, 22, 6.0) and not is_on_shift(6, 22, 22.0)
    assert is_on_shift(6, 22, 24 + 7.5)  # minutes since the start of a run, as hours
    assert is_on_shift(0, 24, 23.99) and is_on_shift(0, 24, 48.0)
    open_h = np.array([0.0, 6.0, 6.0, 8.0])
    close_h = np.array([24.0, 22.0, 22.0, 20.0])
    for hour in (0.0, 5.99, 6.0, 7.0, 19.99, 20.0, 21.99, 22.0, 23.5, 30.0):
        per_van = is_on_shift(open_h, close_h, hour)
        assert per_van.dtype == bool
        expected = [
            OpeningHours(int(o), int(c)).is_open(hour) for o, c in zip(open_h, close_h, strict=True)
        ]
        assert per_van.tolist() == expected, hour
    assert is_on_shift(open_h, close_h, 21.0).tolist() == [True, True, True, False]
