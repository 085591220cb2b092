"""The runner's shipping of tables and variants to workers: shared memory for the process
pool, one table per geometry in a sweep, bad worker counts refused; the parallel backends take
the tasks longest first (by the breakdowns each replication draws) and still return every run
in sweep and replication order, equal to the serial one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.demand import daily_counts, draw_breakdowns, replication_streams
from simulations.runner import SharedTables, run, task_order
from simulations.scenario import load_scenario
from simulations.tables import build_tables


def test_shared_tables_round_trip(small_toml: Path) -> None:
    """A worker's view of the shared tables equals the originals, is read-only, and is gone
    once the owner closes it."""
    s = load_scenario(small_toml)
    radius_100 = s.with_override("service_radius_km", 100)
    originals = [build_tables(s), build_tables(radius_100)]
    assert originals[0].arc_km.shape != originals[1].arc_km.shape
    shared = SharedTables.create(originals)
    try:
        views, blocks = SharedTables.attach(shared.layout)
        for original, view in zip(originals, views, strict=True):
            for name in ("arc_ptr", "arc_station", "arc_km", "empty_minutes", "back_km"):
                assert np.array_equal(getattr(view, name), getattr(original, name)), name
                assert getattr(view, name).dtype == getattr(original, name).dtype
            assert np.array_equal(view.points.weight, original.points.weight)
            assert view.points.name == original.points.name
            assert view.station_ids == original.station_ids
            with pytest.raises(ValueError, match="read-only"):
                view.arc_km[0] = 1.0
        del views
        for block in blocks:
            block.close()
    finally:
        shared.close()
    with pytest.raises(FileNotFoundError):
        SharedTables.attach(shared.layout)


def test_pool_sweep_over_two_geometries_equals_serial(small_toml: Path) -> None:
    """A sweep whose variants need different tables: each pool worker maps both from shared
    memory and every run equals the serial one."""
    s = load_scenario(small_toml).with_days(4)
    sweep = [("service_radius_km", [100, 150])]
    serial = run(s, replications=1, sweep=sweep, backend="serial")
    pooled = run(s, replications=1, sweep=sweep, backend="local", workers=2)
    assert [sm.label for sm in pooled] == [sm.label for sm in serial]
    assert [sm.runs[0].kpis for sm in pooled] == [sm.runs[0].kpis for sm in serial]
    assert serial[0].runs[0].kpis != serial[1].runs[0].kpis


def test_workers_must_be_positive(small_toml: Path) -> None:
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        run(load_scenario(small_toml), backend="local", workers=0)


def test_daily_counts_are_the_first_draws_of_the_breakdowns(small_toml: Path) -> None:
    """``daily_counts`` is what ``draw_breakdowns`` draws first: the same counts per day, and
    (whole days: every breakdown kept) their sum is the number of breakdowns."""
    s = load_scenario(small_toml).with_days(6)
    tables = build_tables(s)
    for r in range(3):
        counts = daily_counts(s, replication_streams(s.seed, r))
        drawn = draw_breakdowns(s, tables, replication_streams(s.seed, r))
        assert len(counts) == 7  # 6 days + the warm-up day
        assert np.array_equal(counts, drawn.daily_counts)
        assert int(counts.sum()) == len(drawn)


def test_tasks_longest_first(small_toml: Path) -> None:
    """``task_order``: every task once, by the breakdowns its replication draws, most first
    (the 40-a-day variant's replications before the 10-a-day ones)."""
    s = load_scenario(small_toml).with_days(4)
    variants = s.variants([("breakdowns_per_day", [10, 40])])
    tables = build_tables(variants[0])
    tasks = [(vi, 0, r) for vi in range(2) for r in range(4)]
    ordered = task_order(variants, tasks)
    assert sorted(ordered) == sorted(tasks)
    drawn: dict[tuple[int, int], int] = {}
    for vi, _, r in tasks:
        v = variants[vi]
        drawn[(vi, r)] = len(draw_breakdowns(v, tables, replication_streams(v.seed, r)))
    assert [drawn[(vi, r)] for vi, _, r in ordered] == sorted(drawn.values(), reverse=True)
    assert {vi for vi, _, _ in ordered[:4]} == {1}


def test_pool_in_sweep_and_replication_order_whatever_the_task_order(small_toml: Path) -> None:
    """A sweep whose later variant runs first on the pool (more breakdowns): the summaries
    come back in sweep order, the runs in replication order, each equal to the serial run,
    and every run carries its CPU seconds."""
    s = load_scenario(small_toml).with_days(3)
    sweep = [("breakdowns_per_day", [10, 40])]
    serial = run(s, replications=2, sweep=sweep, backend="serial")
    pooled = run(s, replications=2, sweep=sweep, backend="local", workers=2)
    assert [sm.label for sm in pooled] == [sm.label for sm in serial]
    for p, q in zip(pooled, serial, strict=True):
        assert [r.replication for r in p.runs] == [0, 1]
        assert [r.kpis for r in p.runs] == [r.kpis for r in q.runs]
        assert all(np.array_equal(a.arrival_minutes, b.arrival_minutes)
                   for a, b in zip(p.runs, q.runs, strict=True))  # fmt: skip
    assert pooled[0].runs[0].kpis["breakdowns"] < pooled[1].runs[0].kpis["breakdowns"]
    for sm in serial + pooled:
        assert all(r.perf["cpu_seconds"] > 0 for r in sm.runs)
