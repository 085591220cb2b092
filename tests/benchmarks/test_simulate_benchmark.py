"""benchmarks/simulate.py behind ``rescue bench simulate``: the record's contract keys and its
baseline measured in the same run, on the small M/M/c scenario."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from api.cli import app
from benchmarks.simulate import beside_default, prepare, simulate_benchmark

SIMULATE_KEYS = {
    "benchmark", "scenario", "policy", "days", "breakdowns", "vans", "provider",
    "tables_seconds", "seconds", "events", "events_per_second", "breakdowns_per_second",
    "dispatch_batches", "match_seconds", "share_within_promise", "goal_seconds", "goal_met",
    "cpu_count", "horizon_days", "demand_points", "trigger", "cpu_seconds",
    "load_average_before", "load_average_after",
}  # fmt: skip
GENERAL_KEYS = {
    "general_seconds", "general_cpu_seconds", "general_match_seconds", "speedup_vs_general",
    "cpu_speedup_vs_general", "identical_to_general",
}  # fmt: skip
DEFAULT_KEYS = {
    "default_scenario", "default_seconds", "default_tables_seconds", "default_demand_points",
    "default_share_within_promise", "ratio_to_default", "tables_ratio_to_default",
}  # fmt: skip
BASELINE_KEYS = {
    "baseline", "baseline_seconds", "baseline_events_per_second", "ratio_to_baseline",
    "baseline_share_within_promise",
}  # fmt: skip


def test_record_with_and_without_baseline() -> None:
    """Days as asked (plus the scenario's warm-up), the scenario's vans, and the nearest-idle
    baseline keys only when asked for."""
    s, tables, tables_seconds = prepare("mmc_check", days=5, seed=1, sweep=False)
    plain = simulate_benchmark(s, tables, tables_seconds, baseline=False)
    assert set(plain) == SIMULATE_KEYS
    assert (plain["scenario"], plain["vans"], plain["days"]) == ("mmc_check", 3, 5 + 10)
    assert plain["breakdowns"] > 0
    with_base = simulate_benchmark(s, tables, tables_seconds, baseline=True)
    assert set(with_base) == SIMULATE_KEYS | BASELINE_KEYS
    assert with_base["baseline"] == "nearest-idle"
    assert with_base["breakdowns"] == plain["breakdowns"]  # same seed, same demand


def test_default_days_and_unknown_scenario() -> None:
    """365 days by default (60 for a sweep); an unknown scenario is a ValueError naming it."""
    assert prepare("mmc_check", days=None, seed=None, sweep=True)[0].horizon_days == 60
    with pytest.raises(ValueError, match="nowhere-land"):
        prepare("nowhere-land", days=1, seed=None, sweep=False)


def test_cli_bad_scenario_is_one_line() -> None:
    """``rescue bench simulate --scenario`` unknown: exit 2, one ``error:`` line."""
    res = CliRunner().invoke(app, ["bench", "simulate", "--scenario", "nowhere-land"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "nowhere-land" in res.stderr


def test_cli_prints_the_record() -> None:
    """``rescue bench simulate`` prints the record as one JSON line."""
    res = CliRunner().invoke(
        app, ["bench", "simulate", "--scenario", "mmc_check", "--days", "2", "--no-baseline"]
    )
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)) == SIMULATE_KEYS


def test_beside_the_default_scenario() -> None:
    """``--beside-default``: the default scenario's run and table build for the same measured
    days, in the same process, with the ratios (here mmc_check beside shandong)."""
    s, tables, tables_seconds = prepare("mmc_check", days=3, seed=1, sweep=False)
    record = simulate_benchmark(s, tables, tables_seconds, baseline=False)
    out = beside_default(record, default="shandong")
    assert set(out) == SIMULATE_KEYS | DEFAULT_KEYS
    assert out["default_scenario"] == "shandong"
    assert out["default_demand_points"] > out["demand_points"] == 1
    seconds, default = record["seconds"], out["default_seconds"]
    rounding = 0.0005 / seconds + 0.0005 / default + 0.001  # both rounded to 1 ms
    assert out["ratio_to_default"] == pytest.approx(seconds / default, rel=rounding, abs=0.002)


def test_trigger_and_the_general_matcher_in_the_same_run() -> None:
    """``--trigger arrival`` replaces the scenario's trigger; ``--compare-general`` runs the
    same days through ``match_vans`` too and finds every KPI and count identical."""
    s, tables, tables_seconds = prepare("shandong", days=2, seed=3, sweep=False, trigger="arrival")
    record = simulate_benchmark(s, tables, tables_seconds, baseline=False, compare_general=True)
    assert set(record) == SIMULATE_KEYS | GENERAL_KEYS
    assert record["trigger"] == "arrival"
    assert record["dispatch_batches"] > 50
    assert record["identical_to_general"] is True
    # both seconds are rounded to 1 ms in the record: the ratio of the rounded figures may
    # differ from the record's (computed before rounding) by their relative rounding errors
    seconds, general = record["seconds"], record["general_seconds"]
    rounding = 0.0005 / seconds + 0.0005 / general + 0.001
    assert record["speedup_vs_general"] == pytest.approx(general / seconds, rel=rounding)
    assert len(record["load_average_before"]) == 3


def test_cli_bad_trigger_is_one_line() -> None:
    """``--trigger`` not a known trigger: exit 2, one ``error:`` line naming the option."""
    res = CliRunner().invoke(
        app, ["bench", "simulate", "--scenario", "mmc_check", "--trigger", "hourly"]
    )
    assert res.exit_code == 2
    assert res.stderr == "error: --trigger must be one of interval, arrival, got 'hourly'\n"
