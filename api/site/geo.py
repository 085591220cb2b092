"""A small version of the vendored province outlines for the console's map (no tile server)."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from fleet.geography import (
    county_seats,
    prefecture_seats,
    province_outlines_geojson,
    units_by_adcode,
)


def _simplify(ring: list[list[float]], tolerance: float) -> list[list[float]]:
    """Keep a vertex when it is at least ``tolerance`` degrees from the last one kept; rounded
    to 0.01 degrees (about 1 km)."""
    out: list[list[float]] = []
    for lon, lat in ring:
        if not out or math.hypot(lon - out[-1][0], lat - out[-1][1]) >= tolerance:
            out.append([round(lon, 2), round(lat, 2)])
    if len(out) >= 3 and out[0] != out[-1]:
        out.append(out[0])
    return out


@cache
def simplified_provinces(tolerance: float = 0.08) -> dict[str, Any]:
    """GeoJSON FeatureCollection of province (multi)polygons with decimated rings; rings that
    shrink below 4 vertices (tiny islands) are dropped, but every unit keeps at least one."""
    features = []
    for feature in province_outlines_geojson()["features"]:
        geom = feature["geometry"]
        if geom["type"] not in ("Polygon", "MultiPolygon"):
            continue
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        kept = []
        for polygon in polygons:
            rings = [_simplify(ring, tolerance) for ring in polygon]
            rings = [r for r in rings if len(r) >= 4]
            if rings:
                kept.append(rings)
        if not kept:  # a small unit (Macau): keep its largest ring at full detail, rounded
            ring = max((poly[0] for poly in polygons), key=len)
            kept = [[_simplify(ring, 0.0)]]
        props = feature.get("properties", {})
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "adcode": (props.get("gb") or "")[3:],
                    "name": props.get("name", ""),
                },
                "geometry": {"type": "MultiPolygon", "coordinates": kept},
            }
        )
    return {"type": "FeatureCollection", "features": features}


@cache
def county_places() -> list[list[Any]]:
    """``[lat, lon, name, prefecture name]`` of every mainland county and prefecture seat,
    coordinates rounded to 0.001 degrees (about 100 m)."""
    units = units_by_adcode()
    out: list[list[Any]] = []
    for u in (*prefecture_seats(), *county_seats()):
        if u.lat is None or u.lon is None:
            continue
        prefecture = units.get(u.prefecture_adcode)
        out.append(
            [round(u.lat, 3), round(u.lon, 3), u.name, prefecture.name if prefecture else ""]
        )
    return out
