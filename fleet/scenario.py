"""Networks from TOML files: a built-in network, explicit entries, or both.

A network file (every key required unless a default is given; the schemas below are the
reference: :data:`NETWORK_KEYS`, :data:`STATION_KEYS`, ...)::

    name = "shandong-pilot"         # optional (default: the base's name or the file stem)
    base = "china-national"        # optional: start from a built-in network
    replace = false                # true: drop the base's stations/vans/partners/trucks
    faults = "catalogue.toml"      # optional: a fault catalogue file (relative to this file)

    [[stations]]
    id = "JN-1"
    name = "济南 AAA 服务站"          # optional (default: the id)
    grade = "AAA"                   # AAA | AA | A
    lat = 36.651
    lon = 117.120
    towing = true                   # optional (default false)
    heavy_duty_bay = true           # optional (default true)
    open_hour = 0                   # optional (default 0), 0-23
    close_hour = 24                 # optional (default 24), after open_hour
    adcode = "370102"               # optional: adcode, prefecture_adcode, province_adcode
                                    # (derived from the position when not given)
    parts_in_stock = ["tyre"]       # optional (default: the catalogue's parts for the grade)

    [[vans]]
    id = "JN-1-V1"
    station = "JN-1"                   # a station of this file or of the base
    capability = "heavy_service_van"   # light_service_van | heavy_service_van | wrecker | flatbed
    service_radius_km = 150            # optional (default 150), > 0

    [[partners]]
    id = "P-SD-1"
    name = "山东顺达物流"                 # optional (default: the id)
    provinces = ["370000"]             # province adcodes, at least one
    callout_fee_cny = 500              # >= 0, as are the two per-km rates
    per_empty_km_cny = 5.5
    per_loaded_km_cny = 8.0
    promised_response_minutes = 120    # optional (default 120), > 0

    [[trucks]]
    id = "T-JN-1"
    partner = "P-SD-1"                 # a partner of this file or of the base
    type = "tractor"                   # tractor | box_truck | flatbed
    capacity_t = 40                    # > 0
    lat = 36.651
    lon = 117.120
    adcode = "370100"                  # optional (default: the nearest prefecture seat)

    default_contract = "standard"      # optional: the contract of unknown plates

    [[rescue_providers]]               # partner rescue / tow providers (fleet/providers.py)
    id = "R-SD-1"
    partner = "P-SD-1"                 # a partner of this file or of the base
    lat = 36.651
    lon = 117.120
    provinces = ["370000"]             # and/or radius_km = 100 (great-circle from the base)
    capabilities = ["heavy_tow", "tyre"]   # heavy_tow | tyre | mobile_mechanic
    promised_response_minutes = 60
    callout_fee_cny = 800
    per_km_cny = 12
    capacity_jobs = 3

    [[contracts]]                      # added to (or replacing, same id) the base's contracts
    id = "premium"
    name = "premium 8 h"               # optional (default: the id)
    threshold_hours = 8                # optional (default 24), > 0
    booking_probability = 0.3          # optional (default 0.5), in (0, 1]
    downtime_cost_per_hour_cny = 800   # optional, >= 0

    [[vehicles]]                       # the vehicle registry (added to the base's)
    plate = "鲁A12345"                  # stored normalised (NFKC, upper case, no separators)
    vehicle_class = "tractor"
    station = "JN-1"                   # optional: designated station (of this file or the base)
    contract = "premium"               # optional (default: the default contract)

Validation is :mod:`fleet.toml_schema`, shared with fault catalogues and simulation
scenarios: the whole file is checked before anything is built, and the first problem is one
line naming the file line, the entry and the key, e.g.
``net.toml line 30: trucks[0] (id 'T1'): capacity_t must be > 0, got -3``. Ids must be unique
(also against the base network). Stations and truck depots must lie inside China's outline
(the vendored province polygons).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet.contracts import (
    DEFAULT_BOOKING_PROBABILITY,
    DEFAULT_CONTRACT_ID,
    RegisteredVehicle,
    RegistryError,
    ServiceContract,
    VehicleRegistry,
    normalise_plate,
)
from fleet.demo import NATIONAL_NETWORK_NAME, build_national_network
from fleet.faults import load_fault_catalogue
from fleet.geography import nearest_prefecture, province_at
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
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
    VehicleClass,
)
from fleet.network import Network, NetworkError
from fleet.providers import PROVIDER_KEYS, parse_partner_providers
from fleet.toml_schema import (
    KeyPath,
    ScenarioError,
    Schema,
    TomlDocument,
    boolean,
    entries,
    file_path,
    integer,
    list_of,
    number,
    one_of,
    string,
)

__all__ = [
    "BUILTIN_NETWORKS",
    "NETWORK_KEYS",
    "ScenarioError",
    "load_network_file",
    "network_from_mapping",
    "network_from_values",
    "resolve_network",
]

BUILTIN_NETWORKS: dict[str, Callable[[], Network]] = {
    NATIONAL_NETWORK_NAME: build_national_network,
}

STATION_KEYS: Schema = {
    "id": string(),
    "name": string(None),
    "grade": one_of(StationGrade),
    "lat": number(ge=-90, le=90),
    "lon": number(ge=-180, le=180),
    "adcode": string(None),
    "prefecture_adcode": string(None),
    "province_adcode": string(None),
    "towing": boolean(False),
    "heavy_duty_bay": boolean(True),
    "open_hour": integer(0, ge=0, le=23),
    "close_hour": integer(24, ge=1, le=24),
    "parts_in_stock": list_of(string(), None),
}
VAN_KEYS: Schema = {
    "id": string(),
    "station": string(),
    "capability": one_of(VanCapability),
    "service_radius_km": number(DEFAULT_SERVICE_RADIUS_KM, gt=0),
}
PARTNER_KEYS: Schema = {
    "id": string(),
    "name": string(None),
    "provinces": list_of(string(), non_empty=True),
    "callout_fee_cny": number(ge=0),
    "per_empty_km_cny": number(ge=0),
    "per_loaded_km_cny": number(ge=0),
    "promised_response_minutes": number(120.0, gt=0),
}
TRUCK_KEYS: Schema = {
    "id": string(),
    "partner": string(),
    "type": one_of(TruckType),
    "capacity_t": number(gt=0),
    "lat": number(ge=-90, le=90),
    "lon": number(ge=-180, le=180),
    "adcode": string(None),
}
CONTRACT_KEYS: Schema = {
    "id": string(),
    "name": string(None),
    "threshold_hours": number(DEFAULT_REPLACEMENT_THRESHOLD_HOURS, gt=0),
    "booking_probability": number(DEFAULT_BOOKING_PROBABILITY, gt=0, le=1),
    "downtime_cost_per_hour_cny": number(None, ge=0),
}
VEHICLE_KEYS: Schema = {
    "plate": string(),
    "vehicle_class": one_of(VehicleClass),
    "station": string(None),
    "contract": string(None),
}
NETWORK_KEYS: Schema = {
    "name": string(None),
    "base": one_of(BUILTIN_NETWORKS, None),
    "replace": boolean(False),
    "faults": file_path(None),
    "stations": entries(STATION_KEYS),
    "vans": entries(VAN_KEYS),
    "partners": entries(PARTNER_KEYS),
    "trucks": entries(TRUCK_KEYS),
    "rescue_providers": entries(PROVIDER_KEYS),
    "default_contract": string(None),
    "contracts": entries(CONTRACT_KEYS),
    "vehicles": entries(VEHICLE_KEYS),
}
"""A network file's keys (the module docstring shows them in use)."""


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


def load_network_file(path: str | Path) -> Network:
    doc = TomlDocument.read(path)
    return network_from_values(doc.validate(NETWORK_KEYS), doc)


def network_from_mapping(
    data: Mapping[str, Any], *, source: str = "<network>", text: str = ""
) -> Network:
    """Build and validate a network from parsed TOML. ``text`` (the file's text) lets
    errors name lines."""
    doc = TomlDocument(source, text, data)
    return network_from_values(doc.validate(NETWORK_KEYS), doc)


def network_from_values(values: Mapping[str, Any], doc: TomlDocument) -> Network:
    """The network from values checked against :data:`NETWORK_KEYS`: every entry is built and
    cross-checked before the base network is, so a bad file fails fast and whole."""
    faults = load_fault_catalogue(values["faults"])
    stations = [_station(raw, doc, ("stations", i), faults.parts_stocked_at)
                for i, raw in enumerate(values["stations"])]  # fmt: skip
    vans = [_van(raw) for raw in values["vans"]]
    partners = [_partner(raw) for raw in values["partners"]]
    trucks = [_truck(raw, doc, ("trucks", i)) for i, raw in enumerate(values["trucks"])]

    base_name = values["base"]
    base = BUILTIN_NETWORKS[base_name]() if base_name else None
    if base is not None and not values["replace"]:
        stations[:0], vans[:0] = base.stations, base.vans
        partners[:0], trucks[:0] = base.partners, base.trucks
    for table, items in (("stations", stations), ("vans", vans),
                         ("partners", partners), ("trucks", trucks)):  # fmt: skip
        _check_unique_ids(doc, table, [x.id for x in items], len(values[table]))
    _check_refs(doc, "vans", "station", values["vans"], {s.id for s in stations}, "station")
    _check_refs(doc, "trucks", "partner", values["trucks"], {p.id for p in partners}, "partner")
    base_providers = base.rescue_providers if base is not None and not values["replace"] else ()
    providers = base_providers + parse_partner_providers(
        doc.data.get("rescue_providers", []),  # the raw entries: the parser checks them
        doc,
        partner_ids={p.id for p in partners},
        taken_ids={p.id for p in base_providers},
    )
    registry = _registry(values, doc, base, {s.id for s in stations})
    try:
        return Network(
            name=values["name"] or base_name or Path(doc.source).stem,
            stations=tuple(stations),
            vans=tuple(vans),
            partners=tuple(partners),
            trucks=tuple(trucks),
            faults=faults,
            registry=registry,
            rescue_providers=providers,
        )
    except (NetworkError, ValueError) as exc:
        raise ScenarioError(f"{doc.source}: {exc}") from None


def _registry(
    values: Mapping[str, Any], doc: TomlDocument, base: Network | None, station_ids: set[str]
) -> VehicleRegistry:
    """The base's registry (or the default one) with the file's contracts and vehicles added;
    each entry is checked where it stands, so the error names its line."""
    contracts = [
        ServiceContract(
            id=raw["id"],
            name=raw["name"] or raw["id"],
            threshold_hours=raw["threshold_hours"],
            booking_probability=raw["booking_probability"],
            downtime_cost_per_hour_cny=raw["downtime_cost_per_hour_cny"],
        )
        for raw in values["contracts"]
    ]
    _check_unique_ids(doc, "contracts", [c.id for c in contracts], len(contracts))
    start = base.registry if base is not None and not values["replace"] else VehicleRegistry()
    contract_ids = {c.id for c in start.contracts} | {c.id for c in contracts}
    default = values["default_contract"] or start.default_contract_id or DEFAULT_CONTRACT_ID
    if default not in contract_ids:
        raise doc.error(("default_contract",), f"no contract with id {default!r}")
    vehicles: list[RegisteredVehicle] = []
    seen: set[str] = set()
    for i, raw in enumerate(values["vehicles"]):
        at: KeyPath = ("vehicles", i)
        try:
            plate = normalise_plate(raw["plate"])
        except RegistryError as exc:
            raise doc.error((*at, "plate"), str(exc)) from None
        if not plate:
            raise doc.error((*at, "plate"), f"must not be empty, got {raw['plate']!r}")
        if plate in seen:
            raise doc.error((*at, "plate"), f"must be unique, got {plate!r} again")
        seen.add(plate)
        if raw["station"] is not None and raw["station"] not in station_ids:
            raise doc.error((*at, "station"), f"no station with id {raw['station']!r}")
        if raw["contract"] is not None and raw["contract"] not in contract_ids:
            raise doc.error((*at, "contract"), f"no contract with id {raw['contract']!r}")
        vehicles.append(
            RegisteredVehicle(plate, raw["vehicle_class"], raw["station"], raw["contract"])
        )
    by_id = {c.id: c for c in start.contracts} | {c.id: c for c in contracts}
    by_plate = {v.plate: v for v in start.vehicles} | {v.plate: v for v in vehicles}
    try:
        return VehicleRegistry(
            contracts=tuple(by_id.values()),
            vehicles=tuple(by_plate.values()),
            station_ids=frozenset(station_ids),
            default_contract_id=default,
        )
    except RegistryError as exc:
        raise ScenarioError(f"{doc.source}: {exc}") from None


def _check_unique_ids(doc: TomlDocument, table: str, ids: Sequence[str], from_file: int) -> None:
    """The file's entries are the last ``from_file`` ids (after the base network's)."""
    seen = set(ids[: len(ids) - from_file])
    for i, ident in enumerate(ids[len(ids) - from_file :]):
        if ident in seen:
            raise doc.error((table, i, "id"), f"must be unique, got {ident!r} again")
        seen.add(ident)


def _check_refs(
    doc: TomlDocument,
    table: str,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    known: set[str],
    what: str,
) -> None:
    for i, raw in enumerate(rows):
        if raw[key] not in known:
            raise doc.error((table, i, key), f"no {what} with id {raw[key]!r}")


def _position(raw: Mapping[str, Any], doc: TomlDocument, at: KeyPath) -> tuple[GeoPoint, str]:
    """The entry's point and its province; points outside China's outline are refused."""
    lat, lon = raw["lat"], raw["lon"]
    province = province_at(lat, lon)
    if province is None:
        raise doc.error(at, f"position ({lat}, {lon}) is outside China")
    return GeoPoint(lat, lon), province


def _station(
    raw: Mapping[str, Any],
    doc: TomlDocument,
    at: KeyPath,
    parts_stocked_at: Callable[[StationGrade], frozenset[str]],
) -> ServiceStation:
    point, province = _position(raw, doc, at)
    if raw["open_hour"] >= raw["close_hour"]:
        raise doc.error(
            (*at, "close_hour"),
            f"must be > open_hour ({raw['open_hour']}), got {raw['close_hour']}",
        )
    prefecture = raw["prefecture_adcode"] or nearest_prefecture(point.lat, point.lon).adcode
    parts = raw["parts_in_stock"]
    return ServiceStation(
        id=raw["id"],
        name=raw["name"] or raw["id"],
        grade=raw["grade"],
        location=point,
        adcode=raw["adcode"] or prefecture,
        prefecture_adcode=prefecture,
        province_adcode=raw["province_adcode"] or province,
        heavy_duty_bay=raw["heavy_duty_bay"],
        towing=raw["towing"],
        opening_hours=OpeningHours(raw["open_hour"], raw["close_hour"]),
        parts_in_stock=frozenset(parts_stocked_at(raw["grade"]) if parts is None else parts),
    )


def _van(raw: Mapping[str, Any]) -> RescueVan:
    return RescueVan(
        id=raw["id"],
        station_id=raw["station"],
        capability=raw["capability"],
        service_radius_km=raw["service_radius_km"],
    )


def _partner(raw: Mapping[str, Any]) -> PartnerCompany:
    return PartnerCompany(
        id=raw["id"],
        name=raw["name"] or raw["id"],
        provinces=frozenset(raw["provinces"]),
        rates=ContractRates(
            raw["callout_fee_cny"], raw["per_empty_km_cny"], raw["per_loaded_km_cny"]
        ),
        promised_response_minutes=raw["promised_response_minutes"],
    )


def _truck(raw: Mapping[str, Any], doc: TomlDocument, at: KeyPath) -> ReplacementTruck:
    point, _province = _position(raw, doc, at)
    return ReplacementTruck(
        id=raw["id"],
        partner_id=raw["partner"],
        truck_type=raw["type"],
        capacity_t=raw["capacity_t"],
        depot=point,
        depot_adcode=raw["adcode"] or nearest_prefecture(point.lat, point.lon).adcode,
    )
