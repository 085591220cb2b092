"""Backtest: short seeded runs of the shipped scenarios reproduce committed results bit for bit.

The pinned file (``tests/data/sim_backtest.json``) was written by the engine before its
restructuring; any change to the engine that moves a single KPI, count or per-station figure
fails here. The runs use great-circle travel (the road graph's tables take tens of seconds to
build and the engine does not care where its tables come from) and both dispatch policies, so
batch matching, nearest-idle dispatch, shift starts, follow-up tows, escalations and
replacement bookings are all exercised.

Regenerate (only when a change of the numbers is intended, and say why in the commit):
``.venv/bin/python tests/simulations/test_sim_backtest.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulations.engine import simulate
from simulations.results import RunResult
from simulations.scenario import Scenario, resolve_scenario
from simulations.tables import TravelTables, build_tables

PINNED = Path(__file__).parents[1] / "data" / "sim_backtest.json"
CASES: dict[str, tuple[str, str, float, int, float]] = {
    # name: (scenario, dispatch policy, measured days, replications, escalate after minutes)
    "shandong-batch-optimal": ("shandong", "batch-optimal", 4.0, 2, 240.0),
    "shandong-nearest-idle": ("shandong", "nearest-idle", 4.0, 2, 240.0),
    # a short escalation limit so that some requests time out in the queue
    "national-batch-optimal": ("national", "batch-optimal", 2.0, 1, 45.0),
    "national-nearest-idle": ("national", "nearest-idle", 2.0, 1, 45.0),
}
WARMUP_DAYS = 1.0
PERF_COUNTS = ("events", "breakdowns_simulated", "dispatch_batches", "replacement_batches")
"""The deterministic part of ``RunResult.perf`` (the rest are wall-clock seconds)."""


def _scenario(name: str, policy: str, days: float, escalate_minutes: float = 240.0) -> Scenario:
    s = resolve_scenario(name).with_days(days)
    return replace(
        s,
        warmup_days=WARMUP_DAYS,
        travel=replace(s.travel, provider="great-circle"),
        dispatch=replace(s.dispatch, policy=policy, escalate_after_minutes=escalate_minutes),
    )


@cache
def _tables(name: str) -> TravelTables:
    """Tables depend on the geometry only, not on the policy or the days: one per scenario."""
    return build_tables(_scenario(name, "batch-optimal", 1.0))


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _pinned_view(res: RunResult) -> dict[str, Any]:
    """Everything deterministic a run reports, in a JSON-exact form (floats round-trip)."""
    return {
        "replication": res.replication,
        "kpis": dict(res.kpis),
        "perf_counts": {k: res.perf[k] for k in PERF_COUNTS},
        "by_priority": {k: list(v) for k, v in res.by_priority.items()},
        "by_province": {k: list(v) for k, v in res.by_province.items()},
        "daily_counts": [int(x) for x in res.daily_counts],
        "arrival_minutes": {
            "count": len(res.arrival_minutes),
            "sha256": _digest(res.arrival_minutes),
        },
        "station_utilisation": {
            "nansum": float(np.nansum(res.station_utilisation)),
            "sha256": _digest(res.station_utilisation),
        },
    }


def _run_case(case: str) -> list[dict[str, Any]]:
    name, policy, days, reps, escalate_minutes = CASES[case]
    s = _scenario(name, policy, days, escalate_minutes)
    return [_pinned_view(simulate(s, _tables(name), r)) for r in range(reps)]


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Paths where the two JSON values differ; floats must be identical (nan equals nan)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in expected if k not in actual]
        out += [f"{path}.{k}: unexpected" for k in actual if k not in expected]
        for k in expected.keys() & actual.keys():
            out += _differences(expected[k], actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: length {len(actual)} != pinned {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += _differences(e, a, f"{path}[{i}]")
        return out
    if isinstance(expected, float) and isinstance(actual, float):
        if (math.isnan(expected) and math.isnan(actual)) or expected == actual:
            return []
        return [f"{path}: {actual!r} != pinned {expected!r}"]
    return [] if expected == actual else [f"{path}: {actual!r} != pinned {expected!r}"]


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PINNED.read_text("utf-8"))
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_backtest_matches_pinned_results(case: str, pinned: dict[str, Any]) -> None:
    """The seeded run reproduces every pinned KPI, count and per-station figure exactly."""
    actual = json.loads(json.dumps(_run_case(case)))  # the same float round trip as the file
    diffs = _differences(pinned["cases"][case]["runs"], actual, case)
    assert not diffs, "results moved from the pinned backtest:\n" + "\n".join(diffs[:20])


def test_backtest_exercises_every_path(pinned: dict[str, Any]) -> None:
    """The pinned runs are not trivial: they serve, tow, escalate (both reasons), queue
    follow-up tows and book replacement trucks, so a refactor cannot pass by doing nothing."""
    runs = [r["kpis"] for c in pinned["cases"].values() for r in c["runs"]]
    for kpi in (
        "served",
        "tows",
        "followup_tow_requests",
        "escalated_no_capable_van",
        "escalated_timeout",
        "unserved",
        "replacement_trips",
        "replacements_unmatched",
        "replacements_late",
    ):
        assert any(k[kpi] > 0 for k in runs), kpi


def _write() -> None:
    cases = {
        case: {
            "scenario": name,
            "policy": policy,
            "days": days,
            "warmup_days": WARMUP_DAYS,
            "escalate_after_minutes": escalate_minutes,
            "travel_provider": "great-circle",
            "runs": _run_case(case),
        }
        for case, (name, policy, days, _, escalate_minutes) in CASES.items()
    }
    PINNED.write_text(json.dumps({"cases": cases}, indent=1, sort_keys=True) + "\n", "utf-8")
    print(f"wrote {PINNED}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write   (re-pins {PINNED.name} from the current engine)")
    _write()
