"""The replacement side of the simulation: partner trucks for cargo whose repair is too long.

When a truck is asked for is the booking policy's call (:class:`BookingDecisions`, from the
API's pure rules in ``dispatch.triage``): at intake on the catalogue's estimate (``intake-*``),
at the diagnosis on the technician's figure (every policy but the oracles re-decides there and
may release an intake booking), or on the true hours (``oracle`` at intake, the unreachable
bound; ``oracle-at-diagnosis``, the simulation's rule before policies, at the diagnosis).
A request joins the queue (:meth:`ReplacementModel.request`); every
``replacement.batch_minutes`` the waiting requests go to the production matcher
(:func:`dispatch.match_replacements`) with arcs indexed from the travel tables
(:meth:`ReplacementModel.match`). Candidates come from the one fit rule
(:class:`dispatch.replacement.TruckFit`) and the partners' provinces; of identical trucks only
the soonest free are offered (:meth:`ReplacementModel._soonest_twins`). A booked truck is busy
until it is back at its depot; a request that no truck can ever serve (no fitting truck, no
partner in the province, unreachable) fails at once, one whose trucks are all booked waits
for the next batch. A release (:meth:`ReplacementModel.release`) drops a waiting request, or
turns back a booked truck that has not reached the cargo yet: the partner is paid the call-out
and the empty km driven out and back.

Each truck the matching chooses is offered to its partner company
(:class:`simulations.partner_model.TruckOffers`, ``[partner_offers]``): by default the
company accepts at once and the truck is booked in the batch, as before offers existed. With a
response delay the truck is held until the answer (:meth:`ReplacementModel.answer`); an
acceptance books it from then (it leaves when accepted, or when free if later), a decline or an
expiry puts the request back in the queue, never again to be matched with that company's trucks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from dispatch.replacement import (
    ReplacementBooking,
    ReplacementMatchingProblem,
    ReplacementParams,
    ReplacementRequest,
    TruckFit,
    TruckState,
    UnmatchedReason,
    match_replacements,
)
from dispatch.triage import (
    DIAGNOSIS_SIGMA,
    PolicyKind,
    ReplacementPolicy,
    TriageContext,
    estimate_repair,
)
from fleet.model import GeoPoint
from simulations.demand import CARGO_KINDS, Breakdowns
from simulations.partner_model import OfferDraws, OfferOutcome, TruckOffers
from simulations.scenario import ORACLE_AT_DIAGNOSIS, Scenario
from simulations.tables import TravelTables

NEVER_SERVABLE = frozenset(
    {
        UnmatchedReason.NO_FITTING_TRUCK,
        UnmatchedReason.NO_PARTNER_IN_PROVINCE,
        UnmatchedReason.UNREACHABLE,
    }
)
"""Unmatched reasons that another batch cannot change: the request fails."""


@dataclass(frozen=True, eq=False)
class BookingDecisions:
    """Per breakdown, what the booking policy decides (known up front: every input is drawn
    before the run, and the threshold counts repair hours, not hours since the breakdown).

    The decisions are the API's: ``ReplacementPolicy.books_at_intake`` on the catalogue
    estimate (``estimate_repair``, once per fault and contract) or, for the oracle, on the true
    hours; ``books_after_diagnosis`` on the technician's figure (the true hours for the oracles)
    with the risk of ``apply_diagnosis`` (lognormal around the figure, ``DIAGNOSIS_SIGMA``,
    vectorised here: ``diagnosis_risk``). With ``demand.contract_mix`` each breakdown's
    contract gives its threshold and booking probability; without, every breakdown has the
    scenario's ``replacement.threshold_hours`` and the standard contract's probability."""

    policy: str
    needed: np.ndarray
    """Cargo on board and true repair hours above the breakdown's threshold."""
    at_intake: np.ndarray
    """A truck is asked for when the breakdown is reported."""
    after_diagnosis: np.ndarray
    """The diagnosis holds (or, without an intake booking, asks for) a truck."""

    @classmethod
    def compute(cls, scenario: Scenario, breakdowns: Breakdowns) -> BookingDecisions:
        spec = scenario.replacement
        truth = breakdowns.repair_hours
        cargo = breakdowns.has_cargo
        n = len(breakdowns)
        oracle_at_diagnosis = spec.policy == ORACLE_AT_DIAGNOSIS
        policy = ReplacementPolicy.parse(
            PolicyKind.ORACLE.value if oracle_at_diagnosis else spec.policy
        )
        catalogue = scenario.repairs.catalogue
        # one triage context per contract of the mix (each with its own threshold and booking
        # probability); without a mix one: the scenario's threshold, the standard contract
        mix = scenario.demand.contract_mix
        if mix and breakdowns.contract is not None:
            by_id = scenario.network.registry.contract_by_id
            contexts = [
                TriageContext(catalogue=catalogue, contract=by_id[cid], policy=policy)
                for cid, _ in mix
            ]
            terms = breakdowns.contract
        else:
            contexts = [
                TriageContext(
                    catalogue=catalogue, threshold_hours=spec.threshold_hours, policy=policy
                )
            ]
            terms = np.zeros(n, dtype=np.int64)
        threshold_of = [c.effective_threshold_hours for c in contexts]
        probability_of = [policy.booking_probability_for(c.contract) for c in contexts]
        threshold = np.array(threshold_of, dtype=float)[terms]
        # the catalogue's estimate depends on the fault and the contract alone (no station,
        # tow leg or load here)
        estimates = [[estimate_repair(f, "tractor", c) for f in catalogue.faults] for c in contexts]
        at_intake = np.zeros(n, dtype=bool)
        if not oracle_at_diagnosis:
            for k in np.nonzero(cargo)[0].tolist():
                c = int(terms[k])
                est = estimates[c][int(breakdowns.fault[k])]
                at_intake[k] = policy.books_at_intake(
                    p_exceeds_threshold=est.p_exceeds_threshold,
                    expected_hours=est.expected_hours,
                    threshold_hours=threshold_of[c],
                    booking_probability=probability_of[c],
                    actual_hours=float(truth[k]),
                )
        knows_truth = policy.kind is PolicyKind.ORACLE
        figure = truth if knows_truth else breakdowns.technician_hours
        risk = diagnosis_risk(figure, threshold)
        after = np.zeros(n, dtype=bool)
        for k in np.nonzero(cargo)[0].tolist():
            c = int(terms[k])
            after[k] = policy.books_after_diagnosis(
                p_exceeds_threshold=float(risk[k]),
                hours_since_breakdown=float(figure[k]),
                threshold_hours=threshold_of[c],
                booking_probability=probability_of[c],
            )
        return cls(spec.policy, cargo & (truth > threshold), at_intake, after)


def diagnosis_risk(figure_hours: np.ndarray, threshold_hours: float | np.ndarray) -> np.ndarray:
    """``apply_diagnosis``'s ``p_exceeds_threshold`` (no hours elapsed) for many figures: the
    remaining time is lognormal with the figure as median and sigma ``DIAGNOSIS_SIGMA``; a figure
    of 0 means repaired (risk 0). ``threshold_hours``: one for all, or one per figure."""
    figure = np.asarray(figure_hours, dtype=float)
    with np.errstate(divide="ignore"):
        z = np.log(threshold_hours / figure) / DIAGNOSIS_SIGMA
    return np.where(figure > 0, 1.0 - ndtr(z), 0.0)


class ReplacementModel:
    """Partner trucks and the replacement requests of one run, with their outcome per
    breakdown (``nan`` / 0 / False when it never happened)."""

    def __init__(
        self,
        scenario: Scenario,
        tables: TravelTables,
        breakdowns: Breakdowns,
        draws: OfferDraws | None = None,
        *,
        schedule_answer: Callable[[float, int], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.tables = tables
        self.breakdowns = breakdowns
        net = scenario.network
        self.trucks = net.trucks
        depot_of = {(float(a), float(o)): k for k, (a, o) in enumerate(tables.depot_latlon)}
        self.truck_depot = np.array(
            [depot_of.get((t.depot.lat, t.depot.lon), -1) for t in self.trucks], dtype=np.int64
        )
        """Per truck: its depot's row in the tables, -1 when no tabled province needs it."""
        self.truck_free_at = np.zeros(len(self.trucks))
        self.truck_fit = TruckFit.of(self.trucks)
        self.truck_partner = [net.partner_by_id[t.partner_id] for t in self.trucks]
        self.truck_index = {t.id: k for k, t in enumerate(self.trucks)}
        twin_key: dict[tuple[str, int, str, float], int] = {}
        self.truck_twins = np.array(
            [
                twin_key.setdefault(
                    (t.partner_id, int(self.truck_depot[k]), t.truck_type.value, t.capacity_t),
                    len(twin_key),
                )
                for k, t in enumerate(self.trucks)
            ],
            dtype=np.int64,
        ).reshape(-1)
        """Per truck: its group of identical trucks (partner, depot, type, capacity)."""
        self._has_twins = len(twin_key) < len(self.trucks)
        tabled = self.truck_depot >= 0
        self.serves_province = {
            province: np.array([p.serves(province) for p in self.truck_partner], dtype=bool)
            & tabled
            for province in set(tables.points.province)
        }
        pts = tables.points
        self._point_location = [
            GeoPoint(float(a), float(o)) for a, o in zip(pts.lat, pts.lon, strict=True)
        ]
        self._destination = [GeoPoint(float(a), float(o)) for a, o in tables.dest_latlon]
        n = len(breakdowns)
        self.waiting: dict[int, float] = {}
        """Breakdown -> cargo deadline (absolute minutes), in request order."""
        self.requested_at = np.full(n, np.nan)
        self.booked_at = np.full(n, np.nan)
        self.delivered_at = np.full(n, np.nan)
        self.cost_cny = np.zeros(n)
        self.lateness_minutes = np.zeros(n)
        self.failed = np.zeros(n, dtype=bool)
        self.cargo_delay_minutes = np.full(n, np.nan)
        self.released_at = np.full(n, np.nan)
        self._pickup_at = np.full(n, np.nan)
        self._drive_out_at = np.full(n, np.nan)
        """When a booked truck leaves for the cargo (it may finish another job first)."""
        self._truck_of = np.full(n, -1, dtype=np.int64)
        self._last_booking_of_truck = np.full(len(self.trucks), -1, dtype=np.int64)
        self.truck_back_at = np.full(n, np.nan)
        """When the booked truck is back at its depot, free for the next job (pool sizing:
        each booking holds its truck from ``drive_out_at`` to here)."""
        self.batches = 0
        partner_ids = [p.id for p in net.partners]
        self.offers = TruckOffers(scenario, partner_ids, n, draws or OfferDraws(scenario.seed, 0))
        self.truck_partner_index = np.array(
            [self.offers.partner_index[t.partner_id] for t in self.trucks], dtype=np.int64
        )
        self.truck_on_offer = np.zeros(len(self.trucks), dtype=bool)
        """Trucks held by an offer waiting for its answer."""
        self.in_flight: dict[int, tuple[int, ReplacementBooking, float, int, bool]] = {}
        """Breakdown -> (truck, booking, offered at, offer log row, the answer is the expiry)."""
        self.schedule_answer = schedule_answer

    @property
    def pickup_at(self) -> np.ndarray:
        """Per breakdown: when the booked truck reaches the cargo (``nan``: never booked)."""
        return self._pickup_at

    @property
    def drive_out_at(self) -> np.ndarray:
        """Per breakdown: when the booked truck leaves for the cargo."""
        return self._drive_out_at

    @property
    def truck_of(self) -> np.ndarray:
        """Per breakdown: the index (in ``trucks``) of the booked truck, -1 when none."""
        return self._truck_of

    def request(self, breakdown: int, now: float) -> None:
        """The cargo of ``breakdown`` needs a truck; deadline = reported + direct loaded drive
        + the scenario's slack."""
        b = self.breakdowns
        point, dest = int(b.point[breakdown]), int(b.destination[breakdown])
        self.requested_at[breakdown] = now
        self.waiting[breakdown] = (
            float(b.t[breakdown])
            + float(self.tables.loaded_minutes[point, dest])
            + self.scenario.replacement.deadline_slack_hours * 60.0
        )

    def match(self, now: float) -> None:
        """One replacement batch: book trucks for the waiting requests."""
        if not self.waiting or not len(self.trucks):
            for breakdown in list(self.waiting):
                self.failed[breakdown] = True
            self.waiting.clear()
            return
        b, t = self.breakdowns, self.tables
        requests: list[ReplacementRequest] = []
        breakdown_ids: list[int] = []
        arc_request_parts: list[np.ndarray] = []
        arc_truck_parts: list[np.ndarray] = []
        fitting: list[int] = []
        serving: list[int] = []
        soonest = self._soonest_twins(now, len(self.waiting)) if self._has_twins else None
        offers = self.offers
        for breakdown, deadline in self.waiting.items():
            point, dest = int(b.point[breakdown]), int(b.destination[breakdown])
            kind = CARGO_KINDS[int(b.cargo_kind[breakdown])]
            fits = self.truck_fit.fitting(kind, float(b.cargo_t[breakdown]))
            province = t.points.province[point]
            serves = fits & self.serves_province[province]
            refused = offers.refused.get(breakdown)
            if refused:  # never again a truck of a company that refused this cargo
                serves &= ~np.isin(self.truck_partner_index, list(refused))
            offered = serves & ~self.truck_on_offer
            candidates = np.nonzero(offered if soonest is None else offered & soonest)[0]
            if not len(candidates) and serves.any():
                continue  # its trucks are all held by offers: wait for the next batch
            fitting.append(int(fits.sum()))
            serving.append(int(serves.sum()))
            arc_request_parts.append(np.full(len(candidates), len(requests), dtype=np.int64))
            arc_truck_parts.append(candidates)
            loaded_minutes = float(t.loaded_minutes[point, dest])
            requests.append(
                ReplacementRequest(
                    id=str(breakdown),
                    location=self._point_location[point],
                    province_adcode=province,
                    cargo_weight_t=float(b.cargo_t[breakdown]),
                    cargo_kind=kind,
                    destination=self._destination[dest],
                    deadline_minutes_from_now=max(0.0, deadline - now)
                    if math.isfinite(loaded_minutes)
                    else None,
                )
            )
            breakdown_ids.append(breakdown)
        if not requests:
            return
        arc_request = np.concatenate(arc_request_parts)
        arc_truck = np.concatenate(arc_truck_parts)
        trucks_used, arc_local_truck = np.unique(arc_truck, return_inverse=True)
        states = [
            TruckState(
                self.trucks[k],
                self.truck_partner[k],
                free_in_minutes=max(0.0, float(self.truck_free_at[k]) - now),
            )
            for k in trucks_used.tolist()
        ]
        points = np.array([int(b.point[i]) for i in breakdown_ids], dtype=np.int64)
        dests = np.array([int(b.destination[i]) for i in breakdown_ids], dtype=np.int64)
        depots = self.truck_depot[arc_truck]
        problem = ReplacementMatchingProblem.from_arrays(
            requests, states, arc_request, arc_local_truck.reshape(-1),
            t.empty_km[depots, points[arc_request]], t.empty_minutes[depots, points[arc_request]],
            t.loaded_km[points, dests], t.loaded_minutes[points, dests],
            np.array(fitting), np.array(serving),
        )  # fmt: skip
        params = ReplacementParams(allow_late=self.scenario.replacement.allow_late)
        with np.errstate(invalid="ignore"):  # unreachable legs: inf - inf in the lateness
            matching = match_replacements(problem, params)
        self.batches += 1
        for booking in matching.bookings:
            self._offer(booking, now)
        for unmatched in matching.unmatched:
            if unmatched.reason in NEVER_SERVABLE:
                breakdown = int(unmatched.request_id)
                self.failed[breakdown] = True
                del self.waiting[breakdown]

    def _soonest_twins(self, now: float, requests: int) -> np.ndarray:
        """Per truck: it is among the ``requests`` soonest free of its identical trucks.

        Identical trucks (same partner, depot, type and capacity) cost the same for every
        request, and the matcher's cost has no term for a truck's wait, so it would book a busy
        one as readily as an idle twin. Offering only the soonest free of each group (as many
        as there are requests) loses nothing (swapping a later twin for an unused sooner one
        never costs more nor arrives later) and books the idle truck, as the API does, which
        offers only available trucks. Networks without identical trucks are not affected."""
        # a truck held by an open offer is not free: it ranks after its twins
        free = np.where(self.truck_on_offer, np.inf, np.maximum(self.truck_free_at, now))
        order = np.lexsort((np.arange(len(free)), free, self.truck_twins))
        group = self.truck_twins[order]
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        keep = np.zeros(len(free), dtype=bool)
        keep[order] = rank < requests
        return keep

    def _offer(self, booking: ReplacementBooking, now: float) -> None:
        """Offer the matched truck to its company: an answer due now is taken at once; a later
        one holds the truck until then (the request leaves the queue meanwhile)."""
        breakdown = int(booking.request_id)
        k = self.truck_index[booking.truck_id]
        offers = self.offers
        q = int(self.truck_partner_index[k])
        if math.isnan(offers.first_offer_at[breakdown]):
            offers.first_offer_at[breakdown] = now
        row = offers.log.add(breakdown, q, now)
        if offers.instant:
            offers.log.outcome[row] = OfferOutcome.ACCEPTED
            self._book(booking, now, now)
            del self.waiting[breakdown]
            return
        after, expires = offers.answer_after(q)
        if after > 0:
            assert self.schedule_answer is not None, "truck offers with a delay need the loop"
            self.in_flight[breakdown] = (k, booking, now, row, expires)
            self.truck_on_offer[k] = True
            del self.waiting[breakdown]
            self.schedule_answer(now + after, breakdown)
        elif offers.accepts(breakdown, q):
            offers.log.outcome[row] = OfferOutcome.ACCEPTED
            self._book(booking, now, now)
            del self.waiting[breakdown]
        else:
            offers.log.outcome[row] = OfferOutcome.DECLINED
            offers.refused.setdefault(breakdown, set()).add(q)  # stays queued

    def answer(self, breakdown: int, now: float) -> None:
        """The company's answer to a truck offer (or its expiry) is due: book the truck, or put
        the cargo back in the queue without that company."""
        if breakdown not in self.in_flight:
            return  # released while the offer was open
        k, booking, offered_at, row, expires = self.in_flight.pop(breakdown)
        self.truck_on_offer[k] = False
        q = int(self.truck_partner_index[k])
        offers = self.offers
        if not expires and offers.accepts(breakdown, q):
            offers.log.outcome[row] = OfferOutcome.ACCEPTED
            self._book(booking, offered_at, now)
            return
        offers.log.outcome[row] = OfferOutcome.EXPIRED if expires else OfferOutcome.DECLINED
        offers.refused.setdefault(breakdown, set()).add(q)
        self.waiting[breakdown] = self._deadline(breakdown)

    def _deadline(self, breakdown: int) -> float:
        b = self.breakdowns
        point, dest = int(b.point[breakdown]), int(b.destination[breakdown])
        return (
            float(b.t[breakdown])
            + float(self.tables.loaded_minutes[point, dest])
            + self.scenario.replacement.deadline_slack_hours * 60.0
        )

    def _book(self, booking: ReplacementBooking, offered_at: float, now: float) -> None:
        """Book the truck of ``booking`` (matched at ``offered_at``, accepted ``now``): it
        leaves when accepted, or when free if later; its ETAs move by the wait for the answer."""
        b, t = self.breakdowns, self.tables
        breakdown = int(booking.request_id)
        k = self.truck_index[booking.truck_id]
        shift = 0.0
        if now > offered_at:
            free_at = float(self.truck_free_at[k])
            shift = max(now, free_at) - max(offered_at, free_at)
        dest = int(b.destination[breakdown])
        delivered = offered_at + booking.delivery_eta_minutes + shift
        self._drive_out_at[breakdown] = max(now, float(self.truck_free_at[k]))
        self.truck_free_at[k] = delivered + float(t.back_minutes[dest, self.truck_depot[k]])
        self.truck_back_at[breakdown] = self.truck_free_at[k]
        self.booked_at[breakdown] = now
        self.offers.accepted_offer_at[breakdown] = offered_at
        self.delivered_at[breakdown] = delivered
        self.cost_cny[breakdown] = booking.cost_cny
        late = booking.lateness_minutes
        if shift > 0:  # the matcher's lateness, for the later start
            late = late + shift if late > 0 else max(0.0, delivered - self._deadline(breakdown))
        self.lateness_minutes[breakdown] = late
        direct = float(t.loaded_minutes[int(b.point[breakdown]), dest])
        self.cargo_delay_minutes[breakdown] = delivered - (float(b.t[breakdown]) + direct)
        self._pickup_at[breakdown] = offered_at + booking.pickup_eta_minutes + shift
        self._truck_of[breakdown] = k
        self._last_booking_of_truck[k] = breakdown

    def release(self, breakdown: int, now: float) -> None:
        """The diagnosis says the cargo needs no truck: drop the request if it still waits;
        turn the truck back if it has not reached the cargo (paid: the call-out and the empty km
        out and back; free again once home, unless it was booked for a later job since, which
        keeps its plan). A truck already at the cargo carries on: the trip happens. An offer
        still waiting for its answer is withdrawn (nothing is paid)."""
        if breakdown in self.in_flight:
            k, *_ = self.in_flight.pop(breakdown)
            self.truck_on_offer[k] = False
            self.released_at[breakdown] = now
            return
        if breakdown in self.waiting:
            del self.waiting[breakdown]
            self.released_at[breakdown] = now
            return
        k = int(self._truck_of[breakdown])
        if k < 0 or not now < self._pickup_at[breakdown]:
            return
        out_minutes = max(0.0, now - float(self._drive_out_at[breakdown]))
        leg_minutes = float(self._pickup_at[breakdown] - self._drive_out_at[breakdown])
        b, t = self.breakdowns, self.tables
        point = int(b.point[breakdown])
        leg_km = float(t.empty_km[self.truck_depot[k], point])
        out_km = leg_km * (out_minutes / leg_minutes if leg_minutes > 0 else 0.0)
        rates = self.truck_partner[k].rates
        self.cost_cny[breakdown] = rates.callout_fee_cny + rates.per_empty_km_cny * 2 * out_km
        self.released_at[breakdown] = now
        self.delivered_at[breakdown] = np.nan
        self.cargo_delay_minutes[breakdown] = np.nan
        self.lateness_minutes[breakdown] = 0.0
        self.truck_back_at[breakdown] = now + out_minutes
        if self._last_booking_of_truck[k] == breakdown:
            self.truck_free_at[k] = now + out_minutes
