"""Service contracts in simulation scenarios: ``[[contracts]]`` plus ``demand.contract_mix``
give every breakdown a contract, whose threshold and booking probability the triage uses."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

import numpy as np
import pytest

from simulations.demand import draw_breakdowns, replication_streams
from simulations.engine import simulate
from simulations.replacement_model import BookingDecisions
from simulations.scenario import Scenario, ScenarioError, load_scenario, scenario_from_mapping
from simulations.tables import build_tables
from tests.simulations.conftest import SMALL

CONTRACTS = """
[[contracts]]
id = "premium"
name = "premium 8 h"
threshold_hours = 8
booking_probability = 0.3

[[contracts]]
id = "basic"
threshold_hours = 24
"""

_TRUCKS = "".join(
    f'\n[[trucks]]\nid = "{kind}-{i}"\npartner = "P1"\ntype = "{kind}"\ncapacity_t = 40\n'
    f"lat = {36.2 + 0.3 * (i % 3):.1f}\nlon = {117.1 + 0.4 * (i % 4):.1f}\n"
    for kind in ("tractor", "box_truck", "flatbed")
    for i in range(8)
)
"""Enough partner trucks that the contracts, not the truck pool, decide the trips."""


def _text(mix: str, policy: str = "intake-risk") -> str:
    text = SMALL.replace("[demand]", CONTRACTS + _TRUCKS + "\n[demand]\n" + mix)
    return text.replace(
        "[replacement]\nthreshold_hours = 8\n",
        f'[replacement]\nthreshold_hours = 24\npolicy = "{policy}"\n',
    )


@cache
def _scenario(mix: str, policy: str = "intake-risk") -> Scenario:
    text = _text(mix, policy)
    return scenario_from_mapping(tomllib.loads(text), source="contracts.toml", text=text)


def test_mix_is_parsed_against_the_networks_contracts() -> None:
    """The mix keys are contract ids of the scenario's network; the shares stay as given (the
    draw normalises them); without a mix the tuple is empty."""
    s = _scenario("contract_mix = {premium = 1, basic = 3}")
    assert s.demand.contract_mix == (("premium", 1.0), ("basic", 3.0))
    assert s.network.registry.contract_by_id["premium"].threshold_hours == 8.0
    assert _scenario("").demand.contract_mix == ()


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        (
            "contract_mix = {gold = 1}",
            r"demand\.contract_mix\.gold: no contract with id 'gold'; contracts: basic, "
            r"premium, standard$",
        ),
        ("contract_mix = {premium = -1}", r"demand\.contract_mix\.premium must be >= 0, got -1"),
        ("contract_mix = {premium = 0}", r"demand\.contract_mix must not all be zero$"),
        (
            'contract_mix = {premium = "half"}',
            r"demand\.contract_mix\.premium must be a number, got 'half'$",
        ),
    ],
)
def test_bad_mix_names_key_and_line(tmp_path: Any, mix: str, message: str) -> None:
    """A mix naming an unknown contract, a negative or non-numeric share or only zeros is
    refused with the file, the line of the key and the reason; nothing is built."""
    path = tmp_path / "bad.toml"
    text = _text(mix)
    path.write_text(text, "utf-8")
    line = text.splitlines().index(mix) + 1
    with pytest.raises(ScenarioError, match=rf"^{path} line {line}: {message}"):
        load_scenario(path)


def test_contracts_draw_from_their_own_stream() -> None:
    """The contract draw follows the shares and changes no other draw: the breakdowns are the
    same with or without a mix."""
    plain, mixed = _scenario(""), _scenario("contract_mix = {premium = 1, basic = 3}")
    tables = build_tables(plain)
    a = draw_breakdowns(plain, tables, replication_streams(plain.seed, 0))
    b = draw_breakdowns(mixed, tables, replication_streams(mixed.seed, 0))
    assert a.contract is None and b.contract is not None
    for name in ("t", "point", "fault", "repair_hours", "technician_hours", "has_cargo"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    share_premium = float((b.contract == 0).mean())
    assert len(b) > 400 and 0.17 < share_premium < 0.33


def test_each_breakdown_is_triaged_on_its_contract() -> None:
    """Per breakdown: needed = cargo and true hours over its own contract's threshold; a mix
    of only the 24 h contract decides exactly as no mix with a 24 h threshold (the standard
    probability is the same 0.5); premium breakdowns (8 h, p 0.3) book at intake whenever the
    same breakdown would under the 24 h contract."""
    plain = _scenario("")
    mixed = _scenario("contract_mix = {premium = 1, basic = 1}")
    basic = _scenario("contract_mix = {basic = 1}")
    tables = build_tables(plain)
    b = draw_breakdowns(mixed, tables, replication_streams(mixed.seed, 0))
    d_plain = BookingDecisions.compute(plain, b)
    d_basic = BookingDecisions.compute(
        basic, draw_breakdowns(basic, tables, replication_streams(basic.seed, 0))
    )
    for name in ("needed", "at_intake", "after_diagnosis"):
        assert np.array_equal(getattr(d_plain, name), getattr(d_basic, name)), name
    d_mixed = BookingDecisions.compute(mixed, b)
    threshold = np.where(b.contract == 0, 8.0, 24.0)
    assert np.array_equal(d_mixed.needed, b.has_cargo & (b.repair_hours > threshold))
    premium = b.contract == 0
    assert np.all(d_plain.at_intake[premium] <= d_mixed.at_intake[premium])
    assert np.array_equal(d_plain.at_intake[~premium], d_mixed.at_intake[~premium])
    assert d_mixed.at_intake[premium].sum() > d_plain.at_intake[premium].sum()


def test_an_8_hour_contract_books_more_trucks_than_24_hours() -> None:
    """Same scenario, same random numbers, every vehicle under the 8 h contract or under the
    24 h one: the 8 h contract books more replacement trucks, and needs more; the van side is
    the same run."""
    tables = build_tables(_scenario(""))
    eight = simulate(_scenario("contract_mix = {premium = 1}"), tables, 0).kpis
    day = simulate(_scenario("contract_mix = {basic = 1}"), tables, 0).kpis
    assert eight["breakdowns"] == day["breakdowns"] and eight["served"] == day["served"]
    assert eight["replacement_trips"] > day["replacement_trips"] > 0
    assert eight["replacements_needed"] > day["replacements_needed"]
