"""Ray: the same replications on a local Ray instance give exactly the serial numbers, on
workers kept warm across calls; pool workers keep BLAS to one thread."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from simulations.runner import run, single_threaded_libraries, start_ray_workers
from simulations.scenario import load_scenario


def test_ray_equals_serial_on_warm_workers(small_toml: Path) -> None:
    """Two ``run`` calls in one Ray session (local, 2 CPUs): the same two actors serve both
    (started once, then kept warm), each call ships its own tables (here two geometries), and
    every replication equals the serial one."""
    ray = pytest.importorskip("ray")
    s = load_scenario(small_toml).with_days(5)
    sweep = [("service_radius_km", [100, 150])]
    serial = run(s, replications=2, backend="serial")[0]
    serial_sweep = run(s, replications=1, sweep=sweep, backend="serial")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actors = list(start_ray_workers(2))
        remote = run(s, replications=2, backend="ray")[0]
        remote_sweep = run(s, replications=1, sweep=sweep, backend="ray")
        again = start_ray_workers(2)
        assert len(again) == 2 and all(a is b for a, b in zip(again, actors, strict=True))
    finally:
        ray.shutdown()
    assert [r.kpis for r in remote.runs] == [r.kpis for r in serial.runs]
    assert [sm.runs[0].kpis for sm in remote_sweep] == [sm.runs[0].kpis for sm in serial_sweep]
    assert serial_sweep[0].runs[0].kpis != serial_sweep[1].runs[0].kpis


def test_a_new_ray_session_gets_new_workers(small_toml: Path) -> None:
    """After ``ray.shutdown`` a new local instance numbers its job as the first one did; the
    warm actors of the old session are dead and must not be reused: the new session starts
    its own and runs on them."""
    ray = pytest.importorskip("ray")
    s = load_scenario(small_toml).with_days(2)
    serial = run(s, replications=2, backend="serial")[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        first = list(start_ray_workers(2))
    finally:
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        second = list(start_ray_workers(2))
        remote = run(s, replications=2, backend="ray")[0]
    finally:
        ray.shutdown()
    assert not any(a is b for a in first for b in second)
    # NaN (a KPI with nothing to measure in 2 days) equals NaN here
    assert [repr(r.kpis) for r in remote.runs] == [repr(r.kpis) for r in serial.runs]


def test_pool_workers_run_blas_on_one_thread() -> None:
    """A forked pool worker inherits the parent's OpenBLAS (a thread per core);
    ``single_threaded_libraries`` leaves it one thread, as the pool's initializer does."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=single_threaded_libraries) as pool:
        info = pool.submit(threadpoolctl.threadpool_info).result()
    blas = [lib for lib in info if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas), info


def test_unknown_backend(small_toml: Path) -> None:
    """An unknown backend is refused before anything runs."""
    with pytest.raises(ValueError, match="backend must be one of serial, local, ray"):
        run(load_scenario(small_toml), backend="spark")
