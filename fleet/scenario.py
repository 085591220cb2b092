"""Networks from TOML files: a built-in network, explicit entries, or both.

A network file::

    name = "shandong-pilot"
    base = "china-national"        # optional: start from a built-in network
    replace = false                # true: drop the base's stations/vans/partners/trucks

    [[stations]]
    id = "JN-1"
    name = "济南 AAA 服务站"
    grade = "AAA"                   # AAA | AA | A
    lat = 36.651
    lon = 117.120
    towing = true                   # optional (default false)
    heavy_duty_bay = true           # optional (default true)
    open_hour = 0                   # optional (default 0)
    close_hour = 24                 # optional (default 24)

    [[vans]]
    id = "JN-1-V1"
    station = "JN-1"
    capability = "heavy_service_van"   # light_service_van | heavy_service_van | wrecker | flatbed
    service_radius_km = 150            # optional (default 150)

    [[partners]]
    id = "P-SD-1"
    name = "山东顺达物流"
    provinces = ["370000"]             # province adcodes
    callout_fee_cny = 500
    per_empty_km_cny = 5.5
    per_loaded_km_cny = 8.0
    promised_response_minutes = 120    # optional

    [[trucks]]
    id = "T-JN-1"
    partner = "P-SD-1"
    type = "tractor"                   # tractor | box_truck | flatbed
    capacity_t = 40
    lat = 36.651
    lon = 117.120

Every error names the file, the entry (``vans[3] (id 'X')``), the key and the line.
Stations and truck depots must lie inside China's outline (the vendored province polygons);
administrative codes are derived from the position when not given.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

from fleet.demo import NATIONAL_NETWORK_NAME, build_national_network
from fleet.faults import load_fault_catalogue
from fleet.geography import nearest_prefecture, province_at
from fleet.model import (
    DEFAULT_SERVICE_RADIUS_KM,
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
)
from fleet.network import Network, NetworkError

BUILTIN_NETWORKS: dict[str, Callable[[], Network]] = {
    NATIONAL_NETWORK_NAME: build_national_network,
}

_TOP_KEYS = {"name", "base", "replace", "faults", "stations", "vans", "partners", "trucks"}
_STATION_KEYS = {
    "id", "name", "grade", "lat", "lon", "adcode", "prefecture_adcode", "province_adcode",
    "towing", "heavy_duty_bay", "open_hour", "close_hour", "parts_in_stock",
}  # fmt: skip
_VAN_KEYS = {"id", "station", "capability", "service_radius_km"}
_PARTNER_KEYS = {
    "id", "name", "provinces", "callout_fee_cny", "per_empty_km_cny", "per_loaded_km_cny",
    "promised_response_minutes",
}  # fmt: skip
_TRUCK_KEYS = {"id", "partner", "type", "capacity_t", "lat", "lon", "adcode"}


class ScenarioError(ValueError):
    """A scenario or network file that cannot be used; the message says where and why."""


def resolve_network(name_or_path: str | Path) -> Network:
    """A built-in network by name (``china-national``) or a network TOML file."""
    key = str(name_or_path)
    if key in BUILTIN_NETWORKS:
        return BUILTIN_NETWORKS[key]()
    path = Path(key)
    if not path.exists():
        raise ScenarioError(
            f"no built-in network {key!r} and no such file; built-in: "
            f"{', '.join(sorted(BUILTIN_NETWORKS))}"
        )
    return load_network_file(path)


def read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    """Parsed TOML and its text (kept so errors can name lines); one-line errors."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None


def load_network_file(path: str | Path) -> Network:
    data, text = read_toml(path)
    return network_from_mapping(data, source=str(path), text=text)


def network_from_mapping(
    data: Mapping[str, Any], *, source: str = "<network>", text: str = ""
) -> Network:
    """Build and validate a network from parsed TOML. ``text`` (the file's text) lets
    errors name the line of the offending entry."""
    where = _Locator(source, text)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ScenarioError(f"{where.key(key)}: unknown key {key!r}")
    base_name = data.get("base")
    if base_name is not None and base_name not in BUILTIN_NETWORKS:
        raise ScenarioError(
            f"{where.key('base')}: unknown base network {base_name!r}; built-in: "
            f"{', '.join(sorted(BUILTIN_NETWORKS))}"
        )
    base = BUILTIN_NETWORKS[base_name]() if base_name else None
    keep_base = base is not None and not data.get("replace", False)
    faults = load_fault_catalogue(data["faults"]) if "faults" in data else load_fault_catalogue()

    stations = list(base.stations) if keep_base and base else []
    for i, raw in enumerate(_entries(data, "stations", where)):
        stations.append(_station(raw, where.entry("stations", i, raw)))
    vans = list(base.vans) if keep_base and base else []
    for i, raw in enumerate(_entries(data, "vans", where)):
        vans.append(_van(raw, where.entry("vans", i, raw)))
    partners = list(base.partners) if keep_base and base else []
    for i, raw in enumerate(_entries(data, "partners", where)):
        partners.append(_partner(raw, where.entry("partners", i, raw)))
    trucks = list(base.trucks) if keep_base and base else []
    for i, raw in enumerate(_entries(data, "trucks", where)):
        trucks.append(_truck(raw, where.entry("trucks", i, raw)))

    # cross-references, reported with the entry's line
    station_ids = {s.id for s in stations}
    for i, raw in enumerate(data.get("vans", [])):
        if raw["station"] not in station_ids:
            raise ScenarioError(
                f"{where.entry('vans', i, raw)}: home station {raw['station']!r} does not exist"
            )
    partner_ids = {p.id for p in partners}
    for i, raw in enumerate(data.get("trucks", [])):
        if raw["partner"] not in partner_ids:
            raise ScenarioError(
                f"{where.entry('trucks', i, raw)}: partner {raw['partner']!r} does not exist"
            )
    try:
        return Network(
            name=str(data.get("name", base_name or Path(source).stem)),
            stations=tuple(stations),
            vans=tuple(vans),
            partners=tuple(partners),
            trucks=tuple(trucks),
            faults=faults,
        )
    except NetworkError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


class _Locator:
    """Finds the line of ``[[table]]`` number i in the file text, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def _line_of(self, pattern: str, nth: int = 0) -> int | None:
        rx = re.compile(pattern)
        seen = 0
        for n, line in enumerate(self.lines, start=1):
            if rx.match(line):
                if seen == nth:
                    return n
                seen += 1
        return None

    def key(self, key: str) -> str:
        line = self._line_of(rf"\s*{re.escape(key)}\s*=")
        return f"{self.source}" + (f" line {line}" if line else "")

    def entry(self, table: str, index: int, raw: Mapping[str, Any]) -> str:
        line = self._line_of(rf"\s*\[\[\s*{re.escape(table)}\s*\]\]", index)
        ident = f" (id {raw.get('id')!r})" if isinstance(raw, Mapping) and "id" in raw else ""
        loc = f" line {line}" if line else ""
        return f"{self.source}{loc}: {table}[{index}]{ident}"


def _entries(data: Mapping[str, Any], table: str, where: _Locator) -> list[Mapping[str, Any]]:
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ScenarioError(f"{where.key(table)}: '{table}' must be an array of tables [[{table}]]")
    return entries


def _check_keys(
    raw: Mapping[str, Any], allowed: set[str], required: tuple[str, ...], at: str
) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ScenarioError(f"{at}: unknown key {sorted(unknown)[0]!r}")
    for key in required:
        if key not in raw:
            raise ScenarioError(f"{at}: missing key {key!r}")


def _number(raw: Mapping[str, Any], key: str, at: str, *, minimum: float | None = None,
            strictly: bool = False, default: float | None = None) -> float:  # fmt: skip
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{at}: {key} must be a number, got {value!r}")
    value = float(value)
    if minimum is not None and (value <= minimum if strictly else value < minimum):
        op = ">" if strictly else ">="
        raise ScenarioError(f"{at}: {key} must be {op} {minimum:g}, got {value:g}")
    return value


def _point_in_china(raw: Mapping[str, Any], at: str) -> tuple[GeoPoint, str]:
    lat = _number(raw, "lat", at)
    lon = _number(raw, "lon", at)
    try:
        point = GeoPoint(lat, lon)
    except ValueError as exc:
        raise ScenarioError(f"{at}: {exc}") from None
    province = province_at(lat, lon)
    if province is None:
        raise ScenarioError(f"{at}: position ({lat}, {lon}) is outside China")
    return point, province


def _enum(cls: Any, value: Any, key: str, at: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ScenarioError(f"{at}: {key} {value!r} is not one of {allowed}") from None


def _station(raw: Mapping[str, Any], at: str) -> ServiceStation:
    _check_keys(raw, _STATION_KEYS, ("id", "grade", "lat", "lon"), at)
    point, province = _point_in_china(raw, at)
    grade = _enum(StationGrade, raw["grade"], "grade", at)
    prefecture = raw.get("prefecture_adcode") or nearest_prefecture(point.lat, point.lon).adcode
    try:
        return ServiceStation(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            grade=grade,
            location=point,
            adcode=str(raw.get("adcode", prefecture)),
            prefecture_adcode=str(prefecture),
            province_adcode=str(raw.get("province_adcode", province)),
            heavy_duty_bay=bool(raw.get("heavy_duty_bay", True)),
            towing=bool(raw.get("towing", False)),
            opening_hours=OpeningHours(
                int(raw.get("open_hour", 0)), int(raw.get("close_hour", 24))
            ),
            parts_in_stock=frozenset(
                raw.get("parts_in_stock", load_fault_catalogue().parts_stocked_at(grade))
            ),
        )
    except ValueError as exc:
        raise ScenarioError(f"{at}: {exc}") from None


def _van(raw: Mapping[str, Any], at: str) -> RescueVan:
    _check_keys(raw, _VAN_KEYS, ("id", "station", "capability"), at)
    radius = _number(raw, "service_radius_km", at, minimum=0, strictly=True,
                     default=DEFAULT_SERVICE_RADIUS_KM)  # fmt: skip
    return RescueVan(
        id=str(raw["id"]),
        station_id=str(raw["station"]),
        capability=_enum(VanCapability, raw["capability"], "capability", at),
        service_radius_km=radius,
    )


def _partner(raw: Mapping[str, Any], at: str) -> PartnerCompany:
    _check_keys(
        raw, _PARTNER_KEYS,
        ("id", "provinces", "callout_fee_cny", "per_empty_km_cny", "per_loaded_km_cny"), at,
    )  # fmt: skip
    rates = ContractRates(
        callout_fee_cny=_number(raw, "callout_fee_cny", at, minimum=0),
        per_empty_km_cny=_number(raw, "per_empty_km_cny", at, minimum=0),
        per_loaded_km_cny=_number(raw, "per_loaded_km_cny", at, minimum=0),
    )
    provinces = raw["provinces"]
    if not isinstance(provinces, list) or not provinces:
        raise ScenarioError(f"{at}: provinces must be a non-empty list of province adcodes")
    return PartnerCompany(
        id=str(raw["id"]),
        name=str(raw.get("name", raw["id"])),
        provinces=frozenset(str(p) for p in provinces),
        rates=rates,
        promised_response_minutes=_number(
            raw, "promised_response_minutes", at, minimum=0, strictly=True, default=120.0
        ),
    )


def _truck(raw: Mapping[str, Any], at: str) -> ReplacementTruck:
    _check_keys(raw, _TRUCK_KEYS, ("id", "partner", "type", "capacity_t", "lat", "lon"), at)
    capacity = _number(raw, "capacity_t", at, minimum=0, strictly=True)
    point, _province = _point_in_china(raw, at)
    return ReplacementTruck(
        id=str(raw["id"]),
        partner_id=str(raw["partner"]),
        truck_type=_enum(TruckType, raw["type"], "type", at),
        capacity_t=capacity,
        depot=point,
        depot_adcode=str(raw.get("adcode") or nearest_prefecture(point.lat, point.lon).adcode),
    )


def with_vans(network: Network, vans: tuple[RescueVan, ...]) -> Network:
    """The same network with another fleet of vans (for planning sweeps)."""
    return dc_replace(network, vans=vans)
