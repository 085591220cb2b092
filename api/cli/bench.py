"""``rescue bench ...``: exactness runs on public OR instances and the performance benchmarks.

Thin wrappers: the benchmarks live in the ``benchmarks`` package; these commands parse the
options, fill the road graph and the Ray address from the settings, and print each record as
one JSON object per line on stdout. Bad input is one ``error: ...`` line on stderr, exit 2.
This is the one module of the product allowed to import ``benchmarks`` (pyproject contract).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import typer

from api.cli.common import command_settings, fail, road_graph_source

bench_app = typer.Typer(
    help="Benchmarks: OR-Library instances through the optimisers, and performance runs. "
    "Each prints one JSON object per line.",
    no_args_is_help=True,
)


def _emit(record: dict[str, Any]) -> None:
    typer.echo(json.dumps(record, ensure_ascii=False))


def _emit_all(records: Iterable[dict[str, Any]]) -> None:
    """Print records as they come; a ``ValueError`` on the way ends the command with it."""
    try:
        for record in records:
            _emit(record)
    except ValueError as exc:
        fail(str(exc))


@bench_app.command("assignment")
def bench_assignment(
    files: list[Path] = typer.Argument(..., help="OR-Library assignN / assignpN files."),
) -> None:
    """Solve OR-Library assignment instances with the dispatch assignment core."""
    from benchmarks.dispatch import assignment_records

    _emit_all(assignment_records(files))


@bench_app.command("dispatch")
def bench_dispatch(
    requests: int = typer.Option(1000, "--requests", min=1, help="Open requests in the batch."),
    vans: int = typer.Option(3000, "--vans", min=1, help="Rescue vans (network's, topped up)."),
    seed: int = typer.Option(0, "--seed"),
    engine: str = typer.Option("road", "--engine", help="road | great-circle"),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repetitions (median)."),
    networkx: bool = typer.Option(
        True, help="Also time the networkx candidate baseline of the same batch (road engine)."
    ),
    storm: bool = typer.Option(
        False,
        "--storm",
        help="Storm: a 10x --requests cycle (default 10,000) beside the --requests cycle "
        "(its first requests), the explanation share and the ratio.",
    ),
    storm_requests: int = typer.Option(
        0, "--storm-requests", min=0, help="Storm batch size (default 10x --requests)."
    ),
    replan: bool = typer.Option(
        False,
        "--replan",
        help="One cycle with re-planning (--requests open + --assigned jobs on their way) "
        "vs the cycle without it, same world, same run.",
    ),
    assigned: int = typer.Option(
        2000, "--assigned", min=1, help="With --replan: jobs whose van is on its way."
    ),
    partners: bool = typer.Option(
        False,
        "--partners",
        help="Also time the same decision with the network's partner rescue providers as "
        "extra columns of the matching (figure and ratio against without, same run).",
    ),
    regions: int = typer.Option(
        None,
        "--regions",
        help="Instead: a storm of --requests through N worker processes (one region each) "
        "vs one worker on a copy of the same database, and the speed-up",
    ),
    db: str | None = typer.Option(
        None, "--db", help="--regions: a PostgreSQL server URL (default: SQLite files)"
    ),
    runs: int = typer.Option(
        3, "--runs", min=1, help="--regions: runs of each configuration, in turn (medians)"
    ),
) -> None:
    """Whole van-dispatch decision on the national network vs the naive policy; with
    --regions N, the storm dispatched per region by N worker processes vs one."""
    from benchmarks.dispatch import dispatch_benchmark, replan_benchmark

    if regions is not None:
        from benchmarks.regions import regions_benchmark

        try:
            _emit(
                regions_benchmark(
                    requests=requests,
                    regions=regions,
                    seed=seed,
                    engine=engine,
                    database=db,
                    runs=runs,
                )
            )
        except (ValueError, RuntimeError) as exc:
            fail(str(exc))
        return

    try:
        if replan:
            _emit(
                replan_benchmark(
                    requests=requests, assigned=assigned, vans=vans, seed=seed, engine=engine,
                    repeats=repeats, road_graph=road_graph_source(),
                )
            )  # fmt: skip
            return
        record = dispatch_benchmark(
            requests=requests,
            vans=vans,
            seed=seed,
            engine=engine,
            repeats=repeats,
            road_graph=road_graph_source(),
            networkx=networkx,
            storm=storm,
            storm_requests=storm_requests,
            partners=partners,
        )
    except ValueError as exc:
        fail(str(exc))
    _emit(record)


@bench_app.command("pmedian")
def bench_pmedian(
    files: list[Path] = typer.Argument(None, help="OR-Library pmedN.txt files"),
    generate: list[str] = typer.Option(
        [],
        "--generate",
        help="N,P[,SEED]: also a Beasley-style random instance (n vertices, n^2/50 edges, "
        "costs 1-100, shortest paths; seed 0 by default). Repeatable.",
    ),
    orlib_sizes: bool = typer.Option(
        False,
        "--orlib-sizes",
        help="also generate one instance (seed 0) of each pmed21-40 size with p <= 90 "
        "(15 instances, n = 500-900), after any --generate",
    ),
    summary: bool = typer.Option(
        False,
        "--summary",
        help="close with one summary line: instances, proven, total seconds, the slowest",
    ),
    time_limit: float = typer.Option(60.0, "--time-limit", help="seconds per instance"),
) -> None:
    """OR-Library p-median files (then generated instances) through the exact p-median
    solver (objective = total distance; gap and best bound are printed, non-zero gap means
    not proven optimal)."""
    from benchmarks.planning import ORLIB_LARGE_SIZES, pmedian_records, pmedian_summary

    specs = list(generate) + ([f"{n},{p}" for n, p in ORLIB_LARGE_SIZES] if orlib_sizes else [])
    if not files and not specs:
        fail("give OR-Library pmedN.txt files, --generate N,P[,SEED] or --orlib-sizes")
    records: list[dict[str, Any]] = []

    def kept() -> Iterator[dict[str, Any]]:
        for record in pmedian_records(files or [], generate=specs, time_limit_s=time_limit):
            records.append(record)
            yield record

    _emit_all(kept())
    if summary:
        _emit(pmedian_summary(records))


@bench_app.command("mclp")
def bench_mclp(
    file: Path = typer.Argument(..., help="'x y demand' file (Swain: count line, id x y d)"),
    radius: float = typer.Option(..., "--radius", help="coverage radius S (same units as x, y)"),
    p: int = typer.Option(..., "--p", help="number of sites to open"),
    backup: bool = typer.Option(False, "--backup", help="then maximise demand covered twice"),
    time_limit: float = typer.Option(60.0, "--time-limit", help="seconds"),
) -> None:
    """Maximal covering on a points file: every point is demand and a candidate site,
    Euclidean distance, covered iff d <= S (objective = covered demand)."""
    from benchmarks.planning import mclp_record

    try:
        record = mclp_record(file, radius=radius, p=p, backup=backup, time_limit_s=time_limit)
    except ValueError as exc:
        fail(str(exc))
    _emit(record)


@bench_app.command("mclp-random")
def bench_mclp_random(
    sites: int = typer.Option(1000, "--sites", help="candidate bases (random county seats)"),
    seed: int = typer.Option(0, "--seed"),
    radius_km: float = typer.Option(150.0, "--radius-km"),
    p_values: list[int] = typer.Option([10, 20], "--p", help="sites to open (repeatable)"),
    time_limit: float = typer.Option(60.0, "--time-limit", help="seconds per solve"),
) -> None:
    """Maximal covering at national size: demand at all 2,844 mainland county seats
    (prefecture population proxy, seeded noise), ``--sites`` random seats as candidate bases,
    great-circle km. Baseline: the greedy heuristic in the same run; ``ratio`` is
    optimal / greedy covered demand, ``speed_ratio`` exact / greedy seconds."""
    from benchmarks.planning import mclp_random_records

    _emit_all(
        mclp_random_records(
            sites=sites, seed=seed, radius_km=radius_km, p_values=p_values, time_limit_s=time_limit
        )
    )


@bench_app.command("routing")
def bench_routing(
    breakdowns: int = typer.Option(1000, help="Random breakdown points"),
    vans: int = typer.Option(3000, help="Vans at random home stations"),
    repeat: int = typer.Option(5, help="Timed repetitions of the fast run (median reported)"),
    seed: int = typer.Option(0, help="Random seed"),
    radius_km: float = typer.Option(150.0, help="Service radius of every van (road km)"),
    naive: bool = typer.Option(True, help="Also time the networkx baseline and compare"),
    keep_balls: bool = typer.Option(
        True, help="Keep the stations' balls first (as the dispatch cycle does)"
    ),
    graph: str | None = typer.Option(
        None,
        "--graph",
        help="Graph directory (default: RESCUE_ROAD_GRAPH or the national "
        "graph); off the national graph, stations are random graph nodes",
    ),
) -> None:
    """For each breakdown, every van within the radius (road km from its home station) and its
    travel time: the engine's median time over --repeat runs, the naive networkx time, their
    ratio, whether both found identical candidate sets, and the engine's memory (MB)."""
    from benchmarks.routing import routing_benchmark

    try:
        record = routing_benchmark(
            road_graph_source(graph),
            breakdowns=breakdowns,
            vans=vans,
            repeat=repeat,
            seed=seed,
            radius_km=radius_km,
            naive=naive,
            keep_balls=keep_balls,
        )
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps(record))


@bench_app.command("simulate")
def bench_simulate(
    scenario: str = typer.Option("national", "--scenario", help="Scenario file or name"),
    days: float = typer.Option(
        None, "--days", help="Measured days (default 365; 60 with --sweep-ray)"
    ),
    seed: int = typer.Option(None, "--seed"),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="Also time the nearest-idle policy (the baseline)"
    ),
    sweep_ray: bool = typer.Option(False, "--sweep-ray", help="Benchmark the Ray sweep instead"),
    replications: int = typer.Option(8, "--replications", help="--sweep-ray: runs"),
    beside_default: bool = typer.Option(
        False,
        "--beside-default",
        help="Also time the default national scenario (run and table build) for the same days",
    ),
    trigger: str = typer.Option(
        None,
        "--trigger",
        help="Batch trigger: interval | arrival (as production); default the scenario's",
    ),
    compare_general: bool = typer.Option(
        False,
        "--compare-general",
        help="Also run the year through dispatch.match_vans (the general matcher) and compare",
    ),
) -> None:
    """Time one simulated year (events/s), or a replication sweep on Ray vs one process."""
    from benchmarks.simulate import (
        beside_default as with_default,
    )
    from benchmarks.simulate import (
        prepare,
        simulate_benchmark,
        sweep_benchmark,
    )

    try:
        settings = command_settings()
        road_graph = settings.road_graph_source()
        s, tables, tables_seconds = prepare(
            scenario,
            days=days,
            seed=seed,
            sweep=sweep_ray,
            road_graph=road_graph,
            cache_dir=settings.tables_cache_dir,
            trigger=trigger,
        )
        if sweep_ray:
            record = sweep_benchmark(
                s,
                tables_seconds,
                replications=replications,
                road_graph=road_graph,
                ray_address=settings.ray_address,
            )
        else:
            record = simulate_benchmark(
                s, tables, tables_seconds, baseline=baseline, compare_general=compare_general
            )
            if beside_default:
                record = with_default(record, road_graph=road_graph)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps(record))


@bench_app.command("api")
def bench_api(
    clients: int = typer.Option(200, min=1, help="Concurrent clients (keep-alive connections)"),
    seconds: float = typer.Option(20.0, min=1.0, help="Load duration per server"),
    warmup: float = typer.Option(2.0, min=0.0, help="Unmeasured warm-up seconds"),
    baseline: bool = typer.Option(True, help="Also measure the bare FastAPI insert endpoint"),
    dispatch_interval: float = typer.Option(
        0.0, help="Background dispatch loop interval during the run (0 = off: intake only)"
    ),
    dispatch_mode: str = typer.Option(
        "process", "--dispatch-mode", help="Where that loop runs: process | thread"
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        help="A PostgreSQL server URL: run on fresh databases there (default: SQLite files)",
    ),
    lock_stats: bool = typer.Option(
        False,
        "--lock-stats",
        help="SQLite: also report how long each holder (intake writer, the cycle's sweep and "
        "decision writes, outbox, ...) waited for and held the database's write lock",
    ),
) -> None:
    """Serve the app on a fresh SQLite database (uvicorn, one process), post requests from
    --clients concurrent connections in another process for --seconds, and print throughput,
    p50/p99 latency and "lost" (201 answers minus stored rows); then the same against a bare
    FastAPI endpoint inserting the same row, and the ratio. --lock-stats adds ``write_lock``:
    per holder, count, wait and hold milliseconds (total, max, p50/p90/p99, histogram)."""
    from benchmarks.api import run_benchmark

    if dispatch_mode not in ("process", "thread"):
        fail(f"--dispatch-mode must be process or thread, got {dispatch_mode!r}")
    try:
        record = run_benchmark(
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            baseline=baseline,
            dispatch_interval=dispatch_interval,
            dispatch_mode=dispatch_mode,
            database=db,
            lock_stats=lock_stats,
        )
    except (RuntimeError, OSError, ValueError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(record))
