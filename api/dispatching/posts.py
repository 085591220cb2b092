"""Where a free van serves from: its home station, or the station a dispatcher moved it to.

A confirmed move-up (:func:`api.dispatching.move_ups.confirm_move_up`) puts a free van's
position at another station. Until the van takes a job or moves again it is *posted* there,
and its service radius is measured from that station: a move-up exists to cover the target
station's area, and the simulation does the same (``simulations.engine``: a moved van's arcs
come from the station it was moved to). The dispatch cycle (:mod:`api.dispatching.cycle`),
the candidate list (:mod:`api.candidates.service`) and a manual assignment
(:func:`api.requests.service.assign_van`) all read it from :func:`posted_stations`. The van's
crew, shift, region and workshop stay its home station's. A van with a job is never posted
(the callers pass free vans only): during and after a job its radius is its home station's
again, as the simulation sends a moved van home after its job.

A van is posted at station S when its last position is within :data:`POSTED_WITHIN_KM` of S
and not within that of its own station.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.spatial import cKDTree
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from routing.snap import unit_vectors
from simulations.after_job import EARTH_RADIUS_KM, great_circle_km

POSTED_WITHIN_KM = 0.5
"""A free van whose last position is this close to another station is posted there."""


def posted_stations(
    db_session: Session, vans: Iterable[tuple[m.Van, m.Station]]
) -> dict[str, m.Station]:
    """Van id -> the station the van is posted at (module docstring), for those of ``vans``
    (each with its home station; free vans) that are. The stations are read only when some
    van's last position is away from its home station."""
    placed = [(van, home) for van, home in vans if van.lat is not None and van.lon is not None]
    if not placed:
        return {}
    ll = np.array([(v.lat, v.lon, h.lat, h.lon) for v, h in placed], dtype=float).reshape(-1, 4)
    from_home = great_circle_km(ll[:, 0], ll[:, 1], ll[:, 2], ll[:, 3])
    away = [placed[i] for i in np.flatnonzero(from_home > POSTED_WITHIN_KM).tolist()]
    if not away:
        return {}
    # three columns, not ORM objects: most cycles find no van posted anywhere
    rows = db_session.execute(
        select(m.Station.id, m.Station.lat, m.Station.lon).order_by(m.Station.id)
    ).all()
    if not rows:
        return {}
    station_ids = [row[0] for row in rows]
    st = np.array([(row[1], row[2]) for row in rows], dtype=float)
    pos = np.array([(v.lat, v.lon) for v, _ in away], dtype=float)
    tree = cKDTree(unit_vectors(st[:, 0], st[:, 1]))
    chord = 2.0 * np.sin(POSTED_WITHIN_KM / (2.0 * EARTH_RADIUS_KM))
    _, nearest = tree.query(
        unit_vectors(pos[:, 0], pos[:, 1]), k=1, distance_upper_bound=chord * (1 + 1e-9)
    )
    out: dict[str, m.Station] = {}
    for (van, _), i in zip(away, np.asarray(nearest).tolist(), strict=True):
        if i < len(station_ids) and station_ids[i] != van.station_id:
            station = db_session.get(m.Station, station_ids[i])
            if station is not None:
                out[van.id] = station
    return out


def posted_station(db_session: Session, van: m.Van) -> m.Station | None:
    """The station ``van`` (free) is posted at, else ``None`` (at home, or anywhere else)."""
    home = db_session.get(m.Station, van.station_id)
    if home is None:
        return None
    return posted_stations(db_session, [(van, home)]).get(van.id)
