"""Contracts and the vehicle registry: lookups by plate, defaults, and all-or-nothing validation
with errors that name the entry."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fleet.contracts import (
    DEFAULT_BOOKING_PROBABILITY,
    DEFAULT_CONTRACT,
    RegisteredVehicle,
    RegistryError,
    ServiceContract,
    VehicleRegistry,
    normalise_plate,
)
from fleet.model import VehicleClass

STATIONS = frozenset({"AAA-370100", "AA-370181"})
STANDARD = ServiceContract("standard", "standard 24 h", 24.0, 0.5)
PREMIUM = ServiceContract("premium", "premium 8 h", 8.0, 0.3, downtime_cost_per_hour_cny=900.0)
BASIC = ServiceContract("basic", "basic 48 h", 48.0, 0.7)


def registry() -> VehicleRegistry:
    return VehicleRegistry(
        contracts=(STANDARD, PREMIUM, BASIC),
        vehicles=(
            RegisteredVehicle("鲁A12345", VehicleClass.TRACTOR, "AAA-370100", "premium"),
            RegisteredVehicle("鲁A00001", VehicleClass.RIGID_TRUCK, None, None),
        ),
        station_ids=STATIONS,
    )


def test_registered_plate_takes_its_station_and_contract() -> None:
    """A registered plate, however it is spelt, brings its class, designated station and
    contract; one without a contract gets the default contract."""
    terms = registry().terms_for(" 鲁a·12345 ")
    assert (terms.registered, terms.plate, terms.vehicle_class) == (
        True,
        "鲁A12345",
        VehicleClass.TRACTOR,
    )
    assert terms.designated_station_id == "AAA-370100" and terms.contract is PREMIUM
    no_contract = registry().terms_for("鲁A00001")
    assert no_contract.registered and no_contract.contract is STANDARD


def test_unknown_plate_gets_the_defaults() -> None:
    """An unknown plate is not registered: no class, no station, the default contract."""
    terms = registry().terms_for("京B99999")
    assert (terms.registered, terms.vehicle_class, terms.designated_station_id) == (
        False,
        None,
        None,
    )
    assert terms.contract is STANDARD
    assert registry().lookup("京B99999") is None
    assert VehicleRegistry().terms_for("x1").contract == DEFAULT_CONTRACT


def test_plate_normalisation() -> None:
    """Full-width letters, lower case, spaces, hyphens and the middle dot do not matter."""
    assert normalise_plate("鲁Ａ·123-45") == normalise_plate("鲁a 12345") == "鲁A12345"


def test_default_contract_is_24_hours_at_even_odds() -> None:
    """The default contract keeps the historic 24 h threshold and books at p >= 0.5."""
    assert (DEFAULT_CONTRACT.threshold_hours, DEFAULT_CONTRACT.booking_probability) == (24.0, 0.5)
    assert DEFAULT_BOOKING_PROBABILITY == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"threshold_hours": 0},
            "contract gold: threshold_hours must be a finite number > 0, got 0",
        ),
        ({"threshold_hours": -8}, "contract gold: threshold_hours must be a finite number > 0"),
        ({"threshold_hours": math.inf}, "contract gold: threshold_hours must be a finite"),
        ({"booking_probability": 0.0}, r"contract gold: booking_probability must be in \(0, 1\]"),
        ({"booking_probability": 1.2}, r"contract gold: booking_probability must be in \(0, 1\]"),
        ({"booking_probability": math.nan}, "contract gold: booking_probability must be in"),
        ({"downtime_cost_per_hour_cny": -1}, "contract gold: downtime_cost_per_hour_cny must"),
    ],
)
def test_contract_refuses_bad_values_naming_it(kwargs: dict[str, Any], message: str) -> None:
    """A threshold <= 0 (or infinite) or a probability outside (0, 1] is refused naming the
    contract and the field; a probability of exactly 1 is allowed (book only when certain)."""
    with pytest.raises(RegistryError, match=message):
        ServiceContract("gold", "gold", **kwargs)
    assert ServiceContract("gold", "gold", booking_probability=1.0).booking_probability == 1.0


@pytest.mark.parametrize(
    ("vehicles", "message"),
    [
        (
            (RegisteredVehicle("鲁A1", "tractor", "AAA-999999", None),),
            "vehicle 鲁A1: designated station 'AAA-999999' does not exist",
        ),
        (
            (RegisteredVehicle("鲁A1", "tractor", None, "platinum"),),
            "vehicle 鲁A1: contract 'platinum' does not exist",
        ),
        (
            (
                RegisteredVehicle("鲁A1", "tractor"),
                RegisteredVehicle("鲁a-1", "car"),
            ),
            "duplicate vehicle plate",
        ),
    ],
)
def test_registry_refuses_entries_that_do_not_fit(
    vehicles: tuple[RegisteredVehicle, ...], message: str
) -> None:
    """Unknown stations or contracts and duplicate plates are refused naming the vehicle."""
    with pytest.raises(RegistryError, match=message):
        VehicleRegistry(contracts=(STANDARD,), vehicles=vehicles, station_ids=STATIONS)


def test_registered_vehicle_validates_class_and_plate() -> None:
    """An unknown vehicle class or an empty plate is refused naming the vehicle."""
    with pytest.raises(RegistryError, match="vehicle 鲁A1: unknown vehicle_class 'tank'"):
        RegisteredVehicle("鲁A1", "tank")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="vehicle plate must not be empty"):
        RegisteredVehicle(" · ", VehicleClass.CAR)


def test_default_contract_must_exist() -> None:
    with pytest.raises(RegistryError, match="default contract 'standard' is not one of"):
        VehicleRegistry(contracts=(PREMIUM,), station_ids=STATIONS)


def test_merge_is_all_or_nothing() -> None:
    """Merging a batch with one bad vehicle raises and leaves the registry as it was; a good
    batch gives a new registry with the entries added or replaced."""
    reg = registry()
    batch = [
        RegisteredVehicle("鲁B22222", VehicleClass.TRACTOR, "AA-370181", "basic"),
        RegisteredVehicle("鲁B33333", VehicleClass.TRACTOR, "AAA-000000", "basic"),
    ]
    with pytest.raises(RegistryError, match="vehicle 鲁B33333: designated station 'AAA-000000'"):
        reg.merged(vehicles=batch)
    assert len(reg) == 2 and reg.lookup("鲁B22222") is None
    bigger = reg.merged(
        vehicles=batch[:1], contracts=[ServiceContract("premium", "premium 12 h", 12.0, 0.3)]
    )
    assert len(bigger) == 3 and bigger.terms_for("鲁B22222").contract is BASIC
    assert bigger.terms_for("鲁A12345").contract.threshold_hours == 12.0
    assert reg.terms_for("鲁A12345").contract is PREMIUM


def valid_mapping() -> dict[str, Any]:
    return {
        "default_contract": "standard",
        "contracts": [
            {
                "id": "standard",
                "name": "standard",
                "threshold_hours": 24,
                "booking_probability": 0.5,
            },
            {"id": "premium", "threshold_hours": 8, "booking_probability": 0.3},
        ],
        "vehicles": [
            {"plate": "鲁A12345", "vehicle_class": "tractor", "contract_id": "premium"},
            {"plate": "鲁A54321", "vehicle_class": "tractor", "designated_station_id": "AA-370181"},
        ],
    }


def test_from_mapping_builds_the_registry() -> None:
    reg = VehicleRegistry.from_mapping(valid_mapping(), station_ids=STATIONS)
    assert reg.terms_for("鲁A12345").contract.threshold_hours == 8.0
    assert reg.terms_for("鲁A54321").designated_station_id == "AA-370181"
    assert reg.terms_for("鲁A54321").contract.id == "standard"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("contracts", 1, "threshold_hours"),
            0,
            r"registry.toml: contracts\[1\] \(premium\): contract premium: threshold_hours must",
        ),
        (
            ("contracts", 1, "booking_probability"),
            1.5,
            r"contracts\[1\] \(premium\): contract premium: booking_probability must be in",
        ),
        (
            ("vehicles", 1, "designated_station_id"),
            "AA-000000",
            "registry.toml: vehicle 鲁A54321: designated station 'AA-000000' does not exist",
        ),
        (
            ("vehicles", 0, "vehicle_class"),
            "bus",
            r"vehicles\[0\] \(鲁A12345\): vehicle 鲁A12345: unknown vehicle_class 'bus'",
        ),
        (
            ("vehicles", 0, "colour"),
            "red",
            r"vehicles\[0\] \(鲁A12345\): unknown key\(s\) colour",
        ),
    ],
)
def test_from_mapping_errors_name_source_position_and_entry(
    path: tuple[str, int, str], value: object, message: str
) -> None:
    """A bad entry anywhere refuses the whole file with an error naming where it is."""
    data = valid_mapping()
    data[path[0]][path[1]][path[2]] = value
    with pytest.raises(RegistryError, match=message):
        VehicleRegistry.from_mapping(data, station_ids=STATIONS, source="registry.toml")


def test_from_mapping_missing_key_is_named() -> None:
    data = valid_mapping()
    del data["vehicles"][1]["vehicle_class"]
    with pytest.raises(RegistryError, match=r"vehicles\[1\] \(鲁A54321\): missing key"):
        VehicleRegistry.from_mapping(data, station_ids=STATIONS)
