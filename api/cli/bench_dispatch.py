"""``rescue bench assignment`` and ``rescue bench dispatch``: exactness and speed of dispatch.

- ``assignment FILE...``: OR-Library assign/assignp files through the same assignment core that
  ``dispatch.match_vans`` uses; one JSON line per instance.
- ``dispatch``: a synthetic national batch (``dispatch.scenario``): candidate generation with
  road travel times plus the optimal matching, timed over repeats (median), against the naive
  policy (arrival order, nearest free feasible van) on the same batch.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import typer

from api.cli.bench import bench_app


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@bench_app.command("assignment")
def bench_assignment(
    files: list[Path] = typer.Argument(..., help="OR-Library assignN / assignpN files."),
) -> None:
    """Solve OR-Library assignment instances with the dispatch assignment core."""
    from dispatch.assignment import read_orlib_assignment

    for path in files:
        if not path.is_file():
            _fail(f"{path}: no such file")
        try:
            instance = read_orlib_assignment(path)
            started = time.perf_counter()
            result = instance.solve()
            seconds = time.perf_counter() - started
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(
            json.dumps(
                {
                    "instance": instance.name,
                    "n": instance.n,
                    "arcs": len(instance.arc_row),
                    "objective": result.objective,
                    "seconds": round(seconds, 4),
                }
            )
        )


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
) -> None:
    """Whole van-dispatch decision on the national network vs the naive policy."""
    import numpy as np

    from dispatch.scenario import synthetic_requests, synthetic_vans
    from dispatch.vans import build_van_matching_problem, match_vans, match_vans_naive
    from fleet.demo import build_national_network
    from routing import GreatCircleProvider

    if engine not in ("road", "great-circle"):
        _fail(f"--engine must be road or great-circle, got {engine!r}")
    note = None
    load_started = time.perf_counter()
    provider: Any
    if engine == "road":
        try:
            from routing import load_road_provider

            provider = load_road_provider()
        except ImportError:
            provider = GreatCircleProvider()
            engine = "great-circle"
            note = "routing.load_road_provider is not available yet: great-circle used"
            print(f"warning: {note}", file=sys.stderr)
    else:
        provider = GreatCircleProvider()
    load_seconds = time.perf_counter() - load_started

    network = build_national_network()
    if storm:
        from benchmarks.storm import run_storm_benchmark

        try:
            record = run_storm_benchmark(
                provider,
                network,
                requests=storm_requests or 10 * requests,
                base_requests=requests,
                vans=vans,
                seed=seed,
                repeats=repeats,
            )
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(json.dumps(record, ensure_ascii=False))
        return
    rng = np.random.default_rng(seed)
    van_states = synthetic_vans(network, vans, rng)
    batch = synthetic_requests(requests, rng)
    from benchmarks.storm import keep_station_balls

    balls_seconds = keep_station_balls(provider, van_states)

    build_times, match_times, total_times = [], [], []
    problem = None
    optimal = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem = build_van_matching_problem(batch, van_states, provider)
        t1 = time.perf_counter()
        optimal = match_vans(problem, provider=provider)
        t2 = time.perf_counter()
        build_times.append(t1 - t0)
        match_times.append(t2 - t1)
        total_times.append(t2 - t0)
    assert problem is not None
    assert optimal is not None
    naive_times = []
    naive = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        naive = match_vans_naive(problem, provider=provider)
        naive_times.append(time.perf_counter() - t0)
    assert naive is not None

    baseline: dict[str, Any] = {}
    if networkx and engine == "road":
        from benchmarks.storm import networkx_candidate_seconds

        nx_seconds, nx_pairs = networkx_candidate_seconds(provider, van_states, batch)
        baseline = {
            "networkx_candidates_seconds": round(nx_seconds, 3),
            "networkx_pairs": nx_pairs,
            "decision_over_networkx": round(statistics.median(total_times) / nx_seconds, 4),
            "goal_decision_over_networkx": 0.04,
        }
    opt_s, naive_s = optimal.summary(), naive.summary()
    never_worse = optimal.served_weight() > naive.served_weight() + 1e-9 or (
        abs(optimal.served_weight() - naive.served_weight()) <= 1e-9
        and optimal.total_weighted_eta() <= naive.total_weighted_eta() + 1e-6
    )
    median_total = statistics.median(total_times)
    median_naive_match = statistics.median(naive_times)
    out: dict[str, Any] = {
        "benchmark": "dispatch",
        "engine": engine,
        "engine_note": note,
        "engine_load_seconds": round(load_seconds, 3),
        "requests": requests,
        "vans": vans,
        "seed": seed,
        "repeats": repeats,
        "arcs": problem.num_arcs,
        "median_seconds": round(median_total, 4),
        "median_candidates_seconds": round(statistics.median(build_times), 4),
        "median_assignment_seconds": round(statistics.median(match_times), 4),
        "balls_seconds": round(balls_seconds, 3),
        **baseline,
        "goal_seconds": 0.5,
        "meets_goal": median_total <= 0.5,
        "optimal": opt_s,
        "naive": naive_s,
        "served_gain": optimal.served_count() - naive.served_count(),
        "served_weight_gain": round(optimal.served_weight() - naive.served_weight(), 3),
        "weighted_eta_ratio_naive_over_optimal": (
            round(naive.total_weighted_eta() / optimal.total_weighted_eta(), 4)
            if optimal.total_weighted_eta()
            else None
        ),
        "optimal_never_worse": never_worse,
        "median_naive_policy_seconds": round(median_naive_match, 4),
        "time_ratio_optimal_over_naive": (
            round(statistics.median(match_times) / median_naive_match, 2)
            if median_naive_match
            else None
        ),
    }
    typer.echo(json.dumps(out, ensure_ascii=False))
