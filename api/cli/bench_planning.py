"""``rescue bench pmedian|mclp|mclp-random``: the location planner on public instances and a
national-size covering run. One JSON object per line on stdout; bad input is one line on
stderr and exit code 2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from api.cli.bench import bench_app


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _emit(record: dict[str, object]) -> None:
    typer.echo(json.dumps(record, ensure_ascii=False))


@bench_app.command("pmedian")
def bench_pmedian(
    files: list[Path] = typer.Argument(..., help="OR-Library pmedN.txt files"),
    time_limit: float = typer.Option(60.0, "--time-limit", help="seconds per instance"),
) -> None:
    """OR-Library p-median files through the exact p-median solver (objective = total
    distance; gap and best bound are printed, non-zero gap means not proven optimal)."""
    from simulations.planning.instances import read_orlib_pmedian
    from simulations.planning.pmedian import solve_pmedian

    for path in files:
        if not path.is_file():
            _fail(f"{path}: no such file")
        try:
            started = time.perf_counter()
            inst = read_orlib_pmedian(path)
            read_s = time.perf_counter() - started
            result = solve_pmedian(inst.dist, inst.p, time_limit_s=time_limit)
        except ValueError as exc:
            _fail(f"{path}: {exc}")
        summary = result.summary()
        _emit(
            {
                "instance": inst.name,
                "n": inst.n,
                "p": inst.p,
                "objective": summary["objective"],
                "proven_optimal": result.proven_optimal,
                "gap": summary["gap"],
                "best_bound": summary["best_bound"],
                "seconds": summary["seconds"],
                "read_seconds": round(read_s, 3),
                "method": result.method,
            }
        )


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
    from simulations.planning.coverage import coverage_from_distances, solve_mclp
    from simulations.planning.instances import read_points

    if not file.is_file():
        _fail(f"{file}: no such file")
    try:
        inst = read_points(file)
        coverage = coverage_from_distances(inst.distances(), radius)
        result = solve_mclp(coverage, inst.demand, p, backup=backup, time_limit_s=time_limit)
    except ValueError as exc:
        _fail(f"{file}: {exc}")
    summary = result.summary()
    record: dict[str, object] = {
        "instance": inst.name,
        "n": len(inst.demand),
        "radius": radius,
        "p": p,
        "objective": summary["objective"],
        "proven_optimal": result.proven_optimal,
        "gap": summary["gap"],
        "best_bound": summary["best_bound"],
        "seconds": summary["seconds"],
    }
    if backup:
        record["backup_covered_demand"] = summary["backup_covered_demand"]
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
    from simulations.planning.coverage import (
        coverage_from_distances,
        covered_demand,
        greedy_mclp,
        solve_mclp,
    )
    from simulations.planning.instances import county_seat_instance

    try:
        started = time.perf_counter()
        inst = county_seat_instance(sites, seed=seed)
        coverage = coverage_from_distances(inst.dist_km, radius_km)
        build_s = time.perf_counter() - started
        total = float(inst.demand.sum())
        for p in p_values:
            t0 = time.perf_counter()
            greedy_sites = greedy_mclp(coverage, inst.demand, p)
            greedy_s = time.perf_counter() - t0
            greedy_value, _ = covered_demand(coverage, inst.demand, greedy_sites)
            result = solve_mclp(coverage, inst.demand, p, time_limit_s=time_limit)
            summary = result.summary()
            _emit(
                {
                    "instance": f"county-seats-{sites}-seed{seed}",
                    "demand_points": len(inst.demand),
                    "sites": sites,
                    "radius_km": radius_km,
                    "p": p,
                    "objective": summary["objective"],
                    "covered_share": round(result.objective / total, 4),
                    "proven_optimal": result.proven_optimal,
                    "gap": summary["gap"],
                    "best_bound": summary["best_bound"],
                    "seconds": summary["seconds"],
                    "build_seconds": round(build_s, 3),
                    "baseline": "greedy",
                    "baseline_objective": round(greedy_value),
                    "baseline_seconds": round(greedy_s, 3),
                    "ratio": round(result.objective / greedy_value, 4) if greedy_value else None,
                    "speed_ratio": round(result.seconds / max(greedy_s, 1e-6), 1),
                }
            )
    except ValueError as exc:
        _fail(str(exc))
