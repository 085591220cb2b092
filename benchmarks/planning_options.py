"""What the planning options change: one scenario under several dispatch and demand settings,
the same replications (common random numbers: replication r draws the same breakdown times,
vehicles and faults in every variant), side by side.

:func:`compare_options` runs each variant ``replications`` times and returns, per variant, the
mean and 95% interval of the share within the promise and the p90 arrival, and against the
first variant the paired difference (variant - reference, replication by replication) with its
t-interval. Used for the table in docs/simulations.md ("What the planning options change").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    variants: Sequence[str] | None = None,
    reference: str | None = None,
    road_graph: RoadGraphSource = RoadGraphSource(),
) -> list[dict[str, Any]]:
    """One record per variant (see the module docstring); ``reference`` (default the first
    variant) is what the paired differences are taken against."""
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
        tables = build_tables(s, road_graph=road_graph)
        table_seconds = time.perf_counter() - started
        results = [simulate(s, tables, r) for r in range(replications)]
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
