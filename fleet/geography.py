"""Real Chinese administrative geography, vendored in ``fleet/data``.

Administrative units (adcodes, names, seat coordinates), province outlines (for point-in-
province lookups and the console's base map), the population proxy and the real time-of-day
breakdown profile. Sources and licences are in the project's NOTICE.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

MAINLAND_EXCLUDED_PREFIXES = ("71", "81", "82")
"""Taiwan, Hong Kong and Macau adcode prefixes: outside the mainland demo network."""


def data_text(name: str) -> str:
    """Text of a file bundled in ``fleet/data``."""
    return resources.files("fleet").joinpath("data", name).read_text("utf-8")


@dataclass(frozen=True, slots=True)
class AdminUnit:
    adcode: str
    level: str
    """province | prefecture | county_under_province | county"""
    name: str
    short_name: str
    pinyin: str
    province_adcode: str
    prefecture_adcode: str
    lat: float | None
    lon: float | None

    @property
    def is_mainland(self) -> bool:
        return not self.province_adcode.startswith(MAINLAND_EXCLUDED_PREFIXES) and (
            self.province_adcode != "0"
        )


@cache
def admin_units() -> tuple[AdminUnit, ...]:
    """Every administrative unit in the vendored divisions file, in file order."""
    rows = list(csv.DictReader(io.StringIO(data_text("china_admin_divisions.csv"))))
    units = []
    for r in rows:
        if r["level"] == "province" or r["adcode"] == "0":
            prefecture = ""
        elif r["level"] in ("prefecture", "county_under_province"):
            prefecture = r["adcode"]
        else:  # a county: its parent is a prefecture (4-digit id) or a county-level city
            parent = r["parent_areacity_id"]
            prefecture = parent + "00" if len(parent) == 4 else parent
        units.append(
            AdminUnit(
                adcode=r["adcode"],
                level=r["level"],
                name=r["name"],
                short_name=r["short_name"],
                pinyin=r["pinyin"],
                province_adcode=r["province_adcode"],
                prefecture_adcode=prefecture,
                lat=float(r["lat_wgs84"]) if r["lat_wgs84"] else None,
                lon=float(r["lng_wgs84"]) if r["lng_wgs84"] else None,
            )
        )
    return tuple(units)


@cache
def units_by_adcode() -> dict[str, AdminUnit]:
    return {u.adcode: u for u in admin_units()}


def province_name(adcode: str) -> str:
    unit = units_by_adcode().get(adcode)
    return unit.name if unit else adcode


@cache
def mainland_provinces() -> tuple[AdminUnit, ...]:
    return tuple(u for u in admin_units() if u.level == "province" and u.is_mainland)


@cache
def prefecture_seats() -> tuple[AdminUnit, ...]:
    """The mainland prefecture-level seats with coordinates (338 units)."""
    return tuple(
        u for u in admin_units() if u.level == "prefecture" and u.is_mainland and u.lat is not None
    )


@cache
def county_seats() -> tuple[AdminUnit, ...]:
    """Mainland county seats with coordinates (counties and county-level cities), one per
    adcode (a county-level city under a province is listed at both levels in the source)."""
    seen: set[str] = set()
    out = []
    for u in admin_units():
        is_county = u.level in ("county", "county_under_province")
        if is_county and u.is_mainland and u.lat is not None and u.adcode not in seen:
            seen.add(u.adcode)
            out.append(u)
    return tuple(out)


@cache
def prefecture_population() -> dict[str, float]:
    """Population proxy per prefecture-level adcode (GeoNames sum, Natural Earth fallback).

    Units with neither figure get the median of the others: a weight, not a census.
    """
    rows = list(csv.DictReader(io.StringIO(data_text("prefecture_population_proxy.csv"))))
    values: dict[str, float | None] = {}
    for r in rows:
        v = r["geonames_pop_sum"] or r["ne_popmax_sum"]
        values[r["adcode"]] = float(v) if v else None
    known = sorted(v for v in values.values() if v)
    median = known[len(known) // 2]
    return {k: (v if v else median) for k, v in values.items()}


@cache
def hourly_breakdown_profile() -> tuple[float, ...]:
    """Relative breakdown rate for each hour 0..23 (mean 1.0), from real emergency calls."""
    rows = list(csv.DictReader(io.StringIO(data_text("breakdown_hourly_profile.csv"))))
    rates = np.array(
        [float(r["relative_rate"]) for r in sorted(rows, key=lambda r: int(r["hour"]))]
    )
    return tuple(float(x) for x in rates / rates.mean())


@cache
def province_outlines_geojson() -> dict[str, Any]:
    """Province polygons as GeoJSON (the console draws them; no tile server needed)."""
    data: dict[str, Any] = json.loads(data_text("china_provinces.geojson"))
    return data


@dataclass(frozen=True, slots=True)
class _Ring:
    adcode: str
    bbox: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max
    lon: np.ndarray
    lat: np.ndarray


@cache
def province_rings() -> tuple[_Ring, ...]:
    """Every outline ring (holes included: the even-odd rule cancels them) with its adcode."""
    rings = []
    for feature in province_outlines_geojson()["features"]:
        gb = feature["properties"].get("gb") or ""
        geom = feature["geometry"]
        if not gb or geom["type"] not in ("Polygon", "MultiPolygon"):
            continue
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        for polygon in polygons:
            for ring in polygon:  # even-odd rule: holes cancel out
                arr = np.asarray(ring, dtype=float)
                rings.append(
                    _Ring(
                        adcode=gb[3:],
                        bbox=(arr[:, 0].min(), arr[:, 1].min(), arr[:, 0].max(), arr[:, 1].max()),
                        lon=arr[:, 0],
                        lat=arr[:, 1],
                    )
                )
    return tuple(rings)


def _inside(ring: _Ring, lat: float, lon: float) -> bool:
    x, y = ring.lon, ring.lat
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    crosses = (y > lat) != (y2 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x + (lat - y) * (x2 - x) / (y2 - y)
    return bool(np.count_nonzero(crosses & (lon < x_at)) % 2)


def province_at(lat: float, lon: float) -> str | None:
    """Adcode of the province containing the point, or ``None`` outside China's outline.

    The reference ray test over whole rings (~0.3 ms); :func:`fleet.province_index.province_at`
    gives the same answer through a latitude-band index (~10 us) for hot paths."""
    inside: dict[str, bool] = {}
    for ring in province_rings():
        lon_min, lat_min, lon_max, lat_max = ring.bbox
        if lon_min <= lon <= lon_max and lat_min <= lat <= lat_max and _inside(ring, lat, lon):
            inside[ring.adcode] = not inside.get(ring.adcode, False)
    for adcode, is_in in inside.items():
        if is_in:
            return adcode
    return None


def nearest_prefecture(lat: float, lon: float) -> AdminUnit:
    """The prefecture seat closest to the point (great-circle)."""
    seats = prefecture_seats()
    lats = np.radians(np.array([s.lat for s in seats], dtype=float))
    lons = np.radians(np.array([s.lon for s in seats], dtype=float))
    la, lo = np.radians(lat), np.radians(lon)
    d = np.sin((lats - la) / 2) ** 2 + np.cos(la) * np.cos(lats) * np.sin((lons - lo) / 2) ** 2
    return seats[int(np.argmin(d))]
