"""Road routing: the contract (:class:`TravelTimeProvider`) and its engines.

Pure: numpy, scipy, networkx, geopy (and osmium for OSM import). No web or database framework
is imported here, and nothing reads the environment: the graph directory and the cache
directory are parameters (:class:`RoadGraphSource`), filled from the API's settings.
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
    Isochrone,
    RoadGraphProvider,
    RoadGraphSource,
    Route,
    load_road_provider,
)
from routing.snap import DEFAULT_MAX_SNAP_KM, SnapResult

__all__ = [
    "DEFAULT_MAX_SNAP_KM",
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNREACHABLE",
    "GreatCircleProvider",
    "Isochrone",
    "Leg",
    "PairSet",
    "RoadGraph",
    "RoadGraphProvider",
    "RoadGraphSource",
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
