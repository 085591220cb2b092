"""``rescue bench dispatch --regions N``: a storm dispatched by N worker processes, one region
each, against one worker dispatching the whole network, on copies of the same database.

The storm: ``requests`` breakdowns a few km from random stations of the national network
(so every province gets its share), stored through the real intake. Each worker is a
process (``python -m benchmarks.regions worker URL REGIONS``) that loads the road graph,
says ``ready``, waits for ``go`` and runs dispatch passes
(:meth:`api.dispatching.worker.DispatchWorker.run_pass`) until it is idle (see
``QUIET_PASSES``).

What is timed: the storm is dispatched when the last decision is stored, so a run's time is
the end of the last pass that decided something, in whichever worker (``*_seconds``). The
passes after it only confirm that nothing is left, and the worker's own ``until_idle`` rule
(a pass that led every region and decided nothing) made every worker confirm it for every
region: with N workers that is N idle sweeps of the whole network
where one worker needs one, and with storm requests no van can take (they stay open and are
re-examined by each sweep) an idle sweep costs about as much as the dispatching pass. Timing
to the end of the idle sweeps (``*_idle_seconds``, still reported) charged that artefact to
the region workers (0.76x on a loaded machine in an earlier session). ``speedup`` = one
worker on the whole network / N workers; ``parallel_speedup`` = one worker leading all N
regions in turn (the same partition and border cycle, no parallelism) / N workers, which
isolates what the extra processes bring. All three runs are on copies of one database, in
this run.

Where the time goes: each worker reports its CPU seconds (``*_cpu_seconds``, the work that
must not grow with N: ``regions_total_cpu_seconds`` against ``one_worker_cpu_seconds``;
``*_dispatched_cpu_seconds`` up to the end of its last pass that decided something, without
the idle passes that only confirm the end) and
the wall seconds of each phase of its passes (``*_phases``, see :data:`PHASES`). With
``RESCUE_BENCH_PROFILE=<dir>`` each worker also writes a cProfile file there; with it or
``RESCUE_BENCH_TIMELINE=1`` the report carries each worker's timeline of cycles (end of pass
from "go", region, ran, open requests, assigned or offered, escalated or re-planned or
conflicts, cycle seconds).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUIET_PASSES = 3
"""A worker stops after this many passes in a row that ran a cycle and decided nothing (or
one that led every region and decided nothing); a pass that led nothing (another worker
held every lock) does not count."""


def _seed_storm(url: str, requests: int, seed: int) -> None:
    from pydantic import ValidationError

    from api.db.engine import make_engine, session_factory, transaction
    from api.db.migrate import upgrade
    from api.network.seeding import seed_network
    from api.requests.intake import create_request
    from api.schemas import RequestCreate
    from fleet import build_national_network

    network = build_national_network()
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    classes = ["tractor", "rigid_truck", "light_truck", "van", "car"]
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=network, source="bench")
        for i in range(requests):
            while True:  # a point off the coast is outside the service area: draw again
                station = rng.choice(network.stations)
                body = {
                    "customer": {"name": "张伟", "phone": f"138{rng.randrange(10**8):08d}"},
                    "vehicle": {"plate": f"鲁B{i:05d}", "vehicle_class": rng.choice(classes)},
                    "location": {
                        "lat": station.location.lat + rng.uniform(-0.2, 0.2),
                        "lon": station.location.lon + rng.uniform(-0.2, 0.2),
                    },
                    "fault": {"code": "TYRE_PUNCTURE", "description": "storm"},
                }
                try:
                    valid = RequestCreate.model_validate(body)
                except ValidationError:
                    continue
                break
            create_request(
                db_session=db,
                body=valid,
                threshold_hours=24.0,
                token_secret=b"bench-regions-token-secret",
            )
    engine.dispose()


def _run_workers(url: str, regions: int, workers: int, travel: str) -> dict[str, Any]:
    env = os.environ | {"RESCUE_RESPECT_SHIFTS": "false", "RESCUE_TRAVEL_PROVIDER": travel}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.regions", "worker", url, str(regions)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"dispatch worker failed to start (said {line!r})")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for p in procs:
            out, _ = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(f"dispatch worker exited with {p.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {
        "seconds": round(max(r["dispatched_seconds"] for r in reports), 3),
        "idle_seconds": round(max(r["seconds"] for r in reports), 3),
        "assigned": sum(r["assigned"] for r in reports),
        "conflicts": sum(r["conflicts"] for r in reports),
        "cycles": sum(r["cycles"] for r in reports),
        "border_skipped": sum(r["border_skipped"] for r in reports),
        "cpu_seconds": [round(r["cpu_seconds"], 3) for r in reports],
        "dispatched_cpu_seconds": [round(r["dispatched_cpu_seconds"], 3) for r in reports],
        "phases": [r["phases"] for r in reports],
        "timelines": [r["timeline"] for r in reports if "timeline" in r],
    }


def regions_benchmark(
    *,
    requests: int = 3000,
    regions: int = 2,
    seed: int = 0,
    engine: str = "road",
    database: str | None = None,
    runs: int = 3,
) -> dict[str, Any]:
    """The storm on a fresh database (SQLite file, or a fresh database on the PostgreSQL
    server ``database``), copied for each run: one worker on the whole network, one worker
    over the ``regions`` regions, ``regions`` workers; ``runs`` times each, the three in
    turn and starting with another one each time (two workers on two shared cores swing
    +-30% from run to run: one run each proved nothing). The figures are each
    configuration's median run (all its figures from that run); ``*_runs_seconds`` and
    ``speedups`` (one worker / N workers, run by run) show the spread."""
    from benchmarks.api import _databases

    if regions < 2:
        raise ValueError(f"regions must be >= 2 to compare with one worker, got {regions}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    travel = {"road": "road", "great-circle": "great_circle"}.get(engine)
    if travel is None:
        raise ValueError(f"engine must be road or great-circle, got {engine!r}")
    with (
        tempfile.TemporaryDirectory(prefix="rescue-regions-") as tmp,
        _databases(database, Path(tmp)) as fresh,
    ):
        base_url = fresh("storm")
        _seed_storm(base_url, requests, seed)
        shapes = {"one": (1, 1), "serial": (regions, 1), "many": (regions, regions)}
        names = list(shapes)
        done: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for run in range(runs):
            for name in names[run % 3 :] + names[: run % 3]:
                url = fresh(f"{name}{run}", template=base_url)
                done[name].append(_run_workers(url, *shapes[name], travel))
    one, serial, many = (_median_run(done[name]) for name in names)
    return {
        "benchmark": "dispatch-regions",
        "database": "postgresql" if database else "sqlite",
        "requests": requests,
        "regions": regions,
        "engine": engine,
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "one_worker_seconds": one["seconds"],
        "one_worker_regions_seconds": serial["seconds"],
        "regions_seconds": many["seconds"],
        "runs": runs,
        "speedup": round(one["seconds"] / many["seconds"], 3) if many["seconds"] else None,
        "speedups": [
            round(o["seconds"] / m["seconds"], 3) if m["seconds"] else None
            for o, m in zip(done["one"], done["many"], strict=True)
        ],
        "one_worker_runs_seconds": [r["seconds"] for r in done["one"]],
        "one_worker_regions_runs_seconds": [r["seconds"] for r in done["serial"]],
        "regions_runs_seconds": [r["seconds"] for r in done["many"]],
        "parallel_speedup": (
            round(serial["seconds"] / many["seconds"], 3) if many["seconds"] else None
        ),
        "one_worker_idle_seconds": one["idle_seconds"],
        "regions_idle_seconds": many["idle_seconds"],
        "one_worker_assigned": one["assigned"],
        "one_worker_regions_assigned": serial["assigned"],
        "regions_assigned": many["assigned"],
        "regions_conflicts": many["conflicts"],
        "regions_cycles": many["cycles"],
        "regions_border_skipped": many["border_skipped"],
        "one_worker_cpu_seconds": one["cpu_seconds"],
        "one_worker_regions_cpu_seconds": serial["cpu_seconds"],
        "regions_cpu_seconds": many["cpu_seconds"],
        "regions_total_cpu_seconds": round(sum(many["cpu_seconds"]), 3),
        "one_worker_dispatched_cpu_seconds": one["dispatched_cpu_seconds"],
        "regions_dispatched_cpu_seconds": many["dispatched_cpu_seconds"],
        "regions_total_dispatched_cpu_seconds": round(sum(many["dispatched_cpu_seconds"]), 3),
        "one_worker_phases": one["phases"],
        "one_worker_regions_phases": serial["phases"],
        "regions_phases": many["phases"],
    } | (
        {
            "one_worker_regions_timeline": serial["timelines"],
            "regions_timelines": many["timelines"],
        }
        if many["timelines"]
        else {}
    )


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time (the lower middle one of an even number)."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2]


PHASES = (
    ("api.dispatching.cycle", "hold_locks", "locks"),
    ("api.dispatching.worker", "hold_locks", "locks"),
    ("api.dispatching.cycle", "sweep", "sweep"),
    ("api.dispatching.cycle", "load_snapshot", "snapshot"),
    ("api.dispatching.cycle", "solve", "solve"),
    ("api.dispatching.cycle", "escalate_to_partners", "solve"),
    ("api.dispatching.cycle", "pending_reasons", "reasons"),
    ("api.dispatching.cycle", "write_decisions", "write"),
    ("api.dispatching.cycle", "flag_late_jobs", "flag_late"),
    ("api.dispatching.cycle", "write_lock_for", "write_lock"),
)
"""Where a pass's time goes (``phases`` of the report): the functions of the cycle each
phase is, timed by wrapping them in the worker process (wall seconds; ``locks`` is the time
to take the cycle locks, ``select`` the region split of a snapshot, ``idle`` the pauses
between passes that led nothing; ``other`` is the rest of the passes)."""


class _Phases:
    def __init__(self) -> None:
        self.wall: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.wall[phase] = self.wall.get(phase, 0.0) + seconds

    def wrap(self, fn: Any, phase: str) -> Any:
        import contextlib
        import functools

        if phase == "write_lock":  # returns a reusable context manager: time to enter it
            phases = self

            class TimedLock:
                def __init__(self, lock: Any) -> None:
                    self.lock = lock

                def __enter__(self) -> Any:
                    t0 = time.perf_counter()
                    got = self.lock.__enter__()
                    phases.add(phase, time.perf_counter() - t0)
                    return got

                def __exit__(self, *exc: Any) -> Any:
                    return self.lock.__exit__(*exc)

            return lambda *args, **kwargs: TimedLock(fn(*args, **kwargs))
        if phase == "locks":  # a context manager: time until it yields

            @contextlib.contextmanager
            def timed_cm(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                with fn(*args, **kwargs) as got:
                    self.add(phase, time.perf_counter() - t0)
                    yield got

            return timed_cm

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(phase, time.perf_counter() - t0)

        return timed

    def install(self) -> None:
        import importlib

        from api.dispatching.regions import RegionMap

        for module_name, name, phase in PHASES:
            module = importlib.import_module(module_name)
            if not hasattr(module, name):  # old and new code
                continue
            setattr(module, name, self.wrap(getattr(module, name), phase))
        for name in ("interior", "border", "interior_ids", "domain_request_ids"):
            if name not in RegionMap.__dict__:  # the split of requests, old and new code
                continue
            attr = RegionMap.__dict__[name]
            fn = attr.__func__ if isinstance(attr, staticmethod) else attr
            wrapped = self.wrap(fn, "select")
            setattr(RegionMap, name, staticmethod(wrapped) if isinstance(attr, staticmethod)
                    else wrapped)  # fmt: skip


def _warm_up(worker: Any, provider: Any) -> None:
    """Solve (and store nothing of) a few of the storm's requests: the road graph's search
    tables, snapping index and solver modules are built on first use, once per process,
    which is start-up, not dispatch (it was ~1 s of each worker's first cycle)."""
    import dataclasses

    from api.clock import utcnow
    from api.db.engine import transaction
    from api.dispatching.cycle import load_snapshot, solve

    with transaction(worker.factory) as db:
        snapshot = load_snapshot(db_session=db, now=utcnow(), respect_shifts=False)
    few = dataclasses.replace(
        snapshot, requests=snapshot.requests[:5], rescue_jobs=snapshot.rescue_jobs[:5]
    )
    solve(few, provider)


def _worker(url: str, regions: int) -> None:
    from api.dispatching.travel import travel_provider
    from api.dispatching.worker import IDLE_RETRY_S, DispatchWorker
    from api.settings import Settings

    settings = Settings(database_url=url, dispatch_regions=regions)
    provider, _ = travel_provider(settings)  # load the road graph before the clock starts
    worker = DispatchWorker(settings, actor="bench")
    _warm_up(worker, provider)
    phases = _Phases()
    phases.install()
    profile_dir = os.environ.get("RESCUE_BENCH_PROFILE")
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu_started = time.process_time()
    if profiler is not None:
        profiler.enable()
    totals: dict[str, float] = {"assigned": 0, "conflicts": 0, "cycles": 0, "border_skipped": 0}
    dispatched = 0.0  # end of the last pass that decided something, from "go"

    timeline: list[list[Any]] = []
    cpu_dispatched = [0.0]  # CPU seconds at the end of the last pass that decided something

    def count(results: list[Any]) -> None:
        nonlocal dispatched
        for r in results:
            timeline.append(
                [
                    round(time.perf_counter() - started, 3),
                    r.region or "network",
                    r.ran,
                    r.open_requests,
                    len(r.assigned) + len(r.offered),
                    len(r.escalated) + len(r.reassigned) + len(r.conflicts),
                    round(r.seconds, 3),
                ]
            )
            totals["assigned"] += len(r.assigned)
            totals["conflicts"] += len(r.conflicts)
            totals["cycles"] += int(r.ran)
            totals["border_skipped"] += int(r.region == "border" and not r.ran)
        if any(r.decided or r.conflicts for r in results):
            dispatched = time.perf_counter() - started
            cpu_dispatched[0] = time.process_time() - cpu_started

    # The worker's own ``until_idle`` loop ends only after a pass that led every region and
    # decided nothing; two workers looping back to back keep holding a region the other
    # needs, and such a run went on for over ten minutes after its last decision. Here a
    # worker also stops after QUIET_PASSES passes in a row that decided nothing (a region it
    # skipped was led by another worker, which goes on until it is quiet itself); the
    # assigned counts, equal to the one-worker run's, show that nothing was left.
    started = time.perf_counter()
    quiet = 0
    passes = 0.0
    while True:
        t0 = time.perf_counter()
        results = worker.run_pass()
        passes += time.perf_counter() - t0
        count(results)
        if any(r.decided or r.conflicts for r in results):
            quiet = 0
            continue
        quiet += any(r.ran for r in results)  # a pass that led nothing waited, not idled
        if all(r.ran for r in results) or quiet >= QUIET_PASSES:
            break
        t0 = time.perf_counter()
        time.sleep(IDLE_RETRY_S)
        phases.add("idle", time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        assert profile_dir is not None
        profiler.dump_stats(os.path.join(profile_dir, f"worker-{regions}-{os.getpid()}.prof"))
    phases.add("other", passes - sum(v for k, v in phases.wall.items() if k != "idle"))
    report = totals | {
        "seconds": seconds,
        "dispatched_seconds": dispatched,
        "cpu_seconds": cpu,
        "dispatched_cpu_seconds": cpu_dispatched[0],
        "phases": {k: round(v, 3) for k, v in sorted(phases.wall.items())},
    }
    if profile_dir or os.environ.get("RESCUE_BENCH_TIMELINE"):
        report["timeline"] = timeline
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1:2]!r}")
