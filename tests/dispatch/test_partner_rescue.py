"""Partner rescue offers: coverage, capability, capacity, refusals and the stated exchange
between partner cost and the customer's waiting."""

from __future__ import annotations

import pytest

from dispatch.partner_rescue import (
    ProviderState,
    RescueJob,
    choose_rescue_offers,
    rank_rescue_providers,
    required_capability,
)
from fleet import GeoPoint, PartnerRescueProvider, RescueCapability
from routing import GreatCircleProvider

GC = GreatCircleProvider()
BREAKDOWN = GeoPoint(43.825, 87.617)
MECHANIC = frozenset({RescueCapability.MOBILE_MECHANIC})


def provider(
    pid: str,
    *,
    fee: float = 500.0,
    base: GeoPoint = GeoPoint(43.80, 87.60),
    promise: float = 30.0,
    capacity: int = 1,
    caps: frozenset[RescueCapability] = MECHANIC,
    provinces: frozenset[str] = frozenset({"650000"}),
    radius_km: float = 0.0,
) -> PartnerRescueProvider:
    return PartnerRescueProvider(
        pid, "P" + pid, pid, base, caps, promise, fee, 5.0, capacity, provinces, radius_km
    )


def job(rid: str = "R1", **kw: object) -> RescueJob:
    return RescueJob(rid, BREAKDOWN, "650000", RescueCapability.MOBILE_MECHANIC, **kw)  # type: ignore[arg-type]


def test_score_trades_cny_for_minutes_at_the_stated_rate() -> None:
    """score = ETA + cost / cny_per_minute: 10 minutes slower is worth exactly 100 CNY at 10
    CNY per minute, so the cheaper, slower provider wins by 1 CNY and loses by 1 CNY."""
    fast = provider("fast", promise=30.0, fee=600.0)
    slow_cheap = provider("slow", promise=40.0, fee=499.0)
    ranked = rank_rescue_providers(job(), [ProviderState(fast), ProviderState(slow_cheap)], GC)
    assert [c.provider_id for c in ranked] == ["slow", "fast"]
    assert ranked[1].score_minutes - ranked[0].score_minutes == pytest.approx(0.1)
    dearer = provider("slow", promise=40.0, fee=501.0)
    ranked = rank_rescue_providers(job(), [ProviderState(fast), ProviderState(dearer)], GC)
    assert [c.provider_id for c in ranked] == ["fast", "slow"]
    leg = GC.leg(fast.base, BREAKDOWN)
    assert ranked[0].eta_minutes == pytest.approx(30.0 + leg.minutes)
    assert ranked[0].cost_cny == pytest.approx(600.0 + 5.0 * leg.km)


def test_coverage_capability_capacity_and_refusals_filter_candidates() -> None:
    """Out of province and radius, without the capability, full, or refused: never asked."""
    states = [
        ProviderState(provider("far", provinces=frozenset({"370000"}))),
        ProviderState(
            provider("radius", provinces=frozenset(), radius_km=50.0, base=GeoPoint(44.0, 87.6))
        ),
        ProviderState(provider("tow", caps=frozenset({RescueCapability.HEAVY_TOW}))),
        ProviderState(provider("full", capacity=2), active_jobs=2),
        ProviderState(provider("refused")),
        ProviderState(provider("ok")),
    ]
    ranked = rank_rescue_providers(job(excluded_provider_ids=frozenset({"refused"})), states, GC)
    assert sorted(c.provider_id for c in ranked) == ["ok", "radius"]


def test_each_offer_takes_a_slot_of_its_provider() -> None:
    """Two jobs, one provider with one slot left: only the first (oldest) job is offered it;
    fan-out 2 offers a job to the two best providers."""
    one = [ProviderState(provider("a", capacity=1))]
    chosen = choose_rescue_offers([job("R1"), job("R2")], one, GC)
    assert list(chosen) == ["R1"]
    two = [ProviderState(provider("a", capacity=1)), ProviderState(provider("b", fee=900.0))]
    chosen = choose_rescue_offers([job("R1")], two, GC, fanout=2)
    assert [c.provider_id for c in chosen["R1"]] == ["a", "b"]


def test_required_capability_and_bad_providers() -> None:
    """A tow trumps the fault; tyre faults need a tyre service; provider errors name the field."""
    assert required_capability(needs_tow=True, fault_code="TYRE_BLOWOUT") == "heavy_tow"
    assert required_capability(needs_tow=False, fault_code="TYRE_PUNCTURE") == "tyre"
    assert required_capability(needs_tow=False, fault_code=None) == "mobile_mechanic"
    with pytest.raises(ValueError, match="capacity_jobs"):
        provider("x", capacity=0)
    with pytest.raises(ValueError, match="coverage needs provinces or a radius_km"):
        provider("x", provinces=frozenset())
    with pytest.raises(ValueError, match="fanout"):
        choose_rescue_offers([job()], [], GC, fanout=0)
