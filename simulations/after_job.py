"""Where a van's next job starts: ``[dispatch] after_job``.

``return-home`` (the default, and the simulation before this option): a van that leaves a site
empty drives home and its next job starts from home (``free_in`` = minutes to home), a
conservative simplification.

``next-from-site``: while it drives home empty, the van may take a new job from where it is.
Its position on the way is not tracked, so the drive to the new breakdown is bounded from
above by both ways it could go (triangle inequality on the road network):

    min(minutes left to home + home -> breakdown,
        minutes since leaving the site + site -> breakdown)

Site -> breakdown legs are not in the travel tables (those are station -> point only, which
keeps them tractable); they are estimated as great-circle km x the network's detour factor at
the vans' speed, both measured on the run's own station arcs (the median ratios of road km to
great-circle km and of road km to minutes). A van that towed is loaded until home and keeps
``return-home``. The service radius is still measured from the van's home station.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.tables import TravelTables

EARTH_RADIUS_KM = 6371.0088


def great_circle_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Haversine km between paired points (degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


@dataclass(frozen=True, eq=False)
class SiteLegs:
    """Estimated van minutes between two demand points (see the module docstring)."""

    lat: np.ndarray
    lon: np.ndarray
    minutes_per_great_circle_km: float

    @classmethod
    def measure(
        cls, tables: TravelTables, station_lat: np.ndarray, station_lon: np.ndarray
    ) -> SiteLegs:
        """The detour factor and speed of this run's station -> point arcs (arcs shorter than
        5 km great-circle are left out: snapping dominates them)."""
        points = tables.points
        point_of_arc = np.repeat(np.arange(len(points)), np.diff(tables.arc_ptr))
        s = tables.arc_station
        gc = great_circle_km(
            station_lat[s], station_lon[s], points.lat[point_of_arc], points.lon[point_of_arc]
        )
        ok = (gc > 5.0) & (tables.arc_minutes > 0)
        # 60 km/h in a straight line when nothing can be measured
        factor = float(np.median(tables.arc_minutes[ok] / gc[ok])) if ok.any() else 1.0
        return cls(points.lat, points.lon, factor)

    def minutes(self, from_point: int, to_points: np.ndarray) -> np.ndarray:
        """Estimated drive minutes from demand point ``from_point`` to each of ``to_points``."""
        km = great_circle_km(
            np.full(len(to_points), self.lat[from_point]),
            np.full(len(to_points), self.lon[from_point]),
            self.lat[to_points],
            self.lon[to_points],
        )
        return km * self.minutes_per_great_circle_km


def next_from_site_minutes(
    *,
    now: float,
    home_at: float,
    left_site_at: float,
    home_leg_minutes: np.ndarray,
    site_leg_minutes: np.ndarray,
) -> np.ndarray:
    """A van driving home empty: the minutes until it reaches each breakdown, by the better of
    finishing the drive home first or turning round towards the breakdown (both upper
    bounds)."""
    via_home = (home_at - now) + home_leg_minutes
    from_here = (now - left_site_at) + site_leg_minutes
    return np.minimum(via_home, from_here)
