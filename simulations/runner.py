"""Replications and sweeps: in this process, on local processes, or on a Ray cluster.

A task is (scenario variant, replication); its result depends on nothing else (the travel
tables are a pure function of the scenario's geometry and the replication's random streams
are ``SeedSequence(seed, spawn_key=(replication,))``), so the backend never changes the
numbers.

What a task costs beyond the simulation itself is paid once per worker, not per replication:
the travel tables (tens of MB nationally) and the scenario variants are computed in the caller
and shipped to each worker once, and the workers stay up for every replication of the call:

- ``local``: a process pool whose initializer receives the variants and the tables' arrays as
  shared-memory blocks (:class:`SharedTables`: one copy in RAM whatever the start method; the
  workers map it read-only); a task is three integers;
- ``ray``: one actor per worker (:class:`SimulationWorker`), started once per Ray session and
  kept (:func:`start_ray_workers`), loaded with the variants and the tables from Ray's object
  store (``ray.put`` once per call; zero-copy numpy on the same node), fed by
  ``ray.util.ActorPool``; a task is three integers.

Every worker keeps its BLAS / OpenMP pools to one thread (:func:`single_threaded_libraries`):
two workers on two cores with a BLAS thread per core each would be four busy threads.

Ray: ``ray_address`` given (the CLI passes ``RAY_ADDRESS`` from the settings) ->
``ray.init(address=...)`` joins that cluster and uses one actor per CPU it offers (the same
code on one machine or many); otherwise a local instance with ``num_cpus=2`` is started (and
shut down afterwards). A cluster needs this project installed on its workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields, replace
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from routing.provider import TravelTimeProvider
from routing.road import RoadGraphSource
from simulations.demand import daily_counts, replication_streams
from simulations.engine import simulate
from simulations.results import RunResult, Summary
from simulations.scenario import Scenario
from simulations.tables import DemandPoints, TravelTables, build_tables

log = logging.getLogger(__name__)

BACKENDS = ("serial", "local", "ray")
Progress = Callable[[RunResult], None]


@dataclass(frozen=True)
class _SharedArray:
    name: str
    shape: tuple[int, ...]
    dtype: str


class SharedTables:
    """The numpy arrays of some travel tables in shared memory, for a process pool: the
    owner (:meth:`create`) copies them in once and unlinks them (:meth:`close`) after the
    pool; a worker (:meth:`attach`) maps them read-only, without copying."""

    def __init__(
        self,
        layout: list[tuple[TravelTables, dict[str, _SharedArray]]],
        blocks: list[shared_memory.SharedMemory],
    ) -> None:
        self._layout = layout
        self._blocks = blocks

    @classmethod
    def create(cls, tables: Sequence[TravelTables]) -> SharedTables:
        layout: list[tuple[TravelTables, dict[str, _SharedArray]]] = []
        blocks: list[shared_memory.SharedMemory] = []
        try:
            for t in tables:
                arrays = _table_arrays(t)
                shared: dict[str, _SharedArray] = {}
                for key, a in arrays.items():
                    block = shared_memory.SharedMemory(create=True, size=max(a.nbytes, 1))
                    blocks.append(block)
                    np.ndarray(a.shape, a.dtype, buffer=block.buf)[...] = a
                    shared[key] = _SharedArray(block.name, a.shape, a.dtype.str)
                # the template keeps the small fields; its arrays are replaced on attach
                no_arrays: dict[str, Any] = {
                    f: np.empty((0,) * np.ndim(getattr(t, f))) for f in _ARRAYS
                }
                no_points: dict[str, Any] = {f: np.empty(0) for f in _POINT_ARRAYS}
                template = replace(t, points=replace(t.points, **no_points), **no_arrays)
                layout.append((template, shared))
        except BaseException:
            cls(layout, blocks).close()
            raise
        return cls(layout, blocks)

    @property
    def layout(self) -> list[tuple[TravelTables, dict[str, _SharedArray]]]:
        """What a worker needs to attach (small: names, shapes, dtypes, the small fields)."""
        return self._layout

    @staticmethod
    def attach(
        layout: list[tuple[TravelTables, dict[str, _SharedArray]]],
    ) -> tuple[list[TravelTables], list[shared_memory.SharedMemory]]:
        """The tables over the shared blocks (and the blocks, to keep them mapped)."""
        out: list[TravelTables] = []
        blocks: list[shared_memory.SharedMemory] = []
        for template, shared in layout:
            arrays: dict[str, Any] = {}
            for key, spec in shared.items():
                block = shared_memory.SharedMemory(name=spec.name)
                blocks.append(block)
                a = np.ndarray(spec.shape, np.dtype(spec.dtype), buffer=block.buf)
                a.setflags(write=False)
                arrays[key] = a
            point_arrays: dict[str, Any] = {f: arrays.pop(f"points.{f}") for f in _POINT_ARRAYS}
            points = replace(template.points, **point_arrays)
            out.append(replace(template, points=points, **arrays))
        return out, blocks

    def close(self) -> None:
        for block in self._blocks:
            block.close()
            with contextlib.suppress(FileNotFoundError):  # already gone
                block.unlink()
        self._blocks = []


_ARRAYS = tuple(
    f.name
    for f in fields(TravelTables)
    if f.name not in {"provider_name", "points", "station_ids", "seconds", "meta"}
)
_POINT_ARRAYS = tuple(f.name for f in fields(DemandPoints) if f.name not in {"province", "name"})


def _table_arrays(t: TravelTables) -> dict[str, np.ndarray]:
    arrays = {f: np.ascontiguousarray(getattr(t, f)) for f in _ARRAYS}
    arrays |= {f"points.{f}": np.ascontiguousarray(getattr(t.points, f)) for f in _POINT_ARRAYS}
    return arrays


# -- process-pool workers: state set once by the initializer ---------------------------------
_WORKER_VARIANTS: list[Scenario] = []
_WORKER_TABLES: list[TravelTables] = []
_WORKER_BLOCKS: list[shared_memory.SharedMemory] = []


def single_threaded_libraries() -> None:
    """One thread for the BLAS / OpenMP pools of this worker process: the workers are the
    parallelism. Environment variables are not enough: a forked pool worker inherits the
    parent's OpenBLAS, which starts a thread per core at its first matrix product (move-up
    has some), whatever the variables say after the import."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # for libraries loaded from now on
    threadpool_limits(1)  # for those loaded already


def _init_worker(
    variants: list[Scenario], layout: list[tuple[TravelTables, dict[str, _SharedArray]]]
) -> None:
    single_threaded_libraries()
    tables, blocks = SharedTables.attach(layout)
    _WORKER_VARIANTS[:] = variants
    _WORKER_TABLES[:] = tables
    _WORKER_BLOCKS[:] = blocks


def _run_task(variant: int, table_index: int, replication: int) -> RunResult:
    return simulate_timed(_WORKER_VARIANTS[variant], _WORKER_TABLES[table_index], replication)


def simulate_timed(
    scenario: Scenario,
    tables: TravelTables,
    replication: int,
    *,
    on_day: Callable[[float], None] | None = None,
) -> RunResult:
    """:func:`simulations.engine.simulate` with ``perf["cpu_seconds"]``: the CPU time of the
    process running it (``time.process_time``: a loaded machine stretches the wall seconds of
    a run, much less its CPU seconds), the same on every backend."""
    cpu = time.process_time()
    res = simulate(scenario, tables, replication, on_day=on_day)
    return replace(res, perf=res.perf | {"cpu_seconds": time.process_time() - cpu})


def task_order(
    variants: Sequence[Scenario], tasks: Sequence[tuple[int, int, int]]
) -> list[tuple[int, int, int]]:
    """The tasks (variant, table, replication) longest first, for the workers to take in that
    order: a replication's run time follows its number of breakdowns (drawn first, from two
    streams of its own: cheap to draw again here), so the last tasks left, which decide how
    long one worker idles while the other finishes, are the shortest. Ties keep their order.
    The order changes no result (each task's streams are its own)."""

    def breakdowns(task: tuple[int, int, int]) -> int:
        variant = variants[task[0]]
        return int(daily_counts(variant, replication_streams(variant.seed, task[2])).sum())

    return sorted(tasks, key=breakdowns, reverse=True)


class SimulationWorker:
    """A warm Ray worker (an actor): started once per Ray session (imports paid once, see
    :func:`start_ray_workers`), it receives the variants and the travel tables once per
    :func:`run` call (:meth:`load`), then runs any number of replications."""

    def __init__(self) -> None:
        single_threaded_libraries()
        self.variants: list[Scenario] = []
        self.tables: list[TravelTables] = []

    def load(self, variants: list[Scenario], tables: list[TravelTables]) -> int:
        """This call's variants and tables (from the object store); returns the count."""
        self.variants = variants
        self.tables = tables
        return len(variants)

    def run(self, variant: int, table_index: int, replication: int) -> tuple[int, int, RunResult]:
        """One replication, tagged with its variant and replication (results come back in
        completion order)."""
        return (
            variant,
            replication,
            simulate_timed(self.variants[variant], self.tables[table_index], replication),
        )


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
    local one; ``workers`` actors, default one per CPU of the cluster). Travel comes from
    ``provider``, else the scenario's engine on ``road_graph``; the tables are cached on disk
    in ``cache_dir`` when given. ``progress`` is called with each finished run; ``on_day``
    (in-process runs only) with the simulated fraction of the current run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    reps = scenario.replications if replications is None else int(replications)
    if reps < 1:
        raise ValueError(f"replications must be >= 1, got {reps}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    variants = scenario.variants(sweep)
    tables: list[TravelTables] = []
    table_of: list[int] = []
    for v in variants:
        t = build_tables(v, provider, road_graph=road_graph, cache_dir=cache_dir)
        if not any(t is x for x in tables):
            tables.append(t)
        table_of.append(next(k for k, x in enumerate(tables) if x is t))
    tasks = [(vi, table_of[vi], r) for vi in range(len(variants)) for r in range(reps)]
    results: dict[tuple[int, int], RunResult] = {}

    def done(variant: int, replication: int, res: RunResult) -> None:
        results[(variant, replication)] = res
        if progress is not None:
            progress(res)

    if backend == "serial" or (backend == "local" and (len(tasks) == 1 or workers == 1)):
        for vi, ti, r in tasks:
            done(vi, r, simulate_timed(variants[vi], tables[ti], r, on_day=on_day))
    elif backend == "local":
        n = min(workers or os.cpu_count() or 1, len(tasks))
        shared = SharedTables.create(tables)
        try:
            with ProcessPoolExecutor(
                max_workers=n, initializer=_init_worker, initargs=(variants, shared.layout)
            ) as pool:
                # longest first: the pool hands them out in submission order as workers free up
                ordered = task_order(variants, tasks)
                futures = {pool.submit(_run_task, *task): task for task in ordered}
                for fut in as_completed(futures):
                    vi, _, r = futures[fut]
                    done(vi, r, fut.result())
        finally:
            shared.close()
    else:
        _run_ray(variants, tables, task_order(variants, tasks), done, ray_address, workers)
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
    tasks: list[tuple[int, int, int]],
    done: Callable[[int, int, RunResult], None],
    ray_address: str | None,
    workers: int | None,
) -> None:
    import ray
    from ray.util import ActorPool

    started_here = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = min(workers or cpus, len(tasks))
        actors = start_ray_workers(n)[:n]
        variants_ref, tables_ref = ray.put(variants), ray.put(tables)
        ray.get([actor.load.remote(variants_ref, tables_ref) for actor in actors])
        pool = ActorPool(actors)
        for vi, r, res in pool.map_unordered(lambda actor, task: actor.run.remote(*task), tasks):
            done(vi, r, res)
    finally:
        if started_here:
            _RAY_WORKERS.clear()
            ray.shutdown()


_RAY_WORKERS: dict[str, list[Any]] = {}
"""The warm actors of this process's Ray session, by its job and the driver's node."""


def start_ray_workers(n: int) -> list[Any]:
    """At least ``n`` :class:`SimulationWorker` actors (one CPU each) of the current Ray
    session, started and ready (imports done); the same ones for every later :func:`run` call
    of the session, so a sweep pays the start-up once. Ray must be initialised."""
    import ray

    context = ray.get_runtime_context()
    # a new local instance numbers its first job 01000000 again: the node tells sessions apart
    session = f"{context.get_job_id()}@{context.get_node_id()}"
    for stale in [k for k in _RAY_WORKERS if k != session]:  # an earlier, shut-down session
        del _RAY_WORKERS[stale]
    actors = _RAY_WORKERS.setdefault(session, [])
    if len(actors) < n:
        worker_class = ray.remote(num_cpus=1)(SimulationWorker)
        new: list[Any] = [worker_class.remote() for _ in range(n - len(actors))]
        ray.get([actor.load.remote([], []) for actor in new])  # ready: started and imported
        actors.extend(new)
    return actors
