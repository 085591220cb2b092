"""benchmarks/planning_options.py as a command: a JSON line per table build and per run as they
finish, then a summary per variant whose paired differences are those of its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.planning_options import main
from simulations.results import t_interval
from tests.simulations.conftest import SMALL


def test_runs_stream_and_summaries_pair_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two variants x replications 1-2 on the small region: 2 table lines, 4 run lines (the
    replications asked for, the same breakdowns in both variants), 2 summaries; the second
    variant's paired difference is the t-interval of its runs minus the reference's."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL, "utf-8")
    assert main([
        "--scenario", str(path), "--days", "3", "--warmup-days", "1", "--replications", "2",
        "--first-replication", "1", "--variant", "nearest-idle",
        "--variant", "production: on events, promise objective",
    ]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tables = [x for x in lines if "tables_seconds" in x and not x.get("summary")]
    runs = [x for x in lines if "replication" in x]
    summaries = [x for x in lines if x.get("summary")]
    assert len(tables) == 2 and all(x["demand_points"] > 0 for x in tables)
    assert [(x["variant"], x["replication"]) for x in runs] == [
        ("nearest-idle", 1), ("nearest-idle", 2),
        ("production: on events, promise objective", 1),
        ("production: on events, promise objective", 2),
    ]  # fmt: skip
    assert [x["breakdowns"] for x in runs[:2]] == [x["breakdowns"] for x in runs[2:]]
    ref, other = summaries
    assert "diff_share_within_promise" not in ref
    pairs = zip(runs[:2], runs[2:], strict=True)
    diffs = [b["arrival_p90_min"] - a["arrival_p90_min"] for a, b in pairs]
    expected = t_interval(diffs)
    assert other["diff_arrival_p90_min"] == pytest.approx([expected.mean, expected.half_width])


def test_unknown_variant_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--variant", "cheapest"])
    assert exc.value.code == 2
    assert "invalid choice: 'cheapest'" in capsys.readouterr().err
