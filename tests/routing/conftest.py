"""Routing fixtures: the national engine (loaded once), an imported Helsinki graph, and a
small hand-made graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from routing import RoadGraph, RoadGraphProvider, load_road_provider
from routing.osm import import_osm

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="session")
def national(road_graph_cache_dir: Path) -> RoadGraphProvider:
    return load_road_provider(cache_dir=road_graph_cache_dir)


@pytest.fixture(scope="session")
def helsinki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("helsinki")
    import_osm(DATA / "Helsinki.osm.pbf", out)
    return out


@pytest.fixture(scope="session")
def helsinki(helsinki_dir: Path) -> RoadGraphProvider:
    return load_road_provider(helsinki_dir)


@pytest.fixture(scope="session")
def helsinki_nx(helsinki: RoadGraphProvider) -> Any:
    return helsinki.graph.to_networkx()


def line_graph() -> RoadGraph:
    """0 -1- 1 -1- 2 (a road along the equator, 1 km edges) plus an island 3 -1- 4 far away."""
    deg_per_km = 1 / 111.195
    lat = np.array([0.0, 0.0, 0.0, 10.0, 10.0])
    lon = np.array([0.0, deg_per_km, 2 * deg_per_km, 0.0, deg_per_km])
    return RoadGraph(
        lat=lat,
        lon=lon,
        edge_u=np.array([0, 1, 3], dtype=np.int32),
        edge_v=np.array([1, 2, 4], dtype=np.int32),
        edge_km=np.array([1.0, 1.0, 1.0]),
        name="line",
    )


@pytest.fixture
def line() -> RoadGraphProvider:
    return RoadGraphProvider(line_graph(), min_component_nodes=1)
