"""What the planning options change: one scenario under several dispatch and demand settings,
the same replications (common random numbers: replication r draws the same breakdown times,
vehicles and faults in every variant), side by side.

:func:`compare_options` runs each variant ``replications`` times and returns, per variant, the
mean and 95% interval of the share within the promise and the p90 arrival, and against the
first variant the paired difference (variant - reference, replication by replication) with its
t-interval. Used for the table in docs/simulations.md ("What the planning options change").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from routing.road import RoadGraphSource
from simulations.engine import simulate
from simulations.results import t_interval
from simulations.scenario import Scenario
from simulations.tables import build_tables

KPIS = ("share_within_promise", "arrival_p90_min", "arrival_mean_min", "escalated")
EXTRA_KPIS = ("move_ups", "move_up_km")
"""Reported when a variant has them."""

OPTION_SETS: dict[str, tuple[tuple[str, Any], ...]] = {
    "today: 5-min clock, ETA objective": (),
    "nearest-idle": (("policy", "nearest-idle"),),
    "production: on events, promise objective": (("trigger", "arrival"), ("objective", "promise")),
    "production + next-from-site": (
        ("trigger", "arrival"),
        ("objective", "promise"),
        ("after_job", "next-from-site"),
    ),
    "production + move-up": (
        ("trigger", "arrival"),
        ("objective", "promise"),
        ("move_up", True),
    ),
    "production, roads demand": (
        ("trigger", "arrival"),
        ("objective", "promise"),
        ("points", "roads"),
    ),
    "nearest-idle, roads demand": (("policy", "nearest-idle"), ("points", "roads")),
}
"""The variants of the docs' table, each a list of sweep overrides of the base scenario."""


def compare_options(
    scenario: Scenario,
    *,
    replications: int = 3,
    first_replication: int = 0,
    variants: Sequence[str] | None = None,
    reference: str | None = None,
    road_graph: RoadGraphSource = RoadGraphSource(),
    cache_dir: Path | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One record per variant (see the module docstring); ``reference`` (default the first
    variant) is what the paired differences are taken against. ``cache_dir``: the travel
    tables' disk cache; ``on_run`` gets one record per finished run (and per table build), so a
    long comparison reports as it goes."""
    names = list(variants or OPTION_SETS)
    unknown = [n for n in names if n not in OPTION_SETS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; known: {', '.join(OPTION_SETS)}")
    reference = reference or names[0]
    runs: dict[str, list[dict[str, float]]] = {}
    out = []
    for name in names:
        s = scenario
        for key, value in OPTION_SETS[name]:
            s = s.with_override(key, value)
        started = time.perf_counter()
        tables = build_tables(s, road_graph=road_graph, cache_dir=cache_dir)
        table_seconds = time.perf_counter() - started
        if on_run is not None:
            on_run(
                {
                    "variant": name,
                    "demand_points": len(tables.points),
                    "station_arcs": len(tables.arc_km),
                    "tables_seconds": round(tables.seconds or table_seconds, 2),
                    "tables_wall_seconds": round(table_seconds, 2),
                }
            )
        results = []
        for r in range(first_replication, first_replication + replications):
            result = simulate(s, tables, r)
            results.append(result)
            if on_run is not None:
                on_run(
                    {
                        "variant": name,
                        "replication": r,
                        "seconds": round(result.perf["wall_seconds"], 2),
                        **{
                            k: result.kpis[k]
                            for k in KPIS + EXTRA_KPIS + ("breakdowns",)
                            if k in result.kpis
                        },
                    }
                )
        runs[name] = [r.kpis for r in results]
        record: dict[str, Any] = {
            "variant": name,
            "demand_points": len(tables.points),
            "tables_seconds": round(tables.seconds or table_seconds, 2),
            "run_seconds": round(sum(r.perf["wall_seconds"] for r in results) / replications, 2),
            "runs": [{k: r.kpis[k] for k in KPIS} for r in results],
        }
        for kpi in KPIS + tuple(k for k in EXTRA_KPIS if k in results[0].kpis):
            e = t_interval([r.kpis[kpi] for r in results])
            record[kpi] = (e.mean, e.half_width)
        out.append(record)
    base = runs.get(reference)
    for record in out:
        if base is None or record["variant"] == reference:
            continue
        mine = runs[record["variant"]]
        for kpi in KPIS:
            d = t_interval([m[kpi] - b[kpi] for m, b in zip(mine, base, strict=True)])
            record[f"diff_{kpi}"] = (d.mean, d.half_width)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.planning_options --scenario national --days 30 --warmup-days 3
    --replications 3 --variant NAME --variant NAME``: one JSON line per table build and per
    run as they finish, then one per variant with the means, intervals and paired differences
    against the first variant."""
    from simulations.scenario import resolve_scenario

    parser = argparse.ArgumentParser(prog="python -m benchmarks.planning_options")
    parser.add_argument("--scenario", default="national")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--warmup-days", type=float, default=None)
    parser.add_argument("--replications", type=int, default=3)
    parser.add_argument(
        "--first-replication", type=int, default=0,
        help="replications R.. R+N-1 (split one comparison over processes)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", action="append", choices=list(OPTION_SETS), help="repeat; default all"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="RESCUE_CACHE_DIR: travel tables under tables/, the parsed graph under routing/",
    )  # fmt: skip
    args = parser.parse_args(argv)
    s = resolve_scenario(args.scenario).with_days(args.days)
    if args.warmup_days is not None:
        s = replace(s, warmup_days=args.warmup_days)
    cache = args.cache_dir.expanduser() if args.cache_dir else None
    graph = RoadGraphSource(cache_dir=cache / "routing" if cache else None)
    tables_cache = cache / "tables" if cache else None

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps(record, ensure_ascii=False), flush=True)

    for record in compare_options(
        s, replications=args.replications, first_replication=args.first_replication,
        variants=args.variant, road_graph=graph,
        cache_dir=tables_cache, on_run=emit,
    ):  # fmt: skip
        emit({"summary": True, **record})
    return 0


if __name__ == "__main__":
    sys.exit(main())
