"""benchmarks/simulate.py behind ``rescue bench simulate``: the record's contract keys and its
baseline measured in the same run, on the small M/M/c scenario."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from api.cli import app
from benchmarks.simulate import (
    beside_default,
    prepare,
    simulate_benchmark,
    sweep_benchmark,
    tail_idle_seconds,
)

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
SWEEP_KEYS = {
    "benchmark", "scenario", "replications", "days", "tables_seconds", "serial_seconds",
    "local_seconds", "ray_seconds", "ray_init_seconds", "ray_workers_start_seconds",
    "load_average_before", "load_average_after", "runs_seconds", "speedup_local", "speedup_ray",
    "ray_address", "ray_workers", "overhead_per_replication_seconds_serial",
    "overhead_per_replication_seconds_local", "overhead_per_replication_seconds_ray",
    "identical_results", "goal_speedup", "goal_met", "cpu_count",
    # where the parallel time goes
    "runs_cpu_seconds", "cpu_per_replication_seconds", "runs_cpu_share", "tail_idle_seconds",
    "cpu_adjusted_speedup_local", "cpu_adjusted_speedup_ray",
    "overhead_per_replication_seconds_local_without_tail",
    "overhead_per_replication_seconds_ray_without_tail",
    "cpu_outside_runs_per_replication_seconds",
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


def test_tail_idle_is_each_workers_wait_for_the_last_result() -> None:
    """The last ``workers`` results are each worker's last; each waits for the very last."""
    assert tail_idle_seconds([0.0, 3.0, 4.0, 6.5], workers=2) == 2.5
    assert tail_idle_seconds([6.5, 0.0, 4.0, 3.0], workers=2) == 2.5  # any arrival order
    assert tail_idle_seconds([1.0, 2.0, 4.0, 7.0], workers=3) == (7.0 - 2.0) + (7.0 - 4.0)
    assert tail_idle_seconds([1.0, 2.0], workers=1) == 0.0
    assert tail_idle_seconds([5.0], workers=2) == 0.0


def test_sweep_record_on_every_backend() -> None:
    """``--sweep-ray`` on the small M/M/c scenario (local Ray, 2 CPUs): the contract keys plus
    the overhead breakdown, identical results on the pool and on Ray, and the runs' CPU
    seconds measured on every backend."""
    pytest.importorskip("ray")
    s, _, tables_seconds = prepare("mmc_check", days=3, seed=1, sweep=True)
    record = sweep_benchmark(s, tables_seconds, replications=3)
    assert set(record) == SWEEP_KEYS
    assert record["identical_results"] is True
    assert (record["replications"], record["ray_workers"]) == (3, 2)
    for backend in ("serial", "local", "ray"):
        assert record["runs_cpu_seconds"][backend] > 0
    assert record["tail_idle_seconds"]["serial"] == 0.0
    assert set(record["cpu_outside_runs_per_replication_seconds"]) == {"serial", "local"}


def test_sweep_replications_must_be_positive() -> None:
    s, _, tables_seconds = prepare("mmc_check", days=1, seed=1, sweep=True)
    with pytest.raises(ValueError, match="--replications must be >= 1, got 0"):
        sweep_benchmark(s, tables_seconds, replications=0)
