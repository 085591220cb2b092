"""``rescue routing ...`` and ``rescue bench routing``: output and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()


def test_import_osm_then_use_it(tmp_path: Path) -> None:
    """import-osm writes a graph that RESCUE_ROAD_GRAPH then selects for routing commands."""
    out = tmp_path / "graph"
    res = runner.invoke(
        app, ["routing", "import-osm", str(DATA / "test.osm.pbf"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["nodes"] > 100 and (out / "graph.json").is_file()
    info = runner.invoke(app, ["routing", "info"], env={"RESCUE_ROAD_GRAPH": str(out)})
    assert info.exit_code == 0
    assert json.loads(info.stdout)["directed"] is True
    assert json.loads(info.stdout)["nodes"] == summary["nodes"]


def test_import_osm_bad_file_is_one_line(tmp_path: Path) -> None:
    """An unreadable OSM file: exit code 2, one line on stderr naming the file."""
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"garbage")
    res = runner.invoke(app, ["routing", "import-osm", str(junk), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "junk.osm.pbf" in res.stderr


def test_leg_and_bad_coordinate() -> None:
    """leg prints km and minutes; a latitude outside [-90, 90] is exit 2 naming the value."""
    res = runner.invoke(app, ["routing", "leg", "36.651,117.120", "36.067,120.383"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert 300 < out["km"] < 400 and out["minutes"] > out["km"] / 80 * 60
    bad = runner.invoke(app, ["routing", "leg", "95,117", "36.067,120.383"])
    assert bad.exit_code == 2 and "latitude 95.0" in bad.stderr
    unreachable = runner.invoke(app, ["routing", "leg", "39.9,116.4", "20.04,110.34"])
    assert json.loads(unreachable.stdout)["km"] is None


def test_bench_routing_on_imported_graph(tmp_path: Path) -> None:
    """bench routing prints one JSON object with the contract's fields, identical candidate
    sets against networkx."""
    out = tmp_path / "graph"
    runner.invoke(app, ["routing", "import-osm", str(DATA / "Helsinki.osm.pbf"), "--out", str(out)])
    res = runner.invoke(
        app,
        [
            "bench",
            "routing",
            "--graph",
            str(out),
            "--breakdowns",
            "40",
            "--vans",
            "60",
            "--repeat",
            "2",
            "--radius-km",
            "1.5",
        ],
    )
    assert res.exit_code == 0, res.output
    (line,) = res.stdout.strip().splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "routing" and result["identical"] is True
    assert {"breakdowns", "vans", "median_s", "naive_s", "ratio", "engine_mb"} <= set(result)
    assert result["pairs"] > 0
