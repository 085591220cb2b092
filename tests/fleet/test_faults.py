"""The bundled fault catalogue is complete, consistent and anchored on the public figure."""

from importlib import resources
from pathlib import Path

import pytest

from fleet import FaultCategory, StationGrade, load_fault_catalogue
from fleet.faults import catalogue_from_mapping


def test_tyres_are_about_65_percent_of_callouts() -> None:
    """ADAC TruckService: about 65% of truck call-outs are tyres."""
    cat = load_fault_catalogue()
    shares = cat.shares()
    tyres = sum(shares[f.code] for f in cat if f.category is FaultCategory.TYRES)
    assert tyres == pytest.approx(0.65, abs=1e-9)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_catalogue_covers_the_categories_and_unknown() -> None:
    cat = load_fault_catalogue()
    categories = {f.category for f in cat}
    for c in ("tyres", "electrical", "engine", "fuel", "brakes", "cooling", "transmission",
              "accident_damage"):  # fmt: skip
        assert FaultCategory(c) in categories
    assert cat.get(None).code == "UNKNOWN"
    with pytest.raises(KeyError, match="unknown fault code 'NOPE'"):
        cat.get("NOPE")


def test_major_faults_exceed_a_day_and_tyres_do_not() -> None:
    """Expected repair: a tyre puncture takes about an hour, a major engine failure > 24 h."""
    cat = load_fault_catalogue()
    assert cat.get("TYRE_PUNCTURE").expected_repair_hours() < 2
    assert cat.get("ENGINE_MAJOR").expected_repair_hours() > 24


def test_aaa_stocks_more_parts_than_aa() -> None:
    cat = load_fault_catalogue()
    assert cat.parts_stocked_at(StationGrade.AA) < cat.parts_stocked_at(StationGrade.AAA)


def test_fault_naming_an_unknown_part_is_refused() -> None:
    data = {
        "parts": [],
        "faults": [
            {
                "code": "X", "category": "tyres", "grade": "minor", "share": 1,
                "p_on_site_fix": 0.5, "on_site_hours": {"kind": "fixed", "value": 1},
                "workshop_hours": {"kind": "fixed", "value": 2}, "parts": ["tyre"],
            }
        ],
    }  # fmt: skip
    with pytest.raises(
        ValueError, match=r"^catalogue: faults\[0\] \(code 'X'\): parts: unknown part 'tyre'"
    ):
        catalogue_from_mapping(data)
    data["faults"][0]["parts"] = []
    data["faults"][0]["p_on_site_fix"] = 1.5
    with pytest.raises(
        ValueError,
        match=r"faults\[0\] \(code 'X'\): p_on_site_fix must be in \[0, 1\], got 1.5$",
    ):
        catalogue_from_mapping(data)


def test_catalogue_file_errors_name_file_line_and_fault(tmp_path: Path) -> None:
    """A catalogue file is checked by the same validator: file, line, fault code, key."""
    bundled = resources.files("fleet.data").joinpath("fault_catalogue.toml").read_text("utf-8")
    bad = bundled.replace('grade = "minor"', 'grade = "trivial"', 1)
    path = tmp_path / "faults.toml"
    path.write_text(bad, "utf-8")
    line = bad.splitlines().index('grade = "trivial"') + 1
    first = load_fault_catalogue().faults[0].code
    with pytest.raises(
        ValueError,
        match=rf"faults\.toml line {line}: faults\[0\] \(code '{first}'\): grade must be one of "
        r"minor, major, critical, got 'trivial'$",
    ):
        load_fault_catalogue(path)
    path.write_text(bundled + '\n[[parts]]\ncode = "tyre"\n', "utf-8")
    with pytest.raises(
        ValueError, match=r"parts\[\d+\] \(code 'tyre'\): code must be unique, got 'tyre' again$"
    ):
        load_fault_catalogue(path)
