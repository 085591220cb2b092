"""The national demo network, built deterministically from real geography.

What is real: the seats of prefectures and counties (names, adcodes, coordinates), the
population proxy used to weight the sample, and (in ``routing``) the road graph. What is
synthetic: where stations are, how many vans they have, the partner companies, their rates and
their trucks. No public list of a truck maker's service stations exists, so this builder
places them the way such networks are laid out:

- an AAA station at every mainland prefecture seat (338), open 24 h, with a heavy-duty bay and
  towing, and 1-3 vans by population tercile (heavy service van; + wrecker; + light van);
- AA stations at a population-weighted sample of county seats away from the prefecture seat
  (600 by default), open 06-22 h, one heavy service van each;
- 2-3 partner logistics companies per province with replacement trucks (tractors, box trucks,
  flatbeds) at the province's prefecture seats;
- two partner rescue providers per province (a heavy tow company covering the province, a
  mobile service company covering 250 km around its base), read from the synthetic
  ``fleet/data/partner_rescue_providers.toml`` (:mod:`fleet.providers`).

The same seed always gives the same network.

Contracts and registry (:func:`build_demo_registry`): three contracts (standard 24 h, premium
8 h, basic 48 h) and a small synthetic registry of tractors designated to AAA stations, so the
registry path can be exercised; no real plates or customers are used.
"""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from collections.abc import Collection, Sequence
from functools import cache
from importlib import resources

import numpy as np

from fleet.contracts import (
    DEFAULT_CONTRACT,
    RegisteredVehicle,
    ServiceContract,
    VehicleRegistry,
)
from fleet.faults import load_fault_catalogue
from fleet.geography import (
    AdminUnit,
    county_seats,
    mainland_provinces,
    prefecture_population,
    prefecture_seats,
)
from fleet.model import (
    ContractRates,
    GeoPoint,
    OpeningHours,
    PartnerCompany,
    PartnerRescueProvider,
    ReplacementTruck,
    RescueVan,
    ServiceStation,
    StationGrade,
    TruckType,
    VanCapability,
    VehicleClass,
)
from fleet.network import Network
from fleet.providers import parse_partner_providers
from fleet.toml_schema import TomlDocument

NATIONAL_NETWORK_NAME = "china-national"
DEFAULT_SEED = 2026
DEFAULT_AA_STATIONS = 600
MIN_AA_DISTANCE_FROM_SEAT_KM = 25.0
"""County seats closer than this to their prefecture seat are urban districts: the AAA
station there already serves them."""

DEMO_CONTRACTS: tuple[ServiceContract, ...] = (
    DEFAULT_CONTRACT,
    ServiceContract(
        "premium",
        "premium 8 h",
        threshold_hours=8.0,
        booking_probability=0.3,
        downtime_cost_per_hour_cny=800.0,
    ),
    ServiceContract(
        "basic",
        "basic 48 h",
        threshold_hours=48.0,
        booking_probability=0.7,
        downtime_cost_per_hour_cny=150.0,
    ),
)
"""Synthetic contracts: premium customers (time-critical cargo) are booked sooner and at a lower
risk; basic ones wait longer. The figures are assumptions, not a real price list."""

DEFAULT_REGISTRY_VEHICLES = 200

_PLATE_PREFIX = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉",
    "23": "黑", "31": "沪", "32": "苏", "33": "浙", "34": "皖", "35": "闽", "36": "赣",
    "37": "鲁", "41": "豫", "42": "鄂", "43": "湘", "44": "粤", "45": "桂", "46": "琼",
    "50": "渝", "51": "川", "52": "贵", "53": "云", "54": "藏", "61": "陕", "62": "甘",
    "63": "青", "64": "宁", "65": "新",
}  # fmt: skip
"""Province abbreviation that opens a mainland plate, by the province adcode's first digits."""

_PARTNER_BRANDS = ("顺达", "通运", "安捷", "畅途", "中联", "远航", "恒通", "捷运")


@cache
def build_national_network(
    seed: int = DEFAULT_SEED, aa_stations: int = DEFAULT_AA_STATIONS
) -> Network:
    """The default national network (cached: it is immutable)."""
    rng = np.random.default_rng(seed)
    faults = load_fault_catalogue()
    population = prefecture_population()

    stations: list[ServiceStation] = []
    vans: list[RescueVan] = []

    seats = prefecture_seats()
    pops = np.array([population.get(s.adcode, 0.0) for s in seats])
    lower, upper = np.quantile(pops, [1 / 3, 2 / 3])
    for seat, pop in zip(seats, pops, strict=True):
        station = ServiceStation(
            id=f"AAA-{seat.adcode}",
            name=f"{seat.name} AAA 服务站",
            grade=StationGrade.AAA,
            location=_point(seat),
            adcode=seat.adcode,
            prefecture_adcode=seat.adcode,
            province_adcode=seat.province_adcode,
            heavy_duty_bay=True,
            towing=True,
            opening_hours=OpeningHours(0, 24),
            parts_in_stock=faults.parts_stocked_at(StationGrade.AAA),
        )
        stations.append(station)
        kinds = [VanCapability.HEAVY_SERVICE]
        if pop > lower:
            kinds.append(VanCapability.WRECKER)
        if pop > upper:
            kinds.append(VanCapability.LIGHT_SERVICE)
        for n, kind in enumerate(kinds, start=1):
            vans.append(
                RescueVan(id=f"V-{seat.adcode}-{n}", station_id=station.id, capability=kind)
            )

    for county in _sample_aa_counties(rng, aa_stations, population):
        station = ServiceStation(
            id=f"AA-{county.adcode}",
            name=f"{county.name} AA 服务站",
            grade=StationGrade.AA,
            location=_point(county),
            adcode=county.adcode,
            prefecture_adcode=county.prefecture_adcode,
            province_adcode=county.province_adcode,
            heavy_duty_bay=True,
            towing=False,
            opening_hours=OpeningHours(6, 22),
            parts_in_stock=faults.parts_stocked_at(StationGrade.AA),
        )
        stations.append(station)
        vans.append(
            RescueVan(
                id=f"V-{county.adcode}-1",
                station_id=station.id,
                capability=VanCapability.HEAVY_SERVICE,
            )
        )

    partners, trucks = _partners_and_trucks(rng, seats)
    return Network(
        name=NATIONAL_NETWORK_NAME,
        stations=tuple(stations),
        vans=tuple(vans),
        partners=tuple(partners),
        trucks=tuple(trucks),
        faults=faults,
        registry=_registry_on(stations, DEFAULT_SEED, DEFAULT_REGISTRY_VEHICLES),
        rescue_providers=demo_rescue_providers(frozenset(p.id for p in partners)),
    )


DEMO_PROVIDERS_FILE = "partner_rescue_providers.toml"


def demo_rescue_providers(partner_ids: Collection[str]) -> tuple[PartnerRescueProvider, ...]:
    """The synthetic partner rescue providers of the national network (62: a tow company and
    a mobile service company per mainland province), checked like any network file."""
    text = resources.files("fleet.data").joinpath(DEMO_PROVIDERS_FILE).read_text("utf-8")
    doc = TomlDocument(DEMO_PROVIDERS_FILE, text, tomllib.loads(text))
    return parse_partner_providers(doc.data.get("rescue_providers", []), doc,
                                   partner_ids=partner_ids)  # fmt: skip


@cache
def build_demo_registry(
    seed: int = DEFAULT_SEED, vehicles: int = DEFAULT_REGISTRY_VEHICLES
) -> VehicleRegistry:
    """A synthetic registry on the national network: ``vehicles`` tractors with plausible plates
    of their province, each designated to an AAA station (population-weighted) and on the
    standard (60%), premium (25%) or basic (15%) contract. Deterministic per seed. The national
    network carries the default one (``build_national_network().registry``)."""
    return _registry_on(build_national_network().stations, seed, vehicles)


def _registry_on(stations: Sequence[ServiceStation], seed: int, vehicles: int) -> VehicleRegistry:
    rng = np.random.default_rng(seed)
    aaa = [s for s in stations if s.grade is StationGrade.AAA]
    population = prefecture_population()
    weights = np.array([population.get(s.adcode, 0.0) for s in aaa]) + 1.0
    picks = rng.choice(len(aaa), size=vehicles, p=weights / weights.sum())
    contracts = rng.choice([c.id for c in DEMO_CONTRACTS], size=vehicles, p=[0.60, 0.25, 0.15])
    letters = "ABCDEFGHJKLMNPQRSTUVWXY"  # plates skip I and O
    entries: dict[str, RegisteredVehicle] = {}
    for pick, contract_id in zip(picks, contracts, strict=True):
        home = aaa[int(pick)]
        while True:  # redraw on the rare duplicate plate
            plate = (
                _PLATE_PREFIX[home.province_adcode[:2]]
                + letters[int(rng.integers(len(letters)))]
                + f"{int(rng.integers(100_000)):05d}"
            )
            if plate not in entries:
                break
        entries[plate] = RegisteredVehicle(plate, VehicleClass.TRACTOR, home.id, str(contract_id))
    return VehicleRegistry(
        contracts=DEMO_CONTRACTS,
        vehicles=tuple(entries.values()),
        station_ids=frozenset(s.id for s in stations),
    )


def _point(unit: AdminUnit) -> GeoPoint:
    if unit.lat is None or unit.lon is None:
        raise ValueError(f"{unit.name} ({unit.adcode}) has no coordinates")
    return GeoPoint(unit.lat, unit.lon)


def _km(a: AdminUnit, b: AdminUnit) -> float:
    pa, pb = _point(a), _point(b)
    la1, lo1, la2, lo2 = map(math.radians, (pa.lat, pa.lon, pb.lat, pb.lon))
    h = math.sin((la2 - la1) / 2) ** 2
    h += math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def _sample_aa_counties(
    rng: np.random.Generator, k: int, population: dict[str, float]
) -> list[AdminUnit]:
    """County seats sampled without replacement, weight = prefecture population / counties."""
    seat_by_prefecture = {s.adcode: s for s in prefecture_seats()}
    candidates: list[AdminUnit] = []
    for county in county_seats():
        seat = seat_by_prefecture.get(county.prefecture_adcode)
        if seat is not None and _km(county, seat) < MIN_AA_DISTANCE_FROM_SEAT_KM:
            continue
        candidates.append(county)
    per_prefecture: dict[str, int] = defaultdict(int)
    for c in candidates:
        per_prefecture[c.prefecture_adcode] += 1
    median_pop = float(np.median(list(population.values())))
    weights = np.array(
        [
            population.get(c.prefecture_adcode, median_pop) / per_prefecture[c.prefecture_adcode]
            for c in candidates
        ]
    )
    k = min(k, len(candidates))
    chosen = rng.choice(len(candidates), size=k, replace=False, p=weights / weights.sum())
    return [candidates[i] for i in sorted(chosen)]


def _partners_and_trucks(
    rng: np.random.Generator, seats: tuple[AdminUnit, ...]
) -> tuple[list[PartnerCompany], list[ReplacementTruck]]:
    seats_by_province: dict[str, list[AdminUnit]] = defaultdict(list)
    for seat in seats:
        seats_by_province[seat.province_adcode].append(seat)
    partners: list[PartnerCompany] = []
    trucks: list[ReplacementTruck] = []
    for province in mainland_provinces():
        province_seats = seats_by_province.get(province.adcode, [])
        if not province_seats:
            continue
        n_partners = int(rng.integers(2, 4))
        brands = rng.choice(len(_PARTNER_BRANDS), size=n_partners, replace=False)
        province_partners = []
        for i, b in enumerate(brands, start=1):
            partner = PartnerCompany(
                id=f"P-{province.adcode}-{i}",
                name=f"{province.short_name}{_PARTNER_BRANDS[b]}物流",
                provinces=frozenset({province.adcode}),
                rates=ContractRates(
                    callout_fee_cny=float(rng.integers(6, 17) * 50),
                    per_empty_km_cny=round(float(rng.uniform(4.0, 7.0)), 1),
                    per_loaded_km_cny=round(float(rng.uniform(6.0, 10.0)), 1),
                ),
                promised_response_minutes=float(rng.choice([60, 90, 120, 180])),
            )
            partners.append(partner)
            province_partners.append(partner)
        for seat in province_seats:
            # every prefecture seat hosts a tractor and one more truck, from random partners
            for n, truck_type in enumerate(_truck_types(rng), start=1):
                partner = province_partners[int(rng.integers(len(province_partners)))]
                trucks.append(
                    ReplacementTruck(
                        id=f"T-{seat.adcode}-{n}",
                        partner_id=partner.id,
                        truck_type=truck_type,
                        capacity_t=_capacity(rng, truck_type),
                        depot=_point(seat),
                        depot_adcode=seat.adcode,
                    )
                )
    return partners, trucks


def _truck_types(rng: np.random.Generator) -> list[TruckType]:
    second = TruckType.BOX_TRUCK if rng.random() < 0.6 else TruckType.FLATBED
    return [TruckType.TRACTOR, second]


def _capacity(rng: np.random.Generator, truck_type: TruckType) -> float:
    if truck_type is TruckType.TRACTOR:
        return 40.0  # tractor for a semi-trailer: 49 t gross combination, ~40 t payload
    if truck_type is TruckType.BOX_TRUCK:
        return float(rng.choice([10.0, 15.0, 18.0]))
    return float(rng.choice([20.0, 30.0]))
