"""The engine: the M/M/c queueing check, reproducibility, common random numbers, invariants."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import simulate
from simulations.erlang import erlang_c, erlang_c_wait
from simulations.runner import run
from simulations.scenario import load_scenario, resolve_scenario
from simulations.tables import build_tables


def test_erlang_c_known_values() -> None:
    """M/M/1: P(wait) = rho and Wq = rho / (mu - lambda); M/M/2 at a=1: P(wait) = 1/3."""
    assert erlang_c(0.8, 1) == pytest.approx(0.8)
    assert erlang_c_wait(0.8, 1.0, 1) == pytest.approx(4.0)
    assert erlang_c(1.0, 2) == pytest.approx(1 / 3)
    assert erlang_c_wait(3.0, 1.0, 3) == float("inf")
    with pytest.raises(ValueError, match="servers >= 1"):
        erlang_c(1.0, 0)


def test_mmc_matches_erlang_c() -> None:
    """The shipped M/M/c scenario (c=3, lambda=2.1/h, mu=1/h) reproduces the Erlang C mean
    wait within 5% (mean of 3 replications of 800 days, ~50,000 breakdowns each)."""
    s = resolve_scenario("mmc_check").with_days(800)
    tables = build_tables(s)
    waits = []
    for r in range(3):
        res = simulate(s, tables, r)
        assert res.kpis["escalated"] == 0
        # travel is exactly 0: the whole response is the wait for a free van
        assert res.kpis["travel_mean_min"] == pytest.approx(0.0, abs=1e-9)
        waits.append(res.kpis["dispatch_delay_mean_min"])
        assert res.kpis["van_utilisation_mean"] == pytest.approx(0.7, rel=0.03)
    expected = erlang_c_wait(2.1, 1.0, 3) * 60.0
    assert float(np.mean(waits)) == pytest.approx(expected, rel=0.05)


def test_same_seed_same_results(small_toml: Path) -> None:
    """Two runs of the same scenario and replication are identical; another replication is
    not."""
    s = load_scenario(small_toml)
    tables = build_tables(s)
    a, b = simulate(s, tables, 0), simulate(s, tables, 0)
    assert a.kpis == b.kpis
    assert np.array_equal(a.arrival_minutes, b.arrival_minutes)
    c = simulate(s, tables, 1)
    assert c.kpis != a.kpis


def test_process_pool_equals_serial(small_toml: Path) -> None:
    """Replications on a process pool give exactly the serial numbers, in replication order."""
    s = load_scenario(small_toml).with_days(10)
    serial = run(s, replications=3, backend="serial")[0]
    pooled = run(s, replications=3, backend="local", workers=2)[0]
    assert [r.kpis for r in pooled.runs] == [r.kpis for r in serial.runs]
    assert [r.replication for r in pooled.runs] == [0, 1, 2]


def test_common_random_numbers(small_toml: Path) -> None:
    """The breakdowns drawn do not depend on the fleet: the same stream for 1 or 3 vans per
    station."""
    s = load_scenario(small_toml)
    tables = build_tables(s)
    one = draw_breakdowns(s.with_override("vans", 1), tables, replication_streams(s.seed, 0))
    three = draw_breakdowns(s.with_override("vans", 3), tables, replication_streams(s.seed, 0))
    assert np.array_equal(one.t, three.t)
    assert np.array_equal(one.workshop_hours, three.workshop_hours)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_more_vans_never_wait_longer(small_toml: Path, seed: int) -> None:
    """With common random numbers, 1 -> 2 -> 3 vans per station never lengthens the mean wait
    (dispatch delay) or the mean arrival time, on a loaded regional scenario."""
    s = replace(load_scenario(small_toml), seed=seed).with_override("rate", 60)
    tables = build_tables(s)
    waits, arrivals = [], []
    for k in (1, 2, 3):
        res = simulate(s.with_override("vans", k), tables, 0)
        waits.append(res.kpis["dispatch_delay_mean_min"])
        arrivals.append(res.kpis["arrival_mean_min"])
    assert waits[0] >= waits[1] >= waits[2]
    assert arrivals[0] >= arrivals[1] >= arrivals[2]


def test_mmc_more_servers_monotone() -> None:
    """In the single-station queue, each extra van lowers the mean wait (same breakdowns)."""
    s = resolve_scenario("mmc_check").with_days(60)
    tables = build_tables(s)
    waits = [
        simulate(s.with_override("vans", c), tables, 0).kpis["dispatch_delay_mean_min"]
        for c in (3, 4, 5)
    ]
    assert waits[0] > waits[1] > waits[2]


def test_run_invariants(small_toml: Path) -> None:
    """Accounting closes: every measured breakdown is served, escalated or unserved; shares are
    shares; quantiles are ordered; no van is busier than the clock."""
    s = load_scenario(small_toml)
    res = simulate(s, build_tables(s), 0)
    k = res.kpis
    assert k["breakdowns"] == k["served"] + k["escalated"] + k["unserved"]
    assert 0 <= k["share_within_promise"] <= 1
    assert k["arrival_p50_min"] <= k["arrival_p90_min"] <= k["arrival_p95_min"]
    assert k["arrival_mean_min"] == pytest.approx(
        k["dispatch_delay_mean_min"] + k["travel_mean_min"]
    )
    assert 0 <= k["van_utilisation_max"] <= 1
    assert k["replacement_trips"] + k["replacements_unmatched"] == k["replacements_requested"]
    assert k["replacement_trips"] > 0  # threshold 8 h: some workshop repairs exceed it
    assert k["partner_cost_cny"] > 0
    assert sum(n for n, _ in res.by_province.values()) == k["breakdowns"]
    assert len(res.daily_counts) == 20


def test_dispersion_of_daily_counts(small_toml: Path) -> None:
    """The gamma-Poisson multiplier gives daily counts with variance/mean near the target 2.3
    (Poisson would give 1); dispersion = 1 gives a plain Poisson stream."""
    s = load_scenario(small_toml).with_days(2000)
    tables = build_tables(s)
    counts = draw_breakdowns(s, tables, replication_streams(1, 0)).daily_counts
    assert counts.var(ddof=1) / counts.mean() == pytest.approx(2.3, rel=0.15)
    flat = replace(s, demand=replace(s.demand, dispersion=1.0))
    counts = draw_breakdowns(flat, tables, replication_streams(1, 0)).daily_counts
    assert counts.var(ddof=1) / counts.mean() == pytest.approx(1.0, rel=0.15)
