"""Partner rescue offers: which partner rescue / tow provider to ask for a breakdown that no own
van can take, best first.

A provider is a candidate when it covers the breakdown (its provinces, or great-circle
``radius_km`` around its base), has the capability the job needs
(:func:`required_capability`), has a free slot (accepted jobs < ``capacity_jobs``), and has
not already declined or let lapse an offer of this job (``excluded_provider_ids``).

Candidates are ranked on one scale, minutes, so that time and money trade against each other
in a stated way: ``score = eta_minutes + cost_cny / cny_per_minute``. The exchange
``cny_per_minute`` (:data:`DEFAULT_CNY_PER_MINUTE`, 10 CNY for a minute of a stranded
customer's waiting) is a policy: a provider 20 minutes slower must be more than 200 CNY
cheaper to be asked first. ETAs are the provider's promised response plus the drive from its
base at the travel provider's speed.

Inside the van matching (:func:`dispatch.vans.match_vans` with ``partners=``), providers are
extra columns: :func:`build_partner_columns` lists the (job, provider) pairs with their ETA and
cost, and the matching prices them in its own units (docs/dispatch.md, "Partner rescue
columns"): a partner costs ``max(its ETA, the time left to the promise + the largest soft
penalty among the request's own vans) + cost_cny / cny_per_minute + margin`` minutes, so it
never beats an own van that keeps the promise, and beats an own van that is late by more than
the partner's cost in minutes (plus the margin). A provider takes at most its free slots in one
batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fleet.model import GeoPoint, PartnerRescueProvider, RescueCapability
from routing.provider import DEFAULT_PROFILE, TravelProfile, TravelTimeProvider, haversine_km

DEFAULT_CNY_PER_MINUTE = 10.0
"""How many CNY of partner cost are worth one minute of the customer's waiting."""

TYRE_FAULT_PREFIX = "TYRE_"


def required_capability(*, needs_tow: bool, fault_code: str | None) -> RescueCapability:
    """The capability a job needs: a tow trumps everything; tyre faults need a tyre service;
    anything else a mobile mechanic."""
    if needs_tow:
        return RescueCapability.HEAVY_TOW
    if fault_code and fault_code.upper().startswith(TYRE_FAULT_PREFIX):
        return RescueCapability.TYRE
    return RescueCapability.MOBILE_MECHANIC


@dataclass(frozen=True)
class RescueJob:
    """A breakdown to offer to partner providers."""

    request_id: str
    location: GeoPoint
    province_adcode: str | None
    capability: RescueCapability
    excluded_provider_ids: frozenset[str] = frozenset()
    """Providers that declined this job or let an offer of it expire: never asked again."""


@dataclass(frozen=True)
class ProviderState:
    provider: PartnerRescueProvider
    active_jobs: int = 0
    """Accepted jobs and offers still waiting for an answer (each may take a slot)."""

    @property
    def has_capacity(self) -> bool:
        return self.active_jobs < self.provider.capacity_jobs


@dataclass(frozen=True)
class RescueCandidate:
    request_id: str
    provider_id: str
    partner_id: str
    eta_minutes: float
    cost_cny: float
    km: float
    score_minutes: float


def covers(provider: PartnerRescueProvider, location: GeoPoint, province: str | None) -> bool:
    """Whether the breakdown lies in the provider's provinces or its radius."""
    if province is not None and province in provider.provinces:
        return True
    if provider.radius_km <= 0:
        return False
    km = float(
        haversine_km(
            np.array([[provider.base.lat, provider.base.lon]]),
            np.array([[location.lat, location.lon]]),
        )[0, 0]
    )
    return km <= provider.radius_km


def rank_rescue_providers(
    job: RescueJob,
    providers: Sequence[ProviderState],
    travel: TravelTimeProvider,
    *,
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE,
) -> list[RescueCandidate]:
    """The candidates for ``job``, best (lowest score) first; ties by provider id."""
    if not cny_per_minute > 0:
        raise ValueError(f"cny_per_minute must be > 0, got {cny_per_minute!r}")
    out = []
    for state in providers:
        p = state.provider
        if p.id in job.excluded_provider_ids or not state.has_capacity:
            continue
        if job.capability not in p.capabilities:
            continue
        if not covers(p, job.location, job.province_adcode):
            continue
        leg = travel.leg(p.base, job.location)
        if not math.isfinite(leg.km):
            continue
        eta = p.promised_response_minutes + leg.minutes
        cost = p.callout_fee_cny + p.per_km_cny * leg.km
        out.append(
            RescueCandidate(
                request_id=job.request_id,
                provider_id=p.id,
                partner_id=p.partner_id,
                eta_minutes=eta,
                cost_cny=cost,
                km=leg.km,
                score_minutes=eta + cost / cny_per_minute,
            )
        )
    out.sort(key=lambda c: (c.score_minutes, c.provider_id))
    return out


@dataclass(frozen=True)
class PartnerColumns:
    """Partner rescue providers as extra columns of the van matching: the providers (with
    their loads) and every feasible (job, provider) pair, timed and priced."""

    providers: tuple[ProviderState, ...]
    arcs: tuple[RescueCandidate, ...]
    """One per (job, provider) pair that may be offered (coverage, capability, a free slot,
    never a provider that refused the job)."""
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE

    def free_slots(self) -> dict[str, int]:
        """Per provider id: how many more jobs it may be given in this batch."""
        return {
            s.provider.id: max(s.provider.capacity_jobs - s.active_jobs, 0) for s in self.providers
        }


def build_partner_columns(
    jobs: Sequence[RescueJob],
    providers: Sequence[ProviderState],
    travel: TravelTimeProvider,
    *,
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE,
) -> PartnerColumns:
    """The partner columns of a batch: for each job the candidates of
    :func:`rank_rescue_providers`, in its order, computed for the whole batch at once
    (coverage as arrays, one ``travel.matrix`` per provider with jobs to reach)."""
    if not cny_per_minute > 0:
        raise ValueError(f"cny_per_minute must be > 0, got {cny_per_minute!r}")
    jobs, states = tuple(jobs), tuple(providers)
    if not jobs or not states:
        return PartnerColumns(states, (), cny_per_minute)
    job_ll = np.array([(j.location.lat, j.location.lon) for j in jobs], dtype=float)
    base_ll = np.array([(s.provider.base.lat, s.provider.base.lon) for s in states], dtype=float)
    radius = np.array([s.provider.radius_km for s in states], dtype=float)
    straight_km = haversine_km(base_ll, job_ll)
    covered = (radius[:, None] > 0) & (straight_km <= radius[:, None])
    province = np.array([j.province_adcode or "" for j in jobs], dtype=object)
    capability = np.array([j.capability.value for j in jobs], dtype=object)
    ok = np.zeros((len(states), len(jobs)), dtype=bool)
    for k, state in enumerate(states):
        p = state.provider
        if not state.has_capacity:
            continue
        if p.provinces:
            covered[k] |= np.isin(province, sorted(p.provinces)) & (province != "")
        ok[k] = covered[k] & np.isin(capability, sorted(c.value for c in p.capabilities))
    index_of_provider = {s.provider.id: k for k, s in enumerate(states)}
    for i, job in enumerate(jobs):
        for pid in job.excluded_provider_ids:
            if pid in index_of_provider:
                ok[index_of_provider[pid], i] = False
    per_job: list[list[RescueCandidate]] = [[] for _ in jobs]
    for k in np.nonzero(ok.any(axis=1))[0].tolist():
        p = states[k].provider
        targets = np.nonzero(ok[k])[0]
        km, minutes = legs_from(travel, base_ll[k], job_ll[targets], straight_km[k, targets])
        for i, leg_km, leg_min in zip(targets.tolist(), km.tolist(), minutes.tolist(),
                                      strict=True):  # fmt: skip
            if not math.isfinite(leg_km):
                continue
            eta = p.promised_response_minutes + leg_min
            cost = p.callout_fee_cny + p.per_km_cny * leg_km
            per_job[i].append(
                RescueCandidate(
                    request_id=jobs[i].request_id,
                    provider_id=p.id,
                    partner_id=p.partner_id,
                    eta_minutes=eta,
                    cost_cny=cost,
                    km=leg_km,
                    score_minutes=eta + cost / cny_per_minute,
                )
            )
    arcs = tuple(
        c
        for cands in per_job
        for c in sorted(cands, key=lambda c: (c.score_minutes, c.provider_id))
    )
    return PartnerColumns(states, arcs, cny_per_minute)


LEG_GUESS_CIRCUITY = 1.6
"""First search budget from a provider's base: this times the farthest straight-line km to its
jobs, plus 30 km (road / straight km has a median of ~1.2-1.4); the pairs it misses get a
second search with 3x + 20 km (the first bound of a single road leg). A pair farther than
that by road is no candidate: a radius reaching over a strait, or no road (an island); the
unbounded search a single leg would go on with costs ~0.5 s per such pair on the national
graph."""
LEG_MAX_CIRCUITY = 3.0
LEG_MAX_MARGIN_KM = 20.0


def legs_from(
    travel: TravelTimeProvider,
    base: np.ndarray,
    targets: np.ndarray,
    straight_km: np.ndarray,
    profile: str | TravelProfile = DEFAULT_PROFILE,
) -> tuple[np.ndarray, np.ndarray]:
    """(km, minutes) from one base (lat, lon) to each target, as ``travel.leg`` gives them
    at ``profile``, by bounded searches (a full one-to-all search of the national graph per
    provider costs ~0.1 s); ``inf`` beyond the second budget and for a pair more than
    :data:`LEG_MAX_CIRCUITY` x ``straight_km`` + :data:`LEG_MAX_MARGIN_KM` apart by road: the
    candidate rule of the partner columns, also the simulation's (``simulations.tables``)."""
    km = np.full(len(targets), np.inf)
    minutes = km.copy()
    pending = np.ones(len(targets), dtype=bool)
    for factor, margin in ((LEG_GUESS_CIRCUITY, 30.0), (LEG_MAX_CIRCUITY, LEG_MAX_MARGIN_KM)):
        idx = np.nonzero(pending)[0]
        if not len(idx):
            break
        budget = factor * float(straight_km[idx].max()) + margin
        found = travel.within(base[None, :], targets[idx], budget, profile)
        hit = idx[np.asarray(found.target, dtype=np.int64)]
        km[hit], minutes[hit] = found.km, found.minutes
        pending[hit] = False
    far = km > LEG_MAX_CIRCUITY * straight_km + LEG_MAX_MARGIN_KM  # the rule holds per pair
    km[far], minutes[far] = np.inf, np.inf
    return km, minutes


def more_offers(
    winners: Sequence[RescueCandidate],
    alternatives: Sequence[RescueCandidate],
    providers: Sequence[ProviderState],
    *,
    fanout: int = 1,
) -> list[RescueCandidate]:
    """The matching's partner winners, each followed by up to ``fanout - 1`` more providers
    for the same job: the job's other partner arcs in ``alternatives``
    (:attr:`dispatch.vans.VanMatching.partner_alternatives`: the candidates of
    :func:`build_partner_columns`, so never a provider more than 3x the straight line + 20 km
    away by road nor one that refused the job, ranked by the matching's own price), each
    with a slot left after every winner took its own."""
    if fanout < 1:
        raise ValueError(f"fanout must be >= 1, got {fanout!r}")
    capacity = {s.provider.id: s.provider.capacity_jobs for s in providers}
    used = {s.provider.id: s.active_jobs for s in providers}
    for w in winners:
        used[w.provider_id] = used.get(w.provider_id, 0) + 1
    others: dict[str, list[RescueCandidate]] = {}
    for c in alternatives:
        others.setdefault(c.request_id, []).append(c)
    out: list[RescueCandidate] = []
    for w in winners:
        out.append(w)
        extra = 0
        for c in others.get(w.request_id, ()):
            if extra == fanout - 1:
                break
            pid = c.provider_id
            if pid == w.provider_id or pid not in capacity or used[pid] >= capacity[pid]:
                continue
            used[pid] += 1
            extra += 1
            out.append(c)
    return out


def choose_rescue_offers(
    jobs: Sequence[RescueJob],
    providers: Sequence[ProviderState],
    travel: TravelTimeProvider,
    *,
    fanout: int = 1,
    cny_per_minute: float = DEFAULT_CNY_PER_MINUTE,
) -> dict[str, list[RescueCandidate]]:
    """Up to ``fanout`` offers per job, jobs in the given order (oldest first), each offer
    taking a slot of its provider so that no provider is offered more than it can take."""
    if fanout < 1:
        raise ValueError(f"fanout must be >= 1, got {fanout!r}")
    load: Mapping[str, int] = {s.provider.id: s.active_jobs for s in providers}
    used = dict(load)
    chosen: dict[str, list[RescueCandidate]] = {}
    for job in jobs:
        states = [ProviderState(s.provider, used[s.provider.id]) for s in providers]
        ranked = rank_rescue_providers(job, states, travel, cny_per_minute=cny_per_minute)
        picks = ranked[:fanout]
        for c in picks:
            used[c.provider_id] += 1
        if picks:
            chosen[job.request_id] = picks
    return chosen
