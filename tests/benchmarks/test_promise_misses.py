"""benchmarks/promise_misses.py: both policies on one replication, the misses only one of them
has, profiled by what the decision looked like."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.promise_misses import PRODUCTION, compare_misses, run_recorded
from simulations.scenario import load_scenario
from simulations.tables import build_tables
from tests.simulations.conftest import SMALL


def _small(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "small.toml"
    path.write_text(SMALL, "utf-8")
    s = load_scenario(path).with_days(6.0)
    return replace(s, promise=replace(s.promise, arrival_minutes=45.0)), build_tables(s)


def test_arrival_is_waited_plus_the_eta_of_the_decision(tmp_path: Path) -> None:
    """Without crews every first call arrives exactly at its wait + the ETA the matching saw:
    no lateness comes from a time basis the objective does not see."""
    s, tables = _small(tmp_path)
    for key, value in PRODUCTION:
        s = s.with_override(key, value)
    sim, t = run_recorded(s, tables, 0)
    first = [d for d in sim.dispatches if d[0] < len(t)]
    assert len(first) > 50
    req = np.array([d[0] for d in first])
    decided = np.array([d[1] - t[d[0]] + d[3] for d in first])
    # to float rounding: (now + eta) - t against (now - t) + eta
    np.testing.assert_allclose(sim.requests.on_site_at[req] - t[req], decided, rtol=0, atol=1e-6)
    assert all(d[4] >= 0 for d in sim.dispatches)


def test_profiles_count_each_miss_once(tmp_path: Path) -> None:
    """Each policy-only miss is escalated, dispatched at the report or after queueing; the
    late-when-decided and not-yet-free counts are among the dispatched."""
    s, tables = _small(tmp_path)
    out = compare_misses(s, tables, replication=0)
    assert out["misses"]["policy"] > 0 and out["misses"]["baseline"] > 0
    for side in ("policy_only", "baseline_only"):
        p = out[side]
        assert p["escalated"] + p["at_report"] + p["queued"] == p["requests"]
        dispatched = p["at_report"] + p["queued"]
        assert p["late_when_decided"] <= dispatched and p["van_not_yet_free"] <= dispatched
    assert out["baseline_only"]["van_not_yet_free"] == 0  # nearest-idle sends vans at home
