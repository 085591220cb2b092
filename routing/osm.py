"""Build a road graph from an OpenStreetMap extract (``.osm.pbf``, ``.osm``) with ``osmium``.

- Drivable ways: ``highway`` in :data:`DRIVABLE` (motorway .. residential, links, living
  streets, service roads, ``road``), minus areas and ways closed to motor vehicles
  (``access``/``motor_vehicle``/``motorcar``/``vehicle`` = no / private).
- Direction: ``oneway=yes|true|1`` forward only, ``oneway=-1|reverse`` backward only,
  motorways and roundabouts one-way unless ``oneway=no``; everything else both ways. The result
  is a directed graph (one edge per allowed direction).
- Speed per edge: ``maxspeed`` (km/h, ``mph``, several values take the lowest, national zone
  codes such as ``FI:urban`` via :data:`ZONE_SPEEDS`), otherwise :data:`CLASS_SPEEDS_KMH`.
- Nodes are the way nodes; edge km is the great-circle length between consecutive nodes.
- By default only the largest strongly connected component is kept, so that every snapped
  point can reach every other (border-clipped one-way stubs would otherwise trap routes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from routing.graph import RoadGraph, write_graph
from routing.provider import haversine_km

logger = logging.getLogger(__name__)

CLASS_SPEEDS_KMH: dict[str, float] = {
    "motorway": 100.0,
    "trunk": 80.0,
    "primary": 60.0,
    "secondary": 50.0,
    "tertiary": 40.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "motorway_link": 60.0,
    "trunk_link": 50.0,
    "primary_link": 40.0,
    "secondary_link": 35.0,
    "tertiary_link": 30.0,
    "living_street": 10.0,
    "service": 15.0,
    "road": 30.0,
}
"""Speed when a way has no usable ``maxspeed``; also the set of drivable highway classes."""
DRIVABLE = frozenset(CLASS_SPEEDS_KMH)
ZONE_SPEEDS: dict[str, float] = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 120.0,
    "trunk": 100.0,
    "living_street": 20.0,
    "walk": 7.0,
}
_CLOSED = frozenset({"no", "private"})
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$")


def parse_maxspeed(value: str | None) -> float | None:
    """km/h from a ``maxspeed`` tag, ``None`` if absent or not understood."""
    if not value:
        return None
    speeds = []
    for part in value.split(";"):
        part = part.strip().lower()
        m = _NUMBER.match(part)
        if m:
            v = float(m.group(1)) * (1.609344 if m.group(2) == "mph" else 1.0)
            if v > 0:
                speeds.append(v)
        elif ":" in part:
            zone = part.split(":", 1)[1]
            if zone in ZONE_SPEEDS:
                speeds.append(ZONE_SPEEDS[zone])
        elif part in ZONE_SPEEDS:
            speeds.append(ZONE_SPEEDS[part])
    return min(speeds) if speeds else None


def way_direction(tags: Any) -> tuple[bool, bool]:
    """(forward allowed, backward allowed) for a drivable way's tags."""
    oneway = (tags.get("oneway") or "").lower()
    if oneway in ("yes", "true", "1"):
        return True, False
    if oneway in ("-1", "reverse"):
        return False, True
    if oneway == "no":
        return True, True
    implied = tags.get("highway") == "motorway" or tags.get("junction") in (
        "roundabout",
        "circular",
    )
    return True, not implied


def is_drivable(tags: Any) -> bool:
    if tags.get("highway") not in DRIVABLE or tags.get("area") == "yes":
        return False
    for key in ("access", "vehicle", "motor_vehicle", "motorcar"):
        if (tags.get(key) or "").lower() in _CLOSED:
            # a more specific permission re-opens it (access=no + motor_vehicle=yes)
            more = ("motor_vehicle", "motorcar")
            if key in ("access", "vehicle") and any(
                (tags.get(k) or "").lower() in ("yes", "designated", "permissive") for k in more
            ):
                continue
            return False
    return True


@dataclass(frozen=True, slots=True)
class OsmImport:
    """What an import produced."""

    graph: RoadGraph
    osm_node_id: np.ndarray
    ways: int
    dropped_nodes: int
    out_dir: Path | None = None

    def summary(self) -> dict[str, Any]:
        g = self.graph
        return {
            "graph": g.name,
            "nodes": g.n_nodes,
            "edges": g.n_edges,
            "ways": self.ways,
            "dropped_nodes": self.dropped_nodes,
            "km": round(float(g.edge_km.sum()), 3),
            "out": str(self.out_dir) if self.out_dir else None,
        }


def read_osm(path: str | Path, *, largest_component_only: bool = True) -> OsmImport:
    """The drivable road graph of an OSM file; ``ValueError`` naming the file if it is missing,
    empty, unreadable or has no drivable road."""
    import osmium

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"OSM file {str(p)!r} does not exist")
    if p.stat().st_size == 0:
        raise ValueError(f"OSM file {str(p)!r} is empty")
    ref_index: dict[int, int] = {}
    lats: list[float] = []
    lons: list[float] = []
    us: list[int] = []
    vs: list[int] = []
    speeds: list[float] = []
    ways = 0
    try:
        processor = (
            osmium.FileProcessor(str(p))
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for way in processor:
            if not isinstance(way, osmium.osm.Way):
                continue
            tags = way.tags
            if not is_drivable(tags):
                continue
            forward, backward = way_direction(tags)
            speed = parse_maxspeed(tags.get("maxspeed")) or CLASS_SPEEDS_KMH[tags["highway"]]
            idx: list[int] = []
            for node_ref in way.nodes:
                if not node_ref.location.valid():
                    continue  # node outside the extract
                i = ref_index.get(node_ref.ref)
                if i is None:
                    i = ref_index[node_ref.ref] = len(lats)
                    lats.append(node_ref.location.lat)
                    lons.append(node_ref.location.lon)
                if not idx or idx[-1] != i:
                    idx.append(i)
            if len(idx) < 2:
                continue
            ways += 1
            a, b = idx[:-1], idx[1:]
            if forward:
                us.extend(a)
                vs.extend(b)
                speeds.extend([speed] * len(a))
            if backward:
                us.extend(b)
                vs.extend(a)
                speeds.extend([speed] * len(a))
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"OSM file {str(p)!r} is unreadable: {exc}") from None
    if not us:
        raise ValueError(f"OSM file {str(p)!r} contains no drivable highway way")
    lat, lon = np.array(lats), np.array(lons)
    u, v, speed_arr = np.array(us, dtype=np.int64), np.array(vs, dtype=np.int64), np.array(speeds)
    km = _segment_km(lat, lon, u, v)
    osm_ids = np.fromiter(ref_index.keys(), dtype=np.int64, count=len(ref_index))
    n = len(lat)
    keep = np.ones(n, dtype=bool)
    if largest_component_only:
        mat = csr_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
        _, labels = connected_components(mat, directed=True, connection="strong")
        keep = labels == np.argmax(np.bincount(labels))
    new_index = np.cumsum(keep) - 1
    e_keep = keep[u] & keep[v]
    graph = RoadGraph(
        lat=lat[keep],
        lon=lon[keep],
        edge_u=new_index[u[e_keep]].astype(np.int32),
        edge_v=new_index[v[e_keep]].astype(np.int32),
        edge_km=km[e_keep],
        edge_speed_kmh=speed_arr[e_keep],
        directed=True,
        name=p.name.split(".")[0],
    )
    logger.info("imported %s: %d ways, %d nodes kept of %d", p, ways, graph.n_nodes, n)
    return OsmImport(graph, osm_ids[keep], ways, int(n - keep.sum()))


def _segment_km(lat: np.ndarray, lon: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Great-circle km of each segment, at least 1 mm (coincident nodes)."""
    la1, lo1, la2, lo2 = map(np.radians, (lat[u], lon[u], lat[v], lon[v]))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    radius = float(haversine_km(np.array([[0.0, 0.0]]), np.array([[0.0, 180.0]]))[0, 0]) / np.pi
    km: np.ndarray = np.maximum(2 * radius * np.arcsin(np.sqrt(np.clip(h, 0, 1))), 1e-6)
    return km


def import_osm(
    path: str | Path, out_dir: str | Path, *, largest_component_only: bool = True
) -> OsmImport:
    """Read ``path`` and write the graph to ``out_dir`` (loadable by
    :func:`routing.load_road_provider`)."""
    result = read_osm(path, largest_component_only=largest_component_only)
    out = write_graph(
        result.graph,
        out_dir,
        extra={"source": Path(path).name, "largest_component_only": largest_component_only},
        node_columns={"osm_id": result.osm_node_id},
    )
    return OsmImport(result.graph, result.osm_node_id, result.ways, result.dropped_nodes, out)
