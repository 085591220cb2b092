"""The request state machine: allowed paths work, everything else raises InvalidTransition."""

from __future__ import annotations

import pytest

from dispatch.lifecycle import (
    ASSIGNABLE,
    DIAGNOSABLE,
    REPLACEMENT_ELIGIBLE,
    TERMINAL,
    TRANSITIONS,
    VAN_ACTIVE,
    VAN_AT_BREAKDOWN,
    VAN_FOLLOWS,
    InvalidTransition,
    RequestStatus,
    is_terminal,
    releases_truck,
    releases_van,
    transition,
    transition_effects,
)

S = RequestStatus


def walk(*states: RequestStatus) -> RequestStatus:
    current = states[0]
    for nxt in states[1:]:
        current = transition(current, nxt)
    return current


def test_happy_paths() -> None:
    """Repair on site, and the replacement path through delivery, both end closed."""
    assert walk(S.RECEIVED, S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.REPAIRED, S.CLOSED) is S.CLOSED
    assert (
        walk(
            S.RECEIVED,
            S.ASSIGNED,
            S.EN_ROUTE,
            S.ON_SITE,
            S.AWAITING_REPLACEMENT,
            S.REPLACEMENT_ASSIGNED,
            S.CARGO_TRANSFERRED,
            S.DELIVERED,
            S.CLOSED,
        )
        is S.CLOSED
    )


def test_every_disallowed_pair_raises_naming_both_states() -> None:
    """Any pair outside TRANSITIONS raises a ValueError subclass naming from and to."""
    for src in S:
        for dst in S:
            if dst in TRANSITIONS[src]:
                assert transition(src, dst) is dst
            else:
                with pytest.raises(InvalidTransition, match=f"{src.value} -> {dst.value}") as err:
                    transition(src, dst)
                assert isinstance(err.value, ValueError)
                assert (err.value.from_status, err.value.to_status) == (src.value, dst.value)


def test_terminal_states_and_unknown_names() -> None:
    """closed/cancelled are terminal; an unknown status name raises ValueError naming it."""
    assert is_terminal("closed") and is_terminal(S.CANCELLED) and not is_terminal("towing")
    with pytest.raises(ValueError, match="unknown request status 'flying'"):
        transition("received", "flying")


def test_status_sets_follow_the_state_machine() -> None:
    """Each set is what the transitions allow: a van can be reassigned only before it reaches
    the breakdown; requests holding a van can all reach on_site or be released; terminal
    statuses allow nothing and are in no working set."""
    assert {S.CLOSED, S.CANCELLED} == TERMINAL
    assert {S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING} == VAN_ACTIVE
    assert {S.RECEIVED, S.ASSIGNED, S.EN_ROUTE} == ASSIGNABLE
    assert VAN_AT_BREAKDOWN == {S.ON_SITE, S.TOWING} < VAN_FOLLOWS < VAN_ACTIVE
    assert DIAGNOSABLE == ASSIGNABLE | VAN_AT_BREAKDOWN
    assert DIAGNOSABLE | {S.AWAITING_REPLACEMENT} == REPLACEMENT_ELIGIBLE
    assert ASSIGNABLE.isdisjoint(VAN_AT_BREAKDOWN)
    for working in (VAN_ACTIVE, ASSIGNABLE, DIAGNOSABLE, REPLACEMENT_ELIGIBLE):
        assert working.isdisjoint(TERMINAL)
    # a request that reached the breakdown can no longer be cancelled by the lifecycle
    assert all(S.CANCELLED not in TRANSITIONS[s] for s in VAN_AT_BREAKDOWN)


def test_transition_effects_on_van_and_truck() -> None:
    """Leaving the van track releases the van (where the breakdown is, if the van got there);
    awaiting_replacement, delivered, closed and cancelled end the truck booking."""
    arrive = transition_effects(S.EN_ROUTE, S.ON_SITE)
    assert arrive.van_follows and arrive.van_arrives and not arrive.releases_van
    repaired = transition_effects("on_site", "repaired")
    assert repaired.releases_van and repaired.van_left_at_breakdown
    assert not repaired.releases_truck and not repaired.van_follows
    back = transition_effects(S.EN_ROUTE, S.RECEIVED)
    assert back.releases_van and not back.van_left_at_breakdown
    cancelled = transition_effects(S.ASSIGNED, S.CANCELLED)
    assert cancelled.releases_van and cancelled.releases_truck
    delivered = transition_effects(S.CARGO_TRANSFERRED, S.DELIVERED)
    assert delivered.releases_truck and delivered.truck_left_at_destination
    assert transition_effects(S.REPLACEMENT_ASSIGNED, S.CARGO_TRANSFERRED).truck_at_breakdown
    assert [s for s in S if releases_truck(s)] == [
        S.AWAITING_REPLACEMENT,
        S.DELIVERED,
        S.CLOSED,
        S.CANCELLED,
    ]
    assert {s for s in S if not releases_van(s)} == VAN_ACTIVE
    with pytest.raises(ValueError, match="unknown request status 'parked'"):
        transition_effects(S.ON_SITE, "parked")
