"""Partners in the simulation: offers that a partner answers late, declines or lets lapse.

Partners are not owned assets: they are asked (issue 11; the API's offers in
``api/partners``). Two kinds of partner are offered work here:

- **Partner rescue providers** (the network's ``[[rescue_providers]]``, offered jobs when the
  scenario says ``[partner_offers] rescue_providers = true``; :class:`RescueOffers`): a request
  escalated by the van side (no capable van covers it, or none came within
  ``escalate_after_minutes``) is offered at once to the best provider by the production
  ranking (:func:`dispatch.partner_rescue.rank_rescue_providers`: covers the point, has the
  capability, has a free slot, has not refused this job). The provider answers after its
  ``response_delay_minutes`` and accepts with its ``acceptance_probability`` (its
  ``[[partner_offers.providers]]`` entry, else its company's, else ``[partner_offers]``'s); an
  answer due at
  or after its ``promised_response_minutes`` never comes and the offer expires then (a
  decline). After a decline or an expiry the job is offered to the next best provider, never
  again to one that refused it; when every provider that could take it is full it waits for
  a free slot. A provider holds a slot (``capacity_jobs``) from the offer until the job ends:
  it leaves its base when it accepts, drives (the travel tables' leg from its base at the
  scenario's rescue-van speed: by road on the road graph, and a provider more than 3x the
  straight line + 20 km away by road is no candidate, the production rule of
  :func:`dispatch.partner_rescue.build_partner_columns`), works on site as a van would
  (the on-site repair, or diagnosis and hook-up) and drives, or tows, back to its base. Its
  arrival is the request's "on site" (it counts for the promise); its cost is the ranking's
  (call-out + per km from the base).
- **Partner logistics companies** (replacement trucks, ``[partner_offers]``): the truck the
  replacement matching chose is offered to its company with the same rules
  (:class:`TruckOffers`, used by :class:`simulations.replacement_model.ReplacementModel`).
  The truck is held while the offer is open; an accepted truck leaves when accepted (or when
  free, if later); a refused job goes back to the queue and the next batch matches it without
  that company's trucks.

Whether a partner accepts is decided by a uniform drawn per (job, partner) from the
replication's offers stream (:class:`OfferDraws`), independent of every other draw and of the
order in which offers happen: a run with acceptance 0.7 sees the same breakdowns, repairs and
figures as one with 1.0, and every offer accepted at 0.7 is accepted at 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dispatch.partner_rescue import (
    ProviderState,
    RescueCandidate,
    RescueJob,
    rank_rescue_providers,
    required_capability,
)
from fleet.model import GeoPoint, PartnerRescueProvider
from routing.provider import DEFAULT_PROFILE, GreatCircleProvider, Leg, TravelProfile
from simulations.demand import STREAMS, Breakdowns
from simulations.scenario import OfferTerms, Scenario
from simulations.tables import TravelTables

OFFERS_STREAM = len(STREAMS)
"""The offers stream's place among the replication's streams (after the last of
:data:`simulations.demand.STREAMS`, so that no other draw changes)."""
RESCUE_KIND = 0
TRUCK_KIND = 1


class OfferOutcome:
    """Codes of an offer in the run record's offer logs."""

    ACCEPTED = 0
    DECLINED = 1
    EXPIRED = 2
    OPEN = 3
    """Still unanswered when the horizon ended (or withdrawn: a released truck)."""


class OfferDraws:
    """The uniform that decides whether a partner accepts a job: one per (kind, job, partner),
    from ``SeedSequence(seed, spawn_key=(replication, OFFERS_STREAM, kind, job, partner))``, so
    that it depends on nothing else in the run."""

    def __init__(self, seed: int, replication: int) -> None:
        self.seed = seed
        self.replication = replication

    def uniform(self, kind: int, job: int, partner: int) -> float:
        key = (self.replication, OFFERS_STREAM, kind, job, partner)
        return float(
            np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key)).random()
        )

    def accepts(self, terms: OfferTerms, kind: int, job: int, partner: int) -> bool:
        p = terms.acceptance_probability
        return p >= 1.0 or self.uniform(kind, job, partner) < p


@dataclass
class OfferLog:
    """Every offer of a run, in the order made."""

    job: list[int] = field(default_factory=list)
    partner: list[int] = field(default_factory=list)
    made_at: list[float] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)

    def add(self, job: int, partner: int, now: float) -> int:
        self.job.append(job)
        self.partner.append(partner)
        self.made_at.append(now)
        self.outcome.append(OfferOutcome.OPEN)
        return len(self.job) - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.array(self.job, dtype=np.int64),
            np.array(self.partner, dtype=np.int64),
            np.array(self.made_at, dtype=float),
            np.array(self.outcome, dtype=np.int8),
        )


def answer_after(terms: OfferTerms, promised_response_minutes: float) -> tuple[float, bool]:
    """Minutes from the offer to its answer, and whether that answer is the expiry."""
    if terms.response_delay_minutes >= promised_response_minutes:
        return promised_response_minutes, True
    return terms.response_delay_minutes, False


class _PartnerLegs(GreatCircleProvider):
    """The partner legs of the travel tables (``TravelTables.rescue_km``: road legs from the
    providers' bases at the scenario's rescue-van speed, ``inf`` beyond the partner columns'
    3x straight line + 20 km rule), whatever profile is asked (the ranking asks for the
    default one). A :class:`GreatCircleProvider` only for the type: it never computes a
    leg."""

    def __init__(self, tables: TravelTables, points: list[GeoPoint]) -> None:
        super().__init__()
        self.km, self.minutes = tables.rescue_km, tables.rescue_minutes
        self.base_row = {
            (float(a), float(o)): k for k, (a, o) in enumerate(tables.rescue_base_latlon)
        }
        self.point_column = {p: i for i, p in enumerate(points)}

    def leg(
        self,
        origin: object,
        destination: object,
        profile: str | TravelProfile = DEFAULT_PROFILE,
    ) -> Leg:
        assert isinstance(origin, GeoPoint)
        assert isinstance(destination, GeoPoint)
        k = self.base_row.get((origin.lat, origin.lon))
        i = self.point_column.get(destination)
        if k is None or i is None:
            raise ValueError(
                f"no partner leg from {origin} to {destination} in the travel tables (tables "
                "built for another scenario?)"
            )
        return Leg(float(self.km[k, i]), float(self.minutes[k, i]))


@dataclass(frozen=True)
class PartnerArrival:
    """What an accepted rescue offer means for the request."""

    accepted_at: float
    on_site_at: float
    diagnosed_at: float | None
    """A first call's diagnosis (the booking policy's second look); None for a tow."""


class RescueOffers:
    """The partner rescue providers of one run: their slots, the offers in flight, the jobs
    waiting for a free slot, and per request what a partner did."""

    def __init__(
        self,
        scenario: Scenario,
        tables: TravelTables,
        breakdowns: Breakdowns,
        draws: OfferDraws,
        *,
        schedule_answer: Callable[[float, int], None],
        schedule_free: Callable[[float, int], None],
        on_accepted: Callable[[int, PartnerArrival], None],
    ) -> None:
        spec = scenario.offers
        self.providers: tuple[PartnerRescueProvider, ...] = scenario.partner_rescue_providers
        self.terms = [spec.terms_for_provider(p) for p in self.providers]
        self.cny_per_minute = spec.cny_per_minute
        self.repairs = scenario.repairs
        self.breakdowns = breakdowns
        self.draws = draws
        self.schedule_answer = schedule_answer
        self.schedule_free = schedule_free
        self.on_accepted = on_accepted
        self.tow_kmh = scenario.travel.profile("towing").speed_kmh
        pts = tables.points
        self._location = [
            GeoPoint(float(a), float(o)) for a, o in zip(pts.lat, pts.lon, strict=True)
        ]
        self.travel = _PartnerLegs(tables, self._location)
        self._province = list(pts.province)
        self._fault_code = [f.code for f in scenario.repairs.catalogue.faults]
        self.index_of = {p.id: k for k, p in enumerate(self.providers)}
        n = len(breakdowns)
        self.active = np.zeros(len(self.providers), dtype=np.int64)
        """Per provider: slots held (offers in flight and accepted jobs not yet ended)."""
        self.peak_active = np.zeros(len(self.providers), dtype=np.int64)
        self.refused: dict[int, set[int]] = {}
        """Request -> providers that declined it or let an offer lapse."""
        self.in_flight: dict[int, tuple[int, int, RescueCandidate, bool]] = {}
        """Request -> (provider, offer log row, candidate, the answer is the expiry)."""
        self.waiting: dict[int, frozenset[int]] = {}
        """Requests waiting for a provider's free slot (oldest first) -> the providers that
        could take them (cover, capability, not refused)."""
        self.log = OfferLog()
        self.provider = np.full(2 * n, -1, dtype=np.int64)
        self.first_offer_at = np.full(2 * n, np.nan)
        self.accepted_at = np.full(2 * n, np.nan)
        self.accepted_offer_at = np.full(2 * n, np.nan)
        """When the offer that was accepted was made (minus ``first_offer_at``: the delay that
        declines and expiries added)."""
        self.job_end_at = np.full(2 * n, np.nan)
        self.cost_cny = np.zeros(2 * n)
        self.no_provider = np.zeros(2 * n, dtype=bool)
        """No provider covers the request with the capability (or all that do refused it)."""

    # -- helpers ---------------------------------------------------------------------------
    def _job(self, request: int) -> RescueJob:
        b = self.breakdowns
        n = len(b)
        breakdown = request if request < n else request - n
        point = int(b.point[breakdown])
        tow = request >= n or bool(b.needs_tow[breakdown])
        refused = self.refused.get(request, set())
        return RescueJob(
            request_id=str(request),
            location=self._location[point],
            province_adcode=self._province[point],
            capability=required_capability(
                needs_tow=tow, fault_code=self._fault_code[int(b.fault[breakdown])]
            ),
            excluded_provider_ids=frozenset(self.providers[k].id for k in refused),
        )

    def _ranked(self, job: RescueJob, *, ignore_capacity: bool = False) -> list[RescueCandidate]:
        states = [
            ProviderState(p, 0 if ignore_capacity else int(self.active[k]))
            for k, p in enumerate(self.providers)
        ]
        return rank_rescue_providers(job, states, self.travel, cny_per_minute=self.cny_per_minute)

    def _hold(self, k: int) -> None:
        self.active[k] += 1
        self.peak_active[k] = max(self.peak_active[k], self.active[k])

    # -- the offers ------------------------------------------------------------------------
    def offer(self, request: int, now: float) -> None:
        """Offer the escalated ``request`` to the best provider with a free slot; an answer due
        now is taken at once (an acceptance goes to ``on_accepted``)."""
        self.waiting.pop(request, None)
        job = self._job(request)
        ranked = self._ranked(job)
        if not ranked:
            could = self._ranked(job, ignore_capacity=True)
            if could:  # all full: wait for a slot of one of them
                self.waiting[request] = frozenset(self.index_of[c.provider_id] for c in could)
            else:
                self.no_provider[request] = True
            return
        best = ranked[0]
        k = self.index_of[best.provider_id]
        self._hold(k)
        if math.isnan(self.first_offer_at[request]):
            self.first_offer_at[request] = now
        row = self.log.add(request, k, now)
        after, expires = answer_after(self.terms[k], self.providers[k].promised_response_minutes)
        self.in_flight[request] = (k, row, best, expires)
        if after > 0:
            self.schedule_answer(now + after, request)
        else:
            self.answer(request, now)

    def answer(self, request: int, now: float) -> None:
        """The provider's answer (or the offer's expiry) is due: accept, or refuse and offer the
        job to the next best provider."""
        k, row, candidate, expires = self.in_flight.pop(request)
        accepted = not expires and self.draws.accepts(self.terms[k], RESCUE_KIND, request, k)
        if not accepted:
            self.log.outcome[row] = OfferOutcome.EXPIRED if expires else OfferOutcome.DECLINED
            self.refused.setdefault(request, set()).add(k)
            self.active[k] -= 1
            self.offer(request, now)
            self.retry_waiting(k, now)
            return
        self.log.outcome[row] = OfferOutcome.ACCEPTED
        provider = self.providers[k]
        drive = candidate.eta_minutes - provider.promised_response_minutes
        on_site = now + drive
        work, diagnosed_after, tows = self._site_work(request)
        back = candidate.km / self.tow_kmh * 60.0 if tows else drive
        self.provider[request] = k
        self.accepted_at[request] = now
        self.accepted_offer_at[request] = self.log.made_at[row]
        self.job_end_at[request] = on_site + work + back
        self.cost_cny[request] = candidate.cost_cny
        self.schedule_free(on_site + work + back, k)
        self.on_accepted(
            request,
            PartnerArrival(
                now, on_site, None if diagnosed_after is None else on_site + diagnosed_after
            ),
        )

    def _site_work(self, request: int) -> tuple[float, float | None, bool]:
        """Minutes on site, minutes to the diagnosis (first calls), and whether it tows: as a
        van would (``simulations.van_model.plan_van_trip``), the partner always able to tow."""
        b, repairs = self.breakdowns, self.repairs
        n = len(b)
        if request >= n:
            return repairs.tow_hookup_minutes, None, True
        diagnosis, hookup = repairs.diagnosis_minutes, repairs.tow_hookup_minutes
        tows = not b.fixed_on_site[request]
        if not tows:
            work = float(b.on_site_hours[request]) * 60.0
        else:
            work = hookup if b.needs_tow[request] else diagnosis + hookup
        return work, min(diagnosis, work), tows

    def free(self, k: int, now: float) -> None:
        """A provider's job ended: its slot is free; waiting jobs are offered again."""
        self.active[k] -= 1
        self.retry_waiting(k, now)

    def retry_waiting(self, k: int, now: float) -> None:
        """Provider ``k`` has a free slot: offer it the jobs waiting for one of its slots,
        oldest first, while it has one (nothing else changed for the other waiting jobs)."""
        for request, could in list(self.waiting.items()):
            if self.active[k] >= self.providers[k].capacity_jobs:
                return
            if k in could and request in self.waiting:
                self.offer(request, now)


class TruckOffers:
    """The replacement trucks' partner companies' answers (used by
    :class:`simulations.replacement_model.ReplacementModel`): terms per company, the offer
    log, and per breakdown the companies that refused it."""

    def __init__(
        self, scenario: Scenario, partner_ids: list[str], n: int, draws: OfferDraws
    ) -> None:
        spec = scenario.offers
        self.instant = spec.trucks_instant
        """Every offer is accepted when made: the matching books at once (the old rule)."""
        self.partner_index = {pid: q for q, pid in enumerate(partner_ids)}
        self.terms = [spec.terms_for_partner(pid) for pid in partner_ids]
        self.promised = [
            scenario.network.partner_by_id[pid].promised_response_minutes for pid in partner_ids
        ]
        self.draws = draws
        self.log = OfferLog()
        self.refused: dict[int, set[int]] = {}
        self.first_offer_at = np.full(n, np.nan)
        self.accepted_offer_at = np.full(n, np.nan)
        """Per breakdown: when the truck offer that was accepted was made."""

    def answer_after(self, partner: int) -> tuple[float, bool]:
        return answer_after(self.terms[partner], self.promised[partner])

    def accepts(self, breakdown: int, partner: int) -> bool:
        return self.draws.accepts(self.terms[partner], TRUCK_KIND, breakdown, partner)
