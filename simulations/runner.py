"""Replications and sweeps: in this process, on local processes, or on a Ray cluster.

A task is (scenario variant, replication); its result depends on nothing else (the travel
tables are a pure function of the scenario's geometry and the replication's random streams
are ``SeedSequence(seed, spawn_key=(replication,))``), so the backend never changes the
numbers. The tables are computed once in the caller and shipped once per worker (process-pool
initializer / ``ray.put``).

Ray: ``ray_address`` given (the CLI passes ``RAY_ADDRESS`` from the settings) ->
``ray.init(address=...)`` joins that cluster; otherwise a local instance with ``num_cpus=2`` is
started (and shut down afterwards). A cluster needs this project installed on its workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from routing.provider import TravelTimeProvider
from routing.road import RoadGraphSource
from simulations.engine import simulate
from simulations.results import RunResult, Summary
from simulations.scenario import Scenario
from simulations.tables import TravelTables, build_tables

log = logging.getLogger(__name__)

BACKENDS = ("serial", "local", "ray")
Progress = Callable[[RunResult], None]

_WORKER_TABLES: list[TravelTables] = []


def _init_worker(tables: list[TravelTables]) -> None:
    _WORKER_TABLES[:] = tables


def _run_task(scenario: Scenario, table_index: int, replication: int) -> RunResult:
    return simulate(scenario, _WORKER_TABLES[table_index], replication)


def _ray_task(scenario: Scenario, tables: TravelTables, replication: int) -> RunResult:
    return simulate(scenario, tables, replication)


def run(
    scenario: Scenario,
    *,
    replications: int | None = None,
    sweep: Sequence[tuple[str, Sequence[Any]]] | None = None,
    backend: str = "local",
    workers: int | None = None,
    provider: TravelTimeProvider | None = None,
    road_graph: RoadGraphSource = RoadGraphSource(),
    ray_address: str | None = None,
    progress: Progress | None = None,
    on_day: Callable[[float], None] | None = None,
    cache_dir: Path | None = None,
) -> list[Summary]:
    """Simulate every sweep variant ``replications`` times; one :class:`Summary` per variant,
    in sweep order. ``backend``: ``serial`` (this process), ``local`` (process pool of
    ``workers``, default the CPU count), ``ray`` (the cluster at ``ray_address``, else a
    local one). Travel comes from ``provider``, else the scenario's engine on ``road_graph``;
    the tables are cached on disk in ``cache_dir`` when given.
    ``progress`` is called with each finished run; ``on_day`` (in-process runs only) with the
    simulated fraction of the current run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    reps = scenario.replications if replications is None else int(replications)
    if reps < 1:
        raise ValueError(f"replications must be >= 1, got {reps}")
    variants = scenario.variants(sweep)
    tables: list[TravelTables] = []
    table_of: list[int] = []
    for v in variants:
        t = build_tables(v, provider, road_graph=road_graph, cache_dir=cache_dir)
        if not any(t is x for x in tables):
            tables.append(t)
        table_of.append(next(k for k, x in enumerate(tables) if x is t))
    tasks = [(vi, r) for vi in range(len(variants)) for r in range(reps)]
    results: dict[tuple[int, int], RunResult] = {}

    def done(key: tuple[int, int], res: RunResult) -> None:
        results[key] = res
        if progress is not None:
            progress(res)

    if backend == "serial" or (backend == "local" and (len(tasks) == 1 or workers == 1)):
        for vi, r in tasks:
            done((vi, r), simulate(variants[vi], tables[table_of[vi]], r, on_day=on_day))
    elif backend == "local":
        n = workers or min(len(tasks), os.cpu_count() or 1)
        with ProcessPoolExecutor(
            max_workers=n, initializer=_init_worker, initargs=(tables,)
        ) as pool:
            futures = {
                pool.submit(_run_task, variants[vi], table_of[vi], r): (vi, r) for vi, r in tasks
            }
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    else:
        _run_ray(variants, tables, table_of, tasks, done, ray_address)
    return [
        Summary(
            scenario=v.name,
            label=v.label,
            runs=tuple(results[(vi, r)] for r in range(reps)),
        )
        for vi, v in enumerate(variants)
    ]


def _run_ray(
    variants: list[Scenario],
    tables: list[TravelTables],
    table_of: list[int],
    tasks: list[tuple[int, int]],
    done: Callable[[tuple[int, int], RunResult], None],
    ray_address: str | None,
) -> None:
    import ray

    started_here = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        remote = ray.remote(_ray_task)
        refs_tables = [ray.put(t) for t in tables]
        refs = {
            remote.remote(variants[vi], refs_tables[table_of[vi]], r): (vi, r) for vi, r in tasks
        }
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done(refs[ref], ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
