"""Breakdowns on the road network: ``[demand] points = "roads"``.

Trucks break down on the expressways between towns, not in the county seats. The road demand
points are built from the road graph itself, once per scenario:

- every road segment (graph edge) gets a weight = its length (km) x a traffic proxy: the mean
  population of the prefectures its two ends lie in (each end assigned to the nearest
  prefecture seat). ASSUMPTION: no public traffic counts per road exist in the project's data;
  truck traffic grows with the population a road connects, and long roads carry more
  breakdowns in proportion to their length;
- the segments are binned into square cells of ``road_spacing_km`` (an equirectangular grid);
  each cell with road becomes one demand point, at the midpoint of its segment closest to the
  cell's weighted centre (so the point lies on a road), with the cell's total weight. This
  bounds the travel tables: one point per cell, not one per segment;
- ``urban_share`` of the weight stays at the county seats (town traffic, population-weighted
  as in ``points = "county_seats"``), the rest goes to the road points.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from fleet.geography import prefecture_population, prefecture_seats

KM_PER_DEGREE = 111.195


def road_demand_rows(
    lat: np.ndarray,
    lon: np.ndarray,
    edge_u: np.ndarray,
    edge_v: np.ndarray,
    edge_km: np.ndarray,
    *,
    spacing_km: float,
) -> list[tuple[float, float, float, str, str]]:
    """Road demand points of a graph (node ``lat``/``lon``, edges ``u``-``v`` of ``km``): rows
    ``(lat, lon, weight, province adcode, name)`` as :func:`simulations.tables.demand_points`
    uses them (weights unnormalised: km x population proxy)."""
    if not spacing_km > 0:
        raise ValueError(f"road_spacing_km must be > 0, got {spacing_km!r}")
    seats = prefecture_seats()
    pop = prefecture_population()
    median = float(np.median(list(pop.values())))
    seat_lat = np.array([float(s.lat or 0.0) for s in seats])
    seat_lon = np.array([float(s.lon or 0.0) for s in seats])
    seat_pop = np.array([pop.get(s.adcode, median) for s in seats])
    ref_cos = np.cos(np.radians(35.0))
    tree = cKDTree(np.column_stack([seat_lat, seat_lon * ref_cos]))
    _, node_seat = tree.query(np.column_stack([lat, lon * ref_cos]))
    node_seat = np.asarray(node_seat, dtype=np.int64)

    mid_lat = (lat[edge_u] + lat[edge_v]) / 2.0
    mid_lon = (lon[edge_u] + lon[edge_v]) / 2.0
    proxy = (seat_pop[node_seat[edge_u]] + seat_pop[node_seat[edge_v]]) / 2.0
    weight = edge_km * proxy
    keep = weight > 0
    mid_lat, mid_lon, weight = mid_lat[keep], mid_lon[keep], weight[keep]
    edge_seat = node_seat[edge_u[keep]]

    step = spacing_km / KM_PER_DEGREE
    cell_y = np.floor(mid_lat / step).astype(np.int64)
    cell_x = np.floor(mid_lon * ref_cos / step).astype(np.int64)
    _, cell = np.unique(np.column_stack([cell_y, cell_x]), axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    n_cells = int(cell.max()) + 1 if len(cell) else 0
    total = np.bincount(cell, weights=weight, minlength=n_cells)
    centre_lat = np.bincount(cell, weights=weight * mid_lat, minlength=n_cells) / total
    centre_lon = np.bincount(cell, weights=weight * mid_lon, minlength=n_cells) / total
    # the segment midpoint nearest the weighted centre represents the cell
    d2 = (mid_lat - centre_lat[cell]) ** 2 + ((mid_lon - centre_lon[cell]) * ref_cos) ** 2
    order = np.lexsort((d2, cell))
    first = order[np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]] if len(order) else order
    rows = []
    for k, e in enumerate(first.tolist()):
        seat = seats[int(edge_seat[e])]
        rows.append(
            (
                float(mid_lat[e]),
                float(mid_lon[e]),
                float(total[int(cell[e])]),
                seat.province_adcode,
                f"road near {seat.name} #{k}",
            )
        )
    return rows
