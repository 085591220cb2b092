"""``rescue bench assignment``: one JSON line per instance with the known optimum; bad files
exit 2 with one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

ORLIB = Path(__file__).parents[1] / "data" / "orlib_assign"


def test_bench_assignment_prints_json_per_instance() -> None:
    """Each file gives a JSON object with instance, n, objective (= the optimum) and seconds."""
    result = CliRunner().invoke(
        app, ["bench", "assignment", str(ORLIB / "assign100.txt"), str(ORLIB / "assignp800.txt")]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["instance"], r["n"], r["objective"]) for r in rows] == [
        ("assign100", 100, 305),
        ("assignp800", 800, 2239),
    ]
    assert all(r["seconds"] >= 0 for r in rows)


def test_bench_assignment_missing_file_exits_2(tmp_path: Path) -> None:
    """A missing file is one clear error line and exit code 2."""
    result = CliRunner().invoke(app, ["bench", "assignment", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
