"""Partner rescue providers from TOML (fleet/providers.py): the synthetic providers of the
national network, network files with ``[[rescue_providers]]``, and errors that name the file
line, the entry and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fleet import RescueCapability, build_national_network
from fleet.geography import mainland_provinces, prefecture_seats
from fleet.providers import load_partner_providers_file, parse_partner_providers
from fleet.scenario import ScenarioError, load_network_file, network_from_mapping
from fleet.toml_schema import TomlDocument

ENTRY = """
[[rescue_providers]]
id = "R1"
partner = "P-370000-1"
lat = 36.6
lon = 117.0
provinces = ["370000"]
capabilities = ["heavy_tow", "tyre"]
promised_response_minutes = 60
callout_fee_cny = 800
per_km_cny = 12
capacity_jobs = 3
"""


def network_text(entry: str = ENTRY) -> str:
    return 'base = "china-national"\n' + entry


def load(text: str) -> object:
    return network_from_mapping(tomllib.loads(text), source="net.toml", text=text)


def test_the_national_network_has_two_synthetic_providers_per_province() -> None:
    """62 providers: per mainland province a heavy tow company covering the province and a
    mobile service company with a 250 km radius, each run by a partner company of that
    province; every province with prefecture seats has a heavy tow."""
    net = build_national_network()
    providers = {p.id: p for p in net.rescue_providers}
    provinces = {s.province_adcode for s in prefecture_seats()}
    assert len(providers) == 62 == 2 * len(provinces)
    partners = net.partner_by_id
    for adcode in provinces:
        tow, mob = providers[f"R-{adcode}-TOW"], providers[f"R-{adcode}-MOB"]
        assert tow.provinces == frozenset({adcode}) and tow.radius_km == 0.0
        assert RescueCapability.HEAVY_TOW in tow.capabilities
        assert mob.provinces == frozenset() and mob.radius_km == 250.0
        assert mob.capabilities == {RescueCapability.MOBILE_MECHANIC, RescueCapability.TYRE}
        for p in (tow, mob):
            assert partners[p.partner_id].serves(adcode)
            assert "(synthetic)" in p.name
    assert {p.adcode for p in mainland_provinces()} >= provinces
    assert build_national_network().rescue_providers == net.rescue_providers


def test_a_network_file_adds_providers_to_the_base_or_replaces_them() -> None:
    """With the national base the file's provider comes after the base's 62; ``replace``
    keeps only the file's (its partner must then be in the file)."""
    net = load(network_text())
    assert [p.id for p in net.rescue_providers][-1] == "R1"  # type: ignore[attr-defined]
    assert len(net.rescue_providers) == 63  # type: ignore[attr-defined]
    r1 = net.rescue_providers[-1]  # type: ignore[attr-defined]
    assert (r1.capacity_jobs, r1.callout_fee_cny, r1.per_km_cny) == (3, 800.0, 12.0)
    assert r1.name == "R1" and r1.partner_id == "P-370000-1"
    with pytest.raises(ScenarioError) as exc:
        load("replace = true\n" + network_text())
    assert str(exc.value) == "net.toml line 6: rescue_providers[0] (id 'R1'): partner: " + (
        "no partner with id 'P-370000-1'"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("capacity_jobs = 3", "capacity_jobs = 0"),
         "net.toml line 13: rescue_providers[0] (id 'R1'): capacity_jobs must be >= 1, got 0"),
        (('"heavy_tow", "tyre"', '"winch"'),
         "net.toml line 9: rescue_providers[0] (id 'R1'): capabilities[0] must be one of "
         "heavy_tow, tyre, mobile_mechanic, got 'winch'"),
        (('provinces = ["370000"]\n', ""),
         "net.toml line 3: rescue_providers[0] (id 'R1'): radius_km must be > 0 when no "
         "provinces are given (coverage)"),
        (('provinces = ["370000"]', 'provinces = ["370000", "37000"]'),
         "net.toml line 8: rescue_providers[0] (id 'R1'): provinces must list mainland province "
         "adcodes (e.g. \"370000\"), got '37000'"),
        (("per_km_cny = 12", "per_km_cny = -1"),
         "net.toml line 12: rescue_providers[0] (id 'R1'): per_km_cny must be >= 0, got -1"),
        (("lat = 36.6", "lat = 10.0"),
         "net.toml line 3: rescue_providers[0] (id 'R1'): base (10.0, 117.0) is outside China"),
        (('id = "R1"', 'id = "R-370000-TOW"'),
         "net.toml line 4: rescue_providers[0] (id 'R-370000-TOW'): id must be unique, got "
         "'R-370000-TOW' again"),
        (("capacity_jobs = 3", "capacity_jobs = 3\ncolour = 1"),
         "net.toml line 14: rescue_providers[0] (id 'R1'): unknown key 'colour'; allowed "
         "here: callout_fee_cny, capabilities, capacity_jobs, id, lat, lon, name, partner, "
         "per_km_cny, promised_response_minutes, provinces, radius_km"),
    ],
)  # fmt: skip
def test_bad_entries_are_refused_naming_line_entry_and_key(
    change: tuple[str, str], message: str
) -> None:
    text = network_text(ENTRY.replace(*change))
    with pytest.raises(ScenarioError) as exc:
        load(text)
    assert str(exc.value) == message


def test_parse_partner_providers_reads_a_nested_table_for_other_files(tmp_path: Path) -> None:
    """The parser other inputs reuse (a scenario's ``[[fleet.rescue_providers]]``): the same
    checks, lines counted in the whole file; and a file of providers alone."""
    text = '[fleet]\nname = "x"\n' + ENTRY.replace("[[rescue_providers]]",
                                                   "[[fleet.rescue_providers]]")  # fmt: skip
    doc = TomlDocument("scenario.toml", text, tomllib.loads(text))
    (p,) = parse_partner_providers(
        doc.data["fleet"]["rescue_providers"], doc, at=("fleet", "rescue_providers")
    )
    assert p.id == "R1" and p.partner_id == "P-370000-1"
    bad = text.replace("capacity_jobs = 3", "capacity_jobs = 2.5")
    doc = TomlDocument("scenario.toml", bad, tomllib.loads(bad))
    with pytest.raises(ScenarioError) as exc:
        parse_partner_providers(
            doc.data["fleet"]["rescue_providers"], doc, at=("fleet", "rescue_providers"),
            partner_ids={"P-370000-1"},
        )  # fmt: skip
    assert str(exc.value) == (
        "scenario.toml line 14: fleet.rescue_providers[0] (id 'R1'): capacity_jobs must be "
        "an integer, got 2.5"
    )
    with pytest.raises(ScenarioError, match="partner: no partner with id 'P-370000-1'"):
        parse_partner_providers(tomllib.loads(ENTRY)["rescue_providers"], "inline",
                                partner_ids=set())  # fmt: skip
    path = tmp_path / "providers.toml"
    path.write_text(ENTRY, "utf-8")
    assert [p.id for p in load_partner_providers_file(path)] == ["R1"]
    path.write_text("colour = 1\n" + ENTRY, "utf-8")
    with pytest.raises(ScenarioError, match=r"providers.toml line 1: .*unknown key 'colour'"):
        load_partner_providers_file(path)
    net_path = tmp_path / "net.toml"
    net_path.write_text(network_text(), "utf-8")
    assert load_network_file(net_path).rescue_providers[-1].id == "R1"
