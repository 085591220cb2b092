"""Queries on the road engine agree exactly with networkx Dijkstra; the travel-time model;
unreachable points; bad input."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import (
    GreatCircleProvider,
    RoadGraphProvider,
    TravelProfile,
    TravelTimeProvider,
    get_profile,
)
from routing.reference import naive_within, random_breakdowns


def test_providers_satisfy_the_protocol(national: RoadGraphProvider) -> None:
    """The road engine and the great-circle engine are both TravelTimeProviders."""
    assert isinstance(national, TravelTimeProvider)
    assert isinstance(GreatCircleProvider(), TravelTimeProvider)


def test_line_graph_model(line: RoadGraphProvider) -> None:
    """km = off-network km x circuity + road km; minutes = road km at the profile speed plus the
    off-network km at the off-network speed; the island is unreachable (inf)."""
    p = TravelProfile("t", speed_kmh=60.0, off_network_speed_kmh=30.0, off_network_circuity=1.5)
    north_of_0 = (0.5 / 111.195, 0.0)  # 0.5 km north of node 0
    node_2 = (0.0, 2 / 111.195)
    leg = line.leg([north_of_0], [node_2], p)
    assert leg.km == pytest.approx(0.75 + 2.0, rel=1e-6)
    assert leg.minutes == pytest.approx(2.0 + 0.75 / 30 * 60, rel=1e-6)
    island = (10.0, 0.0)
    assert not line.leg([node_2], [island], p).reachable
    km, minutes = line.matrix([north_of_0, island], [node_2, island], p)
    assert math.isinf(km[0, 1]) and math.isinf(minutes[1, 0])
    assert km[1, 1] == pytest.approx(0.0, abs=1e-9)


def test_far_points_are_flagged_not_snapped(line: RoadGraphProvider) -> None:
    """A point more than max_snap_km from every node is flagged and unreachable, never in a
    within() result."""
    far = (0.0, 60 / 111.195)  # ~58 km east of node 2
    snap = line.snap([far, (0.0, 0.0)])
    assert snap.too_far.tolist() == [0]
    assert snap.node.tolist() == [-1, 0]
    assert snap.distance_km[0] == pytest.approx(58.0, abs=0.1)
    assert not line.leg([far], [(0.0, 0.0)]).reachable
    pairs = line.within([far, (0.0, 0.0)], [far, (0.0, 0.0)], 1e6)
    assert pairs.as_set() == {(1, 1)}
    wider = RoadGraphProvider(line.graph, max_snap_km=100.0, min_component_nodes=1)
    assert wider.leg([far], [(0.0, 0.0)]).reachable


def test_cross_component_is_unreachable(national: RoadGraphProvider) -> None:
    """Beijing to Haikou (Hainan) or Taipei is inf in leg, matrix and within, never a number."""
    beijing, haikou, taipei = (39.90, 116.40), (20.04, 110.34), (25.03, 121.56)
    assert not national.leg([beijing], [haikou]).reachable
    km, minutes = national.matrix([beijing], [haikou, taipei, (36.65, 117.12)])
    assert np.isinf(km[0, :2]).all() and np.isinf(minutes[0, :2]).all()
    assert np.isfinite(km[0, 2])
    assert national.within([beijing], [haikou, taipei], 1e5).as_set() == set()


def test_matrix_equals_networkx_on_directed_graph(
    helsinki: RoadGraphProvider, helsinki_nx: Any
) -> None:
    """On the directed Helsinki graph, matrix km between random nodes equals networkx Dijkstra
    (one-way streets make it asymmetric)."""
    g = helsinki.graph
    rng = np.random.default_rng(7)
    nodes = rng.choice(g.n_nodes, size=25, replace=False)
    pts = np.column_stack((g.lat[nodes], g.lon[nodes]))
    km, _ = helsinki.matrix(pts, pts)
    for i, a in enumerate(nodes.tolist()):
        dist = nx.single_source_dijkstra_path_length(helsinki_nx, a, weight="length_km")
        for j, b in enumerate(nodes.tolist()):
            assert km[i, j] == pytest.approx(dist.get(b, math.inf), rel=1e-12, abs=1e-12)
    assert not np.allclose(km, km.T)


def test_minutes_are_fastest_route_on_edge_speeds(
    helsinki: RoadGraphProvider, helsinki_nx: Any
) -> None:
    """With per-edge speeds, minutes are networkx's fastest route with each edge at
    min(edge speed, profile speed)."""
    p = get_profile("towing")
    for _, _, d in helsinki_nx.edges(data=True):
        d["minutes"] = d["length_km"] / min(d["speed_kmh"], p.speed_kmh) * 60
    g = helsinki.graph
    nodes = np.random.default_rng(3).choice(g.n_nodes, size=12, replace=False)
    pts = np.column_stack((g.lat[nodes], g.lon[nodes]))
    _, minutes = helsinki.matrix(pts, pts, p)
    for i, a in enumerate(nodes.tolist()):
        dist = nx.single_source_dijkstra_path_length(helsinki_nx, a, weight="minutes")
        for j, b in enumerate(nodes.tolist()):
            assert minutes[i, j] == pytest.approx(dist[b], rel=1e-12, abs=1e-12)


def test_national_legs_equal_networkx(national: RoadGraphProvider) -> None:
    """leg() km between random national nodes equals networkx (bidirectional Dijkstra) on the
    same graph, and matrix() agrees with leg()."""
    g = national.graph
    nxg = g.to_networkx()
    rng = np.random.default_rng(11)
    main = np.flatnonzero(g.component == 0)
    a, b = rng.choice(main, 6), rng.choice(main, 6)
    pa, pb = np.column_stack((g.lat[a], g.lon[a])), np.column_stack((g.lat[b], g.lon[b]))
    km, _ = national.matrix(pa, pb)
    for i in range(6):
        expected = nx.bidirectional_dijkstra(nxg, int(a[i]), int(b[i]), "length_km")[0]
        assert national.leg(pa[i], pb[i]).km == pytest.approx(expected, rel=1e-12)
        assert km[i, i] == pytest.approx(expected, rel=1e-12)


def test_within_equals_naive_networkx_on_national(national: RoadGraphProvider) -> None:
    """within() finds exactly the (station, breakdown) pairs a networkx Dijkstra bounded at the
    radius finds (same snapping, off-network km added on both sides), with the same km."""
    rng = np.random.default_rng(5)
    targets = random_breakdowns(national, 60, rng)
    sources = random_breakdowns(national, 80, rng, jitter_km=8.0)
    radius = rng.uniform(50, 200, size=80)
    g = national.graph
    sub_nodes = set()
    for lat, lon in targets:  # networkx on the neighbourhood only, to keep the test fast
        near = np.flatnonzero((np.abs(g.lat - lat) < 2.5) & (np.abs(g.lon - lon) < 4.0))
        sub_nodes.update(near.tolist())
    pairs = national.within(sources, targets, radius)
    full = pairs.as_set()
    # The 2.5 x 4 degree box holds every node within 200 km of a target.
    nx_sub = _induced_nx(g, np.array(sorted(sub_nodes)))
    assert naive_within(national, nx_sub, sources, targets, radius) == full
    assert len(full) > 0
    km, _ = national.matrix(sources, targets)
    inside = {(int(s), int(t)) for s, t in zip(*np.nonzero(km <= radius[:, None]), strict=True)}
    assert inside == full
    assert np.allclose(pairs.km, km[pairs.source, pairs.target], rtol=1e-12)


def _induced_nx(g: Any, nodes: np.ndarray) -> Any:
    keep = np.zeros(g.n_nodes, dtype=bool)
    keep[nodes] = True
    m = keep[g.edge_u] & keep[g.edge_v]
    h = nx.Graph()
    h.add_nodes_from(nodes.tolist())
    h.add_weighted_edges_from(
        zip(g.edge_u[m].tolist(), g.edge_v[m].tolist(), g.edge_km[m].tolist(), strict=True),
        weight="length_km",
    )
    return h


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    radius=st.floats(0.0, 3.0),
    n_src=st.integers(1, 12),
    n_tgt=st.integers(1, 12),
)
def test_within_is_the_matrix_filtered(
    helsinki: RoadGraphProvider, seed: int, radius: float, n_src: int, n_tgt: int
) -> None:
    """Property: within() on the directed graph equals {(s, t): matrix km[s, t] <= radius[s]}
    with the same km and minutes, whichever side has fewer points."""
    g = helsinki.graph
    rng = np.random.default_rng(seed)
    box = (g.lat.min(), g.lat.max(), g.lon.min(), g.lon.max())
    src = np.column_stack((rng.uniform(box[0], box[1], n_src), rng.uniform(box[2], box[3], n_src)))
    tgt = np.column_stack((rng.uniform(box[0], box[1], n_tgt), rng.uniform(box[2], box[3], n_tgt)))
    radii = rng.uniform(0, radius, n_src)
    pairs = helsinki.within(src, tgt, radii)
    km, minutes = helsinki.matrix(src, tgt)
    s, t = np.nonzero(km <= radii[:, None])
    assert pairs.as_set() == set(zip(s.tolist(), t.tolist(), strict=True))
    assert np.allclose(pairs.km, km[pairs.source, pairs.target], rtol=1e-12)
    assert np.allclose(pairs.minutes, minutes[pairs.source, pairs.target], rtol=1e-12)


def test_path_matches_leg(national: RoadGraphProvider) -> None:
    """path() gives the same km and minutes as leg(), a polyline from the origin to the
    destination over consecutive graph edges."""
    jinan, qingdao = (36.651, 117.120), (36.067, 120.383)
    route = national.path([jinan], [qingdao], "loaded_truck")
    leg = national.leg([jinan], [qingdao], "loaded_truck")
    assert route.km == pytest.approx(leg.km, rel=1e-12)
    assert route.minutes == pytest.approx(leg.minutes, rel=1e-12)
    assert route.points[0] == jinan and route.points[-1] == qingdao
    csr = national.graph.csr_km
    assert all(csr[a, b] > 0 for a, b in zip(route.nodes[:-1], route.nodes[1:], strict=True))
    assert not national.path([jinan], [(20.04, 110.34)]).reachable


def test_isochrone_nodes(helsinki: RoadGraphProvider) -> None:
    """isochrone() returns exactly the nodes whose minutes from the point are within budget."""
    g = helsinki.graph
    origin = (float(g.lat[10]), float(g.lon[10]))
    (iso,) = helsinki.isochrone([origin], 1.0)
    _, minutes = helsinki.matrix([origin], np.column_stack((g.lat, g.lon)))
    expected = np.flatnonzero(minutes[0] <= 1.0)
    assert set(iso.nodes.tolist()) == set(expected.tolist())
    assert np.allclose(iso.minutes, minutes[0, iso.nodes])
    assert len(iso.hull()) >= 3


def test_chengdu_lhasa_known_error(national: RoadGraphProvider) -> None:
    """The documented far-west simplification: Chengdu to Lhasa is about 1,521 road km between
    the snapped nodes (the real G318 is ~2,100 km)."""
    leg = national.leg([(30.572, 104.066)], [(29.650, 91.140)], TravelProfile("x", 60, 30, 1.0))
    assert 1500 < leg.km < 1545


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ((95.0, 10.0), "latitude 95.0"),
        ((-91.0, 10.0), "latitude -91.0"),
        ((10.0, 181.0), "longitude 181.0"),
        ((float("nan"), 10.0), "latitude nan"),
        ((10.0, float("nan")), "longitude nan"),
    ],
)
def test_bad_coordinates(
    national: RoadGraphProvider, point: tuple[float, float], message: str
) -> None:
    """Invalid coordinates raise ValueError naming the value in every query, and the engine
    keeps answering correctly afterwards."""
    ok = (36.651, 117.120)
    before = national.leg([ok], [(36.067, 120.383)])
    for call in (
        lambda: national.leg([point], [ok]),
        lambda: national.matrix([ok], [point]),
        lambda: national.within([point], [ok], 150),
        lambda: national.snap([point]),
        lambda: national.path([ok], [point]),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    assert national.leg([ok], [(36.067, 120.383)]) == before


def test_bad_radius(national: RoadGraphProvider) -> None:
    """A negative or NaN radius is a ValueError naming it."""
    with pytest.raises(ValueError, match="max_km must be >= 0"):
        national.within([(36.6, 117.1)], [(36.0, 120.3)], -1.0)
    with pytest.raises(ValueError, match="max_km must be >= 0, got nan"):
        national.within([(36.6, 117.1)], [(36.0, 120.3)], [float("nan")])
