"""Road routing: the contract (:class:`TravelTimeProvider`) and its engines.

Pure: numpy, scipy, networkx, geopy. No web or database framework is imported here.
"""

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

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNREACHABLE",
    "GreatCircleProvider",
    "Leg",
    "PairSet",
    "TravelProfile",
    "TravelTimeProvider",
    "as_latlon_array",
    "get_profile",
    "haversine_km",
]
