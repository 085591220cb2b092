"""The road graph: loading it from its files, caching a compact copy, and its sparse forms.

A graph directory holds a node file and an edge file (gzip CSV) and, optionally, a manifest
``graph.json``:

- nodes: ``node_id,lat,lon[,...,component,...]`` with ``node_id`` = 0..n-1 in file order;
- edges: ``u,v,length_km[,speed_kmh]``; undirected unless the manifest says ``"directed":
  true`` (an imported OpenStreetMap graph: one row per allowed direction). ``speed_kmh`` is the
  edge's free-flow speed (from ``maxspeed`` or the road class); without it every edge runs at
  the travel profile's speed.

Without a manifest the directory is read as the vendored national graph
(``china_highways_nodes.csv.gz`` / ``china_highways_edges.csv.gz``, undirected).

Parsing the national gzip CSV takes about 2 s, so the parsed arrays can be cached as an
``.npz`` in a cache directory the caller passes (the API's settings pass
``RESCUE_CACHE_DIR``/routing, by default ``~/.cache/rescue-dispatch/routing``; nothing here reads
the environment), keyed by the source files' paths, sizes and modification times, written
atomically; an unreadable cache entry is ignored and rebuilt.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from geopy.distance import EARTH_RADIUS
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)

MANIFEST = "graph.json"
FORMAT_NAME = "rescue-road-graph"
FORMAT_VERSION = 1
_CACHE_VERSION = 2
NATIONAL_NODES = "china_highways_nodes.csv.gz"
NATIONAL_EDGES = "china_highways_edges.csv.gz"


def national_graph_dir() -> Path:
    """The directory of the vendored China highway graph."""
    return Path(str(resources.files("routing").joinpath("data")))


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """An immutable road graph: node coordinates, components and edges (arrays are read-only).

    ``directed`` graphs (imported OSM) hold one edge per allowed direction; undirected graphs
    (the national one) hold each road once and are searched both ways.
    """

    lat: np.ndarray
    lon: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_km: np.ndarray
    edge_speed_kmh: np.ndarray | None = None
    directed: bool = False
    name: str = "road-graph"
    component: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))

    def __post_init__(self) -> None:
        n = len(self.lat)
        if len(self.lon) != n:
            raise ValueError("lat and lon must have the same length")
        m = len(self.edge_u)
        if len(self.edge_v) != m or len(self.edge_km) != m:
            raise ValueError("edge_u, edge_v and edge_km must have the same length")
        if self.edge_speed_kmh is not None and len(self.edge_speed_kmh) != m:
            raise ValueError("edge_speed_kmh must have one value per edge")
        if n == 0:
            raise ValueError(f"graph {self.name!r} has no nodes")
        if m and (
            self.edge_u.min() < 0
            or self.edge_v.min() < 0
            or max(self.edge_u.max(), self.edge_v.max()) >= n
        ):
            raise ValueError(f"graph {self.name!r}: an edge names a node outside 0..{n - 1}")
        bad = ~(self.edge_km > 0) | np.isinf(self.edge_km)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"graph {self.name!r}: edge {i} length_km {float(self.edge_km[i])!r} is not > 0"
            )
        if self.edge_speed_kmh is not None:
            bad = ~(self.edge_speed_kmh > 0) | np.isinf(self.edge_speed_kmh)
            if bad.any():
                i = int(np.argmax(bad))
                bad_speed = float(self.edge_speed_kmh[i])
                raise ValueError(
                    f"graph {self.name!r}: edge {i} speed_kmh {bad_speed!r} is not > 0"
                )
        if len(self.component) != n:
            _, labels = connected_components(
                self._raw_csr(), directed=self.directed, connection="weak"
            )
            object.__setattr__(self, "component", labels.astype(np.int32))
        for arr in (
            self.lat,
            self.lon,
            self.edge_u,
            self.edge_v,
            self.edge_km,
            self.edge_speed_kmh,
            self.component,
        ):
            if arr is not None:
                arr.setflags(write=False)

    @property
    def n_nodes(self) -> int:
        return len(self.lat)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    def _raw_csr(self) -> csr_matrix:
        n = len(self.lat)
        return csr_matrix((np.ones(len(self.edge_u)), (self.edge_u, self.edge_v)), shape=(n, n))

    def _csr(
        self, weight: np.ndarray, *, reverse: bool = False, ordered: bool = False
    ) -> csr_matrix:
        """CSR of the edge weights; parallel edges keep the smaller weight; an undirected graph
        stores both directions (so searches run with ``directed=True`` on it). ``ordered``
        numbers the nodes by :attr:`search_rank`."""
        u, v, w = self.edge_u, self.edge_v, weight
        if ordered:
            u, v = self.search_rank[u], self.search_rank[v]
        if not self.directed:
            u, v, w = np.r_[u, v], np.r_[v, u], np.r_[w, w]
        elif reverse:
            u, v = v, u
        order = np.lexsort((w, v, u))
        u, v, w = u[order], v[order], w[order]
        keep = np.ones(len(u), dtype=bool)
        keep[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
        n = len(self.lat)
        mat = csr_matrix((w[keep], (u[keep], v[keep])), shape=(n, n))
        mat.sort_indices()
        return mat

    @cached_property
    def csr_km(self) -> csr_matrix:
        """Forward graph, km weights."""
        return self._csr(self.edge_km)

    @cached_property
    def csr_km_reverse(self) -> csr_matrix:
        """Transposed graph (searching it from a node gives distances *to* that node)."""
        return self.csr_km if not self.directed else self._csr(self.edge_km, reverse=True)

    def csr_minutes(self, speed_cap_kmh: float, *, reverse: bool = False) -> csr_matrix:
        """Minutes per edge at min(edge speed, cap); only for graphs with per-edge speeds."""
        key = (float(speed_cap_kmh), reverse and self.directed)
        cache: dict[tuple[float, bool], csr_matrix] = self.__dict__.setdefault("_minutes_csr", {})
        if key not in cache:
            speed = (
                np.full(self.n_edges, speed_cap_kmh)
                if self.edge_speed_kmh is None
                else np.minimum(self.edge_speed_kmh, speed_cap_kmh)
            )
            cache[key] = self._csr(self.edge_km / speed * 60.0, reverse=key[1])
        return cache[key]

    @cached_property
    def search_rank(self) -> np.ndarray:
        """Position of each node in a Z-order (Morton) layout of its coordinates. Bulk searches
        run on the graph renumbered this way: nodes near each other sit near each other in
        memory, which makes scipy's Dijkstra ~15% faster on the national graph."""
        bits = 16
        scale = float(2**bits - 1)

        def grid(x: np.ndarray) -> np.ndarray:
            span = float(x.max() - x.min()) or 1.0
            return ((x - x.min()) / span * scale).astype(np.uint64)

        x, y = grid(self.lon), grid(self.lat)
        code = np.zeros(len(x), dtype=np.uint64)
        one = np.uint64(1)
        for b in range(bits):
            code |= ((x >> np.uint64(b)) & one) << np.uint64(2 * b)
            code |= ((y >> np.uint64(b)) & one) << np.uint64(2 * b + 1)
        order = np.argsort(code, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        rank.setflags(write=False)
        return rank

    def search_csr(self, speed_cap_kmh: float | None, *, reverse: bool) -> csr_matrix:
        """The CSR used by bulk searches, numbered by :attr:`search_rank`: km weights, or
        minutes at min(edge speed, ``speed_cap_kmh``)."""
        key = (speed_cap_kmh, reverse and self.directed)
        cache: dict[tuple[float | None, bool], csr_matrix] = self.__dict__.setdefault(
            "_search_csr", {}
        )
        if key not in cache:
            if speed_cap_kmh is None:
                weight = self.edge_km
            else:
                speed = (
                    np.full(self.n_edges, speed_cap_kmh)
                    if self.edge_speed_kmh is None
                    else np.minimum(self.edge_speed_kmh, speed_cap_kmh)
                )
                weight = self.edge_km / speed * 60.0
            cache[key] = self._csr(weight, reverse=key[1], ordered=True)
        return cache[key]

    @cached_property
    def min_length_ratio(self) -> float:
        """Smallest edge length / great-circle length between its ends (<= 1 when lengths are
        rounded): road km >= great-circle km * this, the bound that keeps prefilters exact."""
        la1, lo1 = np.radians(self.lat[self.edge_u]), np.radians(self.lon[self.edge_u])
        la2, lo2 = np.radians(self.lat[self.edge_v]), np.radians(self.lon[self.edge_v])
        h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
        gc = 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
        mask = gc > 0
        return float(min(1.0, (self.edge_km[mask] / gc[mask]).min())) if mask.any() else 1.0

    def to_networkx(self) -> Any:
        """The graph as a networkx ``Graph`` (``DiGraph`` if directed): node attributes ``lat``,
        ``lon``, ``component``; edge attributes ``length_km`` (and ``speed_kmh``). Parallel edges
        keep the shortest, as in the sparse form."""
        import networkx as nx

        g = nx.DiGraph() if self.directed else nx.Graph()
        g.add_nodes_from(
            (i, {"lat": la, "lon": lo, "component": c})
            for i, (la, lo, c) in enumerate(
                zip(self.lat.tolist(), self.lon.tolist(), self.component.tolist(), strict=True)
            )
        )
        speeds = self.edge_speed_kmh.tolist() if self.edge_speed_kmh is not None else None
        # Longest first so that the shortest parallel edge is written last and kept.
        order = np.argsort(-self.edge_km, kind="stable")
        u, v, km = self.edge_u.tolist(), self.edge_v.tolist(), self.edge_km.tolist()
        for i in order.tolist():
            attrs = {"length_km": km[i]}
            if speeds is not None:
                attrs["speed_kmh"] = speeds[i]
            g.add_edge(u[i], v[i], **attrs)
        return g


# ----------------------------------------------------------------------------- reading


def _graph_files(path: Path) -> tuple[Path, Path, dict[str, Any]]:
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    if not path.exists():
        raise ValueError(f"road graph {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"road graph {str(path)!r} is not a directory (nor a {MANIFEST})")
    manifest_path = path / MANIFEST
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"road graph manifest {str(manifest_path)!r} is unreadable: {exc}"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"{str(manifest_path)!r} is not a {FORMAT_NAME} manifest")
        nodes = path / str(manifest.get("nodes", "nodes.csv.gz"))
        edges = path / str(manifest.get("edges", "edges.csv.gz"))
    else:
        manifest = {"directed": False, "name": "china-highways"}
        nodes, edges = path / NATIONAL_NODES, path / NATIONAL_EDGES
    for f in (nodes, edges):
        if not f.is_file():
            raise ValueError(f"road graph file {str(f)!r} is missing")
    return nodes, edges, manifest


def _read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """Columns of a (gzip) CSV of plain numbers / booleans, as string arrays, numpy-only."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            header = f.readline().strip().split(",")
            body = f.read()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"road graph file {str(path)!r} is unreadable: {exc}") from None
    if not header or header == [""]:
        raise ValueError(f"road graph file {str(path)!r} is empty")
    body = body.strip()
    if not body:
        return {h: np.empty(0, dtype=str) for h in header}
    tokens = np.array(body.replace("\r", "").replace("\n", ",").split(","))
    if len(tokens) % len(header):
        raise ValueError(
            f"road graph file {str(path)!r}: rows do not all have {len(header)} columns"
        )
    table = tokens.reshape(-1, len(header))
    return {h: table[:, i] for i, h in enumerate(header)}


def _numeric(cols: dict[str, np.ndarray], name: str, dtype: Any, path: Path) -> np.ndarray:
    if name not in cols:
        raise ValueError(f"road graph file {str(path)!r} has no column {name!r}")
    try:
        return cols[name].astype(dtype)
    except ValueError as exc:
        raise ValueError(f"road graph file {str(path)!r}, column {name!r}: {exc}") from None


def _parse(nodes: Path, edges: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    nc = _read_csv_columns(nodes)
    node_id = _numeric(nc, "node_id", np.int64, nodes)
    if not np.array_equal(node_id, np.arange(len(node_id))):
        raise ValueError(f"road graph file {str(nodes)!r}: node_id must be 0..n-1 in file order")
    out: dict[str, np.ndarray] = {
        "lat": _numeric(nc, "lat", np.float64, nodes),
        "lon": _numeric(nc, "lon", np.float64, nodes),
    }
    if "component" in nc:
        out["component"] = _numeric(nc, "component", np.int32, nodes)
    ec = _read_csv_columns(edges)
    out["edge_u"] = _numeric(ec, "u", np.int32, edges)
    out["edge_v"] = _numeric(ec, "v", np.int32, edges)
    out["edge_km"] = _numeric(ec, "length_km", np.float64, edges)
    if "speed_kmh" in ec:
        out["edge_speed_kmh"] = _numeric(ec, "speed_kmh", np.float64, edges)
    out["directed"] = np.array(bool(manifest.get("directed", False)))
    out["name"] = np.array(str(manifest.get("name", nodes.parent.name)))
    return out


def _cache_key(files: tuple[Path, ...]) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _to_graph(arrays: dict[str, np.ndarray]) -> RoadGraph:
    return RoadGraph(
        lat=arrays["lat"],
        lon=arrays["lon"],
        edge_u=arrays["edge_u"],
        edge_v=arrays["edge_v"],
        edge_km=arrays["edge_km"],
        edge_speed_kmh=arrays.get("edge_speed_kmh"),
        directed=bool(arrays["directed"]),
        name=str(arrays["name"]),
        component=arrays.get("component", np.empty(0, dtype=np.int32)),
    )


def load_graph(path: str | Path | None = None, *, cache_dir: str | Path | None = None) -> RoadGraph:
    """Read a graph directory (default: the vendored national graph); ``ValueError`` if it is
    missing or malformed. With ``cache_dir`` the parsed arrays come from / go to an npz there;
    without it the files are parsed every time and nothing is written."""
    nodes, edges, manifest = _graph_files(Path(path) if path is not None else national_graph_dir())
    files = (nodes, edges) + (
        (nodes.parent / MANIFEST,) if (nodes.parent / MANIFEST).exists() else ()
    )
    cached: Path | None = None
    if cache_dir is not None:
        cached = Path(cache_dir).expanduser() / f"graph-{_cache_key(files)}.npz"
        if cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                return _to_graph(arrays)
            except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
                logger.warning("ignoring unreadable graph cache %s: %s", cached, exc)
    arrays = _parse(nodes, edges, manifest)
    graph = _to_graph(arrays)  # validates before anything is cached
    if cached is not None:
        arrays["component"] = graph.component
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp.npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, cached)
        except OSError as exc:
            logger.info("road graph cache not written (%s)", exc)
    return graph


def write_graph(
    graph: RoadGraph,
    out_dir: str | Path,
    *,
    extra: dict[str, Any] | None = None,
    node_columns: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``graph`` in the directory format :func:`load_graph` reads (with a manifest)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra_cols = node_columns or {}
    with gzip.open(out / "nodes.csv.gz", "wt", encoding="utf-8", compresslevel=6) as f:
        f.write(",".join(["node_id", "lat", "lon", "component", *extra_cols]) + "\n")
        cols = [
            graph.lat.tolist(),
            graph.lon.tolist(),
            graph.component.tolist(),
            *(c.tolist() for c in extra_cols.values()),
        ]
        f.writelines(
            ",".join(
                [str(i), *(repr(c[i]) if isinstance(c[i], float) else str(c[i]) for c in cols)]
            )
            + "\n"
            for i in range(graph.n_nodes)
        )
    with gzip.open(out / "edges.csv.gz", "wt", encoding="utf-8", compresslevel=6) as f:
        has_speed = graph.edge_speed_kmh is not None
        f.write("u,v,length_km" + (",speed_kmh" if has_speed else "") + "\n")
        u, v, km = graph.edge_u.tolist(), graph.edge_v.tolist(), graph.edge_km.tolist()
        sp = graph.edge_speed_kmh.tolist() if graph.edge_speed_kmh is not None else None
        f.writelines(
            f"{u[i]},{v[i]},{km[i]!r}" + (f",{sp[i]!r}" if sp is not None else "") + "\n"
            for i in range(graph.n_edges)
        )
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": graph.name,
        "directed": graph.directed,
        "nodes": "nodes.csv.gz",
        "edges": "edges.csv.gz",
        "n_nodes": graph.n_nodes,
        "n_edges": graph.n_edges,
        **(extra or {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return out
