"""The request state machine: allowed paths work, everything else raises InvalidTransition."""

from __future__ import annotations

import pytest

from dispatch.lifecycle import (
    TRANSITIONS,
    InvalidTransition,
    RequestStatus,
    is_terminal,
    transition,
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
