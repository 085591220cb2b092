"""``rescue bench simulate``: simulation speed, and the Ray / process-pool speed-up of a sweep.

- default: one simulated year of a scenario (the national default: >= 200,000 breakdowns,
  1,276 vans, batch-optimal dispatch), timed without the one-off travel tables (reported
  apart); the baseline, measured in the same run, is the same year under the nearest-idle
  policy (``--no-baseline`` skips it). Goal: <= 60 s on one core.
- ``--sweep-ray``: ``--replications`` runs (8) of ``--days`` (60) in one process, then on a
  local process pool and on Ray (``RAY_ADDRESS`` or a local ``num_cpus=2`` instance); the
  speed-ups against the single process and whether the KPIs are identical. Goal >= 1.8x.
  Ray is started before the clock (its start-up is reported apart as ``ray_init_seconds``).

One JSON object per line on stdout.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import Any

import typer

from api.cli.bench import bench_app
from api.cli.common import fail

GOAL_SECONDS = 60.0
GOAL_SPEEDUP = 1.8


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj))


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
) -> None:
    """Time one simulated year (events/s), or a replication sweep on Ray vs one process."""
    from simulations.scenario import resolve_scenario
    from simulations.tables import build_tables

    try:
        s = resolve_scenario(scenario)
        if seed is not None:
            s = replace(s, seed=seed)
        s = s.with_days(days if days is not None else (60.0 if sweep_ray else 365.0))
        t0 = time.perf_counter()
        tables = build_tables(s)
        tables_seconds = time.perf_counter() - t0
    except ValueError as exc:
        fail(str(exc))
    if sweep_ray:
        _sweep(s, tables, tables_seconds, replications)
        return
    from simulations.engine import simulate

    res = simulate(s, tables, 0)
    out: dict[str, Any] = {
        "benchmark": "simulate",
        "scenario": s.name,
        "policy": s.dispatch.policy,
        "days": s.horizon_days + s.warmup_days,
        "breakdowns": int(res.perf["breakdowns_simulated"]),
        "vans": len(s.network.vans),
        "provider": tables.provider_name,
        "tables_seconds": round(tables_seconds, 3),
        "seconds": round(res.perf["wall_seconds"], 3),
        "events": int(res.perf["events"]),
        "events_per_second": round(res.perf["events_per_second"], 1),
        "breakdowns_per_second": round(
            res.perf["breakdowns_simulated"] / res.perf["wall_seconds"], 1
        ),
        "dispatch_batches": int(res.perf["dispatch_batches"]),
        "match_seconds": round(res.perf["match_seconds"], 3),
        "share_within_promise": round(res.kpis["share_within_promise"], 4),
        "goal_seconds": GOAL_SECONDS,
        "goal_met": res.perf["wall_seconds"] <= GOAL_SECONDS,
        "cpu_count": os.cpu_count(),
    }
    if baseline:
        from simulations.scenario import DispatchSpec

        base = replace(s, dispatch=replace(s.dispatch, policy="nearest-idle"))
        assert isinstance(base.dispatch, DispatchSpec)
        b = simulate(base, tables, 0)
        out["baseline"] = "nearest-idle"
        out["baseline_seconds"] = round(b.perf["wall_seconds"], 3)
        out["baseline_events_per_second"] = round(b.perf["events_per_second"], 1)
        out["ratio_to_baseline"] = round(res.perf["wall_seconds"] / b.perf["wall_seconds"], 3)
        out["baseline_share_within_promise"] = round(b.kpis["share_within_promise"], 4)
    _emit(out)


def _sweep(s: Any, tables: Any, tables_seconds: float, replications: int) -> None:
    from simulations.runner import run

    if replications < 1:
        fail(f"--replications must be >= 1, got {replications}")
    timings: dict[str, float] = {}
    kpis: dict[str, list[dict[str, float]]] = {}
    import ray

    for backend in ("serial", "local", "ray"):
        if backend == "ray":  # the cluster is up before the clock starts (a planner's is)
            t0 = time.perf_counter()
            address = os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            timings["ray_init"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            summaries = run(s, replications=replications, backend=backend, workers=2)
        finally:
            timings[backend] = time.perf_counter() - t0
            if backend == "ray":
                ray.shutdown()
        kpis[backend] = [r.kpis for r in summaries[0].runs]
    same = all(kpis[b] == kpis["serial"] for b in ("local", "ray"))
    _emit(
        {
            "benchmark": "simulate-sweep",
            "scenario": s.name,
            "replications": replications,
            "days": s.horizon_days + s.warmup_days,
            "tables_seconds": round(tables_seconds, 3),
            "serial_seconds": round(timings["serial"], 3),
            "local_seconds": round(timings["local"], 3),
            "ray_seconds": round(timings["ray"], 3),
            "ray_init_seconds": round(timings["ray_init"], 3),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "speedup_local": round(timings["serial"] / timings["local"], 3),
            "speedup_ray": round(timings["serial"] / timings["ray"], 3),
            "ray_address": os.environ.get("RAY_ADDRESS") or "local (num_cpus=2)",
            "identical_results": same,
            "goal_speedup": GOAL_SPEEDUP,
            "goal_met": timings["serial"] / timings["ray"] >= GOAL_SPEEDUP,
            "cpu_count": os.cpu_count(),
        }
    )
