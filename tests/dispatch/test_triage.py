"""Triage: repair estimate from the catalogue, parts lead time, the risk of overrunning the
contract threshold (checked against Monte Carlo), booking policies, diagnosis, priority."""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from dispatch.triage import (
    DEFAULT_MEAN_BAY_HOURS,
    DIAGNOSIS_SIGMA,
    PolicyKind,
    ReplacementPolicy,
    TriageContext,
    WorkshopLoad,
    apply_diagnosis,
    choose_workshop,
    estimate_repair,
    needs_replacement,
    repair_time,
)
from fleet.contracts import ServiceContract
from fleet.faults import FaultType, load_fault_catalogue
from fleet.model import GeoPoint, ServiceStation, StationGrade, VehicleClass


def station(parts: frozenset[str]) -> ServiceStation:
    return ServiceStation(
        id="S1",
        name="s",
        grade=StationGrade.A,
        location=GeoPoint(36.0, 117.0),
        adcode="370100",
        prefecture_adcode="370100",
        province_adcode="370000",
        parts_in_stock=parts,
    )


def test_expected_hours_match_the_catalogue_mixture() -> None:
    """With parts at hand the estimate is the catalogue's on-site/workshop mixture mean, and the
    p90 leaves 10% of the mixture above it."""
    fault = load_fault_catalogue().get("ENGINE_NO_START")
    e = estimate_repair(fault, VehicleClass.TRACTOR)
    assert e.expected_hours == pytest.approx(fault.expected_repair_hours())
    p = fault.p_on_site_fix
    tail = p * fault.on_site_hours.prob_exceeds(e.p90_hours) + (
        1 - p
    ) * fault.workshop_hours.prob_exceeds(e.p90_hours)
    assert tail == pytest.approx(0.1, abs=1e-6)


def test_missing_parts_add_the_longest_lead_time() -> None:
    """Parts the workshop station lacks delay the repair by the longest missing lead time."""
    cat = load_fault_catalogue()
    fault = next(f for f in cat if len(f.parts) >= 1)
    base = estimate_repair(fault, "tractor")
    e = estimate_repair(fault, "tractor", TriageContext(workshop_station=station(frozenset())))
    lead = max(cat.part(p).lead_time_hours for p in fault.parts)
    assert e.missing_parts == fault.parts
    assert e.expected_hours == pytest.approx(base.expected_hours + lead)
    stocked = estimate_repair(
        fault, "tractor", TriageContext(workshop_station=station(frozenset(fault.parts)))
    )
    assert stocked.missing_parts == () and stocked.expected_hours == pytest.approx(
        base.expected_hours
    )


def test_mean_policy_decides_at_intake_by_contract_threshold() -> None:
    """Under the "intake-mean" policy a fault whose expected repair exceeds the contract
    threshold needs a replacement at intake; a stricter 8 h contract flips a 10 h fault too."""
    mean = ReplacementPolicy.parse("intake-mean")
    assert estimate_repair("ENGINE_MAJOR", "tractor", TriageContext(policy=mean)).needs_replacement
    mid = estimate_repair("ENGINE_NO_START", "tractor", TriageContext(policy=mean))
    assert 8 < mid.expected_hours < 24
    assert not mid.needs_replacement
    assert estimate_repair(
        "ENGINE_NO_START", "tractor", TriageContext(threshold_hours=8, policy=mean)
    ).needs_replacement


def test_diagnosis_overrides_estimate() -> None:
    """The technician's hours replace the estimate and re-decide the replacement."""
    e = estimate_repair("TYRE_PUNCTURE", "tractor")
    d = apply_diagnosis(e, 30.0)
    assert (d.needs_replacement, d.source, d.expected_hours) == (True, "diagnosis", 30.0)
    assert not apply_diagnosis(e, 30.0, threshold=48.0).needs_replacement
    assert not e.needs_replacement


def test_needs_replacement_is_strict_and_validates() -> None:
    """Exactly at the threshold is not over it; NaN or negative hours and threshold <= 0 raise."""
    assert not needs_replacement(24.0, 24.0) and needs_replacement(24.01, 24.0)
    with pytest.raises(ValueError, match="repair hours"):
        needs_replacement(math.nan)
    with pytest.raises(ValueError, match="threshold hours must be > 0"):
        needs_replacement(5.0, 0.0)


def test_priority_by_grade_and_class_and_unknowns() -> None:
    """Critical faults on tractors outrank minor faults on cars; unknown codes/classes raise."""
    assert (
        estimate_repair("ENGINE_MAJOR", "tractor").priority
        > estimate_repair("BATTERY_FLAT", "car").priority
    )
    assert estimate_repair("BATTERY_FLAT", "car").priority == 1.0
    assert estimate_repair(None, "car").fault_code == "UNKNOWN"
    with pytest.raises(ValueError, match="unknown fault code 'NOPE'"):
        estimate_repair("NOPE", "car")
    with pytest.raises(ValueError, match="unknown vehicle class 'tank'"):
        estimate_repair("BATTERY_FLAT", "tank")


# -- the risk of overrunning the contract threshold ------------------------------------------


def monte_carlo_hours(
    fault: FaultType,
    rng: np.random.Generator,
    n: int,
    *,
    lead: float = 0.0,
    tow: float = 0.0,
    arrival: float = 0.0,
    bays: int | None = None,
    vehicles: int = 0,
    mean_bay_hours: float = DEFAULT_MEAN_BAY_HOURS,
) -> np.ndarray:
    """Hours until back on the road, drawn path by path from the fault's distributions; the bay
    wait is simulated release by release (not from the Erlang formula it should agree with)."""
    fixed = rng.random(n) < fault.p_on_site_fix
    on_site = fault.on_site_hours.sample(rng, n)
    workshop = fault.workshop_hours.sample(rng, n)
    wait = np.zeros(n)
    if bays is not None and vehicles >= bays:
        next_release = rng.exponential(mean_bay_hours, (n, bays))
        rows = np.arange(n)
        for _ in range(vehicles - bays + 1):  # the vehicles ahead take bays as they free up
            bay = np.argmin(next_release, axis=1)
            wait = next_release[rows, bay]
            next_release[rows, bay] = wait + rng.exponential(mean_bay_hours, n)
    return arrival + lead + np.where(fixed, on_site, tow + wait + workshop)


MC_CASES = [
    ("ENGINE_NO_START", {}, {}),
    ("ENGINE_MAJOR", {"tow_leg_hours": 3.0}, {"tow": 3.0}),
    (
        "TRANSMISSION_FAILURE",
        {"tow_leg_hours": 2.0, "workshop_load": WorkshopLoad(bays=2, vehicles=4)},
        {"tow": 2.0, "bays": 2, "vehicles": 4},
    ),
    (
        "ELECTRICAL_FAULT",
        {"van_arrival_hours": 1.5, "workshop_load": WorkshopLoad(3, 3, mean_bay_hours=6.0)},
        {"arrival": 1.5, "bays": 3, "vehicles": 3, "mean_bay_hours": 6.0},
    ),
    ("OUT_OF_FUEL", {"van_arrival_hours": 0.5, "threshold_hours": 1.0}, {"arrival": 0.5}),
    (
        "ENGINE_NO_START",
        {"workshop_station": station(frozenset({"fuel_filter"})), "threshold_hours": 40.0},
        {"lead": 36.0},
    ),
]


@pytest.mark.parametrize(("code", "context", "mc"), MC_CASES)
def test_probability_matches_monte_carlo(
    code: str, context: dict[str, Any], mc: dict[str, Any]
) -> None:
    """p_exceeds_threshold (computed exactly) agrees with 200k independent draws of the same
    distributions within 0.01, at the contract threshold and at other thresholds; the mean
    agrees within 2% and the p90 is the sample's 0.9 quantile."""
    fault = load_fault_catalogue().get(code)
    ctx = TriageContext(**context)
    e = estimate_repair(fault, "tractor", ctx)
    hours = monte_carlo_hours(fault, np.random.default_rng(2026), 200_000, **mc)
    assert e.p_exceeds_threshold == pytest.approx(np.mean(hours > e.threshold_hours), abs=0.01)
    time = repair_time(fault, ctx)
    for t in (4.0, 12.0, 30.0, 60.0):
        assert time.prob_exceeds(t) == pytest.approx(np.mean(hours > t), abs=0.01)
    assert e.expected_hours == pytest.approx(np.mean(hours), rel=0.02)
    # the p90 is the 0.9 quantile: at most 10% above it, at least 10% at or above it (an atom,
    # e.g. OUT_OF_FUEL's fixed on-site time, may hold more)
    assert np.mean(hours > e.p90_hours) <= 0.1 + 0.01
    assert np.mean(hours >= e.p90_hours * (1 - 1e-9)) >= 0.1 - 0.01


def test_repair_time_sampler_agrees_with_its_tail() -> None:
    """RepairTime.sample (for a simulation's oracle) draws the distribution whose tail the
    triage computes."""
    fault = load_fault_catalogue().get("COOLANT_LEAK")
    time = repair_time(fault, TriageContext(tow_leg_hours=1.0, workshop_load=WorkshopLoad(1, 2)))
    hours = time.sample(np.random.default_rng(5), 200_000)
    for t in (2.0, 24.0, 48.0):
        assert time.prob_exceeds(t) == pytest.approx(np.mean(hours > t), abs=0.01)


def test_p90_leaves_ten_percent_above_it_with_a_queue() -> None:
    """The p90 is the 0.9 quantile of the whole time, queue wait and tow leg included."""
    ctx = TriageContext(tow_leg_hours=2.0, workshop_load=WorkshopLoad(2, 5), van_arrival_hours=1)
    e = estimate_repair("BRAKE_FAULT", "tractor", ctx)
    fault = load_fault_catalogue().get("BRAKE_FAULT")
    assert repair_time(fault, ctx).prob_exceeds(e.p90_hours) == pytest.approx(0.1, abs=1e-6)


def test_stocked_part_lowers_the_probability() -> None:
    """The same fault has a lower risk when its workshop stocks the parts than when it must
    order them; the parts it lacks are reported with the longest lead time."""
    cat = load_fault_catalogue()
    for code in ("ENGINE_NO_START", "COOLANT_LEAK", "TYRE_BLOWOUT"):
        fault = cat.get(code)
        stocked = estimate_repair(
            fault, "tractor", TriageContext(workshop_station=station(frozenset(fault.parts)))
        )
        lacking = estimate_repair(
            fault, "tractor", TriageContext(workshop_station=station(frozenset()))
        )
        assert stocked.p_exceeds_threshold < lacking.p_exceeds_threshold
        assert stocked.missing_parts == () and lacking.missing_parts == fault.parts
        assert lacking.parts_lead_time_hours == max(
            cat.part(p).lead_time_hours for p in fault.parts
        )
    # ENGINE_NO_START at an AA station (no starter motor or injector: 36 h) is booked; at an
    # AAA station, which stocks them, it is not
    aaa = station(cat.parts_stocked_at(StationGrade.AAA))
    aa = station(cat.parts_stocked_at(StationGrade.AA))
    assert not estimate_repair(
        "ENGINE_NO_START", "tractor", TriageContext(workshop_station=aaa)
    ).needs_replacement
    at_aa = estimate_repair("ENGINE_NO_START", "tractor", TriageContext(workshop_station=aa))
    assert at_aa.needs_replacement and at_aa.p_exceeds_threshold == pytest.approx(1.0, abs=1e-3)


def test_contract_threshold_8h_books_more_than_24h() -> None:
    """Over the catalogue, every fault's risk is higher against 8 h than against 24 h, and the
    8 h contract books a strict superset of the faults the 24 h one books."""
    cat = load_fault_catalogue()
    premium = ServiceContract("premium", "premium 8 h", 8.0, 0.5)
    standard = ServiceContract("standard", "standard 24 h", 24.0, 0.5)
    by_contract = {}
    for contract in (premium, standard):
        estimates = [estimate_repair(f, "tractor", TriageContext(contract=contract)) for f in cat]
        by_contract[contract.id] = estimates
    booked = {
        cid: {e.fault_code for e in estimates if e.needs_replacement}
        for cid, estimates in by_contract.items()
    }
    assert booked["standard"] == {"ENGINE_MAJOR", "TRANSMISSION_FAILURE", "ACCIDENT_MAJOR"}
    assert booked["premium"] == booked["standard"] | {"ACCIDENT_MINOR"}
    for e8, e24 in zip(by_contract["premium"], by_contract["standard"], strict=True):
        assert e8.p_exceeds_threshold >= e24.p_exceeds_threshold
        assert (e8.threshold_hours, e24.threshold_hours) == (8.0, 24.0)


def test_contract_booking_probability_and_threshold_override() -> None:
    """A contract with a lower booking probability books a fault the default does not; a
    stored threshold overrides the contract's; the estimate records contract and policy."""
    cautious = ServiceContract("cautious", "cautious 24 h", 24.0, 0.1)
    e = estimate_repair("ENGINE_NO_START", "tractor", TriageContext(contract=cautious))
    assert 0.1 <= e.p_exceeds_threshold < 0.5 and e.needs_replacement
    assert (e.contract_id, e.booking_probability, e.policy.name) == ("cautious", 0.1, "intake-risk")
    assert not estimate_repair("ENGINE_NO_START", "tractor").needs_replacement
    overridden = estimate_repair(
        "ENGINE_NO_START", "tractor", TriageContext(contract=cautious, threshold_hours=48.0)
    )
    assert overridden.threshold_hours == 48.0 and not overridden.needs_replacement


def test_loaded_workshop_raises_the_risk() -> None:
    """A free bay changes nothing; once all bays are busy every vehicle queued ahead adds
    risk."""
    base = estimate_repair("COOLANT_LEAK", "tractor", TriageContext(tow_leg_hours=1.0))
    risks = [
        estimate_repair(
            "COOLANT_LEAK",
            "tractor",
            TriageContext(tow_leg_hours=1.0, workshop_load=WorkshopLoad(bays=2, vehicles=v)),
        ).p_exceeds_threshold
        for v in (0, 1, 2, 3, 4)
    ]
    assert risks[0] == risks[1] == base.p_exceeds_threshold
    assert risks[1] < risks[2] < risks[3] < risks[4]


def test_tow_leg_and_van_arrival_shift_the_time() -> None:
    """The tow leg delays only the workshop path, the van's arrival both."""
    fault = load_fault_catalogue().get("AIR_LEAK")
    p = fault.p_on_site_fix
    e = estimate_repair(fault, "tractor", TriageContext(tow_leg_hours=3.0, van_arrival_hours=2.0))
    expected = 2.0 + p * fault.on_site_hours.mean() + (1 - p) * (3.0 + fault.workshop_hours.mean())
    assert e.expected_hours == pytest.approx(expected)
    tail = p * fault.on_site_hours.prob_exceeds(22.0) + (1 - p) * fault.workshop_hours.prob_exceeds(
        19.0
    )
    assert e.p_exceeds_threshold == pytest.approx(tail, rel=1e-12)


# -- diagnosis -------------------------------------------------------------------------------


def test_diagnosis_books_and_releases_by_risk() -> None:
    """The technician's figure is the median of a lognormal with sigma DIAGNOSIS_SIGMA: 30 h
    books a request not booked at intake, 3 h releases one booked at intake; hours already
    elapsed since the breakdown count."""
    tyre = estimate_repair("TYRE_PUNCTURE", "tractor")
    booked = apply_diagnosis(tyre, 30.0)
    z = math.log(24.0 / 30.0) / DIAGNOSIS_SIGMA
    assert booked.p_exceeds_threshold == pytest.approx(1 - NormalDist().cdf(z), rel=1e-9)
    assert booked.needs_replacement and not tyre.needs_replacement
    engine = estimate_repair("ENGINE_MAJOR", "tractor")
    released = apply_diagnosis(engine, 3.0)
    assert engine.needs_replacement and not released.needs_replacement
    assert released.p_exceeds_threshold < 1e-9
    assert not apply_diagnosis(tyre, 20.0).needs_replacement
    late = apply_diagnosis(tyre, 20.0, elapsed_hours=6.0)
    assert late.needs_replacement and late.p_exceeds_threshold == pytest.approx(
        1 - NormalDist().cdf(math.log(18.0 / 20.0) / DIAGNOSIS_SIGMA)
    )
    assert apply_diagnosis(tyre, 0.0).p_exceeds_threshold == 0.0


def test_diagnosis_under_each_policy() -> None:
    """Risk policies hold a booking at p >= booking probability; the mean and oracle policies
    take the figure as the truth (strictly over the threshold)."""
    for name, books_at_24 in (
        ("intake-risk", True),
        ("diagnosis", True),
        ("intake-p0.9", False),
        ("intake-mean", False),
        ("oracle", False),
    ):
        ctx = TriageContext(policy=ReplacementPolicy.parse(name))
        d = apply_diagnosis(estimate_repair("BRAKE_FAULT", "tractor", ctx), 24.0)
        assert d.p_exceeds_threshold == pytest.approx(0.5)
        assert d.needs_replacement is books_at_24, name


def test_diagnosis_refuses_bad_hours() -> None:
    e = estimate_repair("BRAKE_FAULT", "tractor")
    with pytest.raises(ValueError, match="repair hours must be a finite number >= 0, got -1"):
        apply_diagnosis(e, -1.0)
    with pytest.raises(ValueError, match="threshold hours must be > 0, got 0"):
        apply_diagnosis(e, 5.0, threshold=0.0)


# -- policies --------------------------------------------------------------------------------


def test_policy_names_round_trip() -> None:
    for name in (
        "intake-mean",
        "intake-risk",
        "intake-p0.5",
        "intake-p0.25",
        "diagnosis",
        "oracle",
    ):
        assert ReplacementPolicy.parse(name).name == name
    p = ReplacementPolicy.parse(" Intake-P0.3 ")
    assert (p.kind, p.booking_probability) == (PolicyKind.INTAKE_RISK, 0.3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sometimes", "unknown replacement policy 'sometimes'; known: intake-mean"),
        (
            "intake-p1.5",
            r"replacement policy 'intake-p1.5': booking probability must be in \(0, 1\]",
        ),
        ("intake-p0", r"replacement policy 'intake-p0': booking probability must be in"),
        ("intake-pabc", "replacement policy 'intake-pabc': 'abc' is not a probability"),
    ],
)
def test_policy_parser_errors_name_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplacementPolicy.parse(text)


def test_policies_at_intake() -> None:
    """intake-p0.1 books what the default does not; diagnosis and oracle never book in the
    estimate; oracle decides only with the actual hours."""

    def books(name: str) -> bool:
        ctx = TriageContext(policy=ReplacementPolicy.parse(name))
        return estimate_repair("ENGINE_NO_START", "tractor", ctx).needs_replacement

    assert books("intake-p0.1") and not books("intake-risk") and not books("intake-p0.5")
    assert not books("diagnosis") and not books("oracle")
    oracle = ReplacementPolicy.parse("oracle")
    kwargs = {
        "p_exceeds_threshold": 0.2,
        "expected_hours": 10.0,
        "threshold_hours": 24.0,
        "booking_probability": 0.5,
    }
    assert oracle.books_at_intake(**kwargs, actual_hours=30.0)
    assert not oracle.books_at_intake(**kwargs, actual_hours=20.0)
    with pytest.raises(ValueError, match="'oracle' decides on actual_hours"):
        oracle.books_at_intake(**kwargs)


# -- context and workshop choice -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TriageContext(tow_leg_hours=-1.0), "tow_leg_hours must be a finite number >= 0"),
        (lambda: TriageContext(van_arrival_hours=math.nan), "van_arrival_hours must be a finite"),
        (lambda: TriageContext(threshold_hours=0), "threshold hours must be > 0, got 0"),
        (lambda: WorkshopLoad(bays=0, vehicles=1), "bays must be an integer >= 1, got 0"),
        (lambda: WorkshopLoad(bays=2, vehicles=-1), "vehicles must be an integer >= 0, got -1"),
        (lambda: WorkshopLoad(2, 1, mean_bay_hours=0.0), "mean_bay_hours must be > 0"),
        (lambda: ReplacementPolicy(PolicyKind.ORACLE, 0.5), "'oracle' takes no booking probab"),
    ],
)
def test_bad_context_is_refused_naming_the_field(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def make_station(sid: str, lat: float, *, heavy: bool = True) -> ServiceStation:
    return replace(
        station(frozenset()), id=sid, location=GeoPoint(lat, 117.0), heavy_duty_bay=heavy
    )


def km_by_latitude(a: GeoPoint, b: GeoPoint) -> float:
    return abs(a.lat - b.lat) * 111.0


def test_choose_workshop_designated_else_nearest_capable() -> None:
    """The designated station when it can take the class; otherwise the nearest station with a
    heavy-duty bay for a heavy vehicle (any station for a light one)."""
    stations = [
        make_station("near-light", 36.1, heavy=False),
        make_station("mid", 36.5),
        make_station("far", 37.0),
    ]
    here = GeoPoint(36.0, 117.0)
    choice = choose_workshop(stations, here, "tractor", km_by_latitude)
    assert choice is not None and (choice.station.id, choice.designated) == ("mid", False)
    assert choice.distance_km == pytest.approx(55.5)
    car = choose_workshop(stations, here, VehicleClass.CAR, km_by_latitude)
    assert car is not None and car.station.id == "near-light"
    designated = choose_workshop(
        stations, here, "tractor", km_by_latitude, designated_station_id="far"
    )
    assert designated is not None and (designated.station.id, designated.designated) == (
        "far",
        True,
    )
    incapable = choose_workshop(
        stations, here, "tractor", km_by_latitude, designated_station_id="near-light"
    )
    assert incapable is not None and incapable.station.id == "mid" and not incapable.designated


def test_choose_workshop_bad_input() -> None:
    stations = [make_station("a", 36.5), make_station("b", 37.0)]
    here = GeoPoint(36.0, 117.0)
    with pytest.raises(ValueError, match="designated station 'zz' is not among the stations"):
        choose_workshop(stations, here, "tractor", km_by_latitude, designated_station_id="zz")
    with pytest.raises(ValueError, match="distance to station a must be a number >= 0, got nan"):
        choose_workshop(stations, here, "tractor", lambda a, b: math.nan)
    assert choose_workshop(stations, here, "tractor", lambda a, b: math.inf) is None
    assert (
        choose_workshop([make_station("l", 36.1, heavy=False)], here, "tractor", km_by_latitude)
        is None
    )
