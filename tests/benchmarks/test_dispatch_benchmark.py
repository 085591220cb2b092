"""benchmarks/dispatch.py behind ``rescue bench dispatch``: the record's contract keys, the
optimum never worse than the naive policy on the same batch, and clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app
from benchmarks.dispatch import dispatch_benchmark

DISPATCH_KEYS = {
    "benchmark", "engine", "engine_note", "engine_load_seconds", "requests", "vans", "seed",
    "repeats", "arcs", "median_seconds", "median_cpu_seconds", "median_candidates_seconds",
    "median_assignment_seconds", "balls_seconds", "goal_seconds", "meets_goal", "optimal", "naive",
    "served_gain", "served_weight_gain", "weighted_eta_ratio_naive_over_optimal",
    "optimal_never_worse", "median_naive_policy_seconds", "time_ratio_optimal_over_naive",
}  # fmt: skip


def test_small_batch_record() -> None:
    """A small great-circle batch on all the network's vans: every contract key, the batch as
    asked, and the optimum serves at least as many requests as the naive policy."""
    record = dispatch_benchmark(requests=40, vans=1300, seed=3, engine="great-circle", repeats=1)
    assert set(record) == DISPATCH_KEYS
    assert (record["benchmark"], record["engine"], record["engine_note"]) == (
        "dispatch",
        "great-circle",
        None,
    )
    assert (record["requests"], record["vans"], record["repeats"]) == (40, 1300, 1)
    assert record["optimal_never_worse"] is True
    assert record["served_gain"] >= 0
    optimal, naive = record["optimal"], record["naive"]
    assert optimal["served"] + optimal["unassigned"] == naive["served"] + naive["unassigned"] == 40
    assert optimal["served"] >= 30  # nearly every request has a van within 150 km


def test_same_seed_same_decisions() -> None:
    """The batch is seeded: two runs decide the same (timings aside)."""

    def decisions(record: dict[str, Any]) -> tuple[Any, ...]:
        drop = {"solve_seconds"}
        return (
            {k: v for k, v in record["optimal"].items() if k not in drop},
            {k: v for k, v in record["naive"].items() if k not in drop},
            record["arcs"],
        )

    a, b = (
        dispatch_benchmark(requests=25, vans=1300, seed=5, engine="great-circle", repeats=1)
        for _ in range(2)
    )
    assert decisions(a) == decisions(b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "teleport"}, "--engine must be road or great-circle, got 'teleport'"),
        ({"repeats": 0}, "--repeats must be >= 1, got 0"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, object], message: str) -> None:
    """A bad option is a ValueError naming it, before anything is built."""
    with pytest.raises(ValueError, match=message):
        dispatch_benchmark(**kwargs)  # type: ignore[arg-type]


def test_cli_prints_one_json_line_and_one_error_line() -> None:
    """``rescue bench dispatch``: one JSON object on stdout; a bad engine is exit 2 with one
    ``error:`` line on stderr."""
    runner = CliRunner()
    ok = runner.invoke(
        app,
        ["bench", "dispatch", "--requests", "20", "--vans", "60", "--engine", "great-circle",
         "--repeats", "1"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    (line,) = ok.stdout.splitlines()
    assert set(json.loads(line)) == DISPATCH_KEYS
    bad = runner.invoke(app, ["bench", "dispatch", "--engine", "teleport"])
    assert bad.exit_code == 2
    assert bad.stderr == "error: --engine must be road or great-circle, got 'teleport'\n"


def test_replan_record_on_a_small_world() -> None:
    """``rescue bench dispatch --replan`` on a small great-circle world: the jobs asked for
    are on their way, the counts add up, and the CLI prints one JSON line with the ratio."""
    from benchmarks.dispatch import replan_benchmark

    record = replan_benchmark(
        requests=30, assigned=60, vans=1300, seed=2, engine="great-circle", repeats=1
    )
    assert record["benchmark"] == "dispatch-replan"
    assert record["assigned"] == record["vans_on_their_way"] == 60
    assert record["moved"] + record["released"] <= 60
    assert record["served_new_with_replan"] <= 30 and record["goal_ratio"] == 1.5
    replan, plain = record["median_seconds_with_replan"], record["median_seconds_without_replan"]
    rounding = 0.00005 / replan + 0.00005 / plain + 0.001  # both rounded to 0.1 ms
    assert record["ratio_replan_over_plain"] == pytest.approx(replan / plain, rel=rounding)
    out = CliRunner().invoke(
        app,
        ["bench", "dispatch", "--replan", "--engine", "great-circle", "--requests", "20",
         "--assigned", "40", "--vans", "1300", "--repeats", "1"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    line = json.loads(out.output.strip().splitlines()[-1])
    assert line["benchmark"] == "dispatch-replan" and line["assigned"] == 40
