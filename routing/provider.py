"""The contract between routing and the rest of the system, and the great-circle engine.

``TravelTimeProvider`` is the one interface that dispatch, simulations and the API use to ask
"how far, how long". Engines: :class:`GreatCircleProvider` (here: a prefilter and the fallback,
no data needed) and the road-graph engine in :mod:`routing.graph` (the national highway graph or
an imported OSM extract).

Conventions, for every engine:

- distances in km, times in minutes, as float64 numpy arrays;
- ``math.inf`` (``numpy.inf``) means unreachable (other road component, off the network);
  never a made-up number;
- points are :class:`fleet.model.GeoPoint`-like objects with ``lat`` / ``lon`` or an (n, 2)
  array of (lat, lon); invalid coordinates raise ``ValueError`` naming the value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from geopy.distance import EARTH_RADIUS, great_circle

from routing.points import Points, as_latlon_array


@dataclass(frozen=True, slots=True)
class TravelProfile:
    """How a kind of vehicle moves: speed on the network and on the leg off it."""

    name: str
    speed_kmh: float
    """Average speed on the road graph (the data has no road classes)."""
    off_network_speed_kmh: float = 30.0
    """Speed from a point to its snapped graph node (local roads, yards, hard shoulder)."""
    off_network_circuity: float = 1.3
    """Local road km per straight-line km on the off-network leg."""

    def __post_init__(self) -> None:
        for field in ("speed_kmh", "off_network_speed_kmh", "off_network_circuity"):
            value = getattr(self, field)
            if not value > 0 or math.isinf(value):
                raise ValueError(f"profile {self.name}: {field} must be > 0, got {value!r}")


PROFILES: dict[str, TravelProfile] = {
    # Rescue service van: light vehicle on expressways, blue lights not assumed.
    "rescue_van": TravelProfile("rescue_van", speed_kmh=80.0),
    # Empty partner truck (tractor or box truck) driving to the breakdown.
    "empty_truck": TravelProfile("empty_truck", speed_kmh=70.0),
    # Loaded heavy truck (49 t combination; China limits trucks to 100 km/h on expressways,
    # average including grades and stops is far lower).
    "loaded_truck": TravelProfile("loaded_truck", speed_kmh=60.0, off_network_speed_kmh=25.0),
    # Wrecker towing a heavy vehicle.
    "towing": TravelProfile("towing", speed_kmh=50.0, off_network_speed_kmh=20.0),
}
DEFAULT_PROFILE = "rescue_van"


def get_profile(profile: str | TravelProfile) -> TravelProfile:
    if isinstance(profile, TravelProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown travel profile {profile!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None


@dataclass(frozen=True, slots=True)
class Leg:
    km: float
    minutes: float

    @property
    def reachable(self) -> bool:
        return math.isfinite(self.km)


UNREACHABLE = Leg(math.inf, math.inf)


@dataclass(frozen=True, slots=True)
class PairSet:
    """Sparse (source, target) pairs found by a bounded search, with their km and minutes."""

    source: np.ndarray  # int64 indices into the sources
    target: np.ndarray  # int64 indices into the targets
    km: np.ndarray
    minutes: np.ndarray

    def __len__(self) -> int:
        return len(self.source)

    def as_set(self) -> set[tuple[int, int]]:
        return set(zip(self.source.tolist(), self.target.tolist(), strict=True))


@runtime_checkable
class TravelTimeProvider(Protocol):
    """How far and how long between points, for one travel profile at a time."""

    name: str

    def leg(
        self, origin: Points, destination: Points, profile: str | TravelProfile = DEFAULT_PROFILE
    ) -> Leg:
        """One origin to one destination."""
        ...

    def matrix(
        self,
        origins: Points,
        destinations: Points,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(km, minutes), each of shape (len(origins), len(destinations)); inf = unreachable."""
        ...

    def within(
        self,
        sources: Points,
        targets: Points,
        max_km: float | Sequence[float] | np.ndarray,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> PairSet:
        """Every (source, target) with km(source -> target) <= max_km[source] (a scalar applies to
        all sources): e.g. sources = van home stations with their service radii, targets = the
        breakdowns. Exactly the pairs a full matrix would find, found without computing it."""
        ...


@runtime_checkable
class BallKeepingProvider(Protocol):
    """An engine that can keep the search balls around fixed places (service stations) so
    that later ``within`` calls from them are lookups (see ``RoadGraphProvider.keep_balls``)."""

    def keep_balls(self, points: Points, radius_km: float) -> int:
        """Keep the balls of ``radius_km`` around ``points``; the number computed now."""
        ...


@runtime_checkable
class PairLegProvider(Protocol):
    """An engine that times given (source, target) pairs without a full matrix (see
    ``RoadGraphProvider.pair_legs``): the pairs' own numbers, exactly as ``matrix`` has them."""

    def pair_legs(
        self,
        sources: Points,
        targets: Points,
        pair_source: Sequence[int] | np.ndarray,
        pair_target: Sequence[int] | np.ndarray,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(km, minutes) of ``sources[pair_source[k]] -> targets[pair_target[k]]``; inf =
        unreachable."""
        ...


@dataclass(frozen=True, slots=True)
class Arrivals:
    """For each target, the source that reaches it first and when (see
    :func:`earliest_arrival`); ``source`` -1 and ``minutes`` inf where none can."""

    source: np.ndarray
    minutes: np.ndarray


@runtime_checkable
class EarliestArrivalProvider(Protocol):
    """An engine that answers :func:`earliest_arrival` itself (e.g. by one multi-source search
    instead of one search per target)."""

    def earliest_arrival(
        self,
        sources: Points,
        start_minutes: np.ndarray,
        targets: Points,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> Arrivals: ...


EARLIEST_ARRIVAL_TARGETS_PER_MATRIX = 256
"""Targets per ``matrix`` call in the generic :func:`earliest_arrival` (bounded memory)."""


def earliest_arrival(
    provider: TravelTimeProvider,
    sources: Points,
    start_minutes: Sequence[float] | np.ndarray,
    targets: Points,
    profile: str | TravelProfile = DEFAULT_PROFILE,
) -> Arrivals:
    """For each target, the source with the earliest arrival ``start_minutes[i]`` + travel
    minutes(source i -> target) over *all* sources, and that arrival; ties go to the lowest
    source index. Engines that implement :class:`EarliestArrivalProvider` answer it in bulk;
    for the others it is their ``matrix`` in blocks of targets."""
    src = as_latlon_array(sources)
    start = np.asarray(start_minutes, dtype=float).reshape(-1)
    if len(start) != len(src):
        raise ValueError(f"start_minutes has {len(start)} entries, sources has {len(src)}")
    if np.isnan(start).any() or (start < 0).any():
        bad = start[np.isnan(start) | (start < 0)][0]
        raise ValueError(f"start_minutes must be >= 0, got {float(bad)!r}")
    dst = as_latlon_array(targets)
    if isinstance(provider, EarliestArrivalProvider):
        return provider.earliest_arrival(src, start, dst, profile)
    winner = np.full(len(dst), -1, dtype=np.int64)
    best = np.full(len(dst), np.inf)
    if len(src) == 0:
        return Arrivals(winner, best)
    step = EARLIEST_ARRIVAL_TARGETS_PER_MATRIX
    for lo in range(0, len(dst), step):
        _, minutes = provider.matrix(src, dst[lo : lo + step], profile)
        arrival = start[:, None] + minutes
        first = np.argmin(arrival, axis=0)  # the lowest index among equals
        value = arrival[first, np.arange(arrival.shape[1])]
        ok = np.isfinite(value)
        winner[lo : lo + step] = np.where(ok, first, -1)
        best[lo : lo + step] = value
    return Arrivals(winner, best)


class GreatCircleProvider:
    """Great-circle distance times a circuity factor: no data, instant, approximate.

    The national road graph's median circuity over prefecture pairs is 1.15 (1.17 under
    150 km), hence the default 1.2 (slightly pessimistic so the prefilter never misses).
    Every point is reachable from every other: use it as a prefilter or as the fallback.
    """

    name = "great-circle"

    def __init__(self, circuity: float = 1.2) -> None:
        if not circuity >= 1.0:
            raise ValueError(f"circuity must be >= 1, got {circuity!r}")
        self.circuity = circuity

    def leg(
        self, origin: Points, destination: Points, profile: str | TravelProfile = DEFAULT_PROFILE
    ) -> Leg:
        a = as_latlon_array(origin)
        b = as_latlon_array(destination)
        if len(a) != 1 or len(b) != 1:
            raise ValueError("leg() takes one origin and one destination")
        km = great_circle(tuple(a[0]), tuple(b[0])).km * self.circuity
        return Leg(km, km / get_profile(profile).speed_kmh * 60.0)

    def matrix(
        self,
        origins: Points,
        destinations: Points,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> tuple[np.ndarray, np.ndarray]:
        km = haversine_km(as_latlon_array(origins), as_latlon_array(destinations)) * self.circuity
        return km, km / get_profile(profile).speed_kmh * 60.0

    def within(
        self,
        sources: Points,
        targets: Points,
        max_km: float | Sequence[float] | np.ndarray,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> PairSet:
        src = as_latlon_array(sources)
        limit = _per_source_limit(max_km, len(src))
        km, minutes = self.matrix(src, targets, profile)
        s, t = np.nonzero(km <= limit[:, None])
        return PairSet(s.astype(np.int64), t.astype(np.int64), km[s, t], minutes[s, t])


def _per_source_limit(max_km: float | Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    limit = np.broadcast_to(np.asarray(max_km, dtype=float), (n,)).copy()
    if np.isnan(limit).any() or (limit < 0).any():
        bad = limit[np.isnan(limit) | (limit < 0)][0]
        raise ValueError(f"max_km must be >= 0, got {float(bad)!r}")
    return limit


def haversine_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle km between every row of ``a`` (n, 2 lat/lon) and every row of ``b`` (m, 2),
    on geopy's mean earth radius (so it agrees with ``geopy.distance.great_circle``)."""
    la1 = np.radians(a[:, 0])[:, None]
    lo1 = np.radians(a[:, 1])[:, None]
    la2 = np.radians(b[:, 0])[None, :]
    lo2 = np.radians(b[:, 1])[None, :]
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    result: np.ndarray = 2 * EARTH_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result
