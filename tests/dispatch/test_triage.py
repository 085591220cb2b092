"""Triage: repair estimate from the catalogue, parts lead time, replacement rule, priority."""

from __future__ import annotations

import math

import pytest

from dispatch.triage import TriageContext, apply_diagnosis, estimate_repair, needs_replacement
from fleet.faults import load_fault_catalogue
from fleet.model import GeoPoint, ServiceStation, StationGrade, VehicleClass


def station(parts: frozenset[str]) -> ServiceStation:
    return ServiceStation(
        id="S1",
        name="s",
        grade=StationGrade.A,
        location=GeoPoint(36.0, 117.0),
        adcode="370100",
        prefecture_adcode="370100",
        province_adcode="370000",
        parts_in_stock=parts,
    )


def test_expected_hours_match_the_catalogue_mixture() -> None:
    """With parts at hand the estimate is the catalogue's on-site/workshop mixture mean, and the
    p90 leaves 10% of the mixture above it."""
    fault = load_fault_catalogue().get("ENGINE_NO_START")
    e = estimate_repair(fault, VehicleClass.TRACTOR)
    assert e.expected_hours == pytest.approx(fault.expected_repair_hours())
    p = fault.p_on_site_fix
    tail = p * fault.on_site_hours.prob_exceeds(e.p90_hours) + (
        1 - p
    ) * fault.workshop_hours.prob_exceeds(e.p90_hours)
    assert tail == pytest.approx(0.1, abs=1e-6)


def test_missing_parts_add_the_longest_lead_time() -> None:
    """Parts the nearest station lacks delay the repair by the longest missing lead time."""
    cat = load_fault_catalogue()
    fault = next(f for f in cat if len(f.parts) >= 1)
    base = estimate_repair(fault, "tractor")
    e = estimate_repair(fault, "tractor", TriageContext(nearest_station=station(frozenset())))
    lead = max(cat.part(p).lead_time_hours for p in fault.parts)
    assert e.missing_parts == fault.parts
    assert e.expected_hours == pytest.approx(base.expected_hours + lead)
    stocked = estimate_repair(
        fault, "tractor", TriageContext(nearest_station=station(frozenset(fault.parts)))
    )
    assert stocked.missing_parts == () and stocked.expected_hours == pytest.approx(
        base.expected_hours
    )


def test_replacement_decided_at_intake_by_contract_threshold() -> None:
    """A fault whose estimate exceeds the contract threshold needs a replacement at intake; a
    stricter 8 h contract flips a 10 h fault too."""
    assert estimate_repair("ENGINE_MAJOR", "tractor").needs_replacement
    mid = estimate_repair("ENGINE_NO_START", "tractor")
    assert 8 < mid.expected_hours < 24
    assert not mid.needs_replacement
    assert estimate_repair(
        "ENGINE_NO_START", "tractor", TriageContext(threshold_hours=8)
    ).needs_replacement


def test_diagnosis_overrides_estimate() -> None:
    """The technician's hours replace the estimate and re-decide the replacement."""
    e = estimate_repair("TYRE_PUNCTURE", "tractor")
    d = apply_diagnosis(e, 30.0)
    assert (d.needs_replacement, d.source, d.expected_hours) == (True, "diagnosis", 30.0)
    assert not apply_diagnosis(e, 30.0, threshold=48.0).needs_replacement


def test_needs_replacement_is_strict_and_validates() -> None:
    """Exactly at the threshold is not over it; NaN or negative hours and threshold <= 0 raise."""
    assert not needs_replacement(24.0, 24.0) and needs_replacement(24.01, 24.0)
    with pytest.raises(ValueError, match="repair hours"):
        needs_replacement(math.nan)
    with pytest.raises(ValueError, match="threshold hours must be > 0"):
        needs_replacement(5.0, 0.0)


def test_priority_by_grade_and_class_and_unknowns() -> None:
    """Critical faults on tractors outrank minor faults on cars; unknown codes/classes raise."""
    assert (
        estimate_repair("ENGINE_MAJOR", "tractor").priority
        > estimate_repair("BATTERY_FLAT", "car").priority
    )
    assert estimate_repair("BATTERY_FLAT", "car").priority == 1.0
    assert estimate_repair(None, "car").fault_code == "UNKNOWN"
    with pytest.raises(ValueError, match="unknown fault code 'NOPE'"):
        estimate_repair("NOPE", "car")
    with pytest.raises(ValueError, match="unknown vehicle class 'tank'"):
        estimate_repair("BATTERY_FLAT", "tank")
