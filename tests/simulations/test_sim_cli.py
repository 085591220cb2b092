"""``rescue simulate``: summary, JSON, HTML report; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def test_simulate_writes_json_and_report(small_toml: Path, tmp_path: Path) -> None:
    """Two replications: the JSON has means with t half-widths per KPI and per-province shares;
    the report is one self-contained HTML file with embedded PNG plots."""
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    result = runner.invoke(
        app,
        ["simulate", str(small_toml), "--days", "5", "-r", "2", "--backend", "serial",
         "--json", str(out), "--report", str(html), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Share within promise" in result.output
    data = json.loads(out.read_text("utf-8"))
    kpis = data["variants"][0]["kpis"]
    assert kpis["breakdowns"]["n"] == 2
    assert kpis["share_within_promise"]["ci_half_width"] is not None
    assert "370000" in data["variants"][0]["share_within_promise_by_province"]
    text = html.read_text("utf-8")
    assert text.count("data:image/png;base64,") == 4
    assert "http://" not in text and "https://" not in text


def test_simulate_sweep_option(small_toml: Path, tmp_path: Path) -> None:
    """--sweep runs one variant per value, reported side by side."""
    out = tmp_path / "s.json"
    result = runner.invoke(
        app,
        ["simulate", str(small_toml), "--days", "3", "--sweep", "vans=1,2", "--backend",
         "serial", "--json", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = json.loads(out.read_text("utf-8"))["variants"]
    assert [v["variant"] for v in variants] == ["vans_per_station=1", "vans_per_station=2"]


def test_simulate_bad_scenario_is_one_line(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A scenario with a negative rate: exit 2, one line naming the key, no traceback."""
    path = write_scenario(("breakdowns_per_day = 30", "breakdowns_per_day = -1"))
    result = runner.invoke(app, ["simulate", str(path), "--quiet"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "demand.breakdowns_per_day must be > 0" in lines[0]
    assert "Traceback" not in result.output


def test_simulate_unknown_backend(small_toml: Path) -> None:
    """An unknown backend is one line, exit 2."""
    result = runner.invoke(app, ["simulate", str(small_toml), "--backend", "spark", "--quiet"])
    assert result.exit_code == 2
    assert "--backend must be one of" in result.output


def test_plan_recommends_bases_and_simulates(small_toml: Path, tmp_path: Path) -> None:
    """rescue plan (coverage, p=2) picks 2 of the 3 stations with an optimality statement,
    sizes their fleets and prints the simulated share beside the model's coverage."""
    out = tmp_path / "plan.json"
    result = runner.invoke(
        app,
        ["plan", str(small_toml), "--vans", "2", "--sim-days", "3", "--time-limit", "10",
         "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model coverage" in result.output
    assert "simulated share" in result.output
    data = json.loads(out.read_text("utf-8"))
    assert len(data["bases"]) == 2
    assert all(b["vans"] >= 1 for b in data["bases"])
    assert data["solver"]["proven_optimal"] in (True, False)
    assert 0 <= data["simulated"]["share_within_promise"] <= 1


def test_plan_bad_objective(small_toml: Path) -> None:
    """An unknown objective is one line, exit 2."""
    result = runner.invoke(app, ["plan", str(small_toml), "--objective", "cheapest"])
    assert result.exit_code == 2
    assert "objective must be one of coverage, p-median, min-vans" in result.output


def test_plan_runs_on_road_demand(write_scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """rescue plan on ``points = "roads"`` (Shandong's road points, 30-km cells, plus the
    county seats): the same recommendation and simulation, over the road demand points."""
    path = write_scenario(
        ('points = "county_seats"', 'points = "roads"\nroad_spacing_km = 30'), name="roads.toml"
    )
    out = tmp_path / "plan.json"
    result = runner.invoke(
        app,
        ["plan", str(path), "--vans", "2", "--sim-days", "3", "--time-limit", "10",
         "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text("utf-8"))
    assert len(data["bases"]) == 2
    assert 0 <= data["simulated"]["share_within_promise"] <= 1
