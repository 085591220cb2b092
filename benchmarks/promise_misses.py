"""Which decisions turn into missed promises: two policies on the same replication (common
random numbers), request by request.

:func:`compare_misses` runs a scenario under two sets of overrides (default: production,
``trigger = "arrival"`` + ``objective = "promise"``, against ``nearest-idle``), records every
van dispatch (request, minute, van, ETA at the decision, minutes until the van was free:
> 0 = still on its way home or towing) through :class:`RecordingSimulation` (a subclass:
the engine itself carries no hook and costs nothing extra), and counts the first calls
inside the measured window that miss the promise under one policy and not under the other,
by what the decision looked like: escalated, dispatched at the report or after queueing,
already late when decided (waited + ETA > promise), served by a van not yet free.

``python -m benchmarks.promise_misses --days 365 --replication 0 --cache-dir
~/.cache/rescue-dispatch`` prints one JSON object (docs/simulations.md, "Production against
nearest-idle on the national year").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routing.road import RoadGraphSource
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation
from simulations.partner_model import OfferDraws
from simulations.scenario import Scenario
from simulations.tables import TravelTables, build_tables

PRODUCTION = (("trigger", "arrival"), ("objective", "promise"))
NEAREST_IDLE = (("policy", "nearest-idle"),)


class RecordingSimulation(Simulation):
    """The engine, with every van dispatch recorded in :attr:`dispatches` as (request,
    minute, van, ETA, minutes until the van was free) before the van is booked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatches: list[tuple[int, float, int, float, float]] = []

    def dispatch_van(
        self, request: int, van: int, arc: int, now: float, eta: float, **kw: Any
    ) -> None:
        free_in = max(float(self.schedule.home_at[van]) - now, 0.0)
        self.dispatches.append((request, now, van, eta, free_in))
        super().dispatch_van(request, van, arc, now, eta, **kw)


def run_recorded(
    scenario: Scenario, tables: TravelTables, replication: int
) -> tuple[RecordingSimulation, np.ndarray]:
    """One run of ``scenario`` as ``simulations.engine.simulate`` runs it, recorded; and the
    breakdown times."""
    breakdowns = draw_breakdowns(scenario, tables, replication_streams(scenario.seed, replication))
    sim = RecordingSimulation(scenario, tables, breakdowns, OfferDraws(scenario.seed, replication))
    sim.run()
    return sim, breakdowns.t


def _overridden(scenario: Scenario, overrides: Sequence[tuple[str, Any]]) -> Scenario:
    for key, value in overrides:
        scenario = scenario.with_override(key, value)
    return scenario


def _misses(sim: RecordingSimulation, t: np.ndarray, warm: float, promise: float) -> np.ndarray:
    n = len(t)
    arrival = sim.requests.on_site_at[:n] - t
    return (t >= warm) & ~(arrival <= promise)  # NaN (never served) is a miss


def _profile(
    sim: RecordingSimulation, t: np.ndarray, requests: np.ndarray, promise: float
) -> dict[str, int]:
    """How the given first calls were decided in ``sim``."""
    first: dict[int, tuple[int, float, int, float, float]] = {}
    for d in sim.dispatches:
        first.setdefault(d[0], d)
    out = {"requests": len(requests), "escalated": 0, "at_report": 0, "queued": 0}
    out.update(late_when_decided=0, van_not_yet_free=0)
    for r in requests.tolist():
        if sim.requests.escalation[r] != 0 or r not in first:
            out["escalated"] += 1
            continue
        _, now, _, eta, free_in = first[r]
        waited = now - float(t[r])
        out["queued" if waited > 0 else "at_report"] += 1
        out["late_when_decided"] += int(waited + eta > promise)
        out["van_not_yet_free"] += int(free_in > 0)
    return out


def compare_misses(
    scenario: Scenario,
    tables: TravelTables,
    *,
    replication: int = 0,
    policy: Sequence[tuple[str, Any]] = PRODUCTION,
    baseline: Sequence[tuple[str, Any]] = NEAREST_IDLE,
) -> dict[str, Any]:
    """Misses of ``policy`` and ``baseline`` on one replication, and the profile of the
    misses only one of them has (module docstring)."""
    promise = scenario.promise.arrival_minutes
    warm = scenario.warmup_days * 1440.0
    mine, t = run_recorded(_overridden(scenario, policy), tables, replication)
    base, _ = run_recorded(_overridden(scenario, baseline), tables, replication)
    m_mine, m_base = _misses(mine, t, warm, promise), _misses(base, t, warm, promise)
    return {
        "replication": replication,
        "misses": {"policy": int(m_mine.sum()), "baseline": int(m_base.sum())},
        "policy_only": _profile(mine, t, np.flatnonzero(m_mine & ~m_base), promise),
        "baseline_only": _profile(base, t, np.flatnonzero(m_base & ~m_mine), promise),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from simulations.scenario import resolve_scenario

    parser = argparse.ArgumentParser(prog="python -m benchmarks.promise_misses")
    parser.add_argument("--scenario", default="national")
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--replication", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    s = resolve_scenario(args.scenario).with_days(args.days)
    cache = args.cache_dir.expanduser() if args.cache_dir else None
    graph = RoadGraphSource(cache_dir=cache / "routing" if cache else None)
    tables = build_tables(s, road_graph=graph, cache_dir=cache / "tables" if cache else None)
    print(json.dumps(compare_misses(s, tables, replication=args.replication)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
