"""The national demo network: the size the issue promises, deterministic, on real geography."""

from collections import Counter

from fleet import StationGrade, VanCapability, build_national_network
from fleet.geography import prefecture_seats, province_at


def test_national_network_shape() -> None:
    """338 AAA prefecture stations, several hundred AA, >1,000 vans, 2-3 partners a province."""
    net = build_national_network()
    grades = Counter(s.grade for s in net.stations)
    assert grades[StationGrade.AAA] == 338 == len(prefecture_seats())
    assert 300 <= grades[StationGrade.AA] <= 900
    assert len(net.vans) > 1000
    per_station = Counter(v.station_id for v in net.vans)
    for s in net.stations:
        n = per_station[s.id]
        assert (1 <= n <= 3) if s.grade is StationGrade.AAA else n == 1
    partners_per_province = Counter(next(iter(p.provinces)) for p in net.partners)
    assert len(partners_per_province) == 31
    assert set(partners_per_province.values()) <= {2, 3}
    assert all(v.service_radius_km == 150 for v in net.vans)
    assert {VanCapability.HEAVY_SERVICE, VanCapability.WRECKER} <= {v.capability for v in net.vans}


def test_same_seed_same_network_other_seed_other_sample() -> None:
    """Deterministic: the same seed rebuilds the same network; another seed samples other AA."""
    a = build_national_network.__wrapped__(seed=1)
    b = build_national_network.__wrapped__(seed=1)
    c = build_national_network.__wrapped__(seed=2)
    assert a == b
    assert {s.id for s in a.stations} != {s.id for s in c.stations}


def test_stations_and_depots_lie_in_their_province() -> None:
    """Every AAA station sits inside its own province's outline (real seat coordinates)."""
    net = build_national_network()
    aaa = [s for s in net.stations if s.grade is StationGrade.AAA]
    wrong = [
        s.id for s in aaa[::7] if province_at(s.location.lat, s.location.lon) != s.province_adcode
    ]
    assert wrong == []
    partner = net.partner_by_id
    for t in net.trucks[::11]:
        assert partner[t.partner_id].serves(t.depot_adcode[:2] + "0000")


def test_demo_registry_is_synthetic_consistent_and_deterministic() -> None:
    """The demo registry's tractors are designated to AAA stations of the national network,
    carry their province's plate prefix and one of the three demo contracts (8/24/48 h)."""
    from fleet.demo import DEMO_CONTRACTS, build_demo_registry

    reg = build_demo_registry()
    net = build_national_network()
    assert len(reg) == 200
    assert sorted(c.threshold_hours for c in DEMO_CONTRACTS) == [8.0, 24.0, 48.0]
    assert reg.default_contract.threshold_hours == 24.0
    shandong = reg.terms_for(next(v.plate for v in reg.vehicles if v.plate.startswith("鲁")))
    assert shandong.designated_station_id is not None
    assert net.station_by_id[shandong.designated_station_id].province_adcode == "370000"
    for v in reg.vehicles:
        assert v.designated_station_id is not None
        home = net.station_by_id[v.designated_station_id]
        assert home.grade is StationGrade.AAA
        assert v.contract_id in {c.id for c in DEMO_CONTRACTS}
    assert build_demo_registry.__wrapped__() == reg
