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

from dataclasses import dataclass
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
"""Closed and cancelled: nothing follows (the queue's ``open`` filter leaves them out)."""

# -- status sets: the one home of "which statuses allow what" ---------------------------------

VAN_ACTIVE: frozenset[RequestStatus] = frozenset({S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING})
"""The request holds its van; any other status releases it."""
VAN_FOLLOWS: frozenset[RequestStatus] = frozenset({S.EN_ROUTE, S.ON_SITE, S.TOWING})
"""The van's own status mirrors the request's (it needs a van to get there)."""
VAN_AT_BREAKDOWN: frozenset[RequestStatus] = frozenset({S.ON_SITE, S.TOWING})
"""The van has reached the breakdown: released from here, it is free where the breakdown is."""
VAN_ON_ITS_WAY: frozenset[RequestStatus] = frozenset({S.ASSIGNED, S.EN_ROUTE})
"""The request holds a van that has not reached it: its ETA is live (position reports re-time
it, lateness is measured against the promise) and re-planning may still move the van."""
ASSIGNABLE: frozenset[RequestStatus] = frozenset({S.RECEIVED, S.ASSIGNED, S.EN_ROUTE})
"""A dispatcher may (re)assign a van: the van has not reached the breakdown yet."""
DIAGNOSABLE: frozenset[RequestStatus] = frozenset(
    {S.RECEIVED, S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING}
)
"""A repair estimate may be recorded (before the repair or the replacement is settled)."""
REPLACEMENT_ELIGIBLE: frozenset[RequestStatus] = frozenset(
    {S.RECEIVED, S.ASSIGNED, S.EN_ROUTE, S.ON_SITE, S.TOWING, S.AWAITING_REPLACEMENT}
)
"""The dispatch cycle books a truck for a request that needs one (a replacement decided at
intake is booked while the van is still on its way)."""
RELEASES_TRUCK: frozenset[RequestStatus] = frozenset(
    {S.AWAITING_REPLACEMENT, S.DELIVERED, S.CLOSED, S.CANCELLED}
)
"""Entering one of these ends the truck booking (awaiting_replacement: the booking failed and
is booked again)."""


@dataclass(frozen=True, slots=True)
class TransitionEffects:
    """What a move ``source -> target`` does to the van and the truck of the request."""

    van_follows: bool
    """The van's status becomes the request's (en_route, on_site, towing)."""
    van_arrives: bool
    """The van is at the breakdown from now on (on_site)."""
    releases_van: bool
    """The request no longer holds its van."""
    van_left_at_breakdown: bool
    """The released van is free where the breakdown is (it had got there)."""
    releases_truck: bool
    """The truck booking ends."""
    truck_at_breakdown: bool
    """The truck has loaded the cargo at the breakdown (cargo_transferred)."""
    truck_left_at_destination: bool
    """The released truck is free at the cargo's destination (delivered)."""


def releases_van(target: RequestStatus | str) -> bool:
    """Whether entering ``target`` releases the request's van."""
    return parse_status(target) not in VAN_ACTIVE


def releases_truck(target: RequestStatus | str) -> bool:
    """Whether entering ``target`` ends the request's truck booking."""
    return parse_status(target) in RELEASES_TRUCK


def transition_effects(
    source: RequestStatus | str, target: RequestStatus | str
) -> TransitionEffects:
    """The effects of moving from ``source`` to ``target`` (it does not check that the move is
    allowed: :func:`transition` does)."""
    src, dst = parse_status(source), parse_status(target)
    van_released = releases_van(dst)
    return TransitionEffects(
        van_follows=dst in VAN_FOLLOWS,
        van_arrives=dst is S.ON_SITE,
        releases_van=van_released,
        van_left_at_breakdown=van_released and src in VAN_AT_BREAKDOWN,
        releases_truck=releases_truck(dst),
        truck_at_breakdown=dst is S.CARGO_TRANSFERRED,
        truck_left_at_destination=dst is S.DELIVERED,
    )


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
