"""Importing OpenStreetMap extracts: drivable ways, one-way streets, speeds, bad files."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import osmium
import pytest

from routing import RoadGraphProvider, load_road_provider
from routing.osm import CLASS_SPEEDS_KMH, import_osm, parse_maxspeed, read_osm, way_direction

DATA = Path(__file__).parents[1] / "data"


def _highway_ways(path: Path) -> list[tuple[dict[str, str], list[int]]]:
    ways = []
    for w in osmium.FileProcessor(str(path)).with_filter(osmium.filter.KeyFilter("highway")):
        if isinstance(w, osmium.osm.Way):
            ways.append(({t.k: t.v for t in w.tags}, [n.ref for n in w.nodes]))
    return ways


@pytest.mark.parametrize("name", ["test.osm.pbf", "Helsinki.osm.pbf"])
def test_import_real_extracts(name: str, tmp_path: Path) -> None:
    """Both real extracts import into a directed, strongly connected graph that loads back
    identically through load_road_provider and answers every query with finite values."""
    result = import_osm(DATA / name, tmp_path / "g")
    provider = load_road_provider(tmp_path / "g")
    g = provider.graph
    assert g.directed and g.edge_speed_kmh is not None
    assert g.n_nodes == result.graph.n_nodes > 100
    assert np.array_equal(g.edge_km, result.graph.edge_km)
    assert nx.is_strongly_connected(g.to_networkx())
    nodes = np.random.default_rng(0).choice(g.n_nodes, 20, replace=False)
    pts = np.column_stack((g.lat[nodes], g.lon[nodes]))
    km, minutes = provider.matrix(pts, pts)
    assert np.isfinite(km).all() and np.isfinite(minutes).all()


def test_one_way_streets_are_respected(helsinki: RoadGraphProvider) -> None:
    """Each oneway=yes segment kept is a forward edge only (unless another way also carries it
    back), and driving against a one-way street takes a detour."""
    imported = read_osm(DATA / "Helsinki.osm.pbf")
    g = imported.graph
    assert np.array_equal(g.edge_km, helsinki.graph.edge_km)
    index = {int(osm): i for i, osm in enumerate(imported.osm_node_id.tolist())}
    edges = set(zip(g.edge_u.tolist(), g.edge_v.tolist(), strict=True))
    ways = _highway_ways(DATA / "Helsinki.osm.pbf")
    carried = Counter(frozenset(seg) for _, refs in ways for seg in itertools.pairwise(refs))
    checked = 0
    for tags, refs in ways:
        if tags.get("oneway") != "yes" or tags["highway"] not in CLASS_SPEEDS_KMH:
            continue
        if tags.get("access") in ("no", "private"):
            continue
        for a, b in itertools.pairwise(refs):
            if a in index and b in index:
                assert (index[a], index[b]) in edges
                if carried[frozenset((a, b))] == 1:
                    assert (index[b], index[a]) not in edges
                    checked += 1
    assert checked > 20
    u, v = next((u, v) for u, v in sorted(edges) if (v, u) not in edges)
    there = helsinki.leg([(g.lat[u], g.lon[u])], [(g.lat[v], g.lon[v])])
    back = helsinki.leg([(g.lat[v], g.lon[v])], [(g.lat[u], g.lon[u])])
    assert back.km > there.km


def test_edge_speeds_follow_maxspeed_or_class() -> None:
    """Edge speeds are the way's maxspeed where tagged, else the class speed; the extract's
    maxspeed values (5..50 km/h) all appear."""
    g = read_osm(DATA / "Helsinki.osm.pbf").graph
    assert g.edge_speed_kmh is not None
    speeds = set(np.unique(g.edge_speed_kmh).tolist())
    assert {30.0, 40.0}.issubset(speeds)
    assert speeds <= {5.0, 10.0, 20.0, 30.0, 40.0, 50.0, *CLASS_SPEEDS_KMH.values()}


@pytest.mark.parametrize(
    ("tag", "kmh"),
    [
        ("50", 50.0),
        ("30 mph", 30 * 1.609344),
        ("60;40", 40.0),
        ("FI:urban", 50.0),
        ("RU:rural", 80.0),
        ("none", None),
        ("signals", None),
        (None, None),
    ],
)
def test_parse_maxspeed(tag: str | None, kmh: float | None) -> None:
    """maxspeed parsing: numbers, mph, several values (lowest), zone codes; unknown -> None."""
    assert parse_maxspeed(tag) == (pytest.approx(kmh) if kmh is not None else None)


@pytest.mark.parametrize(
    ("tags", "direction"),
    [
        ({"highway": "residential"}, (True, True)),
        ({"highway": "residential", "oneway": "yes"}, (True, False)),
        ({"highway": "residential", "oneway": "-1"}, (False, True)),
        ({"highway": "motorway"}, (True, False)),
        ({"highway": "motorway", "oneway": "no"}, (True, True)),
        ({"highway": "primary", "junction": "roundabout"}, (True, False)),
    ],
)
def test_way_direction(tags: dict[str, str], direction: tuple[bool, bool]) -> None:
    """oneway tags and implied one-ways (motorways, roundabouts)."""
    assert way_direction(tags) == direction


def test_bad_osm_files(tmp_path: Path) -> None:
    """A missing, empty or unreadable file raises ValueError naming it; nothing is written."""
    empty = tmp_path / "empty.osm.pbf"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"this is not a protobuf file at all")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="does not exist"):
        import_osm(tmp_path / "missing.osm.pbf", out)
    with pytest.raises(ValueError, match=r"empty\.osm\.pbf' is empty"):
        import_osm(empty, out)
    with pytest.raises(ValueError, match=r"junk\.osm\.pbf' is unreadable"):
        import_osm(junk, out)
    assert not out.exists()


def test_extract_without_roads(tmp_path: Path) -> None:
    """An OSM file with no drivable way is a ValueError, not an empty graph."""
    f = tmp_path / "paths.osm"
    f.write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6'>\n"
        "<node id='1' lat='60.0' lon='25.0'/><node id='2' lat='60.001' lon='25.0'/>\n"
        "<way id='9'><nd ref='1'/><nd ref='2'/><tag k='highway' v='footway'/></way>\n</osm>\n"
    )
    with pytest.raises(ValueError, match="no drivable highway way"):
        read_osm(f)
