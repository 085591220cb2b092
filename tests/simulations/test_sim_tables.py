"""Travel tables on disk: a second build reads them back; a changed geometry, engine or a
foreign, stale or damaged file is never used."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import simulations.tables as tables_module
from routing.graph import RoadGraph
from routing.provider import GreatCircleProvider
from routing.road import RoadGraphProvider
from simulations.engine import simulate
from simulations.scenario import load_scenario
from simulations.tables import (
    _ARRAY_FIELDS,
    TravelTables,
    build_tables,
    provider_identity,
    tables_cache_path,
    tables_key,
)


@pytest.fixture(autouse=True)
def fresh_process_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing cached in memory."""
    monkeypatch.setattr(tables_module, "_CACHE", {})


def forget_in_process() -> None:
    tables_module._CACHE.clear()


def assert_same_tables(a: TravelTables, b: TravelTables) -> None:
    for name in _ARRAY_FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.station_ids == b.station_ids
    assert a.points.name == b.points.name
    assert a.points.province == b.points.province
    assert np.array_equal(a.points.weight, b.points.weight)
    assert a.provider_name == b.provider_name


def test_second_build_reads_the_disk_entry(small_toml: Path, tmp_path: Path) -> None:
    """The first build writes one file named by the key; a new process (empty memory cache)
    reads it back: same arrays, same simulated KPIs."""
    s = load_scenario(small_toml).with_days(3)
    cache = tmp_path / "tables"
    first = build_tables(s, cache_dir=cache)
    key = tables_key(s, GreatCircleProvider(s.travel.circuity))
    assert key is not None
    path = tables_cache_path(cache, key)
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left behind
    assert "cache_file" not in first.meta
    forget_in_process()
    again = build_tables(s, cache_dir=cache)
    assert again.meta["cache_file"] == str(path)
    assert_same_tables(first, again)
    assert simulate(s, again, 0).kpis == simulate(s, first, 0).kpis


def test_without_cache_dir_nothing_is_written(small_toml: Path, tmp_path: Path) -> None:
    build_tables(load_scenario(small_toml))
    assert list(tmp_path.iterdir()) == [small_toml]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('id = "TA-1"', 'id = "TA-1"\nservice_radius_km = 90'),
        ('"county_seats"\nprovinces = ["370000"]', '"county_seats"\nprovinces = ["410000"]'),
        ('provider = "great-circle"', 'provider = "great-circle"\ncircuity = 1.4'),
        ('provider = "great-circle"', 'provider = "great-circle"\nspeeds = { towing = 40 }'),
        ("lat = 36.200", "lat = 36.300"),
    ],
    ids=["van-radius", "demand-points", "circuity", "speeds", "station-moved"],
)
def test_a_changed_geometry_never_uses_the_old_entry(
    small_toml: Path, write_scenario, tmp_path: Path, old: str, new: str
) -> None:  # type: ignore[no-untyped-def]
    """Radius, demand points, circuity, speeds and a station's position are all in the key:
    the variant gets its own entry, computed afresh, equal to a build without any cache."""
    cache = tmp_path / "tables"
    base = load_scenario(small_toml)
    build_tables(base, cache_dir=cache)
    variant = load_scenario(write_scenario((old, new)))
    assert tables_key(variant, GreatCircleProvider(variant.travel.circuity)) != tables_key(
        base, GreatCircleProvider(base.travel.circuity)
    )
    forget_in_process()
    cached = build_tables(variant, cache_dir=cache)
    assert "cache_file" not in cached.meta
    assert len(list(cache.iterdir())) == 2
    forget_in_process()
    assert_same_tables(cached, build_tables(variant))


def test_more_vans_at_the_same_stations_share_the_entry(small_toml: Path, tmp_path: Path) -> None:
    """The tables depend on each station's largest radius, not on how many vans it has."""
    s = load_scenario(small_toml)
    provider = GreatCircleProvider(s.travel.circuity)
    assert tables_key(s.with_override("vans_per_station", 3), provider) == tables_key(s, provider)


def test_a_foreign_file_under_the_key_is_not_used(
    small_toml: Path, write_scenario, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """A file holding another geometry's tables (copied, or a stale name) is ignored: the key
    inside the file must match; the right tables are computed and replace it."""
    cache = tmp_path / "tables"
    other = load_scenario(write_scenario(("lat = 36.200", "lat = 36.900")))
    build_tables(other, cache_dir=cache)
    (other_file,) = cache.iterdir()
    s = load_scenario(small_toml)
    key = tables_key(s, GreatCircleProvider(s.travel.circuity))
    assert key is not None
    shutil.copy(other_file, tables_cache_path(cache, key))
    forget_in_process()
    with caplog.at_level(logging.WARNING, logger="simulations.tables"):
        got = build_tables(s, cache_dir=cache)
    assert "written for another geometry" in caplog.text
    assert "cache_file" not in got.meta
    forget_in_process()
    assert_same_tables(got, build_tables(s))
    forget_in_process()
    assert build_tables(s, cache_dir=cache).meta["cache_file"] == str(tables_cache_path(cache, key))


def test_a_damaged_file_is_rebuilt(
    small_toml: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "tables"
    s = load_scenario(small_toml)
    good = build_tables(s, cache_dir=cache)
    (path,) = cache.iterdir()
    path.write_bytes(path.read_bytes()[:100])
    forget_in_process()
    with caplog.at_level(logging.WARNING, logger="simulations.tables"):
        got = build_tables(s, cache_dir=cache)
    assert "ignoring unreadable travel tables" in caplog.text
    assert_same_tables(good, got)


class _OwnEngine(GreatCircleProvider):
    """An engine the cache cannot identify (a subclass may compute anything)."""

    name = "own-engine"


def test_an_unknown_engine_is_not_cached_on_disk(small_toml: Path, tmp_path: Path) -> None:
    s = load_scenario(small_toml)
    engine = _OwnEngine()
    assert provider_identity(engine) is None
    assert tables_key(s, engine) is None
    build_tables(s, engine, cache_dir=tmp_path / "tables")
    assert not (tmp_path / "tables").exists()


def _tiny_graph(km: float = 10.0) -> RoadGraph:
    return RoadGraph(
        lat=np.array([36.0, 36.1, 36.2]),
        lon=np.array([117.0, 117.1, 117.2]),
        edge_u=np.array([0, 1]),
        edge_v=np.array([1, 2]),
        edge_km=np.array([km, 12.0]),
        name="tiny",
    )


def test_road_engine_identity_is_its_content() -> None:
    """Two engines on equal graphs share the identity; another edge length or snapping
    distance does not."""
    same = provider_identity(RoadGraphProvider(_tiny_graph()))
    assert same is not None
    assert provider_identity(RoadGraphProvider(_tiny_graph())) == same
    assert provider_identity(RoadGraphProvider(_tiny_graph(km=11.0))) != same
    assert provider_identity(RoadGraphProvider(_tiny_graph(), max_snap_km=5.0)) != same
    assert provider_identity(GreatCircleProvider(1.2)) != provider_identity(
        GreatCircleProvider(1.3)
    )


def test_cli_simulate_caches_tables_under_the_cache_dir(
    small_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rescue simulate`` keeps the tables in RESCUE_CACHE_DIR/tables."""
    from typer.testing import CliRunner

    from api.cli import app
    from api.settings import get_settings

    monkeypatch.setenv("RESCUE_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["simulate", str(small_toml), "--days", "2", "--quiet", "--backend", "serial"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    files = list((tmp_path / "cache" / "tables").iterdir())
    assert len(files) == 1
    assert files[0].name.startswith("tables-")
    assert files[0].suffix == ".npz"


def test_loaded_tables_are_independent_of_the_scenario_days(
    small_toml: Path, tmp_path: Path
) -> None:
    """The horizon is not geometry: a 3-day and a 30-day run share one entry."""
    s = load_scenario(small_toml)
    provider = GreatCircleProvider(s.travel.circuity)
    assert tables_key(s.with_days(3), provider) == tables_key(
        replace(s.with_days(30), seed=9), provider
    )
