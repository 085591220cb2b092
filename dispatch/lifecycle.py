"""The life of a rescue request as a pure state machine, as the API walks it.

The simulation does not use it: it plans each van trip's whole timeline at dispatch and never
holds a request in a status, so there is no transition for it to check. The rules both do
share live in :mod:`fleet` (the shift rule, ``fleet.is_on_shift``) and :mod:`dispatch`
(matching, ``dispatch.TruckFit``).

Van track: received -> assigned -> en_route -> on_site -> repaired -> closed (or towing).
Cargo track, when the repair exceeds the contract threshold: on_site / towing ->
awaiting_replacement -> replacement_assigned -> cargo_transferred -> delivered -> closed.
A replacement decided at intake (the fault already says the repair is too long) is booked in
parallel with the van: the request then goes from on_site / towing straight to
replacement_assigned. Reassignment sends assigned / en_route back to received (or to another
van: en_route -> assigned). ``closed`` and ``cancelled`` are terminal.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    REPAIRED = "repaired"
    TOWING = "towing"
    AWAITING_REPLACEMENT = "awaiting_replacement"
    REPLACEMENT_ASSIGNED = "replacement_assigned"
    CARGO_TRANSFERRED = "cargo_transferred"
    DELIVERED = "delivered"
    CLOSED = "closed"
    CANCELLED = "cancelled"


S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.RECEIVED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.EN_ROUTE, S.RECEIVED, S.CANCELLED}),
    S.EN_ROUTE: frozenset({S.ON_SITE, S.ASSIGNED, S.RECEIVED, S.CANCELLED}),
    S.ON_SITE: frozenset({S.REPAIRED, S.TOWING, S.AWAITING_REPLACEMENT, S.REPLACEMENT_ASSIGNED}),
    S.TOWING: frozenset({S.REPAIRED, S.AWAITING_REPLACEMENT, S.REPLACEMENT_ASSIGNED, S.CLOSED}),
    S.REPAIRED: frozenset({S.CLOSED}),
    S.AWAITING_REPLACEMENT: frozenset({S.REPLACEMENT_ASSIGNED, S.CANCELLED}),
    S.REPLACEMENT_ASSIGNED: frozenset({S.CARGO_TRANSFERRED, S.AWAITING_REPLACEMENT, S.CANCELLED}),
    S.CARGO_TRANSFERRED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}
"""Allowed next states; anything else raises :class:`InvalidTransition`."""

TERMINAL: frozenset[RequestStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN_FOR_VAN_DISPATCH: frozenset[RequestStatus] = frozenset({S.RECEIVED})
"""Requests that the dispatch cycle may (re)assign a van to."""


class InvalidTransition(ValueError):
    """A transition the state machine does not allow; names both states."""

    def __init__(self, from_status: RequestStatus | str, to_status: RequestStatus | str) -> None:
        self.from_status = str(from_status)
        self.to_status = str(to_status)
        try:
            allowed = TRANSITIONS[RequestStatus(from_status)]
        except ValueError:
            allowed = frozenset()
        options = ", ".join(sorted(allowed)) or "none (terminal)"
        super().__init__(
            f"invalid transition {self.from_status} -> {self.to_status}; allowed: {options}"
        )


def parse_status(value: RequestStatus | str) -> RequestStatus:
    """The status named ``value``; an unknown name raises ``ValueError`` naming it."""
    try:
        return RequestStatus(value)
    except ValueError:
        raise ValueError(
            f"unknown request status {value!r}; known: {', '.join(s.value for s in S)}"
        ) from None


def allowed_transitions(status: RequestStatus | str) -> frozenset[RequestStatus]:
    return TRANSITIONS[parse_status(status)]


def can_transition(from_status: RequestStatus | str, to_status: RequestStatus | str) -> bool:
    return parse_status(to_status) in TRANSITIONS[parse_status(from_status)]


def transition(from_status: RequestStatus | str, to_status: RequestStatus | str) -> RequestStatus:
    """The new status, or :class:`InvalidTransition` when the move is not allowed."""
    src = parse_status(from_status)
    dst = parse_status(to_status)
    if dst not in TRANSITIONS[src]:
        raise InvalidTransition(src, dst)
    return dst


def is_terminal(status: RequestStatus | str) -> bool:
    return parse_status(status) in TERMINAL
