"""Replacement-truck matching: fit rules, province, deadlines, cheapest optimum, reasons."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.replacement import (
    CargoKind,
    ReplacementParams,
    ReplacementRequest,
    TruckFit,
    TruckState,
    UnmatchedReason,
    build_replacement_problem,
    match_replacements,
    truck_fits,
)
from fleet.model import (
    ContractRates,
    GeoPoint,
    PartnerCompany,
    ReplacementTruck,
    TruckStatus,
    TruckType,
)
from routing import GreatCircleProvider

BREAKDOWN = GeoPoint(36.65, 117.12)
DEST = GeoPoint(34.75, 113.62)
GC = GreatCircleProvider()


def partner(
    pid: str = "P1", provinces: tuple[str, ...] = ("370000",), fee: float = 500.0
) -> PartnerCompany:
    return PartnerCompany(pid, pid, frozenset(provinces), ContractRates(fee, 5.0, 8.0))


def truck(
    tid: str,
    ttype: TruckType = TruckType.TRACTOR,
    cap: float = 40.0,
    depot: GeoPoint = GeoPoint(36.5, 117.0),
    p: PartnerCompany | None = None,
    free: float = 0.0,
) -> TruckState:
    p = p or partner()
    return TruckState(
        ReplacementTruck(tid, p.id, ttype, cap, depot, "370100"), p, free_in_minutes=free
    )


def request(
    rid: str = "R1",
    kind: CargoKind = CargoKind.SEMI_TRAILER,
    weight: float = 30.0,
    deadline: float | None = None,
) -> ReplacementRequest:
    return ReplacementRequest(rid, BREAKDOWN, "370000", weight, kind, DEST, deadline)


def test_booking_times_and_cost() -> None:
    """Pickup = free + empty leg; delivery = pickup + transfer + loaded leg; cost = trip_cost."""
    t = truck("T1", free=15.0)
    m = match_replacements(build_replacement_problem([request()], [t], GC))
    (b,) = m.bookings
    empty = GC.leg(t.truck.depot, BREAKDOWN, "empty_truck")
    loaded = GC.leg(BREAKDOWN, DEST, "loaded_truck")
    assert b.pickup_eta_minutes == pytest.approx(15.0 + empty.minutes)
    assert b.delivery_eta_minutes == pytest.approx(b.pickup_eta_minutes + 30.0 + loaded.minutes)
    assert b.cost_cny == pytest.approx(t.partner.rates.trip_cost(empty.km, loaded.km))


def test_type_capacity_and_province_rules_with_reasons() -> None:
    """Box trucks cannot take a semi-trailer, small tractors cannot take heavy cargo, partners
    outside the province are excluded; each unmatched request says why."""
    far_partner = partner("P2", ("410000",))
    trucks = [
        truck("BOX", TruckType.BOX_TRUCK),
        truck("SMALL", cap=10.0),
        truck("OUT", p=far_partner),
    ]
    reqs = [
        request("HEAVY", weight=35.0),
        request("LOOSE", CargoKind.LOOSE, weight=5.0),
        request("OVER", CargoKind.OVERSIZE),
    ]
    m = match_replacements(build_replacement_problem(reqs, trucks, GC))
    assert {(b.request_id, b.truck_id) for b in m.bookings} == {("LOOSE", "BOX")}
    reasons = {u.request_id: u.reason for u in m.unmatched}
    assert reasons == {
        "HEAVY": UnmatchedReason.NO_PARTNER_IN_PROVINCE,
        "OVER": UnmatchedReason.NO_FITTING_TRUCK,
    }


def test_deadline_late_with_penalty_or_reported() -> None:
    """An unreachable deadline is booked late (penalised) by default, reported when lateness is
    not allowed; a punctual truck beats a cheaper late one when the penalty is high."""
    t = truck("T1")
    tight = request(deadline=10.0)
    m = match_replacements(build_replacement_problem([tight], [t], GC))
    assert m.bookings[0].lateness_minutes > 0
    strict = match_replacements(
        build_replacement_problem([tight], [t], GC), ReplacementParams(allow_late=False)
    )
    assert strict.unmatched[0].reason is UnmatchedReason.DEADLINE_UNREACHABLE
    cheap_late = truck("CHEAP", depot=GeoPoint(37.5, 117.1), p=partner("PC", fee=0.0), free=600.0)
    pricey = truck("PRICEY", p=partner("PP", fee=3000.0))
    p = build_replacement_problem([request(deadline=600.0)], [cheap_late, pricey], GC)
    assert match_replacements(p).bookings[0].truck_id == "PRICEY"
    assert (
        match_replacements(p, ReplacementParams(lateness_penalty_cny_per_minute=0.0))
        .bookings[0]
        .truck_id
        == "CHEAP"
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(35.0, 38.0), st.floats(115.0, 119.0), st.floats(0, 3000)),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 3),
)
def test_cheapest_equals_brute_force(
    truck_specs: list[tuple[float, float, float]], n_req: int
) -> None:
    """Serving as many as possible, the total cost equals the brute-force minimum."""
    trucks = [
        truck(f"T{i}", depot=GeoPoint(la, lo), p=partner(f"P{i}", fee=fee))
        for i, (la, lo, fee) in enumerate(truck_specs)
    ]
    reqs = [request(f"R{i}") for i in range(n_req)]
    m = match_replacements(build_replacement_problem(reqs, trucks, GC))
    loaded = GC.leg(BREAKDOWN, DEST, "loaded_truck").km
    best = None
    k = min(n_req, len(trucks))
    for combo in itertools.permutations(range(len(trucks)), k):
        c = sum(
            trucks[j].partner.rates.trip_cost(GC.leg(trucks[j].truck.depot, BREAKDOWN).km, loaded)
            for j in combo
        )
        best = c if best is None else min(best, c)
    assert len(m.bookings) == k
    assert m.total_cost_cny() == pytest.approx(best, rel=1e-6, abs=0.05)


def test_bad_input_names_the_item() -> None:
    """Unknown cargo kind, negative weight and NaN legs raise ValueError naming the item."""
    with pytest.raises(ValueError, match="R1: unknown cargo kind 'gas'"):
        request(kind="gas")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="R1: cargo_weight_t must be >= 0"):
        request(weight=-1.0)
    from dispatch.replacement import ReplacementMatchingProblem

    with pytest.raises(ValueError, match=r"request R1: loaded_minutes must be >= 0, got nan"):
        ReplacementMatchingProblem.from_arrays(
            [request()], [truck("T1")], [0], [0], [1.0], [1.0], [1.0], [math.nan]
        )
    assert match_replacements(build_replacement_problem([], [truck("T1")], GC)).bookings == ()


def test_truck_fit_rule_over_a_fleet() -> None:
    """TruckFit is the one fit rule: type by cargo kind, capacity >= weight (equal is enough),
    available only; truck_fits asks it for a single truck."""
    fleet = [
        truck("TR", TruckType.TRACTOR, 40.0).truck,
        truck("BOX", TruckType.BOX_TRUCK, 15.0).truck,
        truck("FLAT", TruckType.FLATBED, 20.0).truck,
        ReplacementTruck("OUT", "P1", TruckType.FLATBED, 30.0, BREAKDOWN, "370100",
                         status=TruckStatus.OUT_OF_SERVICE),
    ]  # fmt: skip
    fit = TruckFit.of(fleet)
    assert fit.fitting(CargoKind.SEMI_TRAILER, 40.0).tolist() == [True, False, False, False]
    assert fit.fitting(CargoKind.SEMI_TRAILER, 40.5).tolist() == [False, False, False, False]
    assert fit.fitting(CargoKind.PALLETISED, 15.0).tolist() == [False, True, True, False]
    assert fit.fitting(CargoKind.PALLETISED, 18.0).tolist() == [False, False, True, False]
    assert fit.fitting(CargoKind.OVERSIZE, 10.0).tolist() == [False, False, True, False]
    assert fit.fitting(CargoKind.LOOSE, 1.0).tolist() == [False, True, False, False]
    assert TruckFit.of([]).fitting(CargoKind.LOOSE, 1.0).tolist() == []
    p = partner()
    for t in fleet:
        for kind in CargoKind:
            r = request(kind=kind, weight=15.0)
            expected = bool(TruckFit.of(fleet).fitting(kind, 15.0)[fleet.index(t)])
            assert truck_fits(r, TruckState(t, p)) is expected


def test_unreachable_truck_without_deadline_warns_nothing() -> None:
    """An unreachable arc (infinite delivery) of a request without deadline (infinite) used
    to compute inf - inf: a RuntimeWarning once per server process. That truck is simply not
    booked; the reachable one is."""
    import warnings

    from dispatch.replacement import ReplacementMatchingProblem

    built = build_replacement_problem([request()], [truck("T1"), truck("T2")], GC)
    unreachable_t1 = np.where(built.arc_truck == 0, math.inf, built.arc_empty_minutes)
    problem = ReplacementMatchingProblem.from_arrays(
        built.requests, built.trucks, built.arc_request, built.arc_truck,
        np.where(built.arc_truck == 0, math.inf, built.arc_empty_km), unreachable_t1,
        built.loaded_km, built.loaded_minutes,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matching = match_replacements(problem)
    assert [b.truck_id for b in matching.bookings] == ["T2"]


def test_a_partner_that_refused_the_job_is_never_offered_it_again() -> None:
    """With its partner excluded, the cheaper truck is passed over for the other partner's;
    with both partners excluded the request is reported, not matched."""
    cheap, dear = partner("P1", fee=100.0), partner("P2", fee=900.0)
    trucks = [truck("T1", p=cheap), truck("T2", p=dear)]
    first = match_replacements(build_replacement_problem([request()], trucks, GC))
    assert [b.truck_id for b in first.bookings] == ["T1"]
    again = replace(request(), excluded_partner_ids=frozenset({"P1"}))
    second = match_replacements(build_replacement_problem([again], trucks, GC))
    assert [(b.truck_id, b.partner_id) for b in second.bookings] == [("T2", "P2")]
    none = replace(request(), excluded_partner_ids=frozenset({"P1", "P2"}))
    third = match_replacements(build_replacement_problem([none], trucks, GC))
    assert third.bookings == () and third.unmatched[0].reason == "no_partner_in_province"
