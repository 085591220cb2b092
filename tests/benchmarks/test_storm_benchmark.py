"""``rescue bench dispatch --storm``: the record's figures hang together (timings are reported,
never asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from api.cli import app
from benchmarks.storm import run_storm_benchmark
from fleet.demo import build_national_network
from routing import GreatCircleProvider


def test_storm_record_adds_up() -> None:
    """Both cycles are reported with their parts; every request is served or explained; the
    storm over base ratio and the explanation share are computed from the reported times."""
    rec = run_storm_benchmark(
        GreatCircleProvider(),
        build_national_network(),
        requests=300,
        base_requests=30,
        vans=120,
        repeats=1,
    )
    base, storm = rec["base"], rec["storm"]
    assert (base["requests"], storm["requests"], rec["requests_ratio"]) == (30, 300, 10.0)
    for cycle in (base, storm):
        assert cycle["served"] + cycle["unassigned"] == cycle["requests"]
        assert cycle["served"] <= 120
        assert sum(cycle["unassigned_reasons"].values()) == cycle["unassigned"]
        parts = cycle["candidates_seconds"] + cycle["assignment_seconds"]
        assert parts + cycle["explain_seconds"] == pytest.approx(cycle["seconds"], abs=3e-4)
        assert cycle["explain_share"] == pytest.approx(
            cycle["explain_seconds"] / cycle["seconds"], abs=2e-3
        )
    assert storm["unassigned"] >= 300 - 120  # at most one request per van
    assert rec["storm_over_base"] == pytest.approx(storm["seconds"] / base["seconds"], abs=0.01)
    assert rec["meets_goal"] == (rec["storm_over_base"] <= 10 and storm["explain_share"] <= 0.25)


def test_storm_refuses_a_base_larger_than_the_storm() -> None:
    with pytest.raises(ValueError, match=r"base_requests must be in \[1, requests=100\], got 200"):
        run_storm_benchmark(
            GreatCircleProvider(), build_national_network(), requests=100, base_requests=200
        )


def test_bench_dispatch_storm_prints_one_json_line() -> None:
    """The CLI prints one JSON record with both cycles; a bad size exits 2 naming it."""
    args = ["bench", "dispatch", "--engine", "great-circle", "--vans", "80", "--repeats", "1"]
    result = CliRunner().invoke(app, [*args, "--requests", "20", "--storm"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    rec = json.loads(line)
    assert rec["benchmark"] == "dispatch-storm"
    assert (rec["base"]["requests"], rec["storm"]["requests"]) == (20, 200)
    bad = CliRunner().invoke(app, [*args, "--requests", "20", "--storm", "--storm-requests", "5"])
    assert bad.exit_code == 2
    assert "base_requests must be in [1, requests=5], got 20" in bad.stderr
