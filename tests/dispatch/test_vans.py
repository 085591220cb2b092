"""Rescue-van matching: optimality, feasibility rules, stability, reasons and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.vans import (
    BusyCover,
    MatchParams,
    OpenRequest,
    UnassignedReason,
    VanMatchingProblem,
    VanState,
    build_van_matching_problem,
    capability_breadth,
    match_vans,
    match_vans_naive,
    prefer_narrow_vans,
)
from fleet.model import GeoPoint, RescueVan, VanCapability, VehicleClass
from routing import GreatCircleProvider, Leg

JINAN = GeoPoint(36.651, 117.120)
HOME = GeoPoint(36.0, 117.0)


def van(i: int, cap: VanCapability = VanCapability.HEAVY_SERVICE, **kw: object) -> VanState:
    radius = float(kw.pop("radius", 150.0))  # type: ignore[arg-type]
    return VanState(
        van=RescueVan(id=f"V{i}", station_id=f"S{i}", capability=cap, service_radius_km=radius),
        home=HOME,
        **kw,  # type: ignore[arg-type]
    )


def req(i: int, vc: VehicleClass = VehicleClass.TRACTOR, **kw: object) -> OpenRequest:
    return OpenRequest(id=f"R{i}", location=JINAN, vehicle_class=vc, **kw)  # type: ignore[arg-type]


def problem(requests, vans, arcs):  # type: ignore[no-untyped-def]
    """arcs: (request, van, home_km, travel_minutes)."""
    a = np.array(arcs, dtype=float).reshape(-1, 4)
    return VanMatchingProblem.from_arrays(
        requests, vans, a[:, 0], a[:, 1], a[:, 2], a[:, 2], a[:, 3]
    )


# -- property tests against brute force ------------------------------------------------------

CAPS = list(VanCapability)
CLASSES = list(VehicleClass)


@st.composite
def instances(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n_r = draw(st.integers(0, 4))
    n_v = draw(st.integers(0, 4))
    reqs = [
        req(
            i,
            draw(st.sampled_from(CLASSES)),
            needs_tow=draw(st.booleans()),
            priority=float(draw(st.integers(1, 3))),
            designated_station_id=draw(st.sampled_from([None, "S0", "S1"])),
        )
        for i in range(n_r)
    ]
    vans = [
        van(
            j,
            draw(st.sampled_from(CAPS)),
            radius=draw(st.sampled_from([50.0, 150.0])),
            free_in_minutes=float(draw(st.integers(0, 60))),
            on_shift=draw(st.booleans()) or draw(st.booleans()),
        )
        for j in range(n_v)
    ]
    arcs = []
    for i in range(n_r):
        for j in range(n_v):
            if draw(st.booleans()):
                arcs.append(
                    (i, j, float(draw(st.integers(0, 200))), float(draw(st.integers(0, 180))))
                )
    return problem(reqs, vans, arcs)


def feasible_arcs(p: VanMatchingProblem) -> dict[tuple[int, int], int]:
    out = {}
    for a, (r, v) in enumerate(zip(p.arc_request.tolist(), p.arc_van.tolist(), strict=True)):
        rq, vs = p.requests[r], p.vans[v]
        if vs.on_shift and vs.van.capability.can_handle(rq.vehicle_class, needs_tow=rq.needs_tow):
            out[(r, v)] = a
    return out


def brute_force(p: VanMatchingProblem, params: MatchParams) -> tuple[float, float]:
    """Best (served weight, weighted penalised ETA) over every assignment, lexicographically."""
    arcs = feasible_arcs(p)
    best = (0.0, 0.0)
    best_key = (0.0, -0.0)
    for choice in itertools.product(*[[-1, *range(len(p.vans))] for _ in p.requests]):
        used = [v for v in choice if v >= 0]
        if len(used) != len(set(used)) or any(
            v >= 0 and (r, v) not in arcs for r, v in enumerate(choice)
        ):
            continue
        weight = cost = 0.0
        for r, v in enumerate(choice):
            if v < 0:
                continue
            a = arcs[(r, v)]
            rq = p.requests[r]
            eta = p.vans[v].free_in_minutes + p.arc_travel_minutes[a]
            if rq.designated_station_id and rq.designated_station_id != p.vans[v].van.station_id:
                eta += params.designated_penalty_minutes
            weight += rq.priority
            cost += rq.priority * eta
        if (weight, -cost) > best_key:
            best_key, best = (weight, -cost), (weight, cost)
    return best


def penalised(p: VanMatchingProblem, m, params: MatchParams) -> float:  # type: ignore[no-untyped-def]
    by_id = {r.id: r for r in p.requests}
    total = 0.0
    for a in m.assignments:
        extra = 0.0
        if by_id[a.request_id].designated_station_id and not a.designated:
            extra = params.designated_penalty_minutes
        total += a.priority * (a.eta_minutes + extra)
    return total


@settings(max_examples=120, deadline=None)
@given(instances())
def test_match_equals_brute_force_and_respects_rules(p: VanMatchingProblem) -> None:
    """Served weight and weighted ETA equal brute force; no van twice; every pair within the
    van's radius, capable and on shift; a request is unassigned only if no feasible pair with a
    spare van is left (maximality)."""
    params = MatchParams()
    m = match_vans(p, params=params)
    weight, cost = brute_force(p, params)
    assert m.served_weight() == pytest.approx(weight)
    assert penalised(p, m, params) == pytest.approx(cost, abs=1e-6)

    vans = {v.id: (j, v) for j, v in enumerate(p.vans)}
    reqs = {r.id: (i, r) for i, r in enumerate(p.requests)}
    used = [a.van_id for a in m.assignments]
    assert len(used) == len(set(used))
    arcs = feasible_arcs(p)
    for a in m.assignments:
        i, _r = reqs[a.request_id]
        j, v = vans[a.van_id]
        assert (i, j) in arcs
        k = arcs[(i, j)]
        assert p.arc_home_km[k] <= v.van.service_radius_km
    assert len(m.assignments) + len(m.unassigned) == len(p.requests)
    used_idx = {vans[u][0] for u in used}
    for u in m.unassigned:
        i, _ = reqs[u.request_id]
        assert not any(r == i and v not in used_idx for (r, v) in arcs)


@settings(max_examples=60, deadline=None)
@given(instances())
def test_optimum_never_worse_than_naive(p: VanMatchingProblem) -> None:
    """The optimum serves at least the naive policy's weight, and at equal weight its weighted
    penalised ETA is no larger."""
    params = MatchParams()
    opt, naive = match_vans(p, params=params), match_vans_naive(p, params=params)
    assert opt.served_weight() >= naive.served_weight() - 1e-9
    if opt.served_weight() == pytest.approx(naive.served_weight()):
        assert penalised(p, opt, params) <= penalised(p, naive, params) + 1e-6


def brute_force_promise(p: VanMatchingProblem, params: MatchParams) -> tuple[float, int, float]:
    """Best (served weight, count within the promise, weighted penalised ETA) over every
    assignment, lexicographically."""
    arcs = feasible_arcs(p)
    best_key: tuple[float, int, float] = (0.0, 0, -0.0)
    for choice in itertools.product(*[[-1, *range(len(p.vans))] for _ in p.requests]):
        used = [v for v in choice if v >= 0]
        if len(used) != len(set(used)) or any(
            v >= 0 and (r, v) not in arcs for r, v in enumerate(choice)
        ):
            continue
        weight = cost = 0.0
        within = 0
        for r, v in enumerate(choice):
            if v < 0:
                continue
            a = arcs[(r, v)]
            rq = p.requests[r]
            eta = p.vans[v].free_in_minutes + p.arc_travel_minutes[a]
            within += int(rq.waited_minutes + eta <= params.promise_minutes)
            if rq.designated_station_id and rq.designated_station_id != p.vans[v].van.station_id:
                eta += params.designated_penalty_minutes
            weight += rq.priority
            cost += rq.priority * eta
        best_key = max(best_key, (weight, within, -cost))
    return best_key[0], best_key[1], -best_key[2]


@settings(max_examples=120, deadline=None)
@given(instances(), st.sampled_from([30.0, 90.0, 150.0]))
def test_promise_objective_equals_brute_force(p: VanMatchingProblem, promise: float) -> None:
    """With ``objective="promise"``: served weight first, then the number reached within the
    promise, then the weighted ETA, each equal to brute force over every assignment."""
    params = MatchParams(objective="promise", promise_minutes=promise)
    m = match_vans(p, params=params)
    weight, within, cost = brute_force_promise(p, params)
    waited = {r.id: r.waited_minutes for r in p.requests}
    assert m.served_weight() == pytest.approx(weight)
    assert sum(waited[a.request_id] + a.eta_minutes <= promise for a in m.assignments) == within
    assert penalised(p, m, params) == pytest.approx(cost, abs=1e-6)


def test_promise_objective_saves_the_request_about_to_be_late() -> None:
    """R0 has waited 100 min of a 120-min promise. The ETA objective gives it the far van (40
    min of ETA in all, R0 at 130 min: late); the promise objective gives it the near one (75 min
    in all, both within the promise)."""
    p = problem(
        [req(0, waited_minutes=100.0), req(1)],
        [van(0), van(1)],
        [(0, 0, 10, 15), (0, 1, 20, 30), (1, 0, 8, 10), (1, 1, 50, 60)],
    )
    by_eta = {a.request_id: a.van_id for a in match_vans(p).assignments}
    by_promise = match_vans(p, params=MatchParams(objective="promise", promise_minutes=120))
    assert by_eta == {"R0": "V1", "R1": "V0"}
    assert {a.request_id: a.van_id for a in by_promise.assignments} == {"R0": "V0", "R1": "V1"}
    assert by_promise.total_eta() == 75.0


def test_promise_holds_a_late_request_back_from_a_busy_van() -> None:
    """R0 has waited 100 min of a 120-min promise; V0 is 10 min from finishing a job and 15
    min away: it would arrive at 100 + 10 + 15 = 125 min, late. Under ``promise`` a van busy
    at work is not given a request it would reach late (R0 waits for the next free van:
    all_busy); an on-call crew's 10-min turnout (not busy) gets it; ``eta`` sends the busy
    van as before; and the busy van still takes a request it reaches on time."""
    promise = MatchParams(objective="promise", promise_minutes=120.0)
    arcs = [(0, 0, 10, 15)]
    busy = problem([req(0, waited_minutes=100.0)], [van(0, free_in_minutes=10.0, busy=True)], arcs)
    m = match_vans(busy, params=promise)
    assert m.assignments == ()
    (u,) = m.unassigned
    assert (u.request_id, u.reason) == ("R0", UnassignedReason.ALL_BUSY)
    turnout = problem([req(0, waited_minutes=100.0)], [van(0, free_in_minutes=10.0)], arcs)
    (a,) = match_vans(turnout, params=promise).assignments
    assert (a.request_id, a.van_id, a.eta_minutes) == ("R0", "V0", 25.0)
    (a,) = match_vans(busy).assignments  # eta objective: unchanged
    assert (a.request_id, a.van_id, a.eta_minutes) == ("R0", "V0", 25.0)
    # on time (waited 95: 95 + 25 = 120, the promise kept): the busy van goes
    on_time = problem(
        [req(0, waited_minutes=95.0)], [van(0, free_in_minutes=10.0, busy=True)], arcs
    )
    (a,) = match_vans(on_time, params=promise).assignments
    assert (a.van_id, a.eta_minutes) == ("V0", 25.0)
    # late whichever van goes: the free van (late too) is sent, the busy one is not
    both = problem(
        [req(0, waited_minutes=100.0)],
        [van(0, free_in_minutes=10.0, busy=True), van(1)],
        [(0, 0, 10, 15), (0, 1, 40, 30)],
    )
    (a,) = match_vans(both, params=promise).assignments
    assert (a.van_id, a.eta_minutes) == ("V1", 30.0)
    (a,) = match_vans(both).assignments
    assert (a.van_id, a.eta_minutes) == ("V0", 25.0)


def test_busy_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="van V0: busy must be true or false, got 'yes'"):
        van(0, free_in_minutes=5.0, busy="yes")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"objective": "fastest"}, "objective must be one of eta, promise, got 'fastest'"),
        ({"promise_minutes": 0}, "promise_minutes must be a finite number > 0, got 0"),
    ],
)
def test_bad_objective_params_raise(data: dict[str, object], message: str) -> None:
    """Bad objective settings name the parameter and the reason."""
    with pytest.raises(ValueError, match=message):
        MatchParams.from_mapping(data)


# -- behaviour -------------------------------------------------------------------------------


def test_empty_batch_gives_empty_result() -> None:
    """No requests (or no vans) returns an empty matching, not an error."""
    m = match_vans(problem([], [van(0)], []))
    assert m.assignments == () and m.unassigned == ()
    built = build_van_matching_problem([], [van(0)], GreatCircleProvider())
    assert match_vans(built).served_count() == 0


def test_batch_beats_first_come_first_served() -> None:
    """The batch optimum gives the nearby van to the request that has no alternative."""
    p = problem(
        [req(0, waited_minutes=10.0), req(1)],
        [van(0), van(1)],
        [(0, 0, 10, 10), (0, 1, 20, 20), (1, 0, 10, 15)],
    )
    m = match_vans(p)
    assert {(a.request_id, a.van_id) for a in m.assignments} == {("R0", "V1"), ("R1", "V0")}
    naive = match_vans_naive(p)
    assert naive.served_count() == 1


def _station(*caps: VanCapability) -> list[VanState]:
    """Vans of one station (``S``), in the order given."""
    return [VanState(RescueVan(f"V{j}", "S", cap, 150.0), HOME) for j, cap in enumerate(caps)]


@pytest.mark.parametrize("objective", ["eta", "promise"])
def test_of_two_vans_of_one_station_the_narrower_goes(objective: str) -> None:
    """A tractor to fix on site, 30 min from a station with a heavy service van (V0) and a
    wrecker (V1): both arrive at minute 30, and the solver alone sends the wrecker (its tie
    goes to the last column). The matching sends the service van and keeps the wrecker,
    the only van there that can tow, for the next breakdown that needs one."""
    params = MatchParams(objective=objective)
    vans = _station(VanCapability.HEAVY_SERVICE, VanCapability.WRECKER)
    p = problem([req(0)], vans, [(0, 0, 40, 30), (0, 1, 40, 30)])
    (a,) = match_vans(p, params=params).assignments
    assert (a.van_id, a.eta_minutes) == ("V0", 30.0)
    # two tractors, three vans: the two service vans go, the wrecker stays
    vans = _station(VanCapability.WRECKER, VanCapability.HEAVY_SERVICE, VanCapability.HEAVY_SERVICE)
    arcs = [(r, j, 40, 30) for r in (0, 1) for j in (0, 1, 2)]
    m = match_vans(problem([req(0), req(1)], vans, arcs), params=params)
    assert sorted(a.van_id for a in m.assignments) == ["V1", "V2"]
    # a light truck: the light service van (3 kinds of job) before the heavy one (5)
    vans = _station(VanCapability.HEAVY_SERVICE, VanCapability.LIGHT_SERVICE)
    p = problem([req(0, VehicleClass.LIGHT_TRUCK)], vans, [(0, 0, 40, 30), (0, 1, 40, 30)])
    assert [a.van_id for a in match_vans(p, params=params).assignments] == ["V1"]


def test_a_sooner_van_wins_whatever_its_breadth() -> None:
    """The preference only breaks exact ties: a wrecker a hundredth of a minute sooner than
    the service van is sent, and so is the naive policy's first van."""
    vans = _station(VanCapability.HEAVY_SERVICE, VanCapability.WRECKER)
    p = problem([req(0)], vans, [(0, 0, 40, 30.01), (0, 1, 40, 30.0)])
    (a,) = match_vans(p).assignments
    assert (a.van_id, a.eta_minutes) == ("V1", 30.0)


def test_capability_breadth_counts_kinds_of_job() -> None:
    """Vehicle classes it can fix plus those it can tow: light 3, heavy 5, flatbed 6,
    wrecker 10."""
    assert {c: capability_breadth(c) for c in VanCapability} == {
        VanCapability.LIGHT_SERVICE: 3,
        VanCapability.HEAVY_SERVICE: 5,
        VanCapability.FLATBED: 6,
        VanCapability.WRECKER: 10,
    }


def test_prefer_narrow_vans_swaps_only_for_an_unused_equal_cost_van() -> None:
    """Row 0 holds the wrecker (column 0, breadth 10) at cost 7; column 1 (breadth 5) costs
    7 too and is free: swapped. Row 1 holds column 2 (breadth 5); column 3 (breadth 3)
    costs 8, not 6: kept. Row 2 is unassigned, row 3 went to a partner (arc 6): untouched."""
    arc_row = np.array([0, 0, 1, 1, 2, 3])
    arc_column = np.array([0, 1, 2, 3, 1, 1])
    arc_cost = np.array([7, 7, 6, 8, 1, 1])
    breadth = np.array([10, 5, 5, 3])
    out = prefer_narrow_vans(np.array([0, 2, -1, 6]), arc_row, arc_column, arc_cost, breadth)
    assert out.tolist() == [1, 2, -1, 6]
    # the narrower van is taken by another row: no swap
    taken = prefer_narrow_vans(np.array([0, 2, 4, -1]), arc_row, arc_column, arc_cost, breadth)
    assert taken.tolist() == [0, 2, 4, -1]


def test_priority_wins_the_only_van() -> None:
    """With one van, the higher-priority request is served even though it is farther."""
    p = problem([req(0), req(1, priority=3.0)], [van(0)], [(0, 0, 5, 5), (1, 0, 90, 90)])
    m = match_vans(p)
    assert [a.request_id for a in m.assignments] == ["R1"]
    assert m.unassigned[0].reason is UnassignedReason.ALL_BUSY


def test_arrival_includes_time_until_free() -> None:
    """A van that is closer but busy for an hour loses to a free one farther away."""
    p = problem(
        [req(0)],
        [van(0, free_in_minutes=60.0), van(1)],
        [(0, 0, 5, 5), (0, 1, 40, 40)],
    )
    (a,) = match_vans(p).assignments
    assert (a.van_id, a.eta_minutes) == ("V1", 40.0)


def test_designated_station_is_a_soft_preference() -> None:
    """The designated station's van wins unless another arrives more than the penalty sooner."""
    params = MatchParams(designated_penalty_minutes=30.0)
    close = problem(
        [req(0, designated_station_id="S1")], [van(0), van(1)], [(0, 0, 10, 10), (0, 1, 30, 30)]
    )
    (a,) = match_vans(close, params=params).assignments
    assert a.van_id == "V1" and a.designated
    far = problem(
        [req(0, designated_station_id="S1")], [van(0), van(1)], [(0, 0, 10, 10), (0, 1, 50, 50)]
    )
    (b,) = match_vans(far, params=params).assignments
    assert b.van_id == "V0" and not b.designated


def test_pinned_van_stays_unless_reassignment_allowed() -> None:
    """An en-route van keeps its request; with allow_reassignment the optimum may move it."""
    vans = [van(0, pinned_request_id="R0"), van(1)]
    p = problem(
        [req(0), req(1, priority=3.0)], vans, [(0, 0, 50, 50), (0, 1, 60, 60), (1, 0, 5, 5)]
    )
    kept = match_vans(p)
    assert kept.assignment_for("R0").van_id == "V0"  # type: ignore[union-attr]
    assert kept.assignment_for("R0").pinned  # type: ignore[union-attr]
    moved = match_vans(p, allow_reassignment=True)
    assert moved.assignment_for("R1").van_id == "V0"  # type: ignore[union-attr]
    assert moved.assignment_for("R0").van_id == "V1"  # type: ignore[union-attr]


def test_van_pinned_outside_the_batch_is_busy() -> None:
    """A van en route to a request not in the batch is not available."""
    p = problem([req(0)], [van(0, pinned_request_id="OTHER")], [(0, 0, 5, 5)])
    m = match_vans(p)
    assert m.served_count() == 0 and m.unassigned[0].reason is UnassignedReason.ALL_BUSY


def test_unassigned_reasons() -> None:
    """No arc -> no_van_in_radius; only incapable vans -> no_capable_van; the tow request
    without a wrecker suggests a partner tow."""
    p = problem(
        [req(0), req(1, needs_tow=True)],
        [van(0, VanCapability.LIGHT_SERVICE)],
        [(1, 0, 10, 10)],
    )
    m = match_vans(p)
    reasons = {u.request_id: u.reason for u in m.unassigned}
    assert reasons == {
        "R0": UnassignedReason.NO_VAN_IN_RADIUS,
        "R1": UnassignedReason.NO_CAPABLE_VAN,
    }
    tow = next(u for u in m.unassigned if u.request_id == "R1")
    assert "partner tow" in tow.suggestion and tow.nearest_van_id is None


def test_vans_at_work_that_cover_a_request_make_it_wait_not_escalate() -> None:
    """No free van covers any of three requests (the only free one is 300 km away). Vans at
    work cover the first two: a wrecker's station 30 km from the tractor tow (all_busy: it
    waits for them), a light-service station 30 km from the other tractor tow (no_capable_van);
    nothing covers the third, 400 km off (no_van_in_radius, escalated). Without the busy vans
    all three are no_van_in_radius, as before."""
    provider = GreatCircleProvider()
    far = VanState(  # ~300 km south of the requests
        van=RescueVan(id="V9", station_id="S9", capability=VanCapability.WRECKER),
        home=GeoPoint(33.3, 117.0),
    )
    near_a, near_b, nowhere = GeoPoint(36.0, 117.0), GeoPoint(36.0, 119.0), GeoPoint(40.0, 123.0)
    requests = [
        OpenRequest(id="R0", location=near_a, vehicle_class=VehicleClass.TRACTOR, needs_tow=True),
        OpenRequest(id="R1", location=near_b, vehicle_class=VehicleClass.TRACTOR, needs_tow=True),
        OpenRequest(id="R2", location=nowhere, vehicle_class=VehicleClass.CAR),
    ]
    busy = [
        BusyCover(GeoPoint(36.27, 117.0), VanCapability.WRECKER, 150.0),  # 30 km north of R0
        BusyCover(GeoPoint(36.27, 119.0), VanCapability.LIGHT_SERVICE, 150.0),  # 30 km of R1
    ]
    with_busy = build_van_matching_problem(requests, [far], provider, busy_cover=busy)
    assert with_busy.num_arcs == 0
    reasons = {u.request_id: u.reason for u in match_vans(with_busy, provider=provider).unassigned}
    assert reasons == {
        "R0": UnassignedReason.ALL_BUSY,
        "R1": UnassignedReason.NO_CAPABLE_VAN,
        "R2": UnassignedReason.NO_VAN_IN_RADIUS,
    }
    without = build_van_matching_problem(requests, [far], provider)
    assert {u.reason for u in match_vans(without, provider=provider).unassigned} == {
        UnassignedReason.NO_VAN_IN_RADIUS
    }
    with pytest.raises(ValueError, match=r"radius_km must be >= 0, got -1\.0"):
        BusyCover(near_a, VanCapability.WRECKER, -1.0)


def test_escalation_names_nearest_free_van_beyond_radius() -> None:
    """A request outside every radius gets the nearest free capable van and its ETA."""
    far = VanState(
        van=RescueVan(id="VF", station_id="SF", capability=VanCapability.HEAVY_SERVICE),
        home=GeoPoint(34.0, 117.0),
    )
    provider = GreatCircleProvider()
    p = build_van_matching_problem([req(0)], [far], provider)
    assert p.num_arcs == 0
    (u,) = match_vans(p, provider=provider).unassigned
    assert u.reason is UnassignedReason.NO_VAN_IN_RADIUS and u.nearest_van_id == "VF"
    expected = provider.leg(far.home, JINAN, "rescue_van").minutes
    assert u.nearest_eta_minutes == pytest.approx(expected)


def test_builder_uses_radius_and_positions() -> None:
    """Candidates come from the home station within each van's own radius; travel time is from
    the van's current position."""
    provider = GreatCircleProvider()
    near_home = GeoPoint(36.5, 117.1)
    vans = [
        VanState(van=RescueVan("A", "S", VanCapability.HEAVY_SERVICE), home=near_home),
        VanState(
            van=RescueVan("B", "S", VanCapability.HEAVY_SERVICE, service_radius_km=5.0),
            home=near_home,
        ),
        VanState(
            van=RescueVan("C", "S", VanCapability.HEAVY_SERVICE),
            home=near_home,
            position=GeoPoint(35.0, 117.0),
        ),
    ]
    p = build_van_matching_problem([req(0)], vans, provider)
    assert sorted(p.arc_van.tolist()) == [0, 2]
    home_leg = provider.leg(near_home, JINAN)
    c_leg = provider.leg(GeoPoint(35.0, 117.0), JINAN)
    by_van = dict(zip(p.arc_van.tolist(), p.arc_travel_minutes.tolist(), strict=True))
    assert by_van[0] == pytest.approx(home_leg.minutes)
    assert by_van[2] == pytest.approx(c_leg.minutes)
    assert np.all(p.arc_home_km == pytest.approx(home_leg.km))


def test_cost_scale_is_lowered_instead_of_overflowing() -> None:
    """Huge ETAs lower the integer time resolution rather than overflow int64."""
    n = 50
    reqs = [req(i, priority=100.0) for i in range(n)]
    vans = [van(j) for j in range(n)]
    arcs = [(i, j, 10, 1e6 + i + j) for i in range(n) for j in range(n)]
    m = match_vans(problem(reqs, vans, arcs))
    assert m.served_count() == n
    assert m.time_resolution < 100


def test_cost_overflow_beyond_any_scale_raises() -> None:
    """When even whole minutes overflow, the error says so instead of a wrong answer."""
    n = 50
    reqs = [req(i, priority=1000.0) for i in range(n)]
    vans = [van(j) for j in range(n)]
    arcs = [(i, j, 10, 1e12) for i in range(n) for j in range(n)]
    with pytest.raises(ValueError, match="overflow int64 even at 1 unit per minute"):
        match_vans(problem(reqs, vans, arcs))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (3, math.nan, r"arc 0 \(request R0, van V0\): travel_minutes must be >= 0, got nan"),
        (3, -1.0, r"arc 0 \(request R0, van V0\): travel_minutes"),
        (2, math.nan, r"arc 0 \(request R0, van V0\): home_km"),
    ],
)
def test_nan_or_negative_arc_raises(column: int, value: float, message: str) -> None:
    """NaN or negative km/minutes raise ValueError naming the request and the van."""
    arc = [0.0, 0.0, 10.0, 10.0]
    arc[column] = value
    with pytest.raises(ValueError, match=message):
        problem([req(0)], [van(0)], [arc])


def test_unknown_vehicle_class_raises() -> None:
    """A request with an unknown vehicle class names the request and the class."""
    with pytest.raises(ValueError, match=r"request R9: unknown vehicle class 'tank'"):
        OpenRequest(id="R9", location=JINAN, vehicle_class="tank")  # type: ignore[arg-type]


def test_non_positive_radius_raises() -> None:
    """A van with service radius <= 0 is refused, naming the van."""
    with pytest.raises(ValueError, match=r"van V0: service_radius_km must be > 0"):
        van(0, radius=0.0)


def test_bad_request_and_van_numbers_raise() -> None:
    """Priority < 1 and NaN free time are refused with the item named."""
    with pytest.raises(ValueError, match=r"request R0: priority"):
        req(0, priority=0.5)
    with pytest.raises(ValueError, match=r"van V0: free_in_minutes"):
        van(0, free_in_minutes=math.nan)


def test_unreachable_and_out_of_radius_arcs_are_dropped() -> None:
    """inf travel (other road component) and arcs beyond the radius are not candidates."""
    p = problem([req(0)], [van(0), van(1, radius=50.0)], [(0, 0, 10, math.inf), (0, 1, 60, 60)])
    assert p.num_arcs == 0


# -- re-planning: keeping pinned jobs, redirect radius, the live leg ---------------------------


def test_a_pinned_job_is_released_only_for_a_much_more_urgent_one() -> None:
    """Van 0 is on its way to R1 (27 min); R2 is 5 min from it and no other van can serve
    either. An equally urgent R2 does not take the van (R1 would be sent back to the queue);
    one more than keep_pinned_factor (2) times as urgent does."""
    v = van(0, pinned_request_id="R1")
    for r2_priority, expected in ((1.0, "R1"), (1.9, "R1"), (2.5, "R2")):
        p = problem([req(1), req(2, priority=r2_priority)], [v], [(0, 0, 30, 27.0), (1, 0, 5, 4.5)])
        m = match_vans(p, allow_reassignment=True)
        assert [a.request_id for a in m.assignments] == [expected], r2_priority
    loose = MatchParams(keep_pinned_factor=1.0)
    p = problem([req(1), req(2)], [v], [(0, 0, 30, 27.0), (1, 0, 5, 4.5)])
    assert [a.request_id for a in match_vans(p, allow_reassignment=True,
                                             params=loose).assignments] == ["R2"]  # fmt: skip


def test_redirect_radius_limits_a_moving_van_to_nearby_breakdowns() -> None:
    """A van on its way (30 km from home) with redirect_km is offered only breakdowns within
    that many road km of where it is, plus its own job, timed by its live leg; without the
    limit it is offered every breakdown in its radius, timed from where it is."""
    gc = GreatCircleProvider()
    here = GeoPoint(36.27, 117.0)  # 30 km north of home
    own = OpenRequest("OWN", GeoPoint(36.6, 117.0), VehicleClass.TRACTOR)
    near = OpenRequest("NEAR", GeoPoint(36.30, 117.05), VehicleClass.TRACTOR)
    far = OpenRequest("FAR", GeoPoint(35.7, 117.0), VehicleClass.TRACTOR)
    live = Leg(40.0, 33.0)
    limited = van(0, position=here, pinned_request_id="OWN", redirect_km=20.0, pinned_leg=live)
    p = build_van_matching_problem([own, near, far], [limited], gc)
    arcs = {p.requests[r].id: float(m) for r, m in
            zip(p.arc_request, p.arc_travel_minutes, strict=True)}  # fmt: skip
    assert set(arcs) == {"OWN", "NEAR"} and arcs["OWN"] == 33.0
    assert arcs["NEAR"] == pytest.approx(gc.leg(here, near.location, "rescue_van").minutes)
    free = van(0, position=here, pinned_request_id="OWN")
    p = build_van_matching_problem([own, near, far], [free], gc)
    arcs = {p.requests[r].id: float(m) for r, m in
            zip(p.arc_request, p.arc_travel_minutes, strict=True)}  # fmt: skip
    assert set(arcs) == {"OWN", "NEAR", "FAR"}
    assert arcs["OWN"] == pytest.approx(gc.leg(here, own.location, "rescue_van").minutes)
    with pytest.raises(ValueError, match=r"van V1: redirect_km must be >= 0, got -1\.0"):
        van(1, redirect_km=-1.0)
    with pytest.raises(ValueError, match="keep_pinned_factor must be between 1 and 100"):
        MatchParams(keep_pinned_factor=0.5)
