"""Move-up suggestions: where idle vans should go to cover holes left by busy ones.

Production only suggests; a dispatcher confirms and moves the van (a van's base is a planning
decision with crews behind it). The suggestion is the simulation's move-up
(:func:`simulations.move_up.plan_move_ups`, MEXCLP-style) on the live state:

- demand: the county seats of the provinces the network serves, population-weighted (the
  simulation's ``county_seats`` points);
- a station covers a point when its vans reach it within ``promise_minutes`` (the travel
  provider, within the station's largest van radius); computed once per process and network;
- idle vans: free (no active assignment, available or returning) and on shift; a station's
  based vans: those on shift; ``q`` = the share of on-shift vans that are busy (0.05-0.95);
- station-to-station km: great-circle x the median detour of the coverage pairs;
- a van a dispatcher moved (:func:`confirm_move_up`: its position is another station's,
  :mod:`api.dispatching.posts`) is idle at that station, stays based at its own, and is not
  suggested for a second move.

:func:`confirm_move_up` is the dispatcher's confirmation: the van's position becomes the target
station, logged as ``van_moved_up``; moving it to its own station brings it home. Until it
takes a job the van is posted at the target station: the dispatch cycle, the candidate list
and manual assignments time it from there and measure its service radius from there, as the
simulation does (:mod:`api.dispatching.posts`). After a job its radius is its home station's
again.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.dispatching import queries as q
from api.dispatching.cycle import LOCAL_TZ
from api.dispatching.posts import posted_station, posted_stations
from api.events import add_event
from api.exceptions import Conflict, NotFound
from api.requests.queries import active_assignment, queued_assignment
from fleet import GeoPoint, is_on_shift
from routing import TravelTimeProvider
from simulations.after_job import great_circle_km
from simulations.move_up import expected_coverage, plan_move_ups
from simulations.tables import county_seat_rows


@dataclass(frozen=True)
class MoveUpSuggestion:
    van_id: str
    from_station_id: str
    to_station_id: str
    km: float
    expected_coverage_gain: float


@dataclass(frozen=True)
class MoveUpPlan:
    busy_share: float
    expected_coverage: float
    """Expected share of demand reached within the promise now (MEXCLP)."""
    expected_coverage_all_idle: float
    """The same with every on-shift van idle at its station."""
    expected_coverage_after: float
    """The same after the suggested moves."""
    suggestions: tuple[MoveUpSuggestion, ...]


@dataclass(frozen=True)
class MoveUpConfirmed:
    van_id: str
    home_station_id: str
    from_station_id: str
    to_station_id: str
    km: float | None
    lat: float
    lon: float


@dataclass(frozen=True, eq=False)
class _Coverage:
    covers: np.ndarray
    demand: np.ndarray
    station_km: np.ndarray


_cache: dict[tuple[object, ...], _Coverage] = {}
_lock = threading.Lock()


def _coverage(
    stations: list[m.Station], radius_km: np.ndarray, provider: TravelTimeProvider, promise: float
) -> _Coverage:
    key = (
        tuple((s.id, s.lat, s.lon) for s in stations),
        radius_km.tobytes(),
        id(provider),
        promise,
    )
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        provinces = {s.province_adcode for s in stations}
        rows = [r for r in county_seat_rows() if r[3] in provinces]
        pts = np.array([(r[0], r[1]) for r in rows], dtype=float).reshape(-1, 2)
        demand = np.array([r[2] for r in rows], dtype=float)
        st = np.array([(s.lat, s.lon) for s in stations], dtype=float).reshape(-1, 2)
        live = np.nonzero(radius_km > 0)[0]
        covers = np.zeros((len(stations), len(pts)), dtype=bool)
        detour = 1.3
        if len(live) and len(pts):
            pairs = provider.within(st[live], pts, radius_km[live], "rescue_van")
            src = live[np.asarray(pairs.source, dtype=np.int64)]
            tgt = np.asarray(pairs.target, dtype=np.int64)
            ok = np.asarray(pairs.minutes, dtype=float) <= promise
            covers[src[ok], tgt[ok]] = True
            gc = great_circle_km(st[src, 0], st[src, 1], pts[tgt, 0], pts[tgt, 1])
            far = gc > 5.0
            if far.any():
                detour = float(np.median(np.asarray(pairs.km, dtype=float)[far] / gc[far]))
        station_km = detour * great_circle_km(
            st[:, 0][:, None], st[:, 1][:, None], st[:, 0][None, :], st[:, 1][None, :]
        )
        out = _Coverage(covers, demand / max(float(demand.sum()), 1e-12), station_km)
        _cache[key] = out
        return out


def suggest_move_ups(
    *,
    db_session: Session,
    provider: TravelTimeProvider,
    now: dt.datetime,
    promise_minutes: float,
    respect_shifts: bool,
    max_moves: int,
    max_move_km: float,
    min_gain: float = 0.0005,
) -> MoveUpPlan:
    """The suggested moves for the network as it is now (module docstring); nothing changes."""
    stations = list(db_session.scalars(select(m.Station).order_by(m.Station.id)))
    index = {s.id: i for i, s in enumerate(stations)}
    vans = list(db_session.scalars(select(m.Van).order_by(m.Van.id)))
    radius = np.zeros(len(stations))
    for v in vans:
        radius[index[v.station_id]] = max(radius[index[v.station_id]], v.service_radius_km)
    cov = _coverage(stations, radius, provider, promise_minutes)
    local = now.astimezone(LOCAL_TZ)
    hour = local.hour + local.minute / 60.0
    free_rows = q.free_van_rows(db_session)
    free = {v.id for v, _ in free_rows}
    posted = posted_stations(db_session, free_rows)
    n = len(stations)
    based = np.zeros(n, dtype=np.int64)
    idle = np.zeros(n, dtype=np.int64)
    movable = np.zeros(n, dtype=np.int64)
    idle_vans: dict[int, list[str]] = {}
    for v in vans:
        s = stations[index[v.station_id]]
        if respect_shifts and not is_on_shift(s.open_hour, s.close_hour, hour):
            continue
        i = index[v.station_id]
        based[i] += 1
        if v.id in free:
            post = posted.get(v.id)
            at = None if post is None else index[post.id]
            idle[i if at is None else at] += 1
            if at is None:
                movable[i] += 1
                idle_vans.setdefault(i, []).append(v.id)
    on = int(based.sum())
    busy = 1.0 - float(idle.sum()) / on if on else 0.0
    qb = float(np.clip(busy, 0.05, 0.95))
    moves = []
    if on and (idle < based).any():
        moves = plan_move_ups(
            covers=cov.covers, demand=cov.demand, idle=idle, based=based,
            station_km=cov.station_km, busy_probability=qb, max_moves=max_moves,
            max_move_km=max_move_km, min_gain=min_gain, movable=movable,
        )  # fmt: skip
    after = idle.copy()
    suggestions = []
    for mv in moves:
        after[mv.from_station] -= 1
        after[mv.to_station] += 1
        suggestions.append(
            MoveUpSuggestion(
                van_id=idle_vans[mv.from_station].pop(0),
                from_station_id=stations[mv.from_station].id,
                to_station_id=stations[mv.to_station].id,
                km=round(mv.km, 1),
                expected_coverage_gain=round(mv.gain, 6),
            )
        )
    return MoveUpPlan(
        busy_share=round(busy, 4),
        expected_coverage=round(expected_coverage(cov.covers, cov.demand, idle, qb), 6),
        expected_coverage_all_idle=round(expected_coverage(cov.covers, cov.demand, based, qb), 6),
        expected_coverage_after=round(expected_coverage(cov.covers, cov.demand, after, qb), 6),
        suggestions=tuple(suggestions),
    )


def confirm_move_up(
    *,
    db_session: Session,
    van_id: str,
    to_station_id: str,
    actor: str,
    provider: TravelTimeProvider,
    now: dt.datetime,
) -> MoveUpConfirmed:
    """A dispatcher confirms a move-up: ``van_id`` (free: no job, available or returning)
    goes to ``to_station_id``; its position becomes that station's, so the next cycle times it
    from there. Logs ``van_moved_up`` (home, from and to station, road km). Raises
    :class:`NotFound` for an unknown van or station, :class:`Conflict` for a busy van or a van
    already there."""
    van = db_session.get(m.Van, van_id, with_for_update={"key_share": True}, populate_existing=True)
    if van is None:
        raise NotFound(f"van {van_id} not found")
    target = db_session.get(m.Station, to_station_id)
    if target is None:
        raise NotFound(f"to_station_id: station {to_station_id} not found")
    job = active_assignment(db_session, van_id=van_id) or queued_assignment(
        db_session, van_id=van_id
    )
    if job is not None:
        raise Conflict(f"van {van_id} is assigned to request {job.request_id}; it cannot move")
    if van.status not in q.FREE_VAN_STATUSES:
        raise Conflict(f"van {van_id} is {van.status}; only a free van can move")
    post = posted_station(db_session, van)
    from_id = van.station_id if post is None else post.id
    if from_id == to_station_id:
        raise Conflict(f"van {van_id} is already at station {to_station_id}")
    source = db_session.get(m.Station, from_id)
    assert source is not None
    leg = provider.leg(
        GeoPoint(source.lat, source.lon), GeoPoint(target.lat, target.lon), "rescue_van"
    )
    km = round(float(leg.km), 1) if leg.reachable else None
    van.lat, van.lon, van.position_updated_at = target.lat, target.lon, now
    add_event(
        db_session, "van_moved_up", van_id=van_id, actor=actor, now=now,
        home_station_id=van.station_id, from_station_id=from_id, to_station_id=to_station_id,
        km=km,
    )  # fmt: skip
    db_session.flush()
    return MoveUpConfirmed(
        van_id, van.station_id, from_id, to_station_id, km, target.lat, target.lon
    )
