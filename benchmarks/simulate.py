"""``rescue bench simulate``: simulation speed, and the Ray / process-pool speed-up of a sweep.

- :func:`simulate_benchmark`: one simulated year of a scenario (the national default: >=
  200,000 breakdowns, 1,276 vans, batch-optimal dispatch), timed without the one-off travel
  tables (reported apart); the baseline, measured in the same run, is the same year under the
  nearest-idle policy. Goal: <= 60 s on one core.
- :func:`sweep_benchmark`: ``replications`` runs (8) of 60 days in one process, then on a local
  2-process pool and on Ray (the cluster at ``ray_address``, one actor per CPU, else a local
  ``num_cpus=2`` instance); the speed-ups against the single process, whether the KPIs are
  identical, and each backend's overhead per replication (workers x wall time, minus the
  time the runs themselves took, per replication: shipping tables and variants, worker
  start-up, results back, idle tails). Goal >= 1.8x. Ray is started before the clock (its
  start-up is reported apart as ``ray_init_seconds``).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from routing.road import RoadGraphSource
from simulations.scenario import Scenario
from simulations.tables import TravelTables

GOAL_SECONDS = 60.0
GOAL_SPEEDUP = 1.8
DEFAULT_DAYS = 365.0
DEFAULT_SWEEP_DAYS = 60.0


def prepare(
    scenario: str,
    *,
    days: float | None,
    seed: int | None,
    sweep: bool,
    road_graph: RoadGraphSource = RoadGraphSource(),
    cache_dir: Path | None = None,
) -> tuple[Scenario, TravelTables, float]:
    """The scenario (name or file) cut to ``days`` (default 365, or 60 for a sweep), its travel
    tables (from ``cache_dir`` when cached there) and the seconds they took; ``ValueError``
    naming what is wrong."""
    from simulations.scenario import resolve_scenario
    from simulations.tables import build_tables

    s = resolve_scenario(scenario)
    if seed is not None:
        s = replace(s, seed=seed)
    if days is None:
        days = DEFAULT_SWEEP_DAYS if sweep else DEFAULT_DAYS
    s = s.with_days(days)
    t0 = time.perf_counter()
    tables = build_tables(s, road_graph=road_graph, cache_dir=cache_dir)
    return s, tables, time.perf_counter() - t0


def simulate_benchmark(
    s: Scenario, tables: TravelTables, tables_seconds: float, *, baseline: bool = True
) -> dict[str, Any]:
    """Time one run of ``s`` (replication 0) and, with ``baseline``, the nearest-idle policy."""
    from simulations.engine import simulate

    res = simulate(s, tables, 0)
    out: dict[str, Any] = {
        "benchmark": "simulate",
        "scenario": s.name,
        "policy": s.dispatch.policy,
        "days": s.horizon_days + s.warmup_days,
        "horizon_days": s.horizon_days,
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
        "demand_points": len(tables.points),
        "goal_seconds": GOAL_SECONDS,
        "goal_met": res.perf["wall_seconds"] <= GOAL_SECONDS,
        "cpu_count": os.cpu_count(),
    }
    if "move_ups" in res.kpis:
        out["move_ups"] = int(res.kpis["move_ups"])
        out["move_up_km"] = round(res.kpis["move_up_km"], 1)
    if baseline:
        base = replace(s, dispatch=replace(s.dispatch, policy="nearest-idle"))
        b = simulate(base, tables, 0)
        out["baseline"] = "nearest-idle"
        out["baseline_seconds"] = round(b.perf["wall_seconds"], 3)
        out["baseline_events_per_second"] = round(b.perf["events_per_second"], 1)
        out["ratio_to_baseline"] = round(res.perf["wall_seconds"] / b.perf["wall_seconds"], 3)
        out["baseline_share_within_promise"] = round(b.kpis["share_within_promise"], 4)
    return out


def beside_default(
    record: dict[str, Any],
    *,
    default: str = "national",
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> dict[str, Any]:
    """``record`` with the default scenario's run time and table build time for the same days,
    measured in the same process (``default_*`` keys, and the ratios), so a scenario with road
    demand points or move-up shows what they cost."""
    s, tables, tables_seconds = prepare(
        default, days=record["horizon_days"], seed=None, sweep=False, road_graph=road_graph
    )
    base = simulate_benchmark(s, tables, tables_seconds, baseline=False)
    out = dict(record)
    out["default_scenario"] = default
    out["default_seconds"] = base["seconds"]
    out["default_tables_seconds"] = base["tables_seconds"]
    out["default_demand_points"] = base["demand_points"]
    out["default_share_within_promise"] = base["share_within_promise"]
    out["ratio_to_default"] = round(record["seconds"] / base["seconds"], 3)
    out["tables_ratio_to_default"] = round(
        record["tables_seconds"] / max(base["tables_seconds"], 1e-9), 3
    )
    return out


def sweep_benchmark(
    s: Scenario,
    tables_seconds: float,
    *,
    replications: int = 8,
    road_graph: RoadGraphSource = RoadGraphSource(),
    ray_address: str | None = None,
) -> dict[str, Any]:
    """``replications`` runs of ``s`` serially, on a 2-process pool and on Ray, timed apart
    (the travel tables come from the per-process cache :func:`prepare` filled); the speed-ups
    and whether every backend gave the same KPIs."""
    from simulations.runner import run

    if replications < 1:
        raise ValueError(f"--replications must be >= 1, got {replications}")
    timings: dict[str, float] = {}
    kpis: dict[str, list[dict[str, float]]] = {}
    run_seconds: dict[str, float] = {}
    workers: dict[str, int] = {"serial": 1, "local": 2}
    import ray

    for backend in ("serial", "local", "ray"):
        if backend == "ray":  # the cluster is up before the clock starts (a planner's is)
            t0 = time.perf_counter()
            if ray_address:
                ray.init(address=ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            timings["ray_init"] = time.perf_counter() - t0
            workers["ray"] = min(int(ray.cluster_resources().get("CPU", 1)), replications)
        t0 = time.perf_counter()
        try:
            summaries = run(
                s,
                replications=replications,
                backend=backend,
                workers=workers[backend],
                road_graph=road_graph,
            )
        finally:
            timings[backend] = time.perf_counter() - t0
            if backend == "ray":
                ray.shutdown()
        kpis[backend] = [r.kpis for r in summaries[0].runs]
        run_seconds[backend] = sum(r.perf["wall_seconds"] for r in summaries[0].runs)
    same = all(kpis[b] == kpis["serial"] for b in ("local", "ray"))
    return {
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
        "ray_address": ray_address or "local (num_cpus=2)",
        "ray_workers": workers["ray"],
        **{
            f"overhead_per_replication_seconds_{b}": round(
                (timings[b] * workers[b] - run_seconds[b]) / replications, 3
            )
            for b in ("serial", "local", "ray")
        },
        "identical_results": same,
        "goal_speedup": GOAL_SPEEDUP,
        "goal_met": timings["serial"] / timings["ray"] >= GOAL_SPEEDUP,
        "cpu_count": os.cpu_count(),
    }
