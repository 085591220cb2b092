"""Partner rescue providers as extra columns of the van matching: the stated price of a partner
(``max(ETA, slack + soft) + cost / cny_per_minute + margin`` weighted minutes), its capacity in
one batch, refusals, and no change at all without providers.

The instances are built by hand (explicit arcs with round ETAs and costs) so that every
expected choice can be checked on paper; the promise is 120 minutes, the exchange 10 CNY per
minute, the margin 1 minute."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dispatch import MatchParams, OpenRequest, VanMatchingProblem, VanState, match_vans
from dispatch.assignment import solve_assignment
from dispatch.partner_rescue import (
    PartnerColumns,
    ProviderState,
    RescueCandidate,
    RescueJob,
    build_partner_columns,
    more_offers,
)
from dispatch.vans import UnassignedReason
from fleet import GeoPoint, PartnerRescueProvider, RescueCapability, RescueVan, VanCapability
from fleet.model import VehicleClass
from routing import GreatCircleProvider

HERE = GeoPoint(36.0, 117.0)
MECHANIC = frozenset({RescueCapability.MOBILE_MECHANIC})
GC = GreatCircleProvider()


def van(vid: str, station: str = "S1") -> VanState:
    return VanState(RescueVan(vid, station, VanCapability.HEAVY_SERVICE), HERE)


def request(rid: str, **kw: object) -> OpenRequest:
    return OpenRequest(rid, HERE, VehicleClass.TRACTOR, **kw)  # type: ignore[arg-type]


def provider(pid: str, *, capacity: int = 1, active: int = 0) -> ProviderState:
    p = PartnerRescueProvider(
        pid, "P-" + pid, pid, HERE, MECHANIC, 30.0, 0.0, 0.0, capacity, frozenset({"370000"})
    )
    return ProviderState(p, active)


def arc(rid: str, pid: str, eta: float, cost: float) -> RescueCandidate:
    return RescueCandidate(rid, pid, "P-" + pid, eta, cost, 10.0, eta + cost / 10.0)


def problem(
    requests: list[OpenRequest], vans: list[VanState], etas: dict[tuple[int, int], float]
) -> VanMatchingProblem:
    """Arcs (request index, van index) -> travel minutes (10 km each, within radius)."""
    pairs = sorted(etas)
    r = [p[0] for p in pairs]
    v = [p[1] for p in pairs]
    minutes = [etas[p] for p in pairs]
    km = [10.0] * len(pairs)
    return VanMatchingProblem.from_arrays(requests, vans, r, v, km, km, minutes)


def columns(providers: list[ProviderState], arcs: list[RescueCandidate]) -> PartnerColumns:
    return PartnerColumns(tuple(providers), tuple(arcs), 10.0)


def test_own_van_within_the_promise_beats_a_cheaper_faster_partner() -> None:
    """Own van 100 min (on time) against a free partner arriving in 20 min: the partner costs
    max(20, 120) + 0 + 1 = 121 > 100, so the own van goes. Even an own van at exactly the
    promise that is not the designated station's (120 + 30 penalty = 150) beats a free
    partner: the floor adds the largest soft penalty, 120 + 30 + 0 + 1 = 151."""
    p = problem([request("R")], [van("V")], {(0, 0): 100.0})
    cols = columns([provider("A")], [arc("R", "A", 20.0, 0.0)])
    m = match_vans(p, partners=cols)
    assert [(a.request_id, a.van_id) for a in m.assignments] == [("R", "V")]
    assert m.partner_assignments == () and m.unassigned == ()

    wants_other = request("R", designated_station_id="S-other")
    p = problem([wants_other], [van("V")], {(0, 0): 120.0})
    m = match_vans(p, partners=cols)
    assert [(a.request_id, a.van_id) for a in m.assignments] == [("R", "V")]
    assert m.partner_assignments == ()


def test_own_van_far_beyond_the_promise_loses_to_a_partner_on_time() -> None:
    """Own van 300 min (180 late) against a partner at 60 min for 500 CNY (50 min): the
    partner costs max(60, 120) + 50 + 1 = 171 < 300 and wins; the van stays free and the
    request says why it has no van. The boundary is exact: an own van at 170 min keeps the
    job, one at 172 min loses it."""
    cols = columns([provider("A")], [arc("R", "A", 60.0, 500.0)])
    m = match_vans(problem([request("R")], [van("V")], {(0, 0): 300.0}), partners=cols)
    assert m.assignments == ()
    (won,) = m.partner_assignments
    assert (won.request_id, won.provider_id, won.cost_cny) == ("R", "A", 500.0)
    (u,) = m.unassigned
    assert u.reason is UnassignedReason.PARTNER_PREFERRED
    assert u.suggestion == "offer to partner provider A (ETA about 60 min, 500 CNY)"

    keep = match_vans(problem([request("R")], [van("V")], {(0, 0): 170.0}), partners=cols)
    assert [a.van_id for a in keep.assignments] == ["V"] and keep.partner_assignments == ()
    lose = match_vans(problem([request("R")], [van("V")], {(0, 0): 172.0}), partners=cols)
    assert lose.assignments == () and [c.provider_id for c in lose.partner_assignments] == ["A"]


def test_the_promise_objective_prefers_a_dear_partner_on_time_to_an_own_van_late() -> None:
    """Own van 130 min (10 late) against a partner at 60 min for 5,000 CNY (500 min): by ETA
    the own van wins (130 < 120 + 500 + 1); counting promises kept first, the partner does.
    The same partner late itself (125 min) counts as late, so both are late and the minutes
    decide: 130 < 125 + 500 + 1, the own van goes."""
    p = problem([request("R")], [van("V")], {(0, 0): 130.0})
    cols = columns([provider("A")], [arc("R", "A", 60.0, 5000.0)])
    assert [a.van_id for a in match_vans(p, partners=cols).assignments] == ["V"]
    promise = MatchParams(objective="promise")
    m = match_vans(p, partners=cols, params=promise)
    assert m.assignments == () and [c.provider_id for c in m.partner_assignments] == ["A"]
    late_partner = columns([provider("A")], [arc("R", "A", 125.0, 5000.0)])
    m = match_vans(p, partners=late_partner, params=promise)
    assert [a.van_id for a in m.assignments] == ["V"] and m.partner_assignments == ()


def test_nobody_when_neither_an_own_van_nor_a_partner_can() -> None:
    """No arc to any van and no provider for the request: it stays unassigned with its own-van
    reason; the other request goes to the partner."""
    p = problem([request("R1"), request("R2")], [van("V")], {})
    cols = columns([provider("A")], [arc("R1", "A", 40.0, 300.0)])
    m = match_vans(p, partners=cols)
    assert [c.request_id for c in m.partner_assignments] == ["R1"]
    reasons = {u.request_id: u.reason for u in m.unassigned}
    assert reasons == {
        "R1": UnassignedReason.NO_VAN_IN_RADIUS,
        "R2": UnassignedReason.NO_VAN_IN_RADIUS,
    }


def test_a_provider_takes_at_most_its_free_slots_in_one_batch() -> None:
    """Four requests no own van covers, priorities 1, 3, 2, 1.5; provider A has capacity 3
    with one job already (two free slots), B one slot: the three most urgent requests get a
    partner (R2, R3 by A or B, R4), the least urgent none; no provider over its slots."""
    reqs = [request("R1"), request("R2", priority=3.0), request("R3", priority=2.0),
            request("R4", priority=1.5)]  # fmt: skip
    a, b = provider("A", capacity=3, active=1), provider("B", capacity=1)
    arcs = [arc(r.id, pid, 40.0, 100.0) for r in reqs for pid in ("A", "B")]
    m = match_vans(problem(reqs, [van("V")], {}), partners=columns([a, b], arcs))
    won = {c.request_id: c.provider_id for c in m.partner_assignments}
    assert sorted(won) == ["R2", "R3", "R4"]
    assert sorted(won.values()) == ["A", "A", "B"]
    full = provider("A", capacity=2, active=2)
    m = match_vans(problem(reqs, [van("V")], {}), partners=columns([full], arcs[::2]))
    assert m.partner_assignments == ()


def test_a_provider_that_refused_the_job_is_never_a_column_for_it() -> None:
    """A declined (or let lapse) the job: the columns built for it hold only B, so B wins
    although A is cheaper and faster; the fan-out never adds A either."""
    a = provider("A")
    b = provider("B")
    job = RescueJob("R", HERE, "370000", RescueCapability.MOBILE_MECHANIC, frozenset({"A"}))
    cols = build_partner_columns([job], [a, b], GC)
    assert [c.provider_id for c in cols.arcs] == ["B"]
    m = match_vans(problem([request("R")], [van("V")], {}), partners=cols)
    assert [c.provider_id for c in m.partner_assignments] == ["B"]
    assert m.partner_alternatives == ()
    offers = more_offers(m.partner_assignments, m.partner_alternatives, [a, b], fanout=2)
    assert [c.provider_id for c in offers] == ["B"]
    fresh = RescueJob("R", HERE, "370000", RescueCapability.MOBILE_MECHANIC)
    m = match_vans(
        problem([request("R")], [van("V")], {}), partners=build_partner_columns([fresh], [a, b], GC)
    )
    offers = more_offers(m.partner_assignments, m.partner_alternatives, [a, b], fanout=2)
    assert [c.provider_id for c in offers] == ["A", "B"]


def test_the_fan_out_ranks_by_the_matching_price_not_the_old_score() -> None:
    """No own van; promise 120 min, so every partner costs at least 120 + cost / 10 + 1.
    Y (ETA 115, free: 121) wins. Of the others, Z (ETA 110, 100 CNY: 120 + 10 + 1 = 131)
    comes before X (ETA 20, 300 CNY: 120 + 30 + 1 = 151), though X's old score (ETA + cost /
    10 = 50) was far better than Z's (120): arriving before the promise is worth nothing
    more to the matching, so a fan-out of 2 adds Z, of 3 both; X is never asked before Z."""
    states = [provider("X"), provider("Y"), provider("Z")]
    arcs = [arc("R", "X", 20.0, 300.0), arc("R", "Y", 115.0, 0.0), arc("R", "Z", 110.0, 100.0)]
    m = match_vans(problem([request("R")], [van("V")], {}), partners=columns(states, arcs))
    assert [c.provider_id for c in m.partner_assignments] == ["Y"]
    assert [c.provider_id for c in m.partner_alternatives] == ["Z", "X"]
    won, alt = m.partner_assignments, m.partner_alternatives
    assert [c.provider_id for c in more_offers(won, alt, states, fanout=1)] == ["Y"]
    assert [c.provider_id for c in more_offers(won, alt, states, fanout=2)] == ["Y", "Z"]
    assert [c.provider_id for c in more_offers(won, alt, states, fanout=3)] == ["Y", "Z", "X"]
    # Z full (its one slot taken by an open offer): the fan-out of 2 goes on to X
    states[2] = provider("Z", capacity=1, active=1)
    assert [c.provider_id for c in more_offers(won, alt, states, fanout=2)] == ["Y", "X"]
    with pytest.raises(ValueError, match="fanout must be >= 1, got 0"):
        more_offers(won, alt, states, fanout=0)


def test_under_the_promise_objective_the_fan_out_asks_partners_on_time_first() -> None:
    """``objective="promise"``, the request waited 60 min (60 left): a late partner counts
    as late for the matching, so P (ETA 50, 900 CNY: on time) ranks before Q (ETA 70, free:
    late), though Q's price in minutes is lower (max(70, 60) + 0 + 1 = 71 < 60 + 90 + 1)."""
    states = [provider("P"), provider("Q"), provider("W")]
    arcs = [arc("R", "P", 50.0, 900.0), arc("R", "Q", 70.0, 0.0), arc("R", "W", 10.0, 0.0)]
    params = MatchParams(objective="promise")
    m = match_vans(
        problem([request("R", waited_minutes=60.0)], [van("V")], {}),
        partners=columns(states, arcs),
        params=params,
    )
    assert [c.provider_id for c in m.partner_assignments] == ["W"]
    assert [c.provider_id for c in m.partner_alternatives] == ["P", "Q"]


def test_requests_pinned_to_a_van_never_go_to_a_partner() -> None:
    """Re-planning: a request whose van is on its way (pinned) keeps it, however late, even
    with a partner on time at no cost."""
    pinned = VanState(RescueVan("V", "S1", VanCapability.HEAVY_SERVICE), HERE,
                      pinned_request_id="R")  # fmt: skip
    p = problem([request("R")], [pinned], {(0, 0): 400.0})
    cols = columns([provider("A")], [arc("R", "A", 10.0, 0.0)])
    for allow in (False, True):
        m = match_vans(p, partners=cols, allow_reassignment=allow)
        assert [a.van_id for a in m.assignments] == ["V"] and m.partner_assignments == ()


def test_without_providers_the_matching_is_unchanged() -> None:
    """Random batches: no partners, empty partner columns and columns whose providers are all
    full give the very same matching and objective."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_r, n_v = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        reqs = [request(f"R{i}", priority=float(rng.integers(1, 4)),
                        waited_minutes=float(rng.integers(0, 90))) for i in range(n_r)]  # fmt: skip
        vans = [van(f"V{j}") for j in range(n_v)]
        pairs = itertools.product(range(n_r), range(n_v))
        etas = {pair: float(rng.integers(5, 300)) for pair in pairs if rng.random() < 0.6}
        p = problem(reqs, vans, etas)
        full = provider("A", capacity=1, active=1)
        for params in (MatchParams(), MatchParams(objective="promise")):
            base = match_vans(p, params=params)
            for cols in (None, columns([], []), columns([full], [arc("R0", "A", 1.0, 0.0)])):
                m = match_vans(p, params=params, partners=cols)
                assert m.assignments == base.assignments
                assert m.unassigned == base.unassigned
                assert m.objective == base.objective and m.partner_assignments == ()


def test_column_capacity_matches_brute_force() -> None:
    """The assignment core with column capacities: small random instances against every
    assignment of rows to columns (or none) that respects the capacities."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        n_r, n_c = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        cap = rng.integers(0, 3, size=n_c)
        cost = rng.integers(0, 50, size=(n_r, n_c))
        penalty = rng.integers(20, 80, size=n_r)
        rows, cols = np.divmod(np.arange(n_r * n_c), n_c)
        got = solve_assignment(n_r, n_c, rows, cols, cost.reshape(-1), unassigned_cost=penalty,
                               column_capacity=cap)  # fmt: skip
        best = None
        for choice in itertools.product(range(-1, n_c), repeat=n_r):
            if any(choice.count(c) > cap[c] for c in range(n_c)):
                continue
            total = sum(int(cost[r, c]) if c >= 0 else int(penalty[r])
                        for r, c in enumerate(choice))  # fmt: skip
            best = total if best is None else min(best, total)
        assert got.objective == best
        assert all((got.row_to_col == c).sum() <= cap[c] for c in range(n_c))
    with pytest.raises(ValueError, match="column_capacity must have one entry per column"):
        solve_assignment(1, 2, [0], [0], [1], column_capacity=np.array([1]))
    with pytest.raises(ValueError, match="column_capacity must be >= 0"):
        solve_assignment(1, 2, [0], [0], [1], column_capacity=np.array([1, -1]))


def test_partner_margin_below_one_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="partner_margin_minutes must be a finite number >= 1"):
        MatchParams(partner_margin_minutes=0.5)


def test_batch_columns_equal_the_per_job_ranking() -> None:
    """:func:`build_partner_columns` (arrays, one matrix per provider) lists for every job the
    same providers in the same order with the same ETA and cost as ranking each job alone
    (:func:`rank_rescue_providers`, one leg per pair), on random jobs and providers that
    cover by province or by radius, with refusals and full providers."""
    from dispatch.partner_rescue import rank_rescue_providers

    rng = np.random.default_rng(11)
    caps = list(RescueCapability)
    total = 0
    for _ in range(10):
        states = []
        for k in range(int(rng.integers(1, 6))):
            base = GeoPoint(36.0 + rng.uniform(-2, 2), 117.0 + rng.uniform(-2, 2))
            by_province = rng.random() < 0.5
            p = PartnerRescueProvider(
                f"P{k}", f"C{k}", f"P{k}", base,
                frozenset(c for c in caps if rng.random() < 0.6) or frozenset(caps[:1]),
                float(rng.integers(20, 90)), float(rng.integers(0, 900)),
                float(rng.integers(0, 15)), 2,
                frozenset({"370000"}) if by_province else frozenset(),
                0.0 if by_province else float(rng.integers(50, 300)),
            )  # fmt: skip
            states.append(ProviderState(p, int(rng.integers(0, 3))))
        jobs = [
            RescueJob(
                f"R{i}", GeoPoint(36.0 + rng.uniform(-3, 3), 117.0 + rng.uniform(-3, 3)),
                "370000" if rng.random() < 0.5 else None, caps[int(rng.integers(0, 3))],
                frozenset({"P0"}) if rng.random() < 0.2 else frozenset(),
            )
            for i in range(int(rng.integers(1, 12)))
        ]  # fmt: skip
        cols = build_partner_columns(jobs, states, GC)
        one_by_one = [c for j in jobs for c in rank_rescue_providers(j, states, GC)]
        assert [(c.request_id, c.provider_id) for c in cols.arcs] == [
            (c.request_id, c.provider_id) for c in one_by_one
        ]
        for got, want in zip(cols.arcs, one_by_one, strict=True):
            assert got.eta_minutes == pytest.approx(want.eta_minutes, rel=1e-9)
            assert got.cost_cny == pytest.approx(want.cost_cny, rel=1e-9)
        total += len(cols.arcs)
    assert total >= 20  # the instances are not empty (26 arcs)
