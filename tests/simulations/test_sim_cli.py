"""``rescue simulate``: summary, JSON, HTML report; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
    assert "KPIs: mean per replication ± 95% t-interval half-width over 2 replications" in text
    assert "by priority: totals over all 2 replications" in text
    assert "By province, weakest first: totals over all 2 replications" in text
    assert "<td>山东省</td>" in text  # names as HTML text, not drawn without CJK fonts
    assert "replication 1" not in text  # legends are in the PNG, not the page


def test_report_leaves_out_other_regions_and_intervals_of_one_run(
    write_scenario, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A station far outside the scenario's province serves none of its demand: the
    utilisation chart and the busiest-stations table count only the 3 in-region ones. One
    replication: the tables say so and show no ± half-width."""
    far = (
        '[[stations]]\nid = "UR"\nname = "乌鲁木齐站"\ngrade = "AAA"\nlat = 43.825\n'
        'lon = 87.617\n\n[[vans]]\nid = "UR-1"\nstation = "UR"\n'
        'capability = "heavy_service_van"\n\n[[vans]]\nid = "JN-1"'
    )
    path = write_scenario(('[[vans]]\nid = "JN-1"', far))
    html = tmp_path / "one.html"
    result = runner.invoke(
        app, ["simulate", str(path), "--days", "3", "-r", "1", "--backend", "serial",
              "--report", str(html), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = html.read_text("utf-8")
    assert "Van utilisation of the 3 stations that serve the demand" in text
    assert "乌鲁木齐站" not in text and "<td>UR</td>" not in text
    assert "KPIs: one replication: values of that run, no interval" in text
    kpi_table = text.split("<section id='kpis'>")[1].split("</section>")[0]
    assert "±" not in kpi_table


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
    sizes their fleets, says what the objective counts, and sets the plan beside today's
    network on the same breakdowns, in the terminal and in the report."""
    out, html = tmp_path / "plan.json", tmp_path / "plan.html"
    result = runner.invoke(
        app,
        ["plan", str(small_toml), "--bases", "2", "--sim-days", "3", "--time-limit", "10",
         "--json", str(out), "--report", str(html)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model coverage" in result.output
    assert "simulated share" in result.output
    assert "objective = breakdowns per day whose nearest chosen base is within" in result.output
    assert "today's network" in result.output and "plan (coverage)" in result.output
    for row in ("Within promise", "Arrival mean (min)", "Arrival p90 (min)", "Vans", "Bases"):
        assert row in result.output
    data = json.loads(out.read_text("utf-8"))
    assert len(data["bases"]) == 2
    assert data["simulated_today"]["breakdowns"] == data["simulated"]["breakdowns"]
    text = html.read_text("utf-8")
    section = text.split("<section id='comparison'>")[1].split("</section>")[0]
    assert "Comparison on the same random numbers" in section
    plan_vans = sum(b["vans"] for b in data["bases"])
    assert f"<tr><td>Vans</td><td>4</td><td>{plan_vans}</td>" in section
    assert "<tr><td>Bases (stations with vans)</td><td>3</td><td>2</td><td>-1</td></tr>" in section
    assert all(b["vans"] >= 1 for b in data["bases"])
    assert data["solver"]["proven_optimal"] in (True, False)
    assert 0 <= data["simulated"]["share_within_promise"] <= 1


def test_plan_bad_objective(small_toml: Path) -> None:
    """An unknown objective is one line, exit 2."""
    result = runner.invoke(app, ["plan", str(small_toml), "--objective", "cheapest"])
    assert result.exit_code == 2
    assert "objective must be one of coverage, p-median, min-vans" in result.output


def test_plan_trucks_prints_pools_and_the_simulated_check(tmp_path: Path) -> None:
    """rescue plan --objective trucks: the pools per type with the M/M/c count, the simulated
    check beside today's pool, and the same figures in the JSON."""
    from tests.simulations.test_truck_pool import POOL

    scenario, out = tmp_path / "pool.toml", tmp_path / "trucks.json"
    scenario.write_text(POOL, "utf-8")
    result = runner.invoke(
        app,
        ["plan", str(scenario), "--objective", "trucks", "--target-share", "0.9",
         "--within-hours", "4", "--sim-days", "10", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "so that 90% of replacement requests have a truck at the cargo within 4 h" in (
        " ".join(result.output.split())
    )
    assert "Simulated check, same breakdowns" in " ".join(result.output.split())
    data = json.loads(out.read_text("utf-8"))
    assert data["objective"] == "trucks" and data["days"] == 10.0
    assert data["target_share"] == 0.9 and data["within_hours"] == 4.0
    (province,) = data["provinces"]
    assert province["today_trucks"] == data["trucks_today"] == 2
    assert province["plan_trucks"] == data["trucks_recommended"]
    assert province["plan_share"] >= 0.9 and data["met"] is True
    tractor = next(p for p in data["pools"] if p["truck_type"] == "tractor")
    assert tractor["recommended"] >= tractor["erlang_trucks"] >= 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--target-share", "1.5", "error: --target-share must be in (0, 1], got 1.5"),
        ("--target-share", "0", "error: --target-share must be in (0, 1], got 0.0"),
        ("--within-hours", "0", "error: --within-hours must be > 0, got 0.0"),
        ("--within-hours", "-3", "error: --within-hours must be > 0, got -3.0"),
    ],
)
def test_plan_trucks_bad_options(small_toml: Path, option: str, value: str, message: str) -> None:
    """A share outside (0, 1] or hours <= 0 is one line naming the option, exit 2, before
    anything is loaded or simulated."""
    result = runner.invoke(app, ["plan", str(small_toml), "--objective", "trucks", option, value])
    assert result.exit_code == 2
    assert result.output.strip() == message


def test_simulate_ranks_replacement_policies_by_total_cost(
    small_toml: Path, tmp_path: Path
) -> None:
    """A replacement_policy sweep prints, writes to JSON and reports the policies' table, the
    variants ranked by total cost (cheapest first) in the console and the HTML report."""
    out, html = tmp_path / "p.json", tmp_path / "p.html"
    result = runner.invoke(
        app,
        ["simulate", str(small_toml), "--days", "3", "--backend", "serial", "--quiet",
         "--sweep", "replacement_policy=intake-p0.3,diagnosis,oracle",
         "--json", str(out), "--report", str(html)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Replacement booking, ranked by total cost (500 CNY/h" in result.output
    variants = json.loads(out.read_text("utf-8"))["variants"]
    cost = {v["variant"]: v["kpis"]["total_cost_cny"]["mean"] for v in variants}
    for v in variants:
        kpis = v["kpis"]
        assert kpis["total_cost_cny"]["mean"] == pytest.approx(
            kpis["partner_cost_cny"]["mean"] + kpis["missed_promise_cost_cny"]["mean"], abs=1e-5
        )
    ranked = sorted(cost, key=cost.__getitem__)
    text = html.read_text("utf-8")
    section = text[text.index("<h2>Replacement booking</h2>") :]
    headers = [section.index(f"<th>{k}. {label}</th>") for k, label in enumerate(ranked, 1)]
    assert headers == sorted(headers)
    assert "Unneeded trips (repair within the threshold)" in section


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


def test_plan_keeps_its_travel_tables_like_simulate(
    small_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rescue plan keeps the check simulations' travel tables under RESCUE_CACHE_DIR, as
    rescue simulate does: a second plan (fresh process cache) reads them instead of computing
    them (computing is refused here) and simulates the same numbers."""
    import simulations.tables as tables_module

    monkeypatch.setenv("RESCUE_CACHE_DIR", str(tmp_path / "cache"))
    args = ["plan", str(small_toml), "--bases", "2", "--sim-days", "2", "--time-limit", "10"]
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    tables_module._CACHE.clear()
    result = runner.invoke(app, [*args, "--json", str(first)])
    assert result.exit_code == 0, result.output
    kept = sorted((tmp_path / "cache" / "tables").glob("tables-*.npz"))
    assert len(kept) == 2  # today's stations, and the plan's 2 bases of them

    def refuse(*_: object) -> None:
        raise AssertionError("travel tables computed again")

    tables_module._CACHE.clear()
    monkeypatch.setattr(tables_module, "_compute_tables", refuse)
    result = runner.invoke(app, [*args, "--json", str(second)])
    assert result.exit_code == 0, result.output
    a, b = (json.loads(p.read_text("utf-8")) for p in (first, second))
    assert a["simulated"] == b["simulated"] and a["simulated_today"] == b["simulated_today"]
