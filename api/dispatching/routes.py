"""Dispatch runs on demand (the background loop runs them on its own too)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api import state
from api.deps import Dispatcher, actor_of
from api.responses import E401, E403
from api.schemas import DispatchRunRead

router = APIRouter(prefix="/v1", tags=["dispatch"])


@router.post(
    "/dispatch/runs",
    response_model=DispatchRunRead,
    summary="Run a dispatch batch now",
    responses={**E401, **E403},
)
def run_dispatch(request: Request, staff: Dispatcher) -> DispatchRunRead:
    """Matches all waiting requests to free vans (OR-Tools, best set of arrival times for the
    whole batch) and books replacement trucks where needed; returns what was assigned and why
    others were not (`unassigned` reasons with a suggestion). When another cycle is running
    (another process or the background loop), `ran` is false and nothing changes."""
    result = state.get_dispatch_loop(request.app).run_once(actor=actor_of(staff), record=True)
    return result.as_read()
