"""Loading road graphs: the vendored national graph, the npz cache, the directory format."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from routing import RoadGraphProvider, RoadGraphSource, load_graph, load_road_provider, write_graph
from tests.routing.conftest import line_graph


def test_national_graph_shape_and_components(national: RoadGraphProvider) -> None:
    """The national graph has the documented size, the file's components, and Hainan, Taiwan
    and Hong Kong are components of their own apart from the mainland."""
    g = national.graph
    assert (g.n_nodes, g.n_edges) == (122436, 190388)
    assert not g.directed and g.edge_speed_kmh is None
    snap = national.snap([(39.90, 116.40), (20.04, 110.34), (25.03, 121.56), (22.30, 114.17)])
    beijing, haikou, taipei, hong_kong = snap.component.tolist()
    assert len({beijing, haikou, taipei, hong_kong}) == 4
    assert np.bincount(g.component).argmax() == beijing


def test_component_labels_match_connectivity(national: RoadGraphProvider) -> None:
    """Components computed from edges equal the file's ``component`` column (same labels)."""
    g = national.graph
    recomputed = type(g)(g.lat, g.lon, g.edge_u, g.edge_v, g.edge_km)
    assert np.array_equal(recomputed.component, g.component)


def test_cache_round_trip_and_corrupt_entry(tmp_path: Path) -> None:
    """A graph read through the cache equals the parsed one; a damaged cache file is ignored
    and replaced, never trusted."""
    cache = tmp_path / "cache"
    src = write_graph(line_graph(), tmp_path / "g")
    first = load_graph(src, cache_dir=cache)
    (entry,) = cache.glob("graph-*.npz")
    again = load_graph(src, cache_dir=cache)
    for name in ("lat", "lon", "edge_u", "edge_v", "edge_km", "component"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    entry.write_bytes(b"not a zip file")
    rebuilt = load_graph(src, cache_dir=cache)
    assert np.array_equal(rebuilt.edge_km, first.edge_km)
    with np.load(entry) as z:  # the entry was rewritten whole
        assert np.array_equal(z["edge_km"], first.edge_km)


def test_loaded_arrays_are_read_only(national: RoadGraphProvider) -> None:
    """The cached engine's arrays cannot be modified by a caller."""
    with pytest.raises(ValueError, match="read-only"):
        national.graph.edge_km[0] = 0.0


def test_without_cache_dir_nothing_is_written(tmp_path: Path) -> None:
    """Without a cache directory the graph is parsed and nothing lands beside or under it."""
    src = write_graph(line_graph(), tmp_path / "g")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert load_graph(src).n_nodes == 5
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_provider_is_cached_per_path(helsinki_dir: Path, national: RoadGraphProvider) -> None:
    """load_road_provider returns one engine per path, whichever way the path is given."""
    assert load_road_provider() is load_road_provider(None) is national
    assert RoadGraphSource().load() is national
    helsinki = load_road_provider(helsinki_dir)
    assert RoadGraphSource(directory=helsinki_dir).load() is helsinki
    assert load_road_provider(str(helsinki_dir)) is helsinki
    assert helsinki.graph.directed


def test_routing_does_not_read_the_environment(
    helsinki_dir: Path, national: RoadGraphProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RESCUE_ROAD_GRAPH is a setting (api/settings.py), not something routing looks up: with
    it set, the default is still the national graph."""
    monkeypatch.setenv("RESCUE_ROAD_GRAPH", str(helsinki_dir))
    assert load_road_provider() is national
    assert not RoadGraphSource().load().graph.directed


def _write(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as f:
        f.write(text)


@pytest.mark.parametrize(
    ("nodes", "edges", "message"),
    [
        ("node_id,lat,lon\n0,0,0\n1,0,0.01\n", "u,v\n0,1\n", "no column 'length_km'"),
        ("node_id,lat,lon\n0,0,0\n2,0,0.01\n", "u,v,length_km\n0,1,1\n", "node_id must be 0"),
        ("node_id,lat,lon\n0,0,0\n1,0,0.01\n", "u,v,length_km\n0,1,-1\n", "length_km -1.0"),
        ("node_id,lat,lon\n0,0,0\n1,0,0.01\n", "u,v,length_km\n0,7,1\n", "outside 0..1"),
        ("node_id,lat,lon\n0,0,x\n", "u,v,length_km\n", "column 'lon'"),
    ],
)
def test_malformed_graph_files(tmp_path: Path, nodes: str, edges: str, message: str) -> None:
    """Malformed graph files raise ValueError naming the problem."""
    _write(tmp_path / "china_highways_nodes.csv.gz", nodes)
    _write(tmp_path / "china_highways_edges.csv.gz", edges)
    with pytest.raises(ValueError, match=message):
        load_graph(tmp_path)


def test_missing_graph_directory(tmp_path: Path) -> None:
    """A missing directory is a ValueError naming it, and nothing is cached for it."""
    with pytest.raises(ValueError, match="does not exist"):
        load_road_provider(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is missing"):
        load_road_provider(tmp_path)
