"""Settings (api/settings.py): the one place the environment is read, and what it hands down
to the pure packages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from api.cli import app
from api.settings import Settings
from routing import RoadGraphSource, write_graph
from tests.routing.conftest import line_graph


def test_road_graph_and_cache_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RESCUE_ROAD_GRAPH and RESCUE_CACHE_DIR become the RoadGraphSource routing is given
    (the parse cache under routing/, as before), and RAY_ADDRESS the Ray address."""
    monkeypatch.setenv("RESCUE_ROAD_GRAPH", str(tmp_path / "graph"))
    monkeypatch.setenv("RESCUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    settings = Settings()
    assert settings.road_graph_source() == RoadGraphSource(
        directory=tmp_path / "graph", cache_dir=tmp_path / "cache" / "routing"
    )
    assert settings.ray_address == "10.0.0.5:6379"


def test_defaults_are_the_national_graph_and_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the variables: the vendored graph, $XDG_CACHE_HOME/rescue-dispatch, no Ray
    cluster; an empty RESCUE_ROAD_GRAPH counts as unset."""
    for name in ("RESCUE_CACHE_DIR", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_ROAD_GRAPH", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.road_graph_source() == RoadGraphSource(
        directory=None, cache_dir=tmp_path / "xdg" / "rescue-dispatch" / "routing"
    )
    assert settings.ray_address is None


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed setting is refused with the field named."""
    monkeypatch.setenv("RESCUE_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_cli_caches_the_parsed_graph_in_rescue_cache_dir(tmp_path: Path) -> None:
    """A CLI command that loads a road graph caches its parse under $RESCUE_CACHE_DIR/routing."""
    graph = write_graph(line_graph(), tmp_path / "line")
    res = CliRunner().invoke(
        app,
        ["routing", "info", "--graph", str(graph)],
        env={"RESCUE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["nodes"] == 5
    assert len(list((tmp_path / "cache" / "routing").glob("graph-*.npz"))) == 1
