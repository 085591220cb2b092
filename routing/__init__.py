"""Road routing: the contract (:class:`TravelTimeProvider`) and its engines.

Pure: numpy, scipy, networkx, geopy (and osmium for OSM import). No web or database framework
is imported here.
"""

from routing.graph import RoadGraph, load_graph, national_graph_dir, write_graph
from routing.points import as_latlon_array
from routing.provider import (
    DEFAULT_PROFILE,
    PROFILES,
    UNREACHABLE,
    GreatCircleProvider,
    Leg,
    PairSet,
    TravelProfile,
    TravelTimeProvider,
    get_profile,
    haversine_km,
)
from routing.road import (
    ROAD_GRAPH_ENV,
    Isochrone,
    RoadGraphProvider,
    Route,
    load_road_provider,
)
from routing.snap import DEFAULT_MAX_SNAP_KM, SnapResult

__all__ = [
    "DEFAULT_MAX_SNAP_KM",
    "DEFAULT_PROFILE",
    "PROFILES",
    "ROAD_GRAPH_ENV",
    "UNREACHABLE",
    "GreatCircleProvider",
    "Isochrone",
    "Leg",
    "PairSet",
    "RoadGraph",
    "RoadGraphProvider",
    "Route",
    "SnapResult",
    "TravelProfile",
    "TravelTimeProvider",
    "as_latlon_array",
    "get_profile",
    "haversine_km",
    "load_graph",
    "load_road_provider",
    "national_graph_dir",
    "write_graph",
]
