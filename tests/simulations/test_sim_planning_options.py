"""Planning options: production-like batch triggers, the promise objective, where a van's next
job starts, road demand points, and their scenario keys."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulations.after_job import SiteLegs, great_circle_km, next_from_site_minutes
from simulations.demand import draw_breakdowns, replication_streams
from simulations.demand_roads import road_demand_rows
from simulations.engine import EventKind, Simulation, simulate
from simulations.scenario import ScenarioError, load_scenario
from simulations.seasons import daily_season_factors
from simulations.tables import build_tables, demand_points


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text("utf-8").splitlines(), 1) if text in line)


def _run(path: Path, replication: int = 0) -> Simulation:
    s = load_scenario(path)
    tables = build_tables(s)
    sim = Simulation(s, tables, draw_breakdowns(s, tables, replication_streams(s.seed, 0)))
    sim.run()
    return sim


# -- triggers --------------------------------------------------------------------------------


def test_arrival_trigger_dispatches_at_once_interval_on_the_clock(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """With a van to spare everywhere (3 per station, 24 h, 5 breakdowns a day), the
    production trigger assigns every first call the minute it is reported; the 5-minute clock
    assigns at the next multiple of 5 minutes, never later."""

    def spare(trigger: str) -> Path:
        return write_scenario(
            ("warmup_days = 1", "warmup_days = 1\nvans_per_station = 3"),
            ("[travel]", f'[dispatch]\nrespect_shifts = false\ntrigger = "{trigger}"\n\n[travel]'),
            ("breakdowns_per_day = 30", "breakdowns_per_day = 5"),
            name=f"{trigger}.toml",
        )

    interval, arrival = spare("interval"), spare("arrival")
    on_clock, on_events = _run(interval), _run(arrival)
    n = on_events.requests.breakdown_count
    for sim in (on_clock, on_events):
        served = ~np.isnan(sim.requests.assigned_at[:n])
        assert served.sum() > 30
    reported = on_events.requests.reported_at[:n]
    served = ~np.isnan(on_events.requests.assigned_at[:n])
    assert np.array_equal(on_events.requests.assigned_at[:n][served], reported[served])
    at = on_clock.requests.assigned_at[:n]
    served = ~np.isnan(at)
    delay = at[served] - on_clock.requests.reported_at[:n][served]
    assert np.all((delay > 0) & (delay <= 5.0))
    assert np.allclose(np.mod(at[served], 5.0), 0.0) | np.allclose(np.mod(at[served], 5.0), 5.0)


def test_arrival_trigger_waits_for_a_free_van_not_the_clock(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Under load (60 a day, one van per station), every assignment happens at an event that
    can change the decision: a report, a van leaving a site, or a station opening (ZB at 6 h);
    some requests do wait."""
    path = write_scenario(
        ("breakdowns_per_day = 30", "breakdowns_per_day = 60"),
        ("[travel]", '[dispatch]\ntrigger = "arrival"\n\n[travel]'),
    )
    s = load_scenario(path)
    tables = build_tables(s)
    van_free_at: list[float] = []

    class Recording(Simulation):
        def schedule_event(self, minute: float, kind: EventKind, payload: int) -> None:
            if kind == EventKind.VAN_FREE:
                van_free_at.append(minute)
            super().schedule_event(minute, kind, payload)

    sim = Recording(s, tables, draw_breakdowns(s, tables, replication_streams(s.seed, 0)))
    sim.run()
    reqs = sim.requests
    done = ~np.isnan(reqs.assigned_at)
    assigned = reqs.assigned_at[done]
    opening = np.arange(0, s.total_minutes, 1440.0) + 6 * 60.0
    moments = np.concatenate([reqs.reported_at[~np.isnan(reqs.reported_at)], van_free_at, opening])
    assert np.isin(assigned, moments).all()
    assert (assigned > reqs.reported_at[done]).sum() > 10


def test_promise_objective_runs_and_accounts(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """The promise objective on events serves the same breakdowns' accounting (served +
    escalated + unserved = breakdowns) and reports the share within the promise."""
    path = write_scenario(
        ("breakdowns_per_day = 30", "breakdowns_per_day = 60"),
        ("[travel]", '[dispatch]\ntrigger = "arrival"\nobjective = "promise"\n\n[travel]'),
    )
    s = load_scenario(path)
    k = simulate(s, build_tables(s), 0).kpis
    assert k["breakdowns"] == k["served"] + k["escalated"] + k["unserved"]
    assert 0 < k["share_within_promise"] <= 1


# -- after_job -------------------------------------------------------------------------------


def test_next_from_site_takes_the_better_of_two_upper_bounds() -> None:
    """10 minutes after leaving a site with 50 to drive home: a breakdown 30 min from home is
    best reached via home (50 + 30 = 80 vs 10 + 90 = 100); one 20 min from the site by turning
    round (10 + 20 = 30 vs 50 + 60 = 110)."""
    out = next_from_site_minutes(
        now=110.0,
        home_at=160.0,
        left_site_at=100.0,
        home_leg_minutes=np.array([30.0, 60.0]),
        site_leg_minutes=np.array([90.0, 20.0]),
    )
    assert out.tolist() == [80.0, 30.0]


def test_site_legs_measure_the_networks_minutes_per_km(small_toml: Path) -> None:
    """On great-circle travel (circuity 1.2, vans at the default 80 km/h... or the profile's
    speed) the measured factor is circuity x 60 / speed, and a leg is km x that factor."""
    s = load_scenario(small_toml)
    tables = build_tables(s)
    ll = np.array([(st.location.lat, st.location.lon) for st in s.network.stations])
    legs = SiteLegs.measure(tables, ll[:, 0], ll[:, 1])
    speed = s.travel.profile("rescue_van").speed_kmh
    assert legs.minutes_per_great_circle_km == pytest.approx(1.2 * 60.0 / speed, rel=1e-3)
    pts = tables.points
    km = great_circle_km(pts.lat[:1], pts.lon[:1], pts.lat[1:2], pts.lon[1:2])[0]
    assert legs.minutes(0, np.array([1]))[0] == pytest.approx(km * 1.2 * 60.0 / speed, rel=1e-3)


def _home_and_site_kpis(write_scenario, dispatch_key: str) -> tuple[dict, dict]:  # type: ignore[no-untyped-def, type-arg]
    """The KPIs of one run with ``after_job = "return-home"`` and one with ``"next-from-site"``
    (the same breakdowns: a loaded fleet at 60 a day), ``dispatch_key`` also under
    ``[dispatch]``."""
    base = [
        ("breakdowns_per_day = 30", "breakdowns_per_day = 60"),
        ("[travel]", f'[dispatch]\n{dispatch_key}\nafter_job = "{{}}"\n\n[travel]'),
    ]
    home = write_scenario(base[0], (base[1][0], base[1][1].format("return-home")), name="h.toml")
    site = write_scenario(base[0], (base[1][0], base[1][1].format("next-from-site")), name="s.toml")
    s_home, s_site = load_scenario(home), load_scenario(site)
    tables = build_tables(s_home)
    return simulate(s_home, tables, 0).kpis, simulate(s_site, tables, 0).kpis


def test_next_from_site_reaches_no_later_on_average(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Same breakdowns, loaded fleet: letting vans take the next job on their way home lowers
    the mean arrival (the drive is never longer than via home for the same van)."""
    k_home, k_site = _home_and_site_kpis(write_scenario, 'trigger = "arrival"')
    assert k_home["breakdowns"] == k_site["breakdowns"]
    assert k_site["arrival_mean_min"] < k_home["arrival_mean_min"]


# -- road demand points ----------------------------------------------------------------------


def test_road_points_bin_segments_by_length_times_traffic() -> None:
    """Three segments in Jinan's prefecture: two (1 km and 3 km) in one 20-km cell, one (2 km)
    20 km east. Two points; each lies on a segment's midpoint (the heavier one's in the shared
    cell); the weights are km x the same population proxy, so 4 km weigh twice 2 km."""
    lat = np.array([36.65, 36.65, 36.65, 36.65, 36.65, 36.65])
    lon = np.array([117.10, 117.11, 117.12, 117.15, 117.35, 117.37])
    rows = road_demand_rows(
        lat, lon, np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([1.0, 3.0, 2.0]),
        spacing_km=20.0,
    )  # fmt: skip
    assert len(rows) == 2
    by_lon = sorted(rows, key=lambda r: r[1])
    assert by_lon[0][1] == pytest.approx(117.135)  # the heavier segment's midpoint
    assert by_lon[1][1] == pytest.approx(117.36)
    assert by_lon[0][2] / by_lon[1][2] == pytest.approx(2.0)
    assert {r[3] for r in rows} == {"370000"}


def test_road_spacing_must_be_positive() -> None:
    with pytest.raises(ValueError, match="road_spacing_km must be > 0, got 0"):
        road_demand_rows(np.zeros(2), np.zeros(2), np.array([0]), np.array([1]), np.ones(1),
                         spacing_km=0)  # fmt: skip


# -- scenario keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "after_job",
            '"teleport"',
            "dispatch.after_job must be one of return-home, next-from-site",
        ),
        ("trigger", '"sometimes"', "dispatch.trigger must be one of interval, arrival"),
        ("objective", '"cheapest"', "dispatch.objective must be one of eta, promise"),
    ],
)
def test_bad_dispatch_option_names_key_and_line(
    write_scenario, key: str, value: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    """One line: the file, the line, the key and the allowed values."""
    path = write_scenario(("[travel]", f"[dispatch]\n{key} = {value}\n\n[travel]"))
    line = _line_of(path, f"{key} = {value}")
    with pytest.raises(ScenarioError, match=rf"line {line}: {message}"):
        load_scenario(path)


def test_bad_road_demand_keys(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Road spacing and urban share are range-checked with the key and line."""
    path = write_scenario(("dispersion = 2.3", "dispersion = 2.3\nurban_share = 1.5"))
    line = _line_of(path, "urban_share = 1.5")
    with pytest.raises(
        ScenarioError, match=rf"line {line}: demand.urban_share must be in \[0, 1\], got 1.5$"
    ):
        load_scenario(path)


def test_sweep_keys_points_and_after_job(small_toml: Path) -> None:
    """``points`` and ``after_job`` sweep like the other keys, with labels."""
    s = load_scenario(small_toml)
    variants = s.variants((("after_job", ("return-home", "next-from-site")),
                           ("points", ("county_seats", "prefecture_seats"))))  # fmt: skip
    assert [v.label for v in variants] == [
        "after_job=return-home, points=county_seats",
        "after_job=return-home, points=prefecture_seats",
        "after_job=next-from-site, points=county_seats",
        "after_job=next-from-site, points=prefecture_seats",
    ]
    assert variants[3].dispatch.after_job == "next-from-site"
    assert variants[3].demand.points == "prefecture_seats"
    with pytest.raises(ScenarioError, match="sweep after_job='home' must be one of"):
        s.with_override("after_job", "home")


# -- seasons ---------------------------------------------------------------------------------


def test_season_factors_follow_the_calendar() -> None:
    """Day 0 = Thursday 2026-01-01: January's factor (2 before normalising, mean 13/12) times
    Thursday's; 2026-02-01 is a Sunday in February."""
    months = (2.0,) + (1.0,) * 11
    weekdays = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3)
    f = daily_season_factors(dt.date(2026, 1, 1), 40, months, weekdays)
    m_mean, w_mean = 13 / 12, 6.3 / 7
    assert f[0] == pytest.approx(2.0 / m_mean * 1.0 / w_mean)
    assert f[3] == pytest.approx(2.0 / m_mean * 0.3 / w_mean)  # Sunday 4 January
    assert f[31] == pytest.approx(1.0 / m_mean * 0.3 / w_mean)  # Sunday 1 February


def test_seasons_shape_daily_counts_with_common_random_numbers(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A winter peak (January x3) puts about three times the other months' daily breakdowns in
    January; flat factors draw exactly today's stream."""
    flat = load_scenario(write_scenario(("horizon_days = 20", "horizon_days = 364")))
    peak_path = write_scenario(
        ("horizon_days = 20", "horizon_days = 364"),
        (
            "dispersion = 2.3",
            "dispersion = 1\nmonth_factors = [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        ),
        name="peak.toml",
    )
    peak = load_scenario(peak_path)
    tables = build_tables(flat)
    counts = draw_breakdowns(peak, tables, replication_streams(1, 0)).daily_counts
    january, rest = counts[:31].mean(), counts[60:].mean()
    assert january / rest == pytest.approx(3.0, rel=0.15)
    explicit_flat = replace(flat, demand=replace(flat.demand, month_factors=(1.0,) * 12))
    a = draw_breakdowns(flat, tables, replication_streams(1, 0))
    b = draw_breakdowns(explicit_flat, tables, replication_streams(1, 0))
    assert np.array_equal(a.t, b.t)


def test_negative_season_factor_names_key_and_line(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A negative factor is refused with the key, its index and the line."""
    path = write_scenario(
        ("dispersion = 2.3", "dispersion = 2.3\nweekday_factors = [1, 1, 1, 1, 1, 1, -1]")
    )
    line = _line_of(path, "weekday_factors")
    with pytest.raises(
        ScenarioError, match=rf"line {line}: demand.weekday_factors\[6\] must be >= 0, got -1"
    ):
        load_scenario(path)


# -- crews -----------------------------------------------------------------------------------


def _crews_toml(write_scenario, crews: str, name: str) -> Path:  # type: ignore[no-untyped-def]
    return write_scenario(
        ("breakdowns_per_day = 30", "breakdowns_per_day = 5"),
        ("[travel]", f'[dispatch]\ntrigger = "arrival"\n\n[crews]\n{crews}\n\n[travel]'),
        name=name,
    )


def test_turnout_delays_every_departure_from_the_station(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """With a 10-minute turnout and vans to spare, first calls assigned the minute they are
    reported reach the site exactly 10 minutes later than without."""
    plain = _run(_crews_toml(write_scenario, "turnout_minutes = 0", "plain.toml"))
    slow = _run(_crews_toml(write_scenario, "turnout_minutes = 10", "slow.toml"))
    n = plain.requests.breakdown_count
    both = ~np.isnan(plain.requests.on_site_at[:n]) & ~np.isnan(slow.requests.on_site_at[:n])
    idle = both & (plain.requests.assigned_at[:n] == plain.requests.reported_at[:n])
    assert idle.sum() > 30
    same_start = idle & (slow.requests.assigned_at[:n] == plain.requests.assigned_at[:n])
    delta = slow.requests.on_site_at[:n][same_start] - plain.requests.on_site_at[:n][same_start]
    assert same_start.sum() > 20
    # the same van, 10 minutes later (another van may win a few where a van on its way home
    # now beats a station van's turnout)
    assert np.isclose(delta, 10.0).mean() > 0.9


def test_day_crews_leave_aaa_vans_unavailable_at_night(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """AAA stations with 16 crew hours from 6: no van is assigned between 22 h and 6 h; with
    night on-call they are, and those night assignments carry the 30-minute on-call turnout."""
    day = _run(_crews_toml(write_scenario, "hours_per_day = 16", "day.toml"))
    n = day.requests.breakdown_count
    at = day.requests.assigned_at[:n]
    hour = np.mod(at[~np.isnan(at)], 1440.0) / 60.0
    assert len(hour) > 30
    assert not ((hour >= 22) | (hour < 6)).any()
    on_call = _run(
        _crews_toml(
            write_scenario,
            "hours_per_day = 16\nnight_on_call = true\non_call_turnout_minutes = 30",
            "on_call.toml",
        )
    )
    reqs = on_call.requests
    at = reqs.assigned_at[:n]
    night = ~np.isnan(at) & ((np.mod(at, 1440.0) >= 22 * 60) | (np.mod(at, 1440.0) < 6 * 60))
    assert night.sum() > 3
    # the ETA includes the turnout: at least 30 minutes from assignment to site
    assert ((reqs.on_site_at[:n][night] - at[night]) >= 30.0).all()


def test_crew_hours_must_fit_the_day(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A crew window past midnight is refused with the key and line."""
    path = _crews_toml(write_scenario, "first_shift_hour = 10\nhours_per_day = 16", "late.toml")
    line = _line_of(path, "hours_per_day = 16")
    with pytest.raises(
        ScenarioError,
        match=rf"line {line}: crews.hours_per_day: first_shift_hour \+ hours_per_day "
        r"must be <= 24, got 10 \+ 16$",
    ):
        load_scenario(path)


# -- move-up in the run ----------------------------------------------------------------------


def test_move_up_in_the_run_stays_within_its_limits(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Loaded region, move-up on (at most 2 moves an hour, 120 km each): vans do move, never
    more than 2 in any hour, none farther than 120 km; the KPIs count the measured moves and
    their km; accounting still closes."""
    path = write_scenario(
        ("breakdowns_per_day = 30", "breakdowns_per_day = 60"),
        (
            "[travel]",
            '[dispatch]\ntrigger = "arrival"\nmove_up = true\n\n'
            "[move_up]\nmax_moves_per_hour = 2\nmax_move_km = 120\nmin_gain = 0.001\n\n[travel]",
        ),
    )
    sim = _run(path)
    mu = sim.move_up
    assert mu is not None
    times = np.array(mu.move_times)
    assert len(times) > 5
    assert max(((times > t - 60.0) & (times <= t)).sum() for t in times) <= 2
    assert max(mu.move_km) <= 120.0
    s = load_scenario(path)
    k = simulate(s, build_tables(s), 0).kpis
    assert k["move_ups"] == float((times >= s.warmup_days * 1440.0).sum())
    assert k["move_up_km"] > 0
    assert k["breakdowns"] == k["served"] + k["escalated"] + k["unserved"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_moves_per_hour = 0", "move_up.max_moves_per_hour must be >= 1, got 0"),
        ("max_move_km = -5", "move_up.max_move_km must be > 0, got -5"),
        ("check_minutes = 0", "move_up.check_minutes must be > 0, got 0"),
    ],
)
def test_bad_move_up_limits_name_key_and_line(write_scenario, line: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write_scenario(("[travel]", f"[move_up]\n{line}\n\n[travel]"))
    at = _line_of(path, line)
    with pytest.raises(ScenarioError, match=rf"line {at}: {message}$"):
        load_scenario(path)


def test_road_points_of_a_province_carry_the_urban_share(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Shandong on roads (30-km cells): every point in the province, the county seats carry
    exactly ``urban_share`` (0.25) of the weight and the road points the rest."""
    path = write_scenario(
        ('points = "county_seats"', 'points = "roads"\nroad_spacing_km = 30\nurban_share = 0.25')
    )
    points = demand_points(load_scenario(path))
    assert set(points.province) == {"370000"}
    on_road = np.array([name.startswith("road near ") for name in points.name])
    assert on_road.sum() > 50
    assert points.weight[~on_road].sum() == pytest.approx(0.25)
    assert points.weight[on_road].sum() == pytest.approx(0.75)


# -- the nearest-idle baseline on equal terms ---------------------------------------------------

ONE_VAN = (
    ("replace = true", "replace = true\nvans_per_station = 1"),
    ("breakdowns_per_day = 30", "breakdowns_per_day = 40"),
)


def _nearest_sim(write_scenario, after_job: str) -> Simulation:  # type: ignore[no-untyped-def]
    path = write_scenario(
        *ONE_VAN,
        (
            "[travel]",
            f'[dispatch]\npolicy = "nearest-idle"\nrespect_shifts = false\n'
            f'after_job = "{after_job}"\n\n[travel]',
        ),
        name=f"nearest-{after_job}.toml",
    )
    s = load_scenario(path)
    tables = build_tables(s)
    return Simulation(s, tables, draw_breakdowns(s, tables, replication_streams(s.seed, 0)))


def _first_call(sim: Simulation) -> tuple[int, int, int]:
    """Dispatch a first call fixed on site at minute 0; pick a second call at another point
    the same van can serve; put every other van out of reach (the van, the two requests)."""
    reqs, fleet = sim.requests, sim.fleet
    b = sim.breakdowns
    covered = [
        r for r in range(reqs.breakdown_count)
        if fleet.covers_point[reqs.capability_key(r), reqs.point(r)] and not b.needs_tow[r]
    ]  # fmt: skip
    first = next(r for r in covered if b.fixed_on_site[r])
    reqs.reported_at[first] = 0.0
    sim.arrive(first, 0.0)
    van = int(reqs.van[first])
    assert van >= 0
    second = next(
        r for r in covered
        if reqs.point(r) != reqs.point(first)
        and fleet.can_handle[reqs.capability_key(r), van]
        and van in fleet.arc_van[slice(*fleet.arcs(reqs.point(r)))].tolist()
    )  # fmt: skip
    others = np.arange(len(fleet.vans)) != van
    sim.schedule.home_at[others] = sim.schedule.leaves_site_at[others] = 1e9
    return van, first, second


def test_nearest_idle_takes_a_van_on_its_way_home_with_next_from_site(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Under nearest-idle with next-from-site, a call reported while the only capable van
    drives home empty from a site is given to it at once, reaching the site after the better
    of via home and turning round (hand-computed here); with return-home the call waits."""
    for after_job in ("next-from-site", "return-home"):
        sim = _nearest_sim(write_scenario, after_job)
        van, first, second = _first_call(sim)
        left, home = float(sim.schedule.leaves_site_at[van]), float(sim.schedule.home_at[van])
        assert left < home
        now = left + 0.25 * (home - left)
        sim.requests.reported_at[second] = now
        sim.arrive(second, now)
        if after_job == "return-home":
            assert second in sim.waiting
            assert np.isnan(sim.requests.assigned_at[second])
            continue
        assert sim.requests.van[second] == van and sim.requests.assigned_at[second] == now
        arc = sim.fleet.arc_of(sim.requests.point(second), van)
        assert sim.site_legs is not None
        via_home = (home - now) + float(sim.fleet.arc_minutes[arc])
        turn = (now - left) + float(
            sim.site_legs.minutes(
                sim.requests.point(first), np.array([sim.requests.point(second)])
            )[0]
        )
        assert sim.requests.on_site_at[second] == pytest.approx(now + min(via_home, turn))


def test_nearest_idle_van_leaving_a_site_takes_the_longest_waiting_call(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """A call waits while the only capable van is on site; with next-from-site the van takes
    it the minute it leaves the site (the VAN_FREE event), not when it is home."""
    sim = _nearest_sim(write_scenario, "next-from-site")
    van, _first, second = _first_call(sim)
    left = float(sim.schedule.leaves_site_at[van])
    sim.requests.reported_at[second] = left - 1.0
    sim.arrive(second, left - 1.0)
    assert second in sim.waiting
    sim.van_free(van, left)
    assert second not in sim.waiting
    assert sim.requests.van[second] == van and sim.requests.assigned_at[second] == left


def test_nearest_idle_honours_next_from_site_over_a_run(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """Same breakdowns, loaded fleet, nearest-idle: next-from-site lowers the mean arrival
    (before, nearest-idle ignored the key and both runs were identical)."""
    k_home, k_site = _home_and_site_kpis(write_scenario, 'policy = "nearest-idle"')
    assert k_home["breakdowns"] == k_site["breakdowns"]
    assert k_site["arrival_mean_min"] < k_home["arrival_mean_min"]
    assert k_site["breakdowns"] == k_site["served"] + k_site["escalated"] + k_site["unserved"]


def test_nearest_idle_honours_crews(write_scenario) -> None:  # type: ignore[no-untyped-def]
    """nearest-idle with crews: a 10-minute turnout puts idle-van arrivals exactly 10 minutes
    later; AAA day crews (16 h from 6) leave no van to assign between 22 h and 6 h."""

    def crews(text: str, name: str) -> Path:
        return write_scenario(
            ("breakdowns_per_day = 30", "breakdowns_per_day = 5"),
            ("[travel]", f'[dispatch]\npolicy = "nearest-idle"\n\n[crews]\n{text}\n\n[travel]'),
            name=name,
        )

    plain = _run(crews("turnout_minutes = 0", "plain.toml"))
    slow = _run(crews("turnout_minutes = 10", "slow.toml"))
    n = plain.requests.breakdown_count
    same = (
        ~np.isnan(plain.requests.on_site_at[:n])
        & (plain.requests.assigned_at[:n] == plain.requests.reported_at[:n])
        & (slow.requests.assigned_at[:n] == plain.requests.assigned_at[:n])
    )
    assert same.sum() > 20
    delta = slow.requests.on_site_at[:n][same] - plain.requests.on_site_at[:n][same]
    assert np.isclose(delta, 10.0).mean() > 0.9
    day = _run(crews("hours_per_day = 16", "day.toml"))
    at = day.requests.assigned_at[:n]
    hour = np.mod(at[~np.isnan(at)], 1440.0) / 60.0
    assert len(hour) > 30
    assert not ((hour >= 22) | (hour < 6)).any()


_SEASONS = "dispersion = 2.3"
_POINTS = 'points = "county_seats"\nprovinces = ["370000"]'
_EXPLICIT = 'provinces = ["370000"]\n\n[[demand.points]]\nlat = 36.6\nlon = 117.0\n'


@pytest.mark.parametrize(
    ("old", "new", "at", "message"),
    [
        (_SEASONS, f"{_SEASONS}\nmonth_factors = [1, 1, 1, -0.5, 1, 1, 1, 1, 1, 1, 1, 1]",
         "month_factors", r"demand.month_factors\[3\] must be >= 0, got -0.5"),
        (_SEASONS, f"{_SEASONS}\nmonth_factors = [1, 1, 1]", "month_factors",
         "demand.month_factors must be a list of 12 numbers, got 3 values"),
        (_SEASONS, f"{_SEASONS}\nweekday_factors = [0, 0, 0, 0, 0, 0, 0]", "weekday_factors",
         "demand.weekday_factors must not all be zero"),
        (_POINTS, 'points = "highways"', "highways",
         "demand.points must be one of county_seats, prefecture_seats, stations, roads, "
         "got 'highways'"),
        (_POINTS, 'points = "roads"\nroad_spacing_km = 1', "road_spacing_km",
         r"demand.road_spacing_km must be in \[2, 200\], got 1"),
        (_POINTS, 'points = "roads"\nurban_share = -0.1', "urban_share",
         r"demand.urban_share must be in \[0, 1\], got -0.1"),
        (_POINTS, f"{_EXPLICIT}weight = -1", "weight = -1",
         r"demand.points\[0\]: weight must be >= 0, got -1"),
        (_POINTS, _EXPLICIT.replace("36.6", "96.6"), "lat = 96.6",
         r"demand.points\[0\]: lat must be in \[-90, 90\], got 96.6"),
        ("[travel]", '[dispatch]\nmove_up = "yes"\n\n[travel]', 'move_up = "yes"',
         "dispatch.move_up must be true or false, got 'yes'"),
        ("[travel]", "[move_up]\nmax_moves_per_hour = 2.5\n\n[travel]", "max_moves_per_hour",
         "move_up.max_moves_per_hour must be an integer, got 2.5"),
        ("[travel]", "[move_up]\nmax_move_km = 0\n\n[travel]", "max_move_km",
         "move_up.max_move_km must be > 0, got 0"),
        ("[travel]", "[move_up]\ncheck_minutes = -15\n\n[travel]", "check_minutes",
         "move_up.check_minutes must be > 0, got -15"),
        ("[travel]", "[move_up]\nmin_gain = -0.1\n\n[travel]", "min_gain",
         r"move_up.min_gain must be in \[0, 1\], got -0.1"),
        ("[travel]", "[move_up]\nmax_moves = 3\n\n[travel]", "max_moves",
         "unknown key 'move_up.max_moves'; allowed here: check_minutes, max_move_km, "
         "max_moves_per_hour, min_gain"),
        ("[travel]", "[crews]\nturnout_minutes = -5\n\n[travel]", "turnout_minutes",
         "crews.turnout_minutes must be >= 0, got -5"),
        ("[travel]", "[crews]\non_call_turnout_minutes = -1\n\n[travel]", "on_call_turnout",
         "crews.on_call_turnout_minutes must be >= 0, got -1"),
        ("[travel]", "[crews]\nhours_per_day = 0\n\n[travel]", "hours_per_day",
         "crews.hours_per_day must be > 0, got 0"),
        ("[travel]", "[crews]\nhours_per_day = 25\n\n[travel]", "hours_per_day",
         "crews.hours_per_day must be <= 24, got 25"),
        ("[travel]", "[crews]\nfirst_shift_hour = 24\n\n[travel]", "first_shift_hour",
         r"crews.first_shift_hour must be in \[0, 23\], got 24"),
        ("[travel]", '[crews]\nnight_on_call = "yes"\n\n[travel]', "night_on_call",
         "crews.night_on_call must be true or false, got 'yes'"),
        ("[travel]", "[crews]\nshift_hours = 8\n\n[travel]", "shift_hours",
         "unknown key 'crews.shift_hours'; allowed here: first_shift_hour, hours_per_day, "
         "night_on_call, on_call_turnout_minutes, turnout_minutes"),
        ("[travel]", '[sweep]\nmove_up = [true, "maybe"]\n\n[travel]', "maybe",
         r"sweep.move_up\[1\] must be true or false, got 'maybe'"),
        ("[travel]", '[sweep]\nafter_job = ["return-home", "home"]\n\n[travel]', '"home"]',
         r"sweep.after_job\[1\] must be one of return-home, next-from-site, got 'home'"),
        ("[travel]", '[sweep]\npoints = ["roads", "highways"]\n\n[travel]', "highways",
         r"sweep.points\[1\] must be one of county_seats, prefecture_seats, stations, roads, "
         "got 'highways'"),
    ],
)  # fmt: skip
def test_issue_16_keys_refuse_bad_values_in_one_line_with_key_and_line(
    write_scenario, old: str, new: str, at: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    """Every key of the planning options (seasons, demand points, after_job / move_up, the
    move-up limits, crews, their sweeps) refuses a bad value with one line: the file, the
    line of the value, the key and the reason (the checks not already tested above)."""
    path = write_scenario((old, new))
    line = _line_of(path, at)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text = str(err.value)
    assert "\n" not in text
    assert re.fullmatch(rf"{re.escape(str(path))} line {line}: {message}", text), text


def test_sweep_key_move_up(small_toml: Path) -> None:
    """``move_up`` sweeps like ``points`` and ``after_job``: one variant per value, labelled,
    with ``[dispatch] move_up`` set and the ``[move_up]`` limits kept."""
    s = load_scenario(small_toml)
    off, on = s.variants((("move_up", (False, True)),))
    assert (off.label, on.label) == ("move_up=False", "move_up=True")
    assert (off.dispatch.move_up, on.dispatch.move_up) == (False, True)
    assert on.move_up == s.move_up
