"""benchmarks/api.py behind ``rescue bench api``: the load is valid intake, and the module runs
as the child processes the benchmark starts (``python -m benchmarks.api MODE ...``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.schemas import RequestCreate
from benchmarks.api import _bodies, cpu_s_from_stat, process_cpu_s

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_body_is_a_valid_request() -> None:
    """The posted bodies pass the real request schema (so the run measures intake, not 422s),
    with distinct plates, and about half of them carry cargo."""
    bodies = _bodies(400, seed=1)
    parsed = [RequestCreate.model_validate_json(b) for b in bodies]
    assert len({p.vehicle.plate for p in parsed}) == 400
    with_cargo = sum(p.cargo is not None for p in parsed)
    assert 150 < with_cargo < 250


def test_child_process_entry_point() -> None:
    """``python -m benchmarks.api`` is the entry the benchmark spawns; an unknown mode says so."""
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.api", "dance"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == "unknown mode 'dance'"


def test_benchmarks_ship_in_the_installed_package() -> None:
    """pyproject's package discovery includes ``benchmarks`` (so ``rescue bench`` works from an
    installed copy, not only from a checkout)."""
    discovery = pytest.importorskip("setuptools.discovery")
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(discovery.PackageFinder.find(str(ROOT), include=include))
    assert {"benchmarks", "routing", "dispatch", "simulations", "fleet", "api"} <= found


def test_regions_benchmark_refuses_fewer_than_two_regions() -> None:
    """``rescue bench dispatch --regions 1`` has nothing to compare: refused, naming it."""
    from benchmarks.regions import regions_benchmark

    with pytest.raises(ValueError, match="regions must be >= 2 to compare with one worker, got 1"):
        regions_benchmark(regions=1)
    with pytest.raises(ValueError, match="engine must be road or great-circle, got 'ship'"):
        regions_benchmark(regions=2, engine="ship")
    with pytest.raises(ValueError, match="runs must be >= 1, got 0"):
        regions_benchmark(regions=2, runs=0)


def test_the_median_run_is_the_middle_one_by_time() -> None:
    """Each configuration's figures come from its median run (the lower middle of an even
    number), whole: its CPU seconds and phases with its time."""
    from benchmarks.regions import _median_run

    runs = [{"seconds": s, "cpu": s * 10} for s in (3.0, 1.0, 2.0)]
    assert _median_run(runs) == {"seconds": 2.0, "cpu": 20.0}
    assert _median_run(runs[:2]) == {"seconds": 1.0, "cpu": 10.0}


def test_lock_stats_are_collected_per_process_and_holder(tmp_path: Path) -> None:
    """``--lock-stats``: what the server and its worker wrote at shutdown, one entry per
    ``role:holder`` with its count and its wait / hold summaries."""
    from api.db.engine import make_engine
    from api.db.write_lock import held, write_lock_for, write_stats_file
    from benchmarks.api import _lock_stats

    engine = make_engine(f"sqlite:///{tmp_path / 'bench.sqlite'}")
    lock = write_lock_for(engine)
    for _ in range(3):
        with held(lock, "bench-test-holder"):
            pass
    write_stats_file(str(tmp_path / "stats"), "worker")
    stats = _lock_stats(tmp_path / "stats")
    assert stats["worker:bench-test-holder"]["count"] == 3
    assert set(stats["worker:bench-test-holder"]) == {"count", "wait_ms", "hold_ms"}
    assert sum(stats["worker:bench-test-holder"]["hold_ms"]["histogram"].values()) == 3
    engine.dispose()


def test_server_cpu_is_read_from_proc_stat() -> None:
    """utime + stime (fields 14 and 15) after a command name that holds spaces and a ``)``;
    a process that does not exist has no figure."""
    line = b"4242 (serve (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 3 0\n"
    assert cpu_s_from_stat(line, 100) == 3.25
    assert process_cpu_s(2**22 + 1) is None  # above the kernel's largest pid
