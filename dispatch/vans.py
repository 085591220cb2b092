"""Rescue-van matching: the whole batch of open requests against the available vans, optimally.

Model (see docs/dispatch.md):

- a pair (request, van) is feasible when the breakdown is within the van's service radius (road
  km from ``VanState.home``: its home station, or the station a move-up posted it at), the
  van can handle the vehicle class (``VanCapability.can_handle``, a tow needs a wrecker or
  flatbed), the van is on shift and not busy elsewhere;
- arrival (ETA) = minutes until the van is free + travel minutes from where it will then be;
- objective, lexicographic: maximise the priority-weighted number of requests served, then
  minimise the sum of priority x (ETA + soft penalties); the soft penalties are a preference for
  a tractor's designated station and, when reassignment is allowed, for keeping vans where they
  are already going;
- ``MatchParams(objective="promise")`` puts the customer's number between the two: after the
  served weight, maximise the number of requests reached within the promise (``waited_minutes +
  ETA <= promise_minutes``), then the weighted ETA. The default ``"eta"`` objective can give a
  van to a far request that is already lost while a near one slips past its promise; the
  simulation measured that (docs/simulations.md, "Batch triggers and the promise objective").
  Under it a van not yet free because of work (``VanState.busy``: at a job, or driving home
  from one) is not offered to a request it would reach late: the request waits for the next
  van to become free (the simulation re-batches then, production's cycle runs every few
  seconds) instead of being promised a late van now; a crew's turnout is never busy work;
- solved exactly by :func:`dispatch.assignment.solve_assignment` (OR-Tools min-cost flow) on
  integer costs (minutes scaled to 1/100, coarser if the problem is too large to fit int64).

Vans already en route to a request (``pinned_request_id``) keep it unless the caller passes
``allow_reassignment=True``. A van pinned to a request that is not in the batch is busy.

Partner rescue providers can be extra columns (``match_vans(..., partners=...)``, built by
:func:`dispatch.partner_rescue.build_partner_columns`): a provider column takes up to its free
slots, and a (request, provider) arc costs, in the same priority-weighted minutes,
``max(partner ETA, slack + soft) + cost_cny / cny_per_minute + partner_margin_minutes`` where
``slack`` is the time left to the promise (``promise_minutes - waited_minutes``, >= 0) and
``soft`` the largest soft penalty among the request's own van arcs. An own van that keeps the
promise costs at most ``slack + soft``, so it always wins; an own van late by more than the
partner's cost in minutes (plus the margin) loses to a partner on time; with the ``promise``
objective a late partner counts as late. A request whose partner column wins gets no van: the
caller offers it to that provider (:attr:`VanMatching.partner_assignments`). Without
partners nothing changes.
"""

from __future__ import annotations

import logging
import math
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dispatch.assignment import max_safe_cost, solve_assignment
from dispatch.partner_rescue import PartnerColumns, RescueCandidate
from fleet.model import GeoPoint, RescueVan, VanCapability, VehicleClass
from routing.provider import (
    BallKeepingProvider,
    GreatCircleProvider,
    Leg,
    PairLegProvider,
    TravelTimeProvider,
    earliest_arrival,
)

log = logging.getLogger(__name__)

VAN_PROFILE = "rescue_van"
MATCH_OBJECTIVES = ("eta", "promise")
"""The matching objectives :class:`MatchParams` accepts."""


class UnassignedReason(StrEnum):
    NO_VAN_IN_RADIUS = "no_van_in_radius"
    """No van's service radius covers the breakdown."""
    NO_CAPABLE_VAN = "no_capable_van"
    """Vans cover it, but none can handle the vehicle class (or the tow)."""
    ALL_BUSY = "all_busy"
    """Capable vans cover it, but all are off shift, busy, or taken by higher-priority requests
    (under the ``promise`` objective also: the only capable vans are still busy at a job or
    driving home and would arrive after the promise, so the request waits for a free van)."""
    PARTNER_PREFERRED = "partner_preferred"
    """A free capable van covers it, but the optimum gives it to a partner rescue provider (the
    own vans would be late, or are needed elsewhere): it is offered to that provider."""


@dataclass(frozen=True)
class OpenRequest:
    id: str
    location: GeoPoint
    vehicle_class: VehicleClass
    needs_tow: bool = False
    priority: float = 1.0
    """Weight >= 1 (see :func:`dispatch.triage.priority_for`)."""
    designated_station_id: str | None = None
    waited_minutes: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"request id must be a non-empty string, got {self.id!r}")
        try:
            object.__setattr__(self, "vehicle_class", VehicleClass(self.vehicle_class))
        except ValueError:
            raise ValueError(
                f"request {self.id}: unknown vehicle class {self.vehicle_class!r}; known: "
                f"{', '.join(c.value for c in VehicleClass)}"
            ) from None
        p = self.priority
        if not isinstance(p, int | float) or not math.isfinite(p) or p < 1:
            raise ValueError(f"request {self.id}: priority must be a finite number >= 1, got {p!r}")
        w = self.waited_minutes
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(f"request {self.id}: waited_minutes must be >= 0, got {w!r}")


@dataclass(frozen=True)
class VanState:
    van: RescueVan
    home: GeoPoint
    """The station the van serves from, whose location the service radius is measured from:
    its home station, or the station a move-up moved it to while it waits there (production
    and the simulation alike)."""
    position: GeoPoint | None = None
    """Where the van will be when it is free; ``None`` = at home."""
    free_in_minutes: float = 0.0
    on_shift: bool = True
    busy: bool = False
    """``free_in_minutes`` is work still to finish (the van is at a job, or driving home from
    one), not a crew's turnout (a van idle at its station whose crew needs time to leave, or
    an on-call crew at home). Under the ``promise`` objective a busy van that would reach a
    request late is not offered to it (see :class:`MatchParams` ``objective``)."""
    pinned_request_id: str | None = None
    """The request the van is already en route to."""
    redirect_km: float | None = None
    """A pinned van away from home is offered other breakdowns only within this many road km
    of where it is (re-planning redirects vans to nearby jobs, not across the province; one
    bounded search instead of the exact away-van search). ``None``: no limit."""
    pinned_leg: Leg | None = None
    """The van's current road leg to its pinned job (the live ETA, re-timed from its last
    position), used as that arc's travel instead of searching it again."""

    def __post_init__(self) -> None:
        f = self.free_in_minutes
        if not isinstance(self.busy, bool):
            raise ValueError(f"van {self.van.id}: busy must be true or false, got {self.busy!r}")
        rk = self.redirect_km
        if rk is not None and (not isinstance(rk, int | float) or math.isnan(rk) or rk < 0):
            raise ValueError(f"van {self.van.id}: redirect_km must be >= 0, got {rk!r}")
        if not isinstance(f, int | float) or not math.isfinite(f) or f < 0:
            raise ValueError(f"van {self.van.id}: free_in_minutes must be >= 0, got {f!r}")
        r = self.van.service_radius_km
        if not isinstance(r, int | float) or math.isnan(r) or r <= 0:
            raise ValueError(f"van {self.van.id}: service_radius_km must be > 0, got {r!r}")

    @property
    def id(self) -> str:
        return self.van.id

    @property
    def expected_position(self) -> GeoPoint:
        return self.position if self.position is not None else self.home


@dataclass(frozen=True)
class MatchParams:
    """Tuning of the van matching (loadable from a TOML table)."""

    designated_penalty_minutes: float = 30.0
    """A non-designated van must arrive this much sooner to beat the designated station's."""
    reassignment_penalty_minutes: float = 10.0
    """With ``allow_reassignment``: a change must gain this much to move an en-route van."""
    keep_pinned_factor: float = 2.0
    """With ``allow_reassignment``: leaving a pinned request without a van counts this many
    times its priority, so a van on its way is taken off its job (and the job sent back to
    the queue) only to serve one at least that much more urgent, never for an equal one."""
    time_resolution: int = 100
    """Cost units per minute (1/100 min); lowered automatically if int64 would overflow."""
    priority_resolution: int = 100
    """Priorities are rounded to 1/priority_resolution."""
    objective: str = "eta"
    """``"eta"`` (served weight, then weighted ETA) or ``"promise"`` (served weight, then the
    count reached within ``promise_minutes``, then weighted ETA; a busy van, ``VanState.busy``,
    that would arrive after the promise is not a candidate for that request)."""
    promise_minutes: float = 120.0
    """The promised arrival, from the report (``waited_minutes`` + ETA): counted by the
    ``"promise"`` objective, and the floor of partner columns' cost under either objective."""
    partner_margin_minutes: float = 1.0
    """Partner columns cost this much more than an own van arriving exactly at the promise
    (>= 1, so that the cost scale's rounding never ties them)."""

    def __post_init__(self) -> None:
        if self.objective not in MATCH_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {', '.join(MATCH_OBJECTIVES)}, got {self.objective!r}"
            )
        p = self.promise_minutes
        if not isinstance(p, int | float) or not math.isfinite(p) or p <= 0:
            raise ValueError(f"promise_minutes must be a finite number > 0, got {p!r}")
        pm = self.partner_margin_minutes
        if not isinstance(pm, int | float) or not math.isfinite(pm) or pm < 1:
            raise ValueError(f"partner_margin_minutes must be a finite number >= 1, got {pm!r}")
        for name in ("designated_penalty_minutes", "reassignment_penalty_minutes"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        k = self.keep_pinned_factor
        if not isinstance(k, int | float) or not math.isfinite(k) or not 1 <= k <= 100:
            raise ValueError(f"keep_pinned_factor must be between 1 and 100, got {k!r}")
        for name in ("time_resolution", "priority_resolution"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> MatchParams:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown match parameter(s): {', '.join(sorted(unknown))}")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | Path) -> MatchParams:
        with Path(path).open("rb") as fh:
            return cls.from_mapping(tomllib.load(fh))


def _readonly(a: np.ndarray, dtype: Any) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True).reshape(-1)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class BusyCover:
    """Vans at work that cover an area once free: the station they come back to, their
    capability and their largest service radius. A request that no free van's radius covers
    but such vans do waits for them (``all_busy``, or ``no_capable_van`` when none of them can
    handle it) instead of being told that no van covers it (``no_van_in_radius``, escalated):
    in a storm every van near a breakdown may be busy for a while, and they will be back."""

    home: GeoPoint
    capability: VanCapability
    radius_km: float

    def __post_init__(self) -> None:
        r = self.radius_km
        if not isinstance(r, int | float) or math.isnan(r) or r < 0:
            raise ValueError(f"busy cover at {self.home}: radius_km must be >= 0, got {r!r}")


@dataclass(frozen=True, eq=False)
class VanMatchingProblem:
    """An immutable batch: requests, vans and the sparse arcs (feasible by radius only)."""

    requests: tuple[OpenRequest, ...]
    vans: tuple[VanState, ...]
    arc_request: np.ndarray
    arc_van: np.ndarray
    arc_home_km: np.ndarray
    arc_travel_minutes: np.ndarray
    arc_travel_km: np.ndarray
    busy_cover: tuple[BusyCover, ...] = ()
    """Vans at work whose areas count as covered in the explanations (see
    :class:`BusyCover`); none: only the free vans' arcs count."""

    @classmethod
    def from_arrays(
        cls,
        requests: Sequence[OpenRequest],
        vans: Sequence[VanState],
        arc_request: Any,
        arc_van: Any,
        arc_home_km: Any,
        arc_travel_km: Any,
        arc_travel_minutes: Any,
    ) -> VanMatchingProblem:
        """Validate and freeze. NaN or negative km/minutes raise ``ValueError`` naming the arc's
        request and van; ``inf`` (unreachable) arcs are dropped; an arc beyond the van's radius
        is dropped (the radius is the rule, whoever computed the arcs)."""
        reqs = tuple(requests)
        vs = tuple(vans)
        _check_unique("request", [r.id for r in reqs])
        _check_unique("van", [v.van.id for v in vs])
        ar = np.asarray(arc_request, dtype=np.int64).reshape(-1)
        av = np.asarray(arc_van, dtype=np.int64).reshape(-1)
        names = ("home_km", "travel_km", "travel_minutes")
        given = (arc_home_km, arc_travel_km, arc_travel_minutes)
        cols = [np.asarray(a, dtype=float).reshape(-1) for a in given]
        n = len(ar)
        for name, a in zip(("arc_van", *names), (av, *cols), strict=True):
            if len(a) != n:
                raise ValueError(f"{name} has {len(a)} entries, arc_request has {n}")
        if n:
            if ar.min() < 0 or ar.max() >= len(reqs):
                raise ValueError(f"arc_request index out of range [0, {len(reqs)})")
            if av.min() < 0 or av.max() >= len(vs):
                raise ValueError(f"arc_van index out of range [0, {len(vs)})")
        # one pass over the three columns (a batch is small; the calls were its cost)
        table = np.vstack(cols) if n else np.zeros((3, 0))
        if not (table >= 0).all():  # NaN compares false too
            for name, a in zip(names, cols, strict=True):
                bad = np.nonzero(np.isnan(a) | (a < 0))[0]
                if len(bad):
                    i = int(bad[0])
                    raise ValueError(
                        f"arc {i} (request {reqs[ar[i]].id}, van {vs[av[i]].id}): {name} must "
                        f"be >= 0, got {float(a[i])!r}"
                    )
        radius = np.array([v.van.service_radius_km for v in vs], dtype=float)
        keep = np.isfinite(table).all(axis=0)
        if n:
            keep &= table[0] <= radius[av]
        kept = table[:, keep]
        return cls(
            requests=reqs,
            vans=vs,
            arc_request=_readonly(ar[keep], np.int64),
            arc_van=_readonly(av[keep], np.int64),
            arc_home_km=_readonly(kept[0], float),
            arc_travel_minutes=_readonly(kept[2], float),
            arc_travel_km=_readonly(kept[1], float),
        )

    @property
    def num_arcs(self) -> int:
        return len(self.arc_request)


def _check_unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i!r}")
        seen.add(i)


def _latlon(points: Iterable[GeoPoint]) -> np.ndarray:
    return np.array([(p.lat, p.lon) for p in points], dtype=float).reshape(-1, 2)


def build_van_matching_problem(
    requests: Sequence[OpenRequest],
    vans: Sequence[VanState],
    provider: TravelTimeProvider,
    *,
    busy_cover: Sequence[BusyCover] = (),
) -> VanMatchingProblem:
    """Candidates via ``provider.within`` (home stations with their vans' largest radius ->
    breakdowns, then each van's own radius) and travel times from the vans' expected positions
    (the home leg for vans at home, ``provider.matrix`` for the others). ``busy_cover``: the
    vans at work, for the explanations of requests no free van covers (:class:`BusyCover`)."""
    problem = _build_van_matching_problem(tuple(requests), tuple(vans), provider)
    return replace(problem, busy_cover=tuple(busy_cover)) if busy_cover else problem


def _build_van_matching_problem(
    reqs: tuple[OpenRequest, ...], vs: tuple[VanState, ...], provider: TravelTimeProvider
) -> VanMatchingProblem:
    empty = np.zeros(0)
    if not reqs or not vs:
        return VanMatchingProblem.from_arrays(reqs, vs, empty, empty, empty, empty, empty)
    req_ll = _latlon(r.location for r in reqs)
    homes = _latlon(v.home for v in vs)
    uniq_homes, home_idx = np.unique(homes, axis=0, return_inverse=True)
    home_idx = home_idx.reshape(-1)
    radius = np.array([v.van.service_radius_km for v in vs], dtype=float)
    home_radius = np.zeros(len(uniq_homes))
    np.maximum.at(home_radius, home_idx, radius)
    if isinstance(provider, BallKeepingProvider):
        # stations do not move: their balls are searched once per graph, then looked up
        provider.keep_balls(uniq_homes, float(home_radius.max()))
    pairs = provider.within(uniq_homes, req_ll, home_radius, VAN_PROFILE)

    # Expand home -> request pairs to every van at that home (CSR over vans sorted by home).
    order = np.argsort(home_idx, kind="stable")
    counts = np.bincount(home_idx, minlength=len(uniq_homes))
    starts = np.cumsum(counts) - counts
    c = counts[pairs.source]
    pair_rep = np.repeat(np.arange(len(pairs)), c)
    within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    arc_van = order[starts[pairs.source][pair_rep] + within]
    arc_req = np.asarray(pairs.target)[pair_rep]
    home_km = np.asarray(pairs.km)[pair_rep]
    home_min = np.asarray(pairs.minutes)[pair_rep]
    keep = home_km <= radius[arc_van]
    arc_van, arc_req, home_km, home_min = (
        arc_van[keep],
        arc_req[keep],
        home_km[keep],
        home_min[keep],
    )

    # Pinned pairs are always candidates (the van was sent there before).
    index_of_request = {r.id: i for i, r in enumerate(reqs)}
    pinned = [
        (index_of_request[v.pinned_request_id], j)
        for j, v in enumerate(vs)
        if v.pinned_request_id is not None and v.pinned_request_id in index_of_request
    ]
    missing: list[list[int]] = []
    if pinned:  # one vectorised membership test (a set of every arc costs ~0.1 s at scale)
        pin = np.array(pinned, dtype=np.int64).reshape(-1, 2)
        arc_keys = arc_req.astype(np.int64) * len(vs) + arc_van
        missing = pin[~np.isin(pin[:, 0] * len(vs) + pin[:, 1], arc_keys)].tolist()
    extra_r, extra_v, extra_km, extra_min, extra_bound = [], [], [], [], []
    for ri, j in missing:
        v = vs[j]
        leg = provider.leg(v.home, reqs[ri].location, VAN_PROFILE)
        extra_r.append(ri)
        extra_v.append(j)
        extra_km.append(min(leg.km, v.van.service_radius_km))  # kept even if now beyond
        extra_min.append(leg.minutes)
        extra_bound.append(leg.km)
    bound_km = home_km
    if extra_r:
        bound_km = np.concatenate([home_km, extra_bound])
        arc_req = np.concatenate([arc_req, extra_r]).astype(np.int64)
        arc_van = np.concatenate([arc_van, extra_v]).astype(np.int64)
        home_km = np.concatenate([home_km, extra_km])
        home_min = np.concatenate([home_min, extra_min])

    travel_km = home_km.copy()
    travel_min = home_min.copy()
    away = np.array([v.position is not None and v.position != v.home for v in vs], dtype=bool)
    redirect = np.array(
        [np.inf if v.redirect_km is None or v.pinned_request_id is None else v.redirect_km
         for v in vs]
    )  # fmt: skip
    limited = away & np.isfinite(redirect)
    if limited[arc_van].any():
        keep, travel_km, travel_min = _redirect_travel(
            vs, reqs, req_ll, arc_req, arc_van, limited, redirect, travel_km, travel_min, provider
        )
        arc_req, arc_van, home_km, bound_km, travel_km, travel_min = (
            a[keep] for a in (arc_req, arc_van, home_km, bound_km, travel_km, travel_min)
        )
    arc_away = away[arc_van] & ~limited[arc_van]
    if arc_away.any():
        travel_km, travel_min = _away_travel(
            vs, req_ll, arc_req, arc_van, arc_away, bound_km, travel_km, travel_min, provider
        )
    return VanMatchingProblem.from_arrays(
        reqs, vs, arc_req, arc_van, home_km, travel_km, travel_min
    )


REDIRECT_OWN_JOB_CIRCUITY = 2.0
"""Budget that reaches a redirect-limited van's own job in the same search: this times the
straight-line km to it, plus 20 km (a leg times it in the rare case it is still missed)."""


def _redirect_travel(
    vs: tuple[VanState, ...],
    reqs: tuple[OpenRequest, ...],
    req_ll: np.ndarray,
    arc_req: np.ndarray,
    arc_van: np.ndarray,
    limited: np.ndarray,
    redirect: np.ndarray,
    travel_km: np.ndarray,
    travel_min: np.ndarray,
    provider: TravelTimeProvider,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Travel of the pinned vans with a redirect limit: one bounded search from their
    positions (budget: ``redirect_km``, or enough to reach the van's own job, whichever is
    larger); arcs beyond ``redirect_km`` are dropped, except the van's own job (a leg from
    where it is if even the larger budget missed it). Returns (arc mask to keep, km,
    minutes)."""
    vans_l = np.nonzero(limited)[0]
    pos = _latlon(vs[j].expected_position for j in vans_l)
    index_of_request = {r.id: i for i, r in enumerate(reqs)}
    own = np.array([index_of_request.get(vs[j].pinned_request_id or "", -1) for j in vans_l])
    own_km = np.zeros(len(vans_l))
    has_own = (own >= 0) & np.array([vs[j].pinned_leg is None for j in vans_l], dtype=bool)
    if has_own.any():
        own_km[has_own] = _pairwise_km(pos[has_own], req_ll[own[has_own]])
    budget = np.maximum(redirect[vans_l], REDIRECT_OWN_JOB_CIRCUITY * own_km + 20.0)
    budget[(redirect[vans_l] <= 0) & ~has_own] = 0.0
    searched = np.nonzero(budget > 0)[0]  # redirect 0 with a known leg: nothing to search
    found = provider.within(pos[searched], req_ll, budget[searched], VAN_PROFILE)
    src = searched[np.asarray(found.source, dtype=np.int64)]
    tgt = np.asarray(found.target, dtype=np.int64)
    f_km, f_min = np.asarray(found.km), np.asarray(found.minutes)
    near = (f_km <= redirect[vans_l][src]) | (own[src] == tgt)
    src, tgt, f_km, f_min = src[near], tgt[near], f_km[near], f_min[near]
    n = len(reqs)
    found_key = vans_l[src] * n + tgt
    order = np.argsort(found_key, kind="stable")
    sorted_key = found_key[order]
    lim_arcs = np.nonzero(limited[arc_van])[0]
    arc_key = arc_van[lim_arcs] * n + arc_req[lim_arcs]
    at = np.minimum(np.searchsorted(sorted_key, arc_key), max(len(sorted_key) - 1, 0))
    hit = (sorted_key[at] == arc_key) if len(sorted_key) else np.zeros(len(lim_arcs), bool)
    km, minutes = travel_km.copy(), travel_min.copy()
    km[lim_arcs[hit]] = f_km[order[at[hit]]]
    minutes[lim_arcs[hit]] = f_min[order[at[hit]]]
    own_of_van = np.full(len(vs), -1, dtype=np.int64)
    own_of_van[vans_l] = own
    is_own = own_of_van[arc_van[lim_arcs]] == arc_req[lim_arcs]
    for a, found_it in zip(lim_arcs[is_own].tolist(), hit[is_own].tolist(), strict=True):
        v = vs[arc_van[a]]
        leg = v.pinned_leg
        if leg is None and not found_it:
            leg = provider.leg(v.expected_position, reqs[arc_req[a]].location, VAN_PROFILE)
        if leg is not None:
            km[a], minutes[a] = leg.km, leg.minutes
    keep = np.ones(len(arc_req), dtype=bool)
    keep[lim_arcs[~hit & ~is_own]] = False
    return keep, km, minutes


def _pairwise_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle km between row i of ``a`` and row i of ``b``."""
    la1, lo1, la2, lo2 = (np.radians(x) for x in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return np.asarray(2 * 6371.009 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


AWAY_GUESS_CIRCUITY = 1.3
"""First-round budget of the away-van search: the van's largest home-to-breakdown km plus this
times its straight-line km from home (road km / straight km has median ~1.36 there)."""
AWAY_GUESS_MARGIN_KM = 0.0


def _away_travel(
    vs: tuple[VanState, ...],
    req_ll: np.ndarray,
    arc_req: np.ndarray,
    arc_van: np.ndarray,
    arc_away: np.ndarray,
    bound_km: np.ndarray,
    travel_km: np.ndarray,
    travel_min: np.ndarray,
    provider: TravelTimeProvider,
) -> tuple[np.ndarray, np.ndarray]:
    """Travel from the positions of vans away from home, by bounded searches only, exactly.

    An engine that times pairs itself (:class:`routing.provider.PairLegProvider`: the road
    engine, one search per van bounded through the kept station balls) gets the arcs' pairs.
    For the others, one ``within`` from the positions (targets: the breakdowns of their arcs
    and their homes) with a guessed budget per van finds most pairs and the km to home d(p, h).
    Road km obey the triangle inequality, so for an arc whose home km is d(h, b) (``bound_km``;
    for a pinned pair beyond the radius the unclipped home leg), d(p, b) <= d(p, h) + d(h, b):
    a second search with that budget, only for the vans with pairs still missing, finds the
    rest exactly. A van whose home was not reached either is searched with 4x the budget, then
    without a bound (an unsnapped position or another road component: those pairs stay
    ``inf``). A full ``matrix`` from hundreds of positions would cost seconds.
    """
    travel_km, travel_min = travel_km.copy(), travel_min.copy()
    sel = np.nonzero(arc_away)[0]
    vans_away, slot = np.unique(arc_van[sel], return_inverse=True)
    slot = slot.reshape(-1)
    sel_req = arc_req[sel]
    if isinstance(provider, PairLegProvider):
        at = _latlon(vs[j].expected_position for j in vans_away)
        travel_km[sel], travel_min[sel] = provider.pair_legs(at, req_ll, slot, sel_req, VAN_PROFILE)
        return travel_km, travel_min
    sel_bound = bound_km[sel]
    n_req = len(req_ll)
    pos = _latlon(vs[j].expected_position for j in vans_away)
    home = _latlon(vs[j].home for j in vans_away)
    worst = np.zeros(len(vans_away))
    np.maximum.at(worst, slot, sel_bound)
    limit = worst + AWAY_GUESS_CIRCUITY * _pairwise_km(pos, home) + AWAY_GUESS_MARGIN_KM
    to_home = np.full(len(vans_away), np.nan)  # nan = not known yet
    grown = np.zeros(len(vans_away), dtype=bool)
    pending = np.ones(len(sel), dtype=bool)
    arc_key = slot.astype(np.int64) * n_req + sel_req
    while pending.any():
        vans_p = np.unique(slot[pending])
        reqs_p = np.unique(sel_req[pending])
        ask_home = vans_p[np.isnan(to_home[vans_p])]
        found = provider.within(
            pos[vans_p],
            np.concatenate([req_ll[reqs_p], home[ask_home]]),
            limit[vans_p],
            VAN_PROFILE,
        )
        src = vans_p[found.source]
        is_req = found.target < len(reqs_p)
        # km to home: the pair (van, its own home)
        h = np.nonzero(~is_req)[0]
        own = h[ask_home[found.target[h] - len(reqs_p)] == src[h]]
        to_home[src[own]] = found.km[own]
        # travel of the pending arcs found (pairs come sorted by source, then target)
        r = np.nonzero(is_req)[0]
        key = src[r].astype(np.int64) * n_req + reqs_p[found.target[r]]
        order = np.argsort(key, kind="stable")
        key, r = key[order], r[order]
        idx = np.nonzero(pending)[0]
        at = np.minimum(np.searchsorted(key, arc_key[idx]), max(len(key) - 1, 0))
        hit = idx[key[at] == arc_key[idx]] if len(key) else idx[:0]
        at = np.searchsorted(key, arc_key[hit])
        travel_km[sel[hit]] = found.km[r[at]]
        travel_min[sel[hit]] = found.minutes[r[at]]
        pending[hit] = False
        if not pending.any():
            break
        # next budgets for the vans with pairs still missing
        left = np.unique(slot[pending])
        need = np.zeros(len(vans_away))
        np.maximum.at(need, slot[pending], sel_bound[pending])
        cur = limit[left]
        exact = (to_home[left] + need[left]) * (1.0 + 1e-12) + 1e-9  # nan if home unknown
        use_exact = exact > cur  # False for nan
        # limit already unbounded, or the triangle bound did not widen it: unreachable
        done = np.isinf(cur) | (exact <= cur)
        grow = ~use_exact & ~done
        limit[left[use_exact]] = exact[use_exact]
        limit[left[grow]] = np.where(grown[left[grow]], np.inf, 4.0 * cur[grow])
        grown[left[grow]] = True
        gone = np.isin(slot, left[done]) & pending
        travel_km[sel[gone]] = np.inf
        travel_min[sel[gone]] = np.inf
        pending &= ~gone
    return travel_km, travel_min


@dataclass(frozen=True)
class VanAssignment:
    request_id: str
    van_id: str
    eta_minutes: float
    travel_minutes: float
    travel_km: float
    designated: bool
    priority: float = 1.0
    pinned: bool = False
    """The van was already en route to this request and kept it."""


@dataclass(frozen=True)
class Unassigned:
    request_id: str
    reason: UnassignedReason
    suggestion: str
    nearest_van_id: str | None = None
    nearest_eta_minutes: float | None = None


@dataclass(frozen=True)
class VanMatching:
    assignments: tuple[VanAssignment, ...]
    unassigned: tuple[Unassigned, ...]
    objective: int = 0
    """Integer objective of the solver (penalties for unserved requests included)."""
    time_resolution: int = 100
    """Cost units per minute actually used."""
    solve_seconds: float = 0.0
    method: str = "optimal"
    explain_seconds: float = 0.0
    """Of ``solve_seconds``, the time spent explaining the unassigned requests."""
    partner_assignments: tuple[RescueCandidate, ...] = ()
    """Requests whose partner column won (``match_vans(..., partners=...)``): one provider
    each, to be offered the job; these requests are also in ``unassigned`` (no own van)."""
    partner_alternatives: tuple[RescueCandidate, ...] = ()
    """For the requests of ``partner_assignments`` (in the same order), their other partner
    arcs, each request's best first by the matching's own price (on time before late under
    the ``promise`` objective, then the partner minutes, then the provider id): the
    candidates of a fan-out (:func:`dispatch.partner_rescue.more_offers`)."""

    def served_count(self) -> int:
        return len(self.assignments)

    def served_weight(self) -> float:
        return float(sum(a.priority for a in self.assignments))

    def total_eta(self) -> float:
        return float(sum(a.eta_minutes for a in self.assignments))

    def total_weighted_eta(self) -> float:
        return float(sum(a.priority * a.eta_minutes for a in self.assignments))

    def assignment_for(self, request_id: str) -> VanAssignment | None:
        for a in self.assignments:
            if a.request_id == request_id:
                return a
        return None

    def summary(self) -> dict[str, Any]:
        etas = [a.eta_minutes for a in self.assignments]
        reasons: dict[str, int] = {}
        for u in self.unassigned:
            reasons[u.reason.value] = reasons.get(u.reason.value, 0) + 1
        return {
            "method": self.method,
            "served": self.served_count(),
            "unassigned": len(self.unassigned),
            "served_weight": round(self.served_weight(), 3),
            "total_eta_minutes": round(self.total_eta(), 2),
            "total_weighted_eta_minutes": round(self.total_weighted_eta(), 2),
            "mean_eta_minutes": round(float(np.mean(etas)), 2) if etas else None,
            "max_eta_minutes": round(float(np.max(etas)), 2) if etas else None,
            "unassigned_reasons": reasons,
            "solve_seconds": round(self.solve_seconds, 4),
        }


# -- the matching ----------------------------------------------------------------------------

_CAPS = tuple(VanCapability)
_KEYS = tuple((vc, tow) for vc in VehicleClass for tow in (False, True))
_CAN = np.array([[cap.can_handle(vc, needs_tow=tow) for vc, tow in _KEYS] for cap in _CAPS])
_CAP_INDEX = {cap: i for i, cap in enumerate(_CAPS)}
_KEY_INDEX = {key: i for i, key in enumerate(_KEYS)}
_BREADTH = _CAN.sum(axis=1).astype(np.int64)


def capability_breadth(capability: VanCapability) -> int:
    """How many kinds of job (vehicle class x on-site fix or tow) a van of this capability
    can take: light service 3, flatbed 6, heavy service 5, wrecker 10. Among vans that
    arrive equally soon the matching sends the narrowest (:func:`prefer_narrow_vans`)."""
    return int(_BREADTH[_CAP_INDEX[VanCapability(capability)]])


def prefer_narrow_vans(
    row_arc: np.ndarray,
    arc_row: np.ndarray,
    arc_column: np.ndarray,
    arc_cost: np.ndarray,
    column_breadth: np.ndarray,
) -> np.ndarray:
    """The optimal assignment ``row_arc`` (per row an arc index or -1; indices at or beyond
    ``len(arc_row)`` are other columns, e.g. partners, and are left alone) with each row's
    van swapped for a strictly narrower one (:func:`capability_breadth`) that costs exactly
    the same and that no row uses; among several, the narrowest, then the lowest column.

    Why: two vans of one station reach a breakdown at the same minute, and the solver's
    choice among tied arcs is its algorithm's (mostly the highest column: a station's
    wrecker before its service van). A wrecker sent where the service van would do is missing
    for the next tow, which then waits or is late. The total cost is unchanged, so the
    assignment stays optimal; rows without such a tie keep their van. Rows are taken in
    order, each against the vans still unused."""
    n_arcs = len(arc_row)
    out = row_arc.copy()
    has = (out >= 0) & (out < n_arcs)
    if not has.any():
        return out
    current = np.where(has, out, 0)
    chosen_cost = np.where(has, arc_cost[current], -1)
    chosen_column = np.where(has, arc_column[current], -1)
    narrower = (
        has[arc_row]
        & (arc_cost == chosen_cost[arc_row])
        & (column_breadth[arc_column] < column_breadth[np.maximum(chosen_column, 0)][arc_row])
    )
    if not narrower.any():
        return out
    used = set(chosen_column[has].tolist())
    for r in np.unique(arc_row[narrower]).tolist():
        best = -1
        best_key = (int(column_breadth[chosen_column[r]]), int(chosen_column[r]))
        for a in np.flatnonzero(narrower & (arc_row == r)).tolist():
            c = int(arc_column[a])
            key = (int(column_breadth[c]), c)
            if c not in used and key < best_key:
                best, best_key = a, key
        if best >= 0:
            used.discard(int(chosen_column[r]))
            used.add(int(arc_column[best]))
            out[r] = best
    return out


@dataclass(frozen=True)
class _Prepared:
    """What both the optimal and the naive policy work from."""

    eligible: np.ndarray  # arc mask: capable, van available, request open
    capable: np.ndarray  # arc mask: capable (ignores availability)
    eta: np.ndarray  # per arc
    penalty_minutes: np.ndarray  # per arc, soft preferences
    fixed: dict[int, int]  # request index -> arc index (pinned, kept)
    designated: np.ndarray  # per arc
    free_request: np.ndarray  # request mask: still to be matched
    free_van: np.ndarray  # van mask: can take a new request


def _prepare(
    problem: VanMatchingProblem, allow_reassignment: bool, params: MatchParams
) -> _Prepared:
    reqs, vans = problem.requests, problem.vans
    ar, av = problem.arc_request, problem.arc_van
    cap_idx = np.array([_CAP_INDEX[v.van.capability] for v in vans], dtype=np.int64)
    key_idx = np.array([_KEY_INDEX[(r.vehicle_class, r.needs_tow)] for r in reqs], dtype=np.int64)
    capable = _CAN[cap_idx[av], key_idx[ar]] if len(ar) else np.zeros(0, dtype=bool)
    free_in = np.array([v.free_in_minutes for v in vans], dtype=float)
    eta = free_in[av] + problem.arc_travel_minutes if len(ar) else np.zeros(0)

    index_of_request = {r.id: i for i, r in enumerate(reqs)}
    pinned_to = np.full(len(vans), -1, dtype=np.int64)  # request index or -1
    busy_elsewhere = np.zeros(len(vans), dtype=bool)
    pinned_by: dict[int, int] = {}
    for j, v in enumerate(vans):
        if v.pinned_request_id is None:
            continue
        ri = index_of_request.get(v.pinned_request_id)
        if ri is None:
            busy_elsewhere[j] = True
            continue
        if ri in pinned_by:
            raise ValueError(
                f"request {v.pinned_request_id}: pinned by two vans "
                f"({vans[pinned_by[ri]].id}, {v.id})"
            )
        pinned_by[ri] = j
        pinned_to[j] = ri

    free_request = np.ones(len(reqs), dtype=bool)
    free_van = np.array([v.on_shift for v in vans], dtype=bool) & ~busy_elsewhere
    fixed: dict[int, int] = {}
    if not allow_reassignment:
        for ri, j in pinned_by.items():
            hit = np.nonzero((ar == ri) & (av == j))[0]
            if not len(hit):
                raise ValueError(
                    f"van {vans[j].id} is pinned to request {reqs[ri].id} but the problem has "
                    "no arc for that pair"
                )
            fixed[ri] = int(hit[0])
            free_request[ri] = False
            free_van[j] = False
    else:
        free_van |= pinned_to >= 0  # en-route vans may be moved (even at shift end)

    penalty = np.zeros(len(ar))
    designated = np.zeros(len(ar), dtype=bool)
    want = [r.designated_station_id for r in reqs]
    if len(ar) and any(w is not None for w in want):  # no wish, no designation, no penalty
        station_of_van = [v.van.station_id for v in vans]
        code: dict[str, int] = {}
        van_code = np.array([code.setdefault(s, len(code)) for s in station_of_van])
        want_code = np.array([-1 if w is None else code.get(w, -2) for w in want])
        designated = want_code[ar] == van_code[av]  # codes >= 0 only for a wanted station
        has_want = want_code != -1
        penalty += np.where(has_want[ar] & ~designated, params.designated_penalty_minutes, 0.0)
    if len(ar) and allow_reassignment and pinned_by:
        van_of_request = np.full(len(reqs), -1, dtype=np.int64)
        for ri, j in pinned_by.items():
            van_of_request[ri] = j
        moved = ((pinned_to[av] >= 0) & (pinned_to[av] != ar)) | (
            (van_of_request[ar] >= 0) & (van_of_request[ar] != av)
        )
        penalty += np.where(moved, params.reassignment_penalty_minutes, 0.0)
    eligible = capable & free_request[ar] & free_van[av] if len(ar) else np.zeros(0, dtype=bool)
    if params.objective == "promise" and len(ar):
        # a van still at work that would be late: the request waits for the next free van
        busy = np.array([v.busy and v.free_in_minutes > 0 for v in vans], dtype=bool)
        if busy.any():
            waited = np.array([r.waited_minutes for r in reqs], dtype=float)
            eligible &= ~(busy[av] & (waited[ar] + eta > params.promise_minutes))
    return _Prepared(eligible, capable, eta, penalty, fixed, designated, free_request, free_van)


class IntegerCosts(NamedTuple):
    """The matching's integer costs (:func:`integer_costs`)."""

    arc_cost: np.ndarray
    """Per arc, int64."""
    unassigned_cost: np.ndarray
    """Per row, int64: the cost of leaving it unassigned."""
    resolution: int
    """Cost units per minute actually used."""


def integer_costs(
    minutes: np.ndarray,
    weights: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    n_cols: int,
    resolution: int,
    late: np.ndarray | None = None,
    unassigned_weights: np.ndarray | None = None,
) -> IntegerCosts:
    """How :func:`match_vans` (and the simulation's array batch step,
    ``simulations.batch_match``) turns minutes into the solver's integer costs.

    ``minutes`` per arc (ETA + soft penalties), ``rows`` per arc its row (``None``: every arc
    is on the one row), ``weights`` per row its integer priority weight, ``late`` per arc
    whether it misses the promise (the ``promise`` objective), ``unassigned_weights`` per row
    the weight of leaving it unserved (default ``weights``; re-planning weighs pinned requests
    more). Per arc: weight x ETA at ``resolution`` units per minute, plus one tier ``big`` per
    late arc (more than every ETA of the batch together); per row: unassigned weight x
    ``big`` x (late rows + 1), so serving one more unit of weight costs more than all arcs
    together. The resolution is lowered by tens while the costs could overflow int64 (bounded
    in floats first, no silent wrap-around); ``ValueError`` if even 1 unit per minute does.
    """
    n_rows = 1 if rows is None else len(weights)
    uw = weights if unassigned_weights is None else unassigned_weights
    late_rows = 0
    if late is not None and late.any():
        late_rows = 1 if rows is None else len(np.unique(rows[late]))
    limit = max_safe_cost(n_rows, n_cols)
    # one row (the simulation's commonest batch): scalars, not reductions over one-row arrays
    one_row = n_rows == 1 and len(minutes) > 0
    top_weight = float(uw[0]) if one_row else float(uw.max()) if n_rows else 0.0
    while True:
        # bound in floats first (no silent int64 wrap-around), with a margin for rounding
        w = weights[0] if rows is None else weights[rows]
        cost_f = w * np.rint(minutes * resolution)
        if one_row:
            worst = cost_f.max()  # the row's dearest arc (costs are >= 0)
            total = float(worst)
        else:
            row_max = np.zeros(n_rows)
            if rows is not None:  # else no arc at all
                np.maximum.at(row_max, rows, cost_f)
            total = float(row_max.sum())
        tier = (late_rows + 1) * (total + 1.0)
        if top_weight * tier <= 0.5 * limit:
            arc_cost = cost_f.astype(np.int64)
            big = (int(worst) if one_row else int(row_max.astype(np.int64).sum())) + 1
            if late_rows:
                assert late is not None
                arc_cost += np.where(late, big, 0)
                big += late_rows * big
            if one_row:
                return IntegerCosts(arc_cost, np.array([int(uw[0]) * big]), resolution)
            return IntegerCosts(arc_cost, uw * big, resolution)
        if resolution == 1:
            raise ValueError(
                f"van matching costs overflow int64 even at 1 unit per minute ({n_rows} "
                f"requests, largest ETA {float(minutes.max()):.0f} min); split the batch"
            )
        resolution = max(1, resolution // 10)
        log.info("van matching: cost scale lowered to %d per minute to fit int64", resolution)


def match_vans(
    problem: VanMatchingProblem,
    *,
    allow_reassignment: bool = False,
    params: MatchParams | None = None,
    provider: TravelTimeProvider | None = None,
    partners: PartnerColumns | None = None,
) -> VanMatching:
    """The optimal matching of the batch (see the module docstring for the objective).

    ``provider`` times the escalation suggestions for unassigned requests (nearest free capable
    van beyond its radius); without it they are great-circle estimates. ``partners`` adds the
    partner rescue providers as columns (module docstring); requests pinned to a van never
    go to a partner.
    """
    params = params or MatchParams()
    started = time.perf_counter()
    prep = _prepare(problem, allow_reassignment, params)
    reqs = problem.requests
    sel = np.nonzero(prep.eligible)[0]
    rows = problem.arc_request[sel]
    cols = problem.arc_van[sel]
    weights = np.array(
        [round(r.priority * params.priority_resolution) for r in reqs], dtype=np.int64
    )
    minutes = prep.eta[sel] + prep.penalty_minutes[sel]
    # Weight of leaving a request unserved: pinned requests (re-planning) weigh more.
    keep_weights = weights.copy()
    if allow_reassignment:
        pinned_rows = sorted(_pinned_requests(problem))
        keep_weights[pinned_rows] = np.rint(weights[pinned_rows] * params.keep_pinned_factor)
    late = np.zeros(len(sel), dtype=bool)
    if params.objective == "promise" and len(sel):
        waited = np.array([r.waited_minutes for r in reqs], dtype=float)
        late = waited[rows] + prep.eta[sel] > params.promise_minutes
    n_cols = len(problem.vans)
    capacity: np.ndarray | None = None
    partner_arcs: tuple[RescueCandidate, ...] = ()
    side: _PartnerSide | None = None
    if partners is not None and partners.arcs:
        side = _partner_side(problem, prep, sel, params, partners)
        if side is not None:
            partner_arcs = side.arcs
            rows = np.concatenate([rows, side.rows])
            cols = np.concatenate([cols, n_cols + side.cols])
            minutes = np.concatenate([minutes, side.minutes])
            late = np.concatenate([late, side.late])
            capacity = np.concatenate([np.ones(n_cols, dtype=np.int64), side.slots])
            n_cols += len(side.slots)
    costs = integer_costs(
        minutes,
        weights,
        rows,
        n_cols=n_cols,
        resolution=params.time_resolution,
        late=late,
        unassigned_weights=keep_weights,
    )
    arc_cost, unassigned_cost, resolution = costs

    result = solve_assignment(
        len(reqs),
        n_cols,
        rows,
        cols,
        arc_cost,
        unassigned_cost=np.where(prep.free_request, unassigned_cost, 0),
        column_capacity=capacity,
    )
    n_own = len(sel)
    row_arc = prefer_narrow_vans(
        result.row_arc, rows[:n_own], cols[:n_own], arc_cost[:n_own], _van_breadth(problem)
    )
    chosen: dict[int, int] = dict(prep.fixed)
    to_partner: dict[int, RescueCandidate] = {}
    for r in np.nonzero(row_arc >= 0)[0]:
        a = int(row_arc[r])
        if a < len(sel):
            chosen[int(r)] = int(sel[a])
        else:
            to_partner[int(r)] = partner_arcs[a - len(sel)]
    alternatives = _partner_alternatives(side, to_partner) if side is not None else ()
    return _finish(
        problem,
        prep,
        chosen,
        params,
        provider,
        objective=result.objective,
        resolution=resolution,
        started=started,
        method="optimal",
        to_partner=to_partner,
        partner_alternatives=alternatives,
    )


def _van_breadth(problem: VanMatchingProblem) -> np.ndarray:
    """Per van of the problem: :func:`capability_breadth` of its capability."""
    return _BREADTH[[_CAP_INDEX[v.van.capability] for v in problem.vans]].reshape(-1)


@dataclass(frozen=True)
class _PartnerSide:
    """The partner columns' arcs in the matching's terms (rows = request indices, cols =
    provider indices from 0), their minutes (before the priority weight) and slots."""

    arcs: tuple[RescueCandidate, ...]
    rows: np.ndarray
    cols: np.ndarray
    minutes: np.ndarray
    late: np.ndarray
    slots: np.ndarray


def _partner_side(
    problem: VanMatchingProblem,
    prep: _Prepared,
    sel: np.ndarray,
    params: MatchParams,
    partners: PartnerColumns,
) -> _PartnerSide | None:
    """Partner arcs of the requests still to be matched and not pinned to a van, priced
    ``max(ETA, slack + soft) + cost / cny_per_minute + margin`` (module docstring)."""
    reqs = problem.requests
    index_of_request = {r.id: i for i, r in enumerate(reqs)}
    pinned = _pinned_requests(problem)
    col_of: dict[str, int] = {}
    for k, state in enumerate(partners.providers):
        if state.provider.id in col_of:
            raise ValueError(f"duplicate partner provider id {state.provider.id!r}")
        col_of[state.provider.id] = k
    free = partners.free_slots()
    arcs = tuple(
        c
        for c in partners.arcs
        if c.request_id in index_of_request
        and c.provider_id in col_of
        and free[c.provider_id] > 0
        and bool(prep.free_request[index_of_request[c.request_id]])
        and index_of_request[c.request_id] not in pinned
    )
    if not arcs:
        return None
    rows = np.array([index_of_request[c.request_id] for c in arcs], dtype=np.int64)
    cols = np.array([col_of[c.provider_id] for c in arcs], dtype=np.int64)
    eta = np.array([c.eta_minutes for c in arcs], dtype=float)
    cost_minutes = np.array([c.cost_cny for c in arcs], dtype=float) / partners.cny_per_minute
    if not (np.isfinite(eta).all() and (eta >= 0).all() and (cost_minutes >= 0).all()):
        raise ValueError("partner arcs need finite ETAs and costs >= 0")
    waited = np.array([r.waited_minutes for r in reqs], dtype=float)
    soft = np.zeros(len(reqs))
    if len(sel):
        np.maximum.at(soft, problem.arc_request[sel], prep.penalty_minutes[sel])
    floor = np.maximum(params.promise_minutes - waited, 0.0) + soft
    minutes = np.maximum(eta, floor[rows]) + cost_minutes + params.partner_margin_minutes
    late = np.zeros(len(arcs), dtype=bool)
    if params.objective == "promise":
        late = waited[rows] + eta > params.promise_minutes
    slots = np.array([free[s.provider.id] for s in partners.providers], dtype=np.int64)
    return _PartnerSide(arcs, rows, cols, minutes, late, slots)


def _partner_alternatives(
    side: _PartnerSide, to_partner: Mapping[int, RescueCandidate]
) -> tuple[RescueCandidate, ...]:
    """:attr:`VanMatching.partner_alternatives`: per request given to a partner (in request
    order), its other partner arcs ranked as the matching prices them."""
    out: list[RescueCandidate] = []
    for r in sorted(to_partner):
        won = to_partner[r].provider_id
        ks = [k for k in np.flatnonzero(side.rows == r).tolist() if side.arcs[k].provider_id != won]
        ks.sort(
            key=lambda k: (bool(side.late[k]), float(side.minutes[k]), side.arcs[k].provider_id)
        )
        out.extend(side.arcs[k] for k in ks)
    return tuple(out)


def _pinned_requests(problem: VanMatchingProblem) -> set[int]:
    """Indices of the requests a van of the batch is pinned to."""
    index_of_request = {r.id: i for i, r in enumerate(problem.requests)}
    return {
        index_of_request[v.pinned_request_id]
        for v in problem.vans
        if v.pinned_request_id is not None and v.pinned_request_id in index_of_request
    }


def match_vans_naive(
    problem: VanMatchingProblem,
    *,
    allow_reassignment: bool = False,
    params: MatchParams | None = None,
    provider: TravelTimeProvider | None = None,
) -> VanMatching:
    """Baseline policy: requests in arrival order (longest waiting first) each take the free
    feasible van with the earliest ETA. Same feasibility rules as :func:`match_vans`."""
    params = params or MatchParams()
    started = time.perf_counter()
    prep = _prepare(problem, allow_reassignment, params)
    reqs = problem.requests
    sel = np.nonzero(prep.eligible)[0]
    by_request: dict[int, np.ndarray] = {}
    if len(sel):
        order = np.lexsort((prep.eta[sel], problem.arc_request[sel]))
        s = sel[order]
        r_sorted = problem.arc_request[s]
        bounds = np.flatnonzero(np.diff(r_sorted)) + 1
        for chunk in np.split(s, bounds):
            by_request[int(problem.arc_request[chunk[0]])] = chunk
    taken = np.zeros(len(problem.vans), dtype=bool)
    chosen: dict[int, int] = dict(prep.fixed)
    arrival = sorted(range(len(reqs)), key=lambda i: -reqs[i].waited_minutes)
    for ri in arrival:
        for a in by_request.get(ri, ()):
            j = int(problem.arc_van[a])
            if not taken[j]:
                taken[j] = True
                chosen[ri] = int(a)
                break
    return _finish(
        problem,
        prep,
        chosen,
        params,
        provider,
        objective=0,
        resolution=params.time_resolution,
        started=started,
        method="naive",
    )


def _finish(
    problem: VanMatchingProblem,
    prep: _Prepared,
    chosen: dict[int, int],
    params: MatchParams,
    provider: TravelTimeProvider | None,
    *,
    objective: int,
    resolution: int,
    started: float,
    method: str,
    to_partner: Mapping[int, RescueCandidate] | None = None,
    partner_alternatives: tuple[RescueCandidate, ...] = (),
) -> VanMatching:
    to_partner = to_partner or {}
    reqs, vans = problem.requests, problem.vans
    assignments = []
    used = np.zeros(len(vans), dtype=bool)
    for ri in sorted(chosen):
        a = chosen[ri]
        j = int(problem.arc_van[a])
        used[j] = True
        assignments.append(
            VanAssignment(
                request_id=reqs[ri].id,
                van_id=vans[j].id,
                eta_minutes=float(prep.eta[a]),
                travel_minutes=float(problem.arc_travel_minutes[a]),
                travel_km=float(problem.arc_travel_km[a]),
                designated=bool(prep.designated[a]),
                priority=float(reqs[ri].priority),
                pinned=ri in prep.fixed,
            )
        )
    missing = [ri for ri in range(len(reqs)) if ri not in chosen]
    explain_started = time.perf_counter()
    unassigned = _explain(problem, prep, missing, used, provider, to_partner)
    explain_seconds = time.perf_counter() - explain_started
    return VanMatching(
        assignments=tuple(assignments),
        unassigned=tuple(unassigned),
        partner_assignments=tuple(to_partner[ri] for ri in sorted(to_partner)),
        partner_alternatives=partner_alternatives,
        objective=objective,
        time_resolution=resolution,
        solve_seconds=time.perf_counter() - started,
        method=method,
        explain_seconds=explain_seconds,
    )


def _explain(
    problem: VanMatchingProblem,
    prep: _Prepared,
    missing: list[int],
    used: np.ndarray,
    provider: TravelTimeProvider | None,
    to_partner: Mapping[int, RescueCandidate],
) -> list[Unassigned]:
    """Why each missing request got no van, and the escalation: the spare capable van that
    would arrive first beyond its radius (see :func:`_earliest_spare_vans`), or the partner
    provider the matching chose."""
    if not missing:
        return []
    eligible_in_radius = np.bincount(
        problem.arc_request, weights=prep.eligible.astype(float), minlength=len(problem.requests)
    )
    reqs, vans = problem.requests, problem.vans
    in_radius = np.bincount(problem.arc_request, minlength=len(reqs))
    capable_in_radius = np.bincount(
        problem.arc_request, weights=prep.capable.astype(float), minlength=len(reqs)
    )
    engine = provider or GreatCircleProvider()
    spare_van, spare_eta = _earliest_spare_vans(problem, prep, missing, used, engine)
    no_capable = [ri for ri in missing if capable_in_radius[ri] == 0]
    busy_covered, busy_capable = _busy_cover(problem, no_capable, engine)
    out = []
    for ri, j, eta in zip(missing, spare_van.tolist(), spare_eta.tolist(), strict=True):
        r = reqs[ri]
        if capable_in_radius[ri] > 0 or ri in busy_capable:
            reason = UnassignedReason.ALL_BUSY
        elif in_radius[ri] > 0 or ri in busy_covered:
            reason = UnassignedReason.NO_CAPABLE_VAN
        else:
            reason = UnassignedReason.NO_VAN_IN_RADIUS
        nearest_id = vans[j].id if j >= 0 else None
        nearest_eta = float(eta) if j >= 0 else None
        if nearest_id is not None:
            suggestion = (
                f"escalate: send van {nearest_id} beyond its service radius "
                f"(ETA about {nearest_eta:.0f} min)"
            )
            if r.needs_tow:
                suggestion += ", or book a partner tow"
        elif r.needs_tow:
            suggestion = "book a partner tow: no free wrecker or flatbed can handle it"
        else:
            suggestion = "call a partner service company, or retry next cycle"
        partner = to_partner.get(ri)
        if partner is not None:
            if reason is UnassignedReason.ALL_BUSY and eligible_in_radius[ri] > 0:
                reason = UnassignedReason.PARTNER_PREFERRED
            suggestion = (
                f"offer to partner provider {partner.provider_id} (ETA about "
                f"{partner.eta_minutes:.0f} min, {partner.cost_cny:.0f} CNY)"
            )
        out.append(Unassigned(r.id, reason, suggestion, nearest_id, nearest_eta))
    return out


def _busy_cover(
    problem: VanMatchingProblem, rows: list[int], engine: TravelTimeProvider
) -> tuple[set[int], set[int]]:
    """Of the requests ``rows`` (no free capable van's radius covers them), those a van at
    work covers (:attr:`VanMatchingProblem.busy_cover`), and those among them that such a van
    can handle: one ``within`` search from the busy vans' stations (kept balls on the road
    engine)."""
    sites = problem.busy_cover
    if not rows or not sites:
        return set(), set()
    reqs = problem.requests
    homes = _latlon(s.home for s in sites)
    radius = np.array([s.radius_km for s in sites], dtype=float)
    at = np.array(rows, dtype=np.int64)
    pairs = engine.within(homes, _latlon(reqs[ri].location for ri in rows), radius, VAN_PROFILE)
    site = np.asarray(pairs.source, dtype=np.int64)
    row = at[np.asarray(pairs.target, dtype=np.int64)]
    cap = np.array([_CAP_INDEX[s.capability] for s in sites], dtype=np.int64)[site]
    key_of = np.array(
        [_KEY_INDEX[(reqs[ri].vehicle_class, reqs[ri].needs_tow)] for ri in rows], dtype=np.int64
    )
    key = key_of[np.asarray(pairs.target, dtype=np.int64)]
    capable = _CAN[cap, key] if len(row) else np.zeros(0, dtype=bool)
    return set(row.tolist()), set(row[capable].tolist())


def _earliest_spare_vans(
    problem: VanMatchingProblem,
    prep: _Prepared,
    missing: list[int],
    used: np.ndarray,
    engine: TravelTimeProvider,
) -> tuple[np.ndarray, np.ndarray]:
    """For each missing request, the spare (free, unused) capable van that arrives first,
    radius ignored, and its ETA (free-in + travel minutes from its expected position); -1 and
    inf when none can. Requests whose vehicle class and tow need the same set of vans share
    one :func:`routing.provider.earliest_arrival` call: on the road engine bounded searches
    from a few requests near their vans, else one multi-source search, so the cost follows the
    number of such sets (<= 4), not of requests."""
    reqs, vans = problem.requests, problem.vans
    van_out = np.full(len(missing), -1, dtype=np.int64)
    eta_out = np.full(len(missing), np.inf)
    if not missing:
        return van_out, eta_out
    cap_idx = np.array([_CAP_INDEX[v.van.capability] for v in vans], dtype=np.int64)
    spare = prep.free_van & ~used
    positions = _latlon(v.expected_position for v in vans)
    free_in = np.array([v.free_in_minutes for v in vans], dtype=float)
    locs = _latlon(reqs[ri].location for ri in missing)
    key = np.array(
        [_KEY_INDEX[(reqs[ri].vehicle_class, reqs[ri].needs_tow)] for ri in missing],
        dtype=np.int64,
    )
    groups: dict[bytes, list[int]] = {}
    for k in np.unique(key).tolist():
        mask = spare & _CAN[cap_idx, k]
        groups.setdefault(mask.tobytes(), []).extend(np.flatnonzero(key == k).tolist())
    for mask_bytes, rows in groups.items():
        candidates = np.flatnonzero(np.frombuffer(mask_bytes, dtype=bool))
        if not len(candidates):
            continue
        at = np.array(rows, dtype=np.int64)
        found = earliest_arrival(
            engine, positions[candidates], free_in[candidates], locs[at], VAN_PROFILE
        )
        ok = found.source >= 0
        van_out[at[ok]] = candidates[found.source[ok]]
        eta_out[at[ok]] = found.minutes[ok]
    return van_out, eta_out


__all__ = [
    "BusyCover",
    "IntegerCosts",
    "MatchParams",
    "OpenRequest",
    "Unassigned",
    "UnassignedReason",
    "VanAssignment",
    "VanMatching",
    "VanMatchingProblem",
    "VanState",
    "build_van_matching_problem",
    "capability_breadth",
    "integer_costs",
    "match_vans",
    "match_vans_naive",
    "prefer_narrow_vans",
]
