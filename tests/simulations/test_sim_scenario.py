"""Scenario files: the shipped ones load, bad input is one clear error naming key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.geography import hourly_breakdown_profile
from fleet.network import Network
from fleet.scenario import BUILTIN_NETWORKS
from simulations.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    load_scenario,
    parse_sweep_option,
    resolve_scenario,
)


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


@pytest.mark.parametrize("name", ["national", "national_planning", "shandong", "mmc_check"])
def test_shipped_scenarios_load(name: str) -> None:
    """Every shipped scenario validates; national is the built-in network at ~560/day."""
    s = resolve_scenario(name)
    assert s.name == name
    if name == "national":
        assert len(s.network.vans) >= 1000
        assert s.demand.breakdowns_per_day * s.horizon_days >= 200_000
        assert s.demand.hourly_profile == hourly_breakdown_profile()
        assert s.dispatch.policy == "batch-optimal"
    if name == "national_planning":
        assert (s.demand.points, s.dispatch.trigger, s.dispatch.objective) == (
            "roads", "arrival", "promise",
        )  # fmt: skip
        assert (s.dispatch.after_job, s.dispatch.move_up) == ("next-from-site", True)
        assert s.crews.night_on_call and s.move_up.max_moves_per_hour == 4
    if name == "mmc_check":
        assert len(s.network.vans) == 3
        assert s.dispatch.policy == "nearest-idle"
        assert s.demand.dispersion == 1.0
    assert (SCENARIO_DIR / f"{name}.toml").exists()


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    """An unknown name says which scenarios exist."""
    with pytest.raises(ScenarioError, match=r"shipped: .*national"):
        resolve_scenario("atlantis")


def test_unknown_key_names_key_and_line(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A misspelt key in a table is reported with its dotted name and line."""
    path = write_scenario(("dispersion = 2.3", "dispersoin = 2.3"))
    line = _line_of(path, "dispersoin")
    with pytest.raises(ScenarioError, match=rf"line {line}: unknown key 'demand.dispersoin'"):
        load_scenario(path)


def test_unknown_top_level_key(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A misspelt top-level key is an error too, with its line."""
    path = write_scenario(("horizon_days = 20", "horizon_dayz = 20"))
    line = _line_of(path, "horizon_dayz")
    with pytest.raises(ScenarioError, match=rf"line {line}: unknown key 'horizon_dayz'"):
        load_scenario(path)


def test_negative_rate(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A negative breakdown rate names the key, the line and the value."""
    path = write_scenario(("breakdowns_per_day = 30", "breakdowns_per_day = -3"))
    line = _line_of(path, "breakdowns_per_day")
    with pytest.raises(
        ScenarioError, match=rf"line {line}: demand.breakdowns_per_day must be > 0, got -3"
    ):
        load_scenario(path)


def test_impossible_distribution(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A lognormal with a negative sigma is refused, naming the fault's key and line."""
    fault = """
[[repairs.faults]]
code = "X"
category = "other"
grade = "minor"
share = 1
p_on_site_fix = 0.9
on_site_hours = { kind = "lognormal", median = 1.0, sigma = -0.5 }
workshop_hours = { kind = "fixed", value = 5 }
"""
    path = write_scenario(("[travel]", fault + "\n[travel]"))
    line = _line_of(path, "on_site_hours")
    with pytest.raises(
        ScenarioError,
        match=rf"line {line}: repairs.faults\[0\] \(code 'X'\): on_site_hours: "
        r"distribution parameter 'sigma' must be > 0, got -0.5$",
    ):
        load_scenario(path)


def test_station_off_the_map(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A station outside China is refused with the entry's line and id."""
    path = write_scenario(("lat = 36.200\nlon = 117.087", "lat = 51.5\nlon = -0.12"))
    line = _line_of(path, 'id = "TA"') - 1  # the [[stations]] header
    with pytest.raises(
        ScenarioError, match=rf"line {line}: stations\[2\] \(id 'TA'\): .*outside China"
    ):
        load_scenario(path)


def test_bad_policy_and_provider(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Enumerated settings list the allowed values."""
    path = write_scenario(('provider = "great-circle"', 'provider = "teleport"'))
    with pytest.raises(ScenarioError, match=r"travel\.provider must be one of auto, road"):
        load_scenario(path)


def test_bad_sweep_value_stops_loading(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A sweep with an impossible value fails at load time, before anything runs, naming the
    value's place in the list and its line."""
    path = write_scenario(("[travel]", "[sweep]\nvans = [1, 0]\n\n[travel]"))
    line = _line_of(path, "vans = [1, 0]")
    with pytest.raises(ScenarioError, match=rf"line {line}: sweep.vans\[1\] must be >= 1, got 0$"):
        load_scenario(path)


def test_sweep_variants_and_van_cycling(small_toml: Path) -> None:
    """vans=k gives every station k vans (its own list cycled); the product is in order."""
    s = load_scenario(small_toml)
    variants = s.variants(parse_sweep_option("vans=1,3;policy=nearest-idle,batch-optimal"))
    assert [v.label for v in variants] == [
        "vans_per_station=1, policy=nearest-idle",
        "vans_per_station=1, policy=batch-optimal",
        "vans_per_station=3, policy=nearest-idle",
        "vans_per_station=3, policy=batch-optimal",
    ]
    three = variants[2].network
    assert len(three.vans) == 9
    jn = [v.capability.value for v in three.vans if v.station_id == "JN"]
    assert jn == ["heavy_service_van", "wrecker", "heavy_service_van"]
    assert len({v.id for v in three.vans}) == 9


def test_sweep_option_rejects_unknown_key() -> None:
    """--sweep with an unknown key is refused with the known keys."""
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        parse_sweep_option("colour=red")


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ('points = "county_seats"\nprovinces = ["370000"]',
         'provinces = ["370000"]\n\n[[demand.points]]\nlat = 51.5\nlon = -0.12',
         "[[demand.points]]", r"demand.points\[0\]: position \(51.5, -0.12\) is outside China$"),
        ('points = "county_seats"', "vehicle_mix = { tractor = 1, tank = 2 }", "vehicle_mix",
         r"unknown key 'demand.vehicle_mix.tank'; allowed here: tractor, rigid_truck, "),
        ('points = "county_seats"', "hourly_profile = [1, 2]", "hourly_profile",
         r"demand.hourly_profile must be a list of 24 numbers, got 2 values$"),
        ('county_seats"\nprovinces = ["370000"]', 'county_seats"\nprovinces = ["999999"]', "999999",
         r"demand.provinces must list mainland province adcodes \(e.g. \"370000\"\), "
         r"got '999999'$"),
        ("threshold_hours = 8", "threshold_hours = 8\nallow_late = 1", "allow_late",
         r"replacement.allow_late must be true or false, got 1$"),
        ("seed = 5", 'seed = 5\nnetwork_file = "other.toml"', "network_file",
         r"network_file must be a file path|network_file: no such file"),
    ],
)  # fmt: skip
def test_scenario_errors_read_like_network_errors(  # type: ignore[no-untyped-def]
    write_scenario, old: str, new: str, needle: str, message: str
) -> None:
    """Scenario tables go through the same validator: file, line, dotted key, reason."""
    path = write_scenario((old, new))
    with pytest.raises(ScenarioError, match=rf"line {_line_of(path, needle)}: ({message})"):
        load_scenario(path)


def test_network_file_with_network_keys_is_refused(  # type: ignore[no-untyped-def]
    write_scenario, small_toml: Path
) -> None:
    """network_file and inline network keys together: refused at network_file's line."""
    path = write_scenario(("seed = 5", f'seed = 5\nnetwork_file = "{small_toml.name}"'))
    with pytest.raises(
        ScenarioError,
        match=rf"line {_line_of(path, 'network_file')}: network_file: give either network_file",
    ):
        load_scenario(path)


def test_demand_errors_stop_before_the_network_is_built(  # type: ignore[no-untyped-def]
    write_scenario, small_toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file is checked first: a bad [demand] on a national-based scenario is
    refused without building the base network."""
    built: list[str] = []

    def small_base() -> Network:
        built.append("base")
        return load_scenario(small_toml).network

    monkeypatch.setitem(BUILTIN_NETWORKS, "china-national", small_base)
    path = write_scenario(
        ("replace = true", 'base = "china-national"\nreplace = true'),
        ("breakdowns_per_day = 30", "breakdowns_per_day = 0"),
    )
    with pytest.raises(ScenarioError, match=r"demand.breakdowns_per_day must be > 0, got 0$"):
        load_scenario(path)
    assert built == []
    load_scenario(write_scenario(("replace = true", 'base = "china-national"\nreplace = true')))
    assert built == ["base"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("vans=1,1.5", r"sweep vans_per_station=1.5 must be an integer, got 1.5$"),
        ("policy=fastest", r"sweep policy='fastest' must be one of batch-optimal, nearest-idle, "
                           r"got 'fastest'$"),
        ("rate=0", r"sweep breakdowns_per_day=0 must be > 0, got 0$"),
    ],
)  # fmt: skip
def test_cli_sweep_values_follow_the_same_rules(
    small_toml: Path, option: str, message: str
) -> None:
    """--sweep values are checked by the same fields as a file's [sweep], with the same words."""
    s = load_scenario(small_toml)
    with pytest.raises(ScenarioError, match=rf"small\.toml: {message}"):
        s.variants(parse_sweep_option(option))


def test_scenario_network_takes_the_registry(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A scenario's network accepts contracts and vehicles like a network file; a vehicle
    designated to a station that does not exist is refused naming its line and plate."""
    extra = (
        '\n[[contracts]]\nid = "premium"\nthreshold_hours = 8\nbooking_probability = 0.3\n'
        '\n[[vehicles]]\nplate = "鲁A12345"\nvehicle_class = "tractor"\nstation = "TA"\n'
        'contract = "premium"\n'
    )
    good = write_scenario(('id = "TA"', 'id = "TA"'), name="good.toml")
    good.write_text(good.read_text("utf-8") + extra, "utf-8")
    terms = load_scenario(good).network.registry.terms_for("鲁A12345")
    assert (terms.designated_station_id, terms.contract.threshold_hours) == ("TA", 8.0)
    bad = write_scenario(name="bad.toml")
    bad.write_text(bad.read_text("utf-8") + extra.replace('"TA"', '"NOPE"'), "utf-8")
    line = _line_of(bad, 'station = "NOPE"')
    with pytest.raises(
        ScenarioError, match=rf"line {line}: vehicles\[0\] \(plate '鲁A12345'\): station: no stat"
    ):
        load_scenario(bad)
