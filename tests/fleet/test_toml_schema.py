"""The shared TOML validator: types, ranges, unknown keys, defaults, and the line it names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from fleet.model import StationGrade
from fleet.toml_schema import (
    ScenarioError,
    Schema,
    TomlDocument,
    anything,
    boolean,
    custom,
    either,
    entries,
    file_path,
    integer,
    list_of,
    mapping,
    not_all_zero,
    number,
    one_of,
    string,
    table,
)

STATION: Schema = {
    "id": string(),
    "grade": one_of(StationGrade),
    "vans": integer(1, ge=0),
    "radius_km": number(150.0, gt=0),
    "open": boolean(True),
}
SCHEMA: Schema = {
    "name": string(None),
    "seed": integer(7, ge=0),
    "share": number(0.5, ge=0, le=1),
    "stations": entries(STATION),
    "demand": table(
        {
            "rate": number(10.0, gt=0),
            "profile": either(
                one_of(("real", "flat")), list_of(number(ge=0), length=3), default="real"
            ),
            "mix": mapping(("tractor", "car"), number(ge=0), {"tractor": 1.0}, check=not_all_zero),
            "tags": list_of(string(), ()),
        }
    ),
}


def doc(text: str, source: str = "net.toml") -> TomlDocument:
    return TomlDocument(source, text, tomllib.loads(text))


def error(text: str, schema: Schema = SCHEMA) -> str:
    with pytest.raises(ScenarioError) as info:
        doc(text).validate(schema)
    return str(info.value)


def test_defaults_are_filled_and_values_converted() -> None:
    """Absent keys take their defaults, absent tables all of theirs; numbers come back as
    float, integers as int, enum choices as members, lists as tuples."""
    values = doc('seed = 3.0\n[[stations]]\nid = "S1"\ngrade = "AA"\n').validate(SCHEMA)
    assert values["seed"] == 3 and isinstance(values["seed"], int)
    assert values["name"] is None
    assert values["stations"] == [
        {"id": "S1", "grade": StationGrade.AA, "vans": 1, "radius_km": 150.0, "open": True}
    ]
    assert values["demand"] == {
        "rate": 10.0, "profile": "real", "mix": {"tractor": 1.0}, "tags": ()
    }  # fmt: skip
    assert doc("[demand]\nprofile = [1, 2, 3]").validate(SCHEMA)["demand"]["profile"] == (
        1.0, 2.0, 3.0
    )  # fmt: skip


def test_a_required_key_inside_an_absent_table_is_reported() -> None:
    """A table left out entirely still needs its required keys: the message says which."""
    schema: Schema = {"seed": integer(1), "demand": table({"rate": number()})}
    assert error("seed = 1\n", schema) == "net.toml: missing key 'demand.rate'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('seed = "7"',
         "net.toml line 1: seed must be an integer, got '7'"),
        ("seed = 1.5",
         "net.toml line 1: seed must be an integer, got 1.5"),
        ("share = true",
         "net.toml line 1: share must be a number, got True"),
        ('name = ""',
         "net.toml line 1: name must be a non-empty string, got ''"),
        ("[demand]\nrate = nan",
         "net.toml line 2: demand.rate must be a number, got nan"),
        ("[demand]\nrate = inf",
         "net.toml line 2: demand.rate must be a number, got inf"),
        ('[demand]\nprofile = "real"\ntags = ["a", 3]',
         "net.toml line 3: demand.tags[1] must be a non-empty string, got 3"),
        ('demand = 5',
         "net.toml line 1: demand must be a table [demand], got 5"),
        ('[stations]\nid = "S1"',
         "net.toml line 1: stations must be an array of tables [[stations]]"),
        ('[demand]\nprofile = 3',
         "net.toml line 2: demand.profile must be one of real, flat or a list of 3 numbers, "
         "got 3"),
        ('[demand]\nprofile = "weekly"',
         "net.toml line 2: demand.profile must be one of real, flat, got 'weekly'"),
        ('[demand]\nprofile = [1, 2]',
         "net.toml line 2: demand.profile must be a list of 3 numbers, got 2 values"),
    ],
)  # fmt: skip
def test_type_errors_name_line_key_and_value(text: str, message: str) -> None:
    """A value of the wrong type: file, line, dotted key, what it must be, what it was."""
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = -1", "net.toml line 1: seed must be >= 0, got -1"),
        ("share = 1.5", "net.toml line 1: share must be in [0, 1], got 1.5"),
        ("share = -0.1", "net.toml line 1: share must be in [0, 1], got -0.1"),
        ("[demand]\nrate = 0", "net.toml line 2: demand.rate must be > 0, got 0"),
        ("[demand]\nprofile = [1, -2, 0]",
         "net.toml line 2: demand.profile[1] must be >= 0, got -2"),
        ("[demand]\nmix = { tractor = 0, car = 0 }",
         "net.toml line 2: demand.mix must not all be zero"),
        ('[[stations]]\nid = "S1"\ngrade = "AAA"\n\n[[stations]]\nid = "S2"\ngrade = "A"\n'
         "vans = -2",
         "net.toml line 8: stations[1] (id 'S2'): vans must be >= 0, got -2"),
    ],
)  # fmt: skip
def test_range_errors_name_line_key_and_value(text: str, message: str) -> None:
    """Out of range: the rule and the value, at the value's own line (the second entry's)."""
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('colour = "red"',
         "net.toml line 1: unknown key 'colour'; allowed here: demand, name, seed, share, "
         "stations"),
        ("[demand]\nrat = 3",
         "net.toml line 2: unknown key 'demand.rat'; allowed here: mix, profile, rate, tags"),
        ('[[stations]]\nid = "S1"\ngrade = "AAA"\ncolour = "red"',
         "net.toml line 4: stations[0] (id 'S1'): unknown key 'colour'; allowed here: grade, id, "
         "open, radius_km, vans"),
        ("[demand]\nmix = { tractor = 1, plane = 2 }",
         "net.toml line 2: unknown key 'demand.mix.plane'; allowed here: tractor, car"),
        ('[demand.mix]\ntractor = 1\nplane = 2',
         "net.toml line 3: unknown key 'demand.mix.plane'; allowed here: tractor, car"),
        ('[[stations]]\nid = "S1"\n\n[[stations]]\nid = "S2"',
         "net.toml line 1: stations[0] (id 'S1'): missing key 'grade'"),
    ],
)  # fmt: skip
def test_unknown_and_missing_keys(text: str, message: str) -> None:
    """A misspelt key is named with the keys allowed there; a missing one at its table's line
    (the entry's [[header]])."""
    assert error(text) == message


def test_line_of_dotted_keys_and_later_entries() -> None:
    """Dotted keys at the top level and the n-th [[entry]] are found on their own lines."""
    text = (
        '# a comment\nname = "x"\ndemand.rate = -1\ndemand.profile = "flat"\n'
        '[[stations]]\nid = "A"\ngrade = "AAA"\n'
    )
    assert error(text) == "net.toml line 3: demand.rate must be > 0, got -1"
    d = doc('[[stations]]\nid = "A"\n\n[[stations]]\nid = "B"\nvans = 2\n')
    assert d.line(("stations", 1)) == 4
    assert d.line(("stations", 1, "vans")) == 6
    assert d.line(("stations", 0, "vans")) == 1  # absent key: its entry's header
    assert d.where(("nowhere",)) == "net.toml"


def test_enum_choices_are_listed() -> None:
    text = '[[stations]]\nid = "S1"\ngrade = "AAAA"'
    assert error(text) == (
        "net.toml line 3: stations[0] (id 'S1'): grade must be one of AAA, AA, A, got 'AAAA'"
    )


def test_custom_converter_reason_is_kept() -> None:
    """A converter's ValueError becomes the reason, after the key."""

    def hours(value: object) -> float:
        if not isinstance(value, dict) or "mean" not in value:
            raise ValueError("a distribution needs 'mean'")
        return float(value["mean"])

    schema: Schema = {"service": custom(hours, expects="a distribution table")}
    assert doc("service = { mean = 2 }").validate(schema) == {"service": 2.0}
    assert error("service = { median = 2 }", schema) == (
        "net.toml line 1: service: a distribution needs 'mean'"
    )


def test_file_paths_are_relative_to_the_document(tmp_path: Path) -> None:
    """A path is resolved against the file's directory and must exist."""
    (tmp_path / "other.toml").write_text("x = 1\n", "utf-8")
    main = tmp_path / "main.toml"
    main.write_text('network = "other.toml"\nmissing = "nope.toml"\n', "utf-8")
    d = TomlDocument.read(main)
    assert d.validate({"network": file_path(), "missing": anything()})["network"] == (
        tmp_path / "other.toml"
    )
    with pytest.raises(ScenarioError, match=re.escape(f"no such file '{tmp_path / 'nope.toml'}'")):
        d.validate({"network": file_path(), "missing": file_path()})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"absent\.toml: cannot read"):
        TomlDocument.read(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n", "utf-8")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        TomlDocument.read(bad)


def test_errors_without_text_still_name_the_key() -> None:
    """Mappings built in code (no text) get the same message without a line."""
    d = TomlDocument("<network>", "", {"stations": [{"id": "S1", "grade": "AAA", "vans": -1}]})
    with pytest.raises(ScenarioError) as info:
        d.validate({"stations": entries(STATION)})
    assert str(info.value) == "<network>: stations[0] (id 'S1'): vans must be >= 0, got -1"
