"""Contracts and registered vehicles in network files, and the national demo registry."""

from pathlib import Path

import pytest

from fleet import build_national_network
from fleet.demo import DEMO_CONTRACTS, build_demo_registry
from fleet.model import VehicleClass
from fleet.scenario import ScenarioError, load_network_file

NETWORK = """
name = "jinan-pilot"
default_contract = "standard"

[[stations]]
id = "JN-1"
grade = "AAA"
lat = 36.651
lon = 117.120

[[vans]]
id = "JN-1-V1"
station = "JN-1"
capability = "wrecker"

[[contracts]]
id = "standard"
threshold_hours = 24

[[contracts]]
id = "premium"
name = "premium 8 h"
threshold_hours = 8
booking_probability = 0.3
downtime_cost_per_hour_cny = 800

[[vehicles]]
plate = "鲁A·12345"
vehicle_class = "tractor"
station = "JN-1"
contract = "premium"

[[vehicles]]
plate = "鲁B54321"
vehicle_class = "rigid_truck"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "net.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_contracts_and_vehicles_load_into_the_registry(tmp_path: Path) -> None:
    """A plate in the file gets its class, designated station and contract (any spelling);
    a vehicle without a contract and an unknown plate get the default one."""
    registry = load_network_file(write(tmp_path, NETWORK)).registry
    terms = registry.terms_for("鲁a 12345")
    assert (terms.registered, terms.vehicle_class, terms.designated_station_id) == (
        True,
        VehicleClass.TRACTOR,
        "JN-1",
    )
    assert (terms.contract.threshold_hours, terms.contract.booking_probability) == (8.0, 0.3)
    assert terms.contract.downtime_cost_per_hour_cny == 800.0
    assert registry.terms_for("鲁B54321").contract.id == "standard"
    unknown = registry.terms_for("京A00000")
    assert (unknown.registered, unknown.contract.id) == (False, "standard")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'station = "JN-1"\ncontract',
            'station = "JN-9"\ncontract',
            "net.toml line 30: vehicles[0] (plate '鲁A·12345'): station: no station with id 'JN-9'",
        ),
        (
            "threshold_hours = 8",
            "threshold_hours = 0",
            "net.toml line 23: contracts[1] (id 'premium'): threshold_hours must be > 0, got 0",
        ),
        (
            "booking_probability = 0.3",
            "booking_probability = 1.5",
            "net.toml line 24: contracts[1] (id 'premium'): booking_probability must be "
            "<= 1, got 1.5",
        ),
        (
            "booking_probability = 0.3",
            "booking_probability = 0",
            "net.toml line 24: contracts[1] (id 'premium'): booking_probability must be > 0, got 0",
        ),
        (
            'contract = "premium"',
            'contract = "gold"',
            "net.toml line 31: vehicles[0] (plate '鲁A·12345'): contract: "
            "no contract with id 'gold'",
        ),
        (
            'plate = "鲁B54321"',
            'plate = "鲁A12345"',
            "net.toml line 34: vehicles[1] (plate '鲁A12345'): plate must be unique, "
            "got '鲁A12345' again",
        ),
    ],
)
def test_bad_registry_entries_name_line_and_entry(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Unknown station or contract, threshold <= 0, probability outside (0, 1], a duplicate
    plate: one line naming the file line and the entry; no network (and no registry) exists."""
    assert old in NETWORK
    with pytest.raises(ScenarioError) as err:
        load_network_file(write(tmp_path, NETWORK.replace(old, new)))
    assert str(err.value).removeprefix(f"{tmp_path}/") == message


def test_national_network_carries_the_demo_registry() -> None:
    """The seeded national network has the demo contracts and 200 registered tractors, each
    designated to one of its stations."""
    net = build_national_network()
    assert net.registry == build_demo_registry()
    assert net.registry.contracts == DEMO_CONTRACTS
    assert len(net.registry) == 200
    assert all(v.designated_station_id in net.station_by_id for v in net.registry.vehicles)


def test_file_on_the_national_base_adds_to_its_registry(tmp_path: Path) -> None:
    """A file with ``base`` keeps the base's registry and adds its own vehicles."""
    text = """
base = "china-national"

[[vehicles]]
plate = "鲁A99999"
vehicle_class = "tractor"
station = "AAA-370100"
contract = "premium"
"""
    net = load_network_file(write(tmp_path, text))
    assert len(net.registry) == 201
    assert net.registry.terms_for("鲁A99999").contract.threshold_hours == 8.0
