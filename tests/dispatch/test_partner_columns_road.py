"""Partner columns on the national road graph: the bounded searches from the providers' bases
give the same candidates, ETAs and costs as one road leg per (job, provider) pair, except the
pairs more than 3x the straight line (+ 20 km) apart by road, which are no candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dispatch.partner_rescue import (
    ProviderState,
    RescueCandidate,
    RescueJob,
    build_partner_columns,
    more_offers,
    rank_rescue_providers,
    required_capability,
)
from dispatch.synthetic import synthetic_requests
from dispatch.vans import OpenRequest, VanMatchingProblem, match_vans
from fleet.demo import build_national_network
from fleet.model import GeoPoint, VehicleClass
from fleet.province_index import province_at
from routing import load_road_provider
from routing.provider import haversine_km


def test_road_columns_equal_one_leg_per_pair(road_graph_cache_dir: Path) -> None:
    """60 synthetic breakdowns against the national network's 62 synthetic providers (some
    full): same providers in the same order, km and ETA equal to the road legs; the five
    pairs beyond 3x the straight line by road are left out by the stated rule: Liaoning's
    mobile service to Yantai across the Bohai strait (156 km straight, 1,301 km by road) and
    Shanghai's to the estuary islands (40 km straight, 271 km by road)."""
    road = load_road_provider(cache_dir=road_graph_cache_dir)
    rng = np.random.default_rng(5)
    requests = synthetic_requests(60, rng)
    providers = [
        ProviderState(p, p.capacity_jobs if n % 7 == 0 else 0)
        for n, p in enumerate(build_national_network().rescue_providers)
    ]
    jobs = [
        RescueJob(r.id, r.location, province_at(r.location.lat, r.location.lon),
                  required_capability(needs_tow=r.needs_tow, fault_code=None))
        for r in requests
    ]  # fmt: skip
    cols = build_partner_columns(jobs, providers, road)
    base = {s.provider.id: s.provider.base for s in providers}
    every = [c for j in jobs for c in rank_rescue_providers(j, providers, road)]
    where = {j.request_id: j.location for j in jobs}

    def straight_km(c: RescueCandidate) -> float:
        b, loc = base[c.provider_id], where[c.request_id]
        return float(haversine_km(np.array([[b.lat, b.lon]]), np.array([[loc.lat, loc.lon]]))[0, 0])

    one_by_one = [c for c in every if c.km <= 3.0 * straight_km(c) + 20.0]
    assert len(every) - len(one_by_one) == 5
    assert len(cols.arcs) >= 60
    assert [(c.request_id, c.provider_id) for c in cols.arcs] == [
        (c.request_id, c.provider_id) for c in one_by_one
    ]
    for got, want in zip(cols.arcs, one_by_one, strict=True):
        assert got.km == pytest.approx(want.km, rel=1e-9, abs=1e-6)
        assert got.eta_minutes == pytest.approx(want.eta_minutes, rel=1e-9, abs=1e-6)


def test_the_fan_out_never_offers_a_provider_across_the_bohai_strait(
    road_graph_cache_dir: Path,
) -> None:
    """A tyre job at Yantai that no own van covers, with ``RESCUE_OFFER_FANOUT`` = 3:
    Liaoning's mobile service at Dalian covers it by its 250 km radius (156 km straight,
    1,301 km by road round the gulf; the old fan-out ranked it by ETA + cost / 10 and
    offered it), but a pair more than 3x the straight line + 20 km by road is no candidate of
    the matching, so the fan-out offers the two Shandong providers only."""
    road = load_road_provider(cache_dir=road_graph_cache_dir)
    network = build_national_network()
    by_id = {p.id: p for p in network.rescue_providers}
    providers = [
        ProviderState(by_id[pid]) for pid in ("R-210000-MOB", "R-370000-MOB", "R-370000-TOW")
    ]
    yantai = GeoPoint(37.4638, 121.4479)
    job = RescueJob(
        "R", yantai, province_at(yantai.lat, yantai.lon),
        required_capability(needs_tow=False, fault_code="TYRE_PUNCTURE"),
    )  # fmt: skip
    assert job.province_adcode == "370000"
    dalian = by_id["R-210000-MOB"]
    base_ll = np.array([[dalian.base.lat, dalian.base.lon]])
    straight = float(haversine_km(base_ll, np.array([[yantai.lat, yantai.lon]]))[0, 0])
    by_road = road.leg(dalian.base, yantai).km
    assert straight < dalian.radius_km and by_road > 3.0 * straight + 20.0
    # the old ranking's candidates include it
    assert "R-210000-MOB" in [c.provider_id for c in rank_rescue_providers(job, providers, road)]

    problem = VanMatchingProblem.from_arrays(
        [OpenRequest("R", yantai, VehicleClass.TRACTOR)], [], [], [], [], [], []
    )
    m = match_vans(problem, partners=build_partner_columns([job], providers, road))
    offers = more_offers(m.partner_assignments, m.partner_alternatives, providers, fanout=3)
    assert sorted(c.provider_id for c in offers) == ["R-370000-MOB", "R-370000-TOW"]
    assert offers[0].provider_id == m.partner_assignments[0].provider_id
