"""Network TOML files: built-ins by name, explicit entries, and errors that name the entry."""

from pathlib import Path

import pytest

from fleet.network import Network
from fleet.scenario import BUILTIN_NETWORKS, ScenarioError, load_network_file, resolve_network

GOOD = """
name = "jinan-pilot"

[[stations]]
id = "JN-1"
name = "济南 AAA"
grade = "AAA"
lat = 36.651
lon = 117.120
towing = true

[[vans]]
id = "JN-1-V1"
station = "JN-1"
capability = "wrecker"
service_radius_km = 120

[[partners]]
id = "P1"
name = "山东顺达物流"
provinces = ["370000"]
callout_fee_cny = 500
per_empty_km_cny = 5
per_loaded_km_cny = 8

[[trucks]]
id = "T1"
partner = "P1"
type = "tractor"
capacity_t = 40
lat = 36.65
lon = 117.0
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "net.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_explicit_network_loads_with_derived_codes(tmp_path: Path) -> None:
    """A small explicit network loads; province and prefecture codes come from the position."""
    net = load_network_file(write(tmp_path, GOOD))
    assert net.name == "jinan-pilot"
    station = net.stations[0]
    assert station.province_adcode == "370000"
    assert station.prefecture_adcode == "370100"
    assert net.vans[0].service_radius_km == 120
    assert net.trucks[0].depot_adcode == "370100"


def test_builtin_by_name_and_base_extension(tmp_path: Path) -> None:
    """`base = "china-national"` keeps the national network and adds the file's entries."""
    national = resolve_network("china-national")
    extra = GOOD.replace('name = "jinan-pilot"', 'name = "plus"\nbase = "china-national"')
    net = load_network_file(write(tmp_path, extra))
    assert len(net.stations) == len(national.stations) + 1
    assert len(net.vans) == len(national.vans) + 1


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("lat = 36.651\nlon = 117.120", "lat = 47.9\nlon = 106.9",
         r"line 4: stations\[0\] \(id 'JN-1'\): position \(47.9, 106.9\) is outside China"),
        ('station = "JN-1"', 'station = "NOPE"',
         r"line 14: vans\[0\] \(id 'JN-1-V1'\): station: no station with id 'NOPE'$"),
        ("capacity_t = 40", "capacity_t = -3",
         r"line 30: trucks\[0\] \(id 'T1'\): capacity_t must be > 0, got -3$"),
        ("service_radius_km = 120", "service_radius_km = 0",
         r"vans\[0\] \(id 'JN-1-V1'\): service_radius_km must be > 0"),
        ('capability = "wrecker"', 'capability = "helicopter"',
         r"line 15: vans\[0\] \(id 'JN-1-V1'\): capability must be one of light_service_van, "
         r"heavy_service_van, wrecker, flatbed, got 'helicopter'$"),
        ("towing = true", "towing = true\ncolour = 'red'", r"stations\[0\].*unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_entries_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A station outside China, a van without a station, a negative capacity...: the error
    names the file line and the entry."""
    assert old in GOOD
    with pytest.raises(ScenarioError, match=message):
        load_network_file(write(tmp_path, GOOD.replace(old, new)))


def test_unknown_network_name_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no built-in network 'atlantis'"):
        resolve_network("atlantis")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_network_file(write(tmp_path, "name = "))


TRUCK_T1 = GOOD[GOOD.index("[[trucks]]") :]


def test_bad_file_fails_before_the_base_network_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file is checked first: a bad last entry stops loading before the (slow)
    built-in base network is even built, so nothing is half-loaded."""
    built: list[str] = []

    def small_base() -> Network:
        built.append("base")
        return load_network_file(write(tmp_path, GOOD))

    monkeypatch.setitem(BUILTIN_NETWORKS, "china-national", small_base)
    text = 'base = "china-national"\n' + GOOD.replace("capacity_t = 40", "capacity_t = 0").replace(
        'id = "T1"', 'id = "T9"'
    )
    with pytest.raises(ScenarioError, match=r"trucks\[0\] \(id 'T9'\): capacity_t must be > 0"):
        load_network_file(write(tmp_path, text))
    assert built == []


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("lon = 117.0\n", "lon = 117.0\n\n" + TRUCK_T1, 'id = "T1"',
         r"trucks\[1\] \(id 'T1'\): id must be unique, got 'T1' again$"),
        ("towing = true", "open_hour = 22\nclose_hour = 6", "close_hour",
         r"stations\[0\] \(id 'JN-1'\): close_hour must be > open_hour \(22\), got 6$"),
        ('partner = "P1"', 'partner = "P9"', 'partner = "P9"',
         r"trucks\[0\] \(id 'T1'\): partner: no partner with id 'P9'$"),
        ('provinces = ["370000"]', "provinces = []", "provinces",
         r"partners\[0\] \(id 'P1'\): provinces must be a non-empty list$"),
        ("lat = 36.65\n", "lat = 95\n", "lat = 95",
         r"trucks\[0\] \(id 'T1'\): lat must be in \[-90, 90\], got 95$"),
    ],
)  # fmt: skip
def test_cross_entry_errors_name_the_key_line(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    """Duplicates, references and ranges across keys are reported like type errors: at the
    offending key's line (the last occurrence for a duplicate)."""
    path = write(tmp_path, GOOD.replace(old, new))
    lines = [n for n, text in enumerate(path.read_text("utf-8").splitlines(), 1) if key in text]
    with pytest.raises(ScenarioError, match=rf"net\.toml line {lines[-1]}: {message}"):
        load_network_file(path)


def test_duplicate_of_a_base_id_is_refused(tmp_path: Path) -> None:
    """A file extending the national network cannot reuse one of its ids."""
    first = resolve_network("china-national").stations[0].id
    text = 'base = "china-national"\n' + GOOD.replace('id = "JN-1"', f'id = "{first}"').replace(
        'station = "JN-1"', f'station = "{first}"'
    )
    with pytest.raises(
        ScenarioError, match=rf"line 6: stations\[0\] \(id '{first}'\): id must be unique"
    ):
        load_network_file(write(tmp_path, text))
