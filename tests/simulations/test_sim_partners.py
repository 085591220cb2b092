"""Partners in the simulation (issue 11): partner rescue providers with capacity, offers that
are declined, expire or are accepted after a delay, for rescue jobs and replacement trucks;
common random numbers across acceptance probabilities; the scenario keys and their errors."""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli import app
from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import Simulation, simulate
from simulations.partner_model import OfferDraws, OfferOutcome
from simulations.report import html_report
from simulations.results import RunRecord, RunResult, Summary, summarise_run
from simulations.scenario import (
    OfferTerms,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_sweep_option,
    resolve_scenario,
    scenario_from_mapping,
)
from simulations.tables import TravelTables, build_tables
from tests.simulations.conftest import SMALL

PROVIDERS = """
[[rescue_providers]]
id = "PR-QD"
partner = "P2"
lat = 36.07
lon = 120.38
capabilities = ["heavy_tow", "mobile_mechanic", "tyre"]
promised_response_minutes = 30
callout_fee_cny = 800
per_km_cny = 12
capacity_jobs = 3
radius_km = 150

[[rescue_providers]]
id = "PR-YT"
partner = "P2"
lat = 37.46
lon = 121.45
capabilities = ["heavy_tow", "mobile_mechanic", "tyre"]
promised_response_minutes = 30
callout_fee_cny = 700
per_km_cny = 12
capacity_jobs = 2
radius_km = 150

[[rescue_providers]]
id = "PR-WF"
partner = "P2"
lat = 36.71
lon = 119.16
capabilities = ["heavy_tow", "mobile_mechanic"]
promised_response_minutes = 30
callout_fee_cny = 700
per_km_cny = 11
capacity_jobs = 2
radius_km = 200

[[rescue_providers]]
id = "PR-LY"
partner = "P2"
lat = 35.10
lon = 118.36
capabilities = ["heavy_tow", "mobile_mechanic", "tyre"]
promised_response_minutes = 45
callout_fee_cny = 600
per_km_cny = 10
capacity_jobs = 2
provinces = ["370000"]

[[partners]]
id = "P2"
provinces = ["370000"]
callout_fee_cny = 600
per_empty_km_cny = 6
per_loaded_km_cny = 9

[[trucks]]
id = "T3"
partner = "P2"
type = "tractor"
capacity_t = 40
lat = 36.813
lon = 118.055

[[trucks]]
id = "T4"
partner = "P2"
type = "box_truck"
capacity_t = 15
lat = 36.200
lon = 117.087

[partner_offers]
response_delay_minutes = 20
rescue_providers = true

[[partner_offers.providers]]
id = "PR-QD"
response_delay_minutes = 10

[[partner_offers.providers]]
id = "PR-YT"
response_delay_minutes = 15

[[partner_offers.providers]]
id = "PR-WF"
response_delay_minutes = 10
"""
"""Four synthetic providers covering the east of Shandong, which the small network's three
central stations do not reach (those breakdowns are escalated at once), offered jobs
(``rescue_providers = true``) and answering after 10, 15, 10 and 20 minutes (the last one
the ``[partner_offers]`` default), truck offers answered after 20 minutes, and a second truck
company (a job refused by one goes to the other)."""


def _scenario(extra: str = PROVIDERS, name: str = "partners.toml") -> Scenario:
    text = SMALL + extra
    return scenario_from_mapping(tomllib.loads(text), source=name, text=text)


@cache
def _tables() -> TravelTables:
    return build_tables(_scenario())


@cache
def _run(acceptance: float | None, replication: int = 0) -> tuple[RunRecord, RunResult]:
    """One run of the small scenario with providers, every partner's acceptance probability
    set to ``acceptance`` (None: the file's terms)."""
    s = _scenario()
    if acceptance is not None:
        s = s.with_override("partner_acceptance", acceptance)
    tables = _tables()
    breakdowns = draw_breakdowns(s, tables, replication_streams(s.seed, replication))
    sim = Simulation(s, tables, breakdowns, OfferDraws(s.seed, replication))
    sim.run()
    record = sim.record()
    return record, summarise_run(
        s, tables, breakdowns, record, replication=replication, wall_seconds=1.0
    )


def _provider_terms(s: Scenario) -> list[OfferTerms]:
    return [s.offers.terms_for_provider(p) for p in s.partner_rescue_providers]


def test_scenario_keys_build_providers_and_terms() -> None:
    """``[[rescue_providers]]`` (a network file's keys) become ``fleet.PartnerRescueProvider``
    values of the network, offered jobs with ``rescue_providers = true``; ``[partner_offers]``
    sets every partner's terms, ``[[partner_offers.providers]]`` one provider's; the sweep key
    ``partner_acceptance`` changes every partner's probability and keeps the delays."""
    s = _scenario()
    assert [p.id for p in s.partner_rescue_providers] == ["PR-QD", "PR-YT", "PR-WF", "PR-LY"]
    assert s.partner_rescue_providers == s.network.rescue_providers
    qd = s.partner_rescue_providers[0]
    assert qd.partner_id == "P2" and qd.capacity_jobs == 3 and qd.radius_km == 150.0
    assert s.partner_rescue_providers[3].provinces == frozenset({"370000"})
    assert _provider_terms(s)[1] == OfferTerms(1.0, 15.0)
    assert _provider_terms(s)[3] == OfferTerms(1.0, 20.0)  # no entry: [partner_offers]'s
    assert s.offers.default_terms == OfferTerms(1.0, 20.0)
    assert s.offers.declared and not s.offers.trucks_instant
    (v,) = s.variants(parse_sweep_option("partner_acceptance=0.7"))
    assert v.label == "partner_acceptance=0.7"
    assert [t.acceptance_probability for t in _provider_terms(v)] == [0.7] * 4
    assert [t.response_delay_minutes for t in _provider_terms(v)] == [10, 15, 10, 20]
    assert v.offers.default_terms == OfferTerms(0.7, 20.0)
    plain = _scenario("")
    assert plain.partner_rescue_providers == () and not plain.offers.declared
    assert plain.offers.trucks_instant


def test_terms_fall_back_from_provider_to_company_to_all() -> None:
    """A provider's entry overrides its company's (``[[partner_offers.partners]]``), which
    overrides ``[partner_offers]``, key by key: a provider entry giving only a delay keeps its
    company's probability; a company entry applies to its trucks and its providers."""
    company = (
        '\n[[partner_offers.partners]]\nid = "P2"\nacceptance_probability = 0.8\n'
        '\n[[partner_offers.partners]]\nid = "P1"\nresponse_delay_minutes = 5\n'
        '\n[[partner_offers.providers]]\nid = "PR-LY"\nacceptance_probability = 0.6\n'
    )
    s = _scenario(PROVIDERS + company)
    assert _provider_terms(s) == [
        OfferTerms(0.8, 10.0), OfferTerms(0.8, 15.0), OfferTerms(0.8, 10.0), OfferTerms(0.6, 20.0)
    ]  # fmt: skip
    assert s.offers.terms_for_partner("P2") == OfferTerms(0.8, 20.0)
    assert s.offers.terms_for_partner("P1") == OfferTerms(1.0, 5.0)
    (v,) = s.variants(parse_sweep_option("partner_response_delay=3"))
    assert {t.response_delay_minutes for t in _provider_terms(v)} == {3.0}
    assert [t.acceptance_probability for t in _provider_terms(v)] == [0.8, 0.8, 0.8, 0.6]
    assert v.offers.terms_for_partner("P1") == OfferTerms(1.0, 3.0)


@pytest.mark.parametrize(
    ("old", "new", "key_line", "message"),
    [
        ('id = "PR-QD"\nresponse_delay_minutes = 10',
         'id = "PR-QD"\nacceptance_probability = 0\nresponse_delay_minutes = 10',
         "acceptance_probability = 0",
         r"partner_offers\.providers\[0\] \(id 'PR-QD'\): acceptance_probability must be > 0, "
         r"got 0$"),
        ('id = "PR-QD"\nresponse_delay_minutes = 10',
         'id = "PR-QD"\nacceptance_probability = 1.5\nresponse_delay_minutes = 10',
         "acceptance_probability = 1.5",
         r"partner_offers\.providers\[0\] \(id 'PR-QD'\): acceptance_probability must be <= 1, "
         r"got 1.5$"),
        ("response_delay_minutes = 15", "response_delay_minutes = -5",
         "response_delay_minutes = -5",
         r"partner_offers\.providers\[1\] \(id 'PR-YT'\): response_delay_minutes must be >= 0, "
         r"got -5$"),
        ("[partner_offers]\nresponse_delay_minutes = 20",
         "[partner_offers]\nresponse_delay_minutes = -1", "response_delay_minutes = -1",
         r"partner_offers\.response_delay_minutes must be >= 0, got -1$"),
        ("[partner_offers]\n", "[partner_offers]\nacceptance_probability = 1.2\n",
         "acceptance_probability = 1.2",
         r"partner_offers\.acceptance_probability must be <= 1, got 1\.2$"),
        ("rescue_providers = true\n",
         'rescue_providers = true\n[[partner_offers.partners]]\nid = "PX"\n',
         'id = "PX"',
         r"partner_offers\.partners\[0\] \(id 'PX'\): id must name a partner of the network, "
         r"got 'PX'$"),
        ('id = "PR-WF"\nresponse_delay_minutes = 10', 'id = "PR-XX"\nresponse_delay_minutes = 10',
         'id = "PR-XX"',
         r"partner_offers\.providers\[2\] \(id 'PR-XX'\): id must name a rescue provider of the "
         r"network, got 'PR-XX'$"),
        ('id = "PR-WF"\nresponse_delay_minutes = 10', 'id = "PR-QD"\nresponse_delay_minutes = 10',
         None,
         r"partner_offers\.providers\[2\] \(id 'PR-QD'\): id must be unique, got 'PR-QD' twice$"),
        ("capacity_jobs = 3", "capacity_jobs = 0", "capacity_jobs = 0",
         r"rescue_providers\[0\] \(id 'PR-QD'\): capacity_jobs must be >= 1, got 0$"),
        ('id = "PR-YT"', 'id = "PR-QD"', None,
         r"rescue_providers\[1\] \(id 'PR-QD'\): id must be unique, got 'PR-QD' again$"),
        ('id = "PR-QD"\npartner = "P2"', 'id = "PR-QD"\npartner = "P9"', 'partner = "P9"',
         r"rescue_providers\[0\] \(id 'PR-QD'\): partner: no partner with id 'P9'$"),
        ('provinces = ["370000"]\n\n[[partners]]', 'provinces = ["37000"]\n\n[[partners]]',
         'provinces = ["37000"]',
         r"rescue_providers\[3\] \(id 'PR-LY'\): provinces must list mainland province "
         r"adcodes \(e\.g\. \"370000\"\), got '37000'$"),
        ("rescue_providers = true\n", "", "[[rescue_providers]]",
         r"rescue_providers\[0\] \(id 'PR-QD'\): the simulation offers jobs to rescue providers "
         r"only with \[partner_offers\] rescue_providers = true; set it, or leave this out$"),
    ],
)  # fmt: skip
def test_bad_partner_keys_name_the_key_and_line(
    tmp_path: Path, old: str, new: str, key_line: str | None, message: str
) -> None:
    """A bad offer term (probability outside (0, 1], negative delay), capacity, province,
    unknown partner or provider, duplicate id, or providers declared without
    ``rescue_providers = true`` is refused with the file, the line and the key; nothing
    runs."""
    assert old in PROVIDERS
    text = SMALL + PROVIDERS.replace(old, new, 1)
    path = tmp_path / "bad.toml"
    path.write_text(text, "utf-8")
    lines = text.splitlines()
    line = lines.index(key_line) + 1 if key_line else None
    prefix = rf"bad\.toml line {line}: " if line else r"bad\.toml line \d+: "
    with pytest.raises(ScenarioError, match=prefix + message):
        load_scenario(path)


def test_bad_sweep_values_are_refused() -> None:
    """The sweep keys follow the same rules as the file's keys."""
    s = _scenario()
    with pytest.raises(ScenarioError, match=r"sweep partner_acceptance=0 must be > 0, got 0$"):
        s.variants(parse_sweep_option("partner_acceptance=0"))
    with pytest.raises(ScenarioError, match=r"sweep partner_acceptance=1\.2 must be <= 1"):
        s.variants(parse_sweep_option("partner_acceptance=1.2"))
    with pytest.raises(ScenarioError, match=r"partner_response_delay=-3 must be >= 0, got -3$"):
        s.variants(parse_sweep_option("partner_response_delay=-3"))


def test_acceptance_0_7_against_1_0_on_the_same_random_numbers() -> None:
    """Acceptance 0.7 against 1.0, same seed: the van side is identical (same breakdowns, same
    vans, same escalations); with 0.7 partners decline (rescue and truck offers), the jobs take
    longer to place and the share within the promise is lower; the report carries the
    declines, expiries and partner cost."""
    rec7, res7 = _run(0.7)
    rec1, res1 = _run(1.0)
    np.testing.assert_array_equal(rec7.van, rec1.van)
    np.testing.assert_array_equal(rec7.escalation, rec1.escalation)
    np.testing.assert_array_equal(
        rec7.reported_at[: len(rec7.towed)], rec1.reported_at[: len(rec1.towed)]
    )
    k7, k1 = res7.kpis, res1.kpis
    assert k1["rescue_offer_declines"] == 0 and k1["truck_offer_declines"] == 0
    assert k7["rescue_offer_declines"] > 0 and k7["truck_offer_declines"] > 0
    assert k1["partner_rescue_jobs"] > 20 and k1["rescue_decline_delay_mean_min"] == 0.0
    assert k7["rescue_decline_delay_mean_min"] > 0 and k7["truck_decline_delay_mean_min"] > 0
    assert k7["share_within_promise"] < k1["share_within_promise"]
    assert k1["partner_rescue_cost_cny"] > 0
    assert k1["partner_cost_all_cny"] == pytest.approx(
        k1["partner_cost_cny"] + k1["partner_rescue_cost_cny"]
    )
    # every offer accepted at 0.7 is accepted at 1.0: the acceptances are a coupling
    pairs7 = set(
        zip(
            rec7.rescue_offer_request[rec7.rescue_offer_outcome == OfferOutcome.ACCEPTED].tolist(),
            rec7.rescue_offer_provider[rec7.rescue_offer_outcome == OfferOutcome.ACCEPTED].tolist(),
            strict=True,
        )
    )
    draws = OfferDraws(_scenario().seed, 0)
    assert pairs7 and all(draws.uniform(0, r, k) < 0.7 for r, k in pairs7)
    summaries = [Summary("partners", "p=0.7", (res7,)), Summary("partners", "p=1.0", (res1,))]
    text = html_report(summaries, title="partners", promise_minutes=120.0)
    assert "<h2>Partner offers</h2>" in text
    for row in ("Rescue offers declined", "Rescue offers expired", "Partner rescue cost (CNY)",
                "Truck offers declined", "Truck offers expired"):  # fmt: skip
        assert f"<td>{row}</td>" in text
    assert f"<td>{k7['rescue_offer_declines']:,.0f}</td>" in text


def test_a_decliner_is_never_asked_again_and_each_refusal_moves_on() -> None:
    """Per job, every provider (rescue) or company (truck) is offered it at most once; every
    offer before the last one for a job was declined or expired; an accepted offer is the job's
    last; a refused rescue job is re-offered the moment the refusal is due."""
    for record in (_run(0.5)[0], _run(0.7)[0]):
        jobs = record.rescue_offer_request.tolist()
        providers = record.rescue_offer_provider.tolist()
        assert len(set(zip(jobs, providers, strict=True))) == len(jobs)
        truck_pairs = list(
            zip(
                record.truck_offer_breakdown.tolist(),
                record.truck_offer_partner.tolist(),
                strict=True,
            )
        )
        assert len(set(truck_pairs)) == len(truck_pairs)
        at_once = 0
        for job in set(jobs):
            rows = np.nonzero(record.rescue_offer_request == job)[0]
            outcome = record.rescue_offer_outcome[rows]
            assert set(outcome[:-1].tolist()) <= {OfferOutcome.DECLINED, OfferOutcome.EXPIRED}
            for a, b in itertools.pairwise(rows):
                k = int(record.rescue_offer_provider[a])
                due = record.rescue_offer_at[a] + (10.0, 15.0, 10.0, 20.0)[k]  # the delays
                assert record.rescue_offer_at[b] >= due - 1e-9
                at_once += bool(record.rescue_offer_at[b] == pytest.approx(due))  # or: no slot
        assert at_once > 0


def test_partner_capacity_is_never_exceeded() -> None:
    """A provider holds a slot from each offer until the job's end; its accepted jobs, from
    their offer to their end, never overlap more than ``capacity_jobs``; some providers run
    full and jobs wait for a slot (then they are offered when one frees)."""
    s = _scenario()
    capacity = np.array([p.capacity_jobs for p in s.partner_rescue_providers])
    for record in (_run(None)[0], _run(0.7)[0]):
        assert (record.provider_peak_jobs <= capacity).all()
        assert (record.provider_peak_jobs == capacity).any()
        took = np.nonzero(record.partner_provider >= 0)[0]
        for k in range(len(capacity)):
            mine = took[record.partner_provider[took] == k]
            starts = record.partner_accepted_offer_at[mine]
            ends = record.partner_job_end_at[mine]
            assert (ends > starts).all()
            for t in starts.tolist():  # the load just after each job's offer
                assert int(((starts <= t) & (ends > t)).sum()) <= capacity[k]
        # jobs that waited for a slot: first offered after they were escalated at arrival
        escalated_at_once = (record.escalation == 1) & (record.partner_provider >= 0)
        waited = (
            record.partner_first_offer_at[escalated_at_once] > record.reported_at[escalated_at_once]
        )
        assert waited.any()


def test_an_offer_past_the_promised_response_expires_and_moves_on() -> None:
    """A provider whose answer would come at or after its promised response never answers:
    each of its offers expires at the promise and the job goes to the next provider."""
    slow = PROVIDERS.replace(
        'id = "PR-QD"\nresponse_delay_minutes = 10', 'id = "PR-QD"\nresponse_delay_minutes = 30'
    )
    assert slow != PROVIDERS
    s = _scenario(slow)
    tables = _tables()
    b = draw_breakdowns(s, tables, replication_streams(s.seed, 0))
    sim = Simulation(s, tables, b, OfferDraws(s.seed, 0))
    sim.run()
    rec = sim.record()
    res = summarise_run(s, tables, b, rec, replication=0, wall_seconds=1.0)
    assert res.kpis["rescue_offer_expiries"] > 0
    assert res.kpis["rescue_offer_declines"] == 0
    expired = np.nonzero(rec.rescue_offer_outcome == OfferOutcome.EXPIRED)[0]
    assert set(rec.rescue_offer_provider[expired].tolist()) == {0}
    at_expiry = 0
    for row in expired.tolist():
        job = rec.rescue_offer_request[row]
        after = np.arange(len(rec.rescue_offer_request)) > row
        later = np.nonzero((rec.rescue_offer_request == job) & after)[0]
        if len(later):  # next offer at the expiry, or later when every slot was taken
            assert rec.rescue_offer_at[later[0]] >= rec.rescue_offer_at[row] + 30.0 - 1e-9
            at_expiry += bool(
                rec.rescue_offer_at[later[0]] == pytest.approx(rec.rescue_offer_at[row] + 30.0)
            )
            assert rec.rescue_offer_provider[later[0]] != 0
    assert at_expiry > 0


def test_truck_offers_book_when_accepted() -> None:
    """A truck offer answered after 20 minutes books the truck 20 minutes after the match,
    and its pickup and delivery move by the same wait (the truck was free)."""
    record, res = _run(1.0)
    booked = ~np.isnan(record.replacement_booked_at)
    assert booked.sum() > 5
    np.testing.assert_allclose(
        record.replacement_booked_at[booked] - record.truck_first_offer_at[booked], 20.0
    )
    assert res.kpis["truck_offers"] == res.kpis["replacement_trips"]
    assert res.kpis["truck_offer_expiries"] == 0


def test_defaults_keep_the_runs_before_offers() -> None:
    """No providers and a ``[partner_offers]`` table with the defaults (accepted at once):
    every KPI of the run without the table is unchanged; the offer KPIs say every matched
    truck was offered once and accepted."""
    tables = _tables()
    plain = simulate(_scenario(""), tables, 0)
    declared = simulate(_scenario("\n[partner_offers]\nacceptance_probability = 1.0\n"), tables, 0)
    assert "truck_offers" not in plain.kpis
    for key, value in plain.kpis.items():
        assert declared.kpis[key] == value or (
            math.isnan(value) and math.isnan(declared.kpis[key])
        ), key
    assert declared.kpis["truck_offers"] == plain.kpis["replacement_trips"] > 0
    assert declared.kpis["truck_offer_declines"] == 0 == declared.kpis["rescue_offers"]
    assert declared.kpis["truck_decline_delay_mean_min"] == 0.0


def _split_network(tmp_path: Path, providers: bool) -> Path:
    """SMALL + PROVIDERS as a network file (``replace``, stations, vans, both truck companies
    and their trucks and, with ``providers``, the four ``[[rescue_providers]]``) and a
    scenario holding the rest with ``network_file``; returns the scenario's path
    (``[partner_offers]`` at its end, without ``rescue_providers``)."""
    head, rest = SMALL.split("[[stations]]", 1)
    own, settings = ("[[stations]]" + rest).split("[demand]", 1)
    rescue, companies = PROVIDERS.split("[[partners]]", 1)
    companies = "[[partners]]" + companies.split("[partner_offers]", 1)[0]
    network = "replace = true\n" + own + companies + (rescue if providers else "")
    name = "with" if providers else "without"
    (tmp_path / f"net-{name}.toml").write_text(network, "utf-8")
    scenario = head.replace("replace = true\n", f'network_file = "net-{name}.toml"\n')
    scenario += "[demand]" + settings + "\n[partner_offers]\nresponse_delay_minutes = 20\n"
    path = tmp_path / f"{name}.toml"
    path.write_text(scenario, "utf-8")
    return path


def test_rescue_providers_get_offers_only_when_the_scenario_asks(tmp_path: Path) -> None:
    """A scenario whose network (here a ``network_file``) has rescue providers offers them
    nothing without ``[partner_offers] rescue_providers = true``: its run equals, KPI for KPI,
    the run on the same network without providers, although requests are escalated; with the
    key the same providers take jobs. Asking for them on a network without any is refused."""
    with_path, without_path = _split_network(tmp_path, True), _split_network(tmp_path, False)
    # the files hold what the split says (the network read back has the four providers)
    assert len(load_scenario(with_path).network.rescue_providers) == 4
    off = load_scenario(with_path)
    assert off.partner_rescue_providers == () and not off.offers.rescue_providers
    tables = build_tables(off)
    ran = simulate(off, tables, 0)
    bare = simulate(load_scenario(without_path), tables, 0)
    assert ran.kpis["rescue_offers"] == 0 == ran.kpis["partner_rescue_jobs"]
    assert ran.kpis["escalated"] > 0 and ran.kpis["truck_offers"] > 0
    for key, value in bare.kpis.items():
        assert ran.kpis[key] == value or (math.isnan(value) and math.isnan(ran.kpis[key])), key
    with_path.write_text(
        with_path.read_text("utf-8").replace(
            "[partner_offers]\n", "[partner_offers]\nrescue_providers = true\n"
        ),
        "utf-8",
    )
    on = load_scenario(with_path)
    assert [p.id for p in on.partner_rescue_providers] == ["PR-QD", "PR-YT", "PR-WF", "PR-LY"]
    asked = simulate(on, build_tables(on), 0)  # its tables hold the providers' legs
    assert asked.kpis["rescue_offers"] > 0 and asked.kpis["partner_rescue_jobs"] > 0
    without_path.write_text(
        without_path.read_text("utf-8").replace(
            "[partner_offers]\n", "[partner_offers]\nrescue_providers = true\n"
        ),
        "utf-8",
    )
    lines = without_path.read_text("utf-8").splitlines()
    line = lines.index("rescue_providers = true") + 1
    with pytest.raises(ScenarioError) as exc:
        load_scenario(without_path)
    assert str(exc.value) == (
        f"{without_path} line {line}: partner_offers.rescue_providers must be false on a network "
        "without rescue providers (give [[rescue_providers]])"
    )


def test_the_shipped_partner_scenario_loads() -> None:
    """``shandong_partners`` (synthetic providers) loads: the own vans' radius is cut to 60 km,
    rescue providers offered jobs: its eight after the national network's 62, truck offers
    answered after 20 minutes at 90%, every provider accepting 90%."""
    s = resolve_scenario("shandong_partners")
    assert {v.service_radius_km for v in s.network.vans} == {60.0}
    assert s.offers.rescue_providers and len(s.partner_rescue_providers) == 62 + 8
    assert [p.id for p in s.partner_rescue_providers[-8:]] == [
        "PR-JINAN-TOW", "PR-QINGDAO", "PR-YANTAI", "PR-WEIFANG", "PR-LINYI", "PR-JINING",
        "PR-HEZE", "PR-DEZHOU",
    ]  # fmt: skip
    assert s.offers.default_terms == OfferTerms(0.9, 20.0)
    terms = _provider_terms(s)
    assert all(t == OfferTerms(0.9, t.response_delay_minutes) for t in terms)
    assert [t.response_delay_minutes for t in terms[-8:]] == [10, 10, 15, 10, 10, 15, 15, 15]
    assert {t.response_delay_minutes for t in terms[:-8]} == {20.0}


def test_cli_sweeps_acceptance_and_prints_offers(tmp_path: Path) -> None:
    """``rescue simulate --sweep partner_acceptance=0.7,1.0``: the terminal shows the partner
    offers table, the JSON carries the offer KPIs per variant (declines only at 0.7)."""
    path = tmp_path / "partners.toml"
    path.write_text(SMALL + PROVIDERS, "utf-8")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        ["simulate", str(path), "--days", "5", "-r", "1", "--backend", "serial", "--quiet",
         "--sweep", "partner_acceptance=0.7,1.0", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Partner offers" in result.output and "Rescue offers declined" in result.output
    variants = {v["variant"]: v["kpis"] for v in json.loads(out.read_text("utf-8"))["variants"]}
    assert variants["partner_acceptance=0.7"]["rescue_offer_declines"]["mean"] > 0
    assert variants["partner_acceptance=1.0"]["rescue_offer_declines"]["mean"] == 0
    assert variants["partner_acceptance=1.0"]["partner_rescue_cost_cny"]["mean"] > 0


def test_the_dalian_provider_never_takes_shandong_jobs_by_sea(road_graph_cache_dir: Path) -> None:
    """``shandong_partners`` on the road graph: Liaoning's mobile service at Dalian
    (``R-210000-MOB``, 250 km radius) covers the Shandong county seats round Yantai and Weihai
    across the Bohai strait (150-250 km straight, over 1,000 km by road). Its partner legs in
    the travel tables are road legs, so those pairs fall under the production rule (more than
    3x the straight line + 20 km by road: no candidate) and it is offered no Shandong job,
    while Shandong's own mobile service (``R-370000-MOB``) takes many. (With great-circle x
    circuity partner legs it took 6-8 jobs a 30-day run.)"""
    from routing.provider import haversine_km
    from routing.road import RoadGraphSource

    s = resolve_scenario("shandong_partners").with_days(10)
    assert s.replications >= 1
    tables = build_tables(s, road_graph=RoadGraphSource(cache_dir=road_graph_cache_dir))
    dalian = next(p for p in s.partner_rescue_providers if p.id == "R-210000-MOB")
    row = tables.rescue_base_latlon.tolist().index([dalian.base.lat, dalian.base.lon])
    straight = haversine_km(np.array([[dalian.base.lat, dalian.base.lon]]), tables.points.latlon)[0]
    covered = straight <= dalian.radius_km
    assert covered.sum() >= 5  # its radius reaches Shandong
    assert not np.isfinite(tables.rescue_km[row, covered]).any()
    # every leg the tables keep obeys the rule
    finite = np.isfinite(tables.rescue_km)
    all_straight = haversine_km(tables.rescue_base_latlon, tables.points.latlon)
    assert (tables.rescue_km[finite] <= 3.0 * all_straight[finite] + 20.0).all()

    breakdowns = draw_breakdowns(s, tables, replication_streams(s.seed, 0))
    sim = Simulation(s, tables, breakdowns, OfferDraws(s.seed, 0))
    sim.run()
    record = sim.record()
    ids = [p.id for p in s.partner_rescue_providers]
    offered = {ids[k] for k in record.rescue_offer_provider.tolist()}
    took = [ids[k] for k in record.partner_provider.tolist() if k >= 0]
    assert "R-210000-MOB" not in offered
    assert took.count("R-370000-MOB") >= 5
