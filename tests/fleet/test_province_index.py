"""The intake's province index agrees with fleet.geography.province_at everywhere."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.geography import province_at as reference
from fleet.geography import province_outlines_geojson
from fleet.province_index import province_at


def test_known_points() -> None:
    """Jinan is in Shandong, Chengdu in Sichuan, the Pacific and non-finite input nowhere."""
    assert province_at(36.651, 117.120) == "370000"
    assert province_at(30.657, 104.066) == "510000"
    assert province_at(30.0, 150.0) is None
    assert province_at(float("nan"), 117.0) is None


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(min_value=15.0, max_value=56.0, allow_nan=False),
    lon=st.floats(min_value=72.0, max_value=137.0, allow_nan=False),
)
def test_agrees_with_fleet_geography(lat: float, lon: float) -> None:
    """Same adcode (or None) as the reference ray test over all rings, anywhere in and
    around China's outline."""
    assert province_at(lat, lon) == reference(lat, lon)


def test_agrees_on_outline_vertices_and_band_edges() -> None:
    """Points on outline vertices (edge cases of the ray test) and on band boundaries
    (multiples of 0.05 degrees) get the reference answer too."""
    points = []
    for feature in province_outlines_geojson()["features"][:40]:
        geom = feature["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        ring = polygons[0][0]
        points += [(lat, lon) for lon, lat in ring[:: max(1, len(ring) // 10)]]
    points += [(20.0 + 0.05 * k, 100.0 + 0.37 * k) for k in range(300)]
    assert [province_at(la, lo) for la, lo in points] == [reference(la, lo) for la, lo in points]


def test_remembered_clean_cells_answer_every_point_of_the_cell() -> None:
    """After a first query has remembered a cell that no outline enters, other points of the
    same cell (corners and middle included) still get the reference answer; cells an
    outline crosses are never remembered."""
    from fleet.province_index import BAND_DEG, province_index

    index = province_index()
    index.clean_cells.clear()
    points = []
    for lat in (29.2, 31.55, 34.05, 36.65, 39.9, 41.3):
        for lon in (104.1, 111.75, 117.1, 121.45, 126.6):
            base_lat = index.lat0 + math.floor((lat - index.lat0) / BAND_DEG) * BAND_DEG
            base_lon = math.floor(lon / BAND_DEG) * BAND_DEG
            points += [
                (base_lat + f_lat * BAND_DEG, base_lon + f_lon * BAND_DEG)
                for f_lat in (0.5, 0.0, 0.999999, 0.25)
                for f_lon in (0.5, 0.0, 0.999999, 0.75)
            ]
    assert [province_at(la, lo) for la, lo in points] == [reference(la, lo) for la, lo in points]
    assert index.clean_cells  # most of these cells lie inside one province
    for (k, col), answer in index.clean_cells.items():
        band = index.bands[k]
        west, east = col * BAND_DEG, (col + 1) * BAND_DEG
        assert not ((band.x_lo <= east) & (band.x_hi >= west)).any()
        assert answer == reference(index.lat0 + (k + 0.5) * BAND_DEG, (col + 0.5) * BAND_DEG)
