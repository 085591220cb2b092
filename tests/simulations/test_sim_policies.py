"""Replacement booking policies in the simulation: the scenario key, the decisions (the API's
pure rules), common random numbers across policies, and what each policy buys."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dispatch.triage import ReplacementPolicy, TriageContext, apply_diagnosis, estimate_repair
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation, simulate
from simulations.replacement_model import BookingDecisions, diagnosis_risk
from simulations.results import RunResult
from simulations.scenario import (
    ORACLE_AT_DIAGNOSIS,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_sweep_option,
    scenario_from_mapping,
)
from simulations.tables import TravelTables, build_tables
from tests.simulations.conftest import SMALL

POLICIES = ("oracle", "oracle-at-diagnosis", "intake-mean", "intake-p0.5", "diagnosis")
DOWNTIME_CNY_PER_HOUR = 2000.0
"""A price at which every needed trip pays for itself in this network (its trips cost
~11,000 CNY, a cargo left without a truck is ~20-40 h late): the oracle must then win."""

_TRUCKS = "".join(
    f'\n[[trucks]]\nid = "{kind}-{i}"\npartner = "P1"\ntype = "{kind}"\ncapacity_t = 40\n'
    f"lat = {36.2 + 0.3 * (i % 3):.1f}\nlon = {117.1 + 0.4 * (i % 4):.1f}\n"
    for kind in ("tractor", "box_truck", "flatbed")
    for i in range(8)
)
"""Enough partner trucks that the policies, not the truck pool, decide the outcome."""


@cache
def _base() -> tuple[Scenario, TravelTables]:
    text = SMALL.replace("[demand]", _TRUCKS + "\n[demand]")
    import tomllib

    s = scenario_from_mapping(tomllib.loads(text), source="policies.toml", text=text)
    s = replace(s, replacement=replace(s.replacement, downtime_cost_per_hour=DOWNTIME_CNY_PER_HOUR))
    return s, build_tables(s)


@cache
def _run(policy: str, threshold_hours: float = 8.0) -> RunResult:
    s, tables = _base()
    v = s.with_override("threshold_hours", threshold_hours).with_override(
        "replacement_policy", policy
    )
    return simulate(v, tables, 0)


def test_policy_key_defaults_to_the_old_rule_and_names_bad_values(
    small_toml: Path, write_scenario: Any
) -> None:
    """``[replacement] policy`` defaults to oracle-at-diagnosis (the rule before policies);
    a bad value names the file, line, key and the choices; the sweep key takes the same
    values and labels the variants."""
    s = load_scenario(small_toml)
    assert s.replacement.policy == ORACLE_AT_DIAGNOSIS
    assert s.replacement.downtime_cost_per_hour == 500.0
    path = write_scenario(("threshold_hours = 8", 'threshold_hours = 8\npolicy = "intake-p2"'))
    line = path.read_text("utf-8").splitlines().index('policy = "intake-p2"') + 1
    with pytest.raises(
        ScenarioError,
        match=rf"line {line}: replacement\.policy: replacement policy 'intake-p2': booking "
        r"probability must be in \(0, 1\], got 2$",
    ):
        load_scenario(path)
    path = write_scenario(
        ("threshold_hours = 8", "threshold_hours = 8\ndowntime_cost_per_hour = -1")
    )
    with pytest.raises(ScenarioError, match=r"replacement\.downtime_cost_per_hour must be >= 0"):
        load_scenario(path)
    variants = s.variants(parse_sweep_option("replacement_policy=Intake-Mean,intake-p0.3,oracle"))
    assert [v.replacement.policy for v in variants] == ["intake-mean", "intake-p0.3", "oracle"]
    assert variants[1].label == "replacement_policy=intake-p0.3"
    with pytest.raises(
        ScenarioError,
        match=r"sweep replacement_policy='sometimes' unknown replacement policy 'sometimes'; "
        r"known: .*, oracle, oracle-at-diagnosis$",
    ):
        s.variants(parse_sweep_option("replacement_policy=sometimes"))


def test_diagnosis_risk_is_apply_diagnosis() -> None:
    """The vectorised risk after a diagnosis equals the API's ``apply_diagnosis`` figure by
    figure, so the simulation decides exactly as the API would."""
    estimate = estimate_repair("ENGINE_MAJOR", "tractor", TriageContext(threshold_hours=24.0))
    figures = np.array([0.0, 1.0, 12.0, 23.9, 24.0, 24.1, 30.0, 100.0])
    expected = [apply_diagnosis(estimate, float(h)).p_exceeds_threshold for h in figures]
    np.testing.assert_allclose(diagnosis_risk(figures, 24.0), expected, rtol=0, atol=1e-12)
    assert diagnosis_risk(figures, 24.0)[4] == pytest.approx(0.5)


def test_booking_decisions_follow_the_policy() -> None:
    """Per breakdown: the oracle books exactly the needed cargo at intake; the old rule and
    diagnosis never at intake; lower booking probabilities book supersets at intake; the
    strict rules hold a truck after the diagnosis exactly when the figure exceeds the
    threshold; nothing is booked for a vehicle without cargo."""
    s, tables = _base()
    b = draw_breakdowns(s, tables, replication_streams(s.seed, 0))

    def decide(policy: str, threshold: float = 8.0) -> BookingDecisions:
        v = s.with_override("threshold_hours", threshold).with_override(
            "replacement_policy", policy
        )
        return BookingDecisions.compute(v, b)

    oracle = decide("oracle")
    assert oracle.needed.any() and np.array_equal(oracle.at_intake, oracle.needed)
    assert np.array_equal(oracle.after_diagnosis, oracle.needed)
    old = decide(ORACLE_AT_DIAGNOSIS)
    assert not old.at_intake.any() and np.array_equal(old.after_diagnosis, oracle.needed)
    assert not decide("diagnosis").at_intake.any()
    low, mid, high = (decide(f"intake-p{p}").at_intake for p in ("0.3", "0.5", "0.7"))
    assert np.all(mid <= low) and np.all(high <= mid) and high.sum() < low.sum()
    assert np.all(decide("intake-p0.5", 24.0).at_intake <= mid)
    mean = decide("intake-mean")
    assert np.array_equal(mean.after_diagnosis, b.has_cargo & (b.technician_hours > 8.0))
    for d in (oracle, decide("intake-p0.5"), mean):
        assert not np.any((d.at_intake | d.after_diagnosis) & ~b.has_cargo)


def test_policies_share_the_random_numbers() -> None:
    """Changing the booking policy changes no other draw and nothing on the van side: the same
    breakdowns and the same arrival times under every policy."""
    runs = [_run(p) for p in POLICIES]
    for r in runs[1:]:
        assert r.kpis["breakdowns"] == runs[0].kpis["breakdowns"]
        assert np.array_equal(r.arrival_minutes, runs[0].arrival_minutes)
        assert r.kpis["replacements_needed"] == runs[0].kpis["replacements_needed"]
    trips = {p: r.kpis["replacement_trips"] for p, r in zip(POLICIES, runs, strict=True)}
    assert len(set(trips.values())) > 2  # the policies do differ


def test_oracle_is_never_beaten_on_total_cost() -> None:
    """At a downtime price where needed trips pay, the oracle (true hours, at intake) costs
    least in total; it books no unneeded trip and leaves no needed cargo without a truck."""
    oracle = _run("oracle").kpis
    assert oracle["unneeded_trips"] == 0 and oracle["replacements_released"] == 0
    assert oracle["cargo_missed_no_truck"] == 0
    assert oracle["replacement_trips"] == oracle["replacements_needed"] > 0
    for policy in POLICIES[1:]:
        other = _run(policy).kpis
        assert oracle["total_cost_cny"] <= other["total_cost_cny"], policy
        assert oracle["cargo_missed"] <= other["cargo_missed"], policy


def test_shorter_contracts_and_lower_probabilities_book_more_trucks() -> None:
    """An 8 h threshold books more trucks than 24 h; intake-p0.3 more than intake-p0.7; intake
    policies book trucks that turn out unneeded, and release some at the diagnosis."""
    assert (
        _run("intake-p0.5", 8.0).kpis["replacement_trips"]
        > _run("intake-p0.5", 24.0).kpis["replacement_trips"]
    )
    low, high = _run("intake-p0.3").kpis, _run("intake-p0.7").kpis
    assert low["replacement_trips"] > high["replacement_trips"]
    assert low["unneeded_trips"] > high["unneeded_trips"] > 0


def test_release_accounting() -> None:
    """A release happens only to an intake booking the diagnosis does not hold; a released
    truck delivers nothing and costs at least its call-out; a released request is not counted
    as unmatched; every booking was asked for first."""
    s, tables = _base()
    v = s.with_override("replacement_policy", "intake-mean")
    b = draw_breakdowns(v, tables, replication_streams(v.seed, 0))
    sim = Simulation(v, tables, b)
    sim.run()
    record = sim.record()
    released = ~np.isnan(record.replacement_released_at)
    assert released.any()
    assert not np.any(released & ~(sim.booking.at_intake & ~sim.booking.after_diagnosis))
    booked_released = released & ~np.isnan(record.replacement_booked_at)
    assert np.all(np.isnan(record.replacement_delivered_at[booked_released]))
    callout = s.network.partners[0].rates.callout_fee_cny
    assert np.all(record.replacement_cost_cny[booked_released] >= callout)
    booked = ~np.isnan(record.replacement_booked_at)
    assert np.all(record.replacement_booked_at[booked] >= record.replacement_requested_at[booked])
    assert ReplacementPolicy.parse("intake-mean").name == v.replacement.policy
