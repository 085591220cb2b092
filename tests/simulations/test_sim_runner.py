"""The runner's shipping of tables and variants to workers: shared memory for the process
pool, one table per geometry in a sweep, bad worker counts refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.runner import SharedTables, run
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
