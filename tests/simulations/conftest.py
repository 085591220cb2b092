"""Shared fixtures: a small regional scenario (3 stations, great-circle travel) as TOML text."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL = """\
name = "small"
replace = true
seed = 5
horizon_days = 20
warmup_days = 1

[[stations]]
id = "JN"
grade = "AAA"
lat = 36.651
lon = 117.120
towing = true

[[stations]]
id = "ZB"
grade = "AA"
lat = 36.813
lon = 118.055
open_hour = 6
close_hour = 22

[[stations]]
id = "TA"
grade = "AA"
lat = 36.200
lon = 117.087

[[vans]]
id = "JN-1"
station = "JN"
capability = "heavy_service_van"

[[vans]]
id = "JN-2"
station = "JN"
capability = "wrecker"

[[vans]]
id = "ZB-1"
station = "ZB"
capability = "heavy_service_van"

[[vans]]
id = "TA-1"
station = "TA"
capability = "heavy_service_van"

[[partners]]
id = "P1"
provinces = ["370000"]
callout_fee_cny = 500
per_empty_km_cny = 5
per_loaded_km_cny = 8

[[trucks]]
id = "T1"
partner = "P1"
type = "tractor"
capacity_t = 40
lat = 36.651
lon = 117.120

[[trucks]]
id = "T2"
partner = "P1"
type = "box_truck"
capacity_t = 15
lat = 36.651
lon = 117.120

[demand]
breakdowns_per_day = 30
dispersion = 2.3
points = "county_seats"
provinces = ["370000"]

[travel]
provider = "great-circle"

[replacement]
threshold_hours = 8
"""


@pytest.fixture
def small_toml(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, "utf-8")
    return path


@pytest.fixture
def write_scenario(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write SMALL with text replacements; returns the path."""

    def write(*replacements: tuple[str, str], name: str = "variant.toml") -> Path:
        text = SMALL
        for old, new in replacements:
            assert old in text, old
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text, "utf-8")
        return path

    return write
