"""Dispatch: triage, rescue-van matching, replacement-truck matching and the request lifecycle.

Pure: OR-Tools and numpy over :mod:`fleet` values and a :class:`routing.TravelTimeProvider`;
no web or database framework is imported here.
"""

from dispatch.assignment import (
    CostOverflowError,
    InfeasibleAssignmentError,
    SparseAssignment,
    read_orlib_assignment,
    solve_assignment,
)
from dispatch.lifecycle import (
    TRANSITIONS,
    InvalidTransition,
    RequestStatus,
    allowed_transitions,
    can_transition,
    transition,
)
from dispatch.replacement import (
    CargoKind,
    ReplacementBooking,
    ReplacementMatching,
    ReplacementMatchingProblem,
    ReplacementParams,
    ReplacementRequest,
    TruckState,
    UnmatchedReason,
    UnmatchedReplacement,
    build_replacement_problem,
    match_replacements,
)
from dispatch.triage import (
    RepairEstimate,
    TriageContext,
    apply_diagnosis,
    estimate_repair,
    needs_replacement,
    priority_for,
)
from dispatch.vans import (
    MatchParams,
    OpenRequest,
    Unassigned,
    UnassignedReason,
    VanAssignment,
    VanMatching,
    VanMatchingProblem,
    VanState,
    build_van_matching_problem,
    match_vans,
    match_vans_naive,
)

__all__ = [
    "TRANSITIONS",
    "CargoKind",
    "CostOverflowError",
    "InfeasibleAssignmentError",
    "InvalidTransition",
    "MatchParams",
    "OpenRequest",
    "RepairEstimate",
    "ReplacementBooking",
    "ReplacementMatching",
    "ReplacementMatchingProblem",
    "ReplacementParams",
    "ReplacementRequest",
    "RequestStatus",
    "SparseAssignment",
    "TriageContext",
    "TruckState",
    "Unassigned",
    "UnassignedReason",
    "UnmatchedReason",
    "UnmatchedReplacement",
    "VanAssignment",
    "VanMatching",
    "VanMatchingProblem",
    "VanState",
    "allowed_transitions",
    "apply_diagnosis",
    "build_replacement_problem",
    "build_van_matching_problem",
    "can_transition",
    "estimate_repair",
    "match_replacements",
    "match_vans",
    "match_vans_naive",
    "needs_replacement",
    "priority_for",
    "read_orlib_assignment",
    "solve_assignment",
    "transition",
]
