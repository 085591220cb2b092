"""Dispatch runs on demand (the background loop runs them on its own too)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api import state
from api.clock import utcnow
from api.deps import Dispatcher, SessionDep, SettingsDep, actor_of
from api.dispatching.move_ups import confirm_move_up, suggest_move_ups
from api.dispatching.travel import travel_provider
from api.responses import E401, E403, STAFF_ERRORS
from api.schemas import DispatchRunRead, MoveUpConfirm, MoveUpConfirmedRead, MoveUpsRead

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


@router.get(
    "/dispatch/move-ups",
    response_model=MoveUpsRead,
    summary="Suggest moving idle vans into coverage holes",
    responses={**E401, **E403},
)
def get_move_ups(
    db: SessionDep,
    settings: SettingsDep,
    _staff: Dispatcher,
    max_moves: Annotated[int, Query(ge=1, le=50, description="At most this many moves")] = 4,
    max_move_km: Annotated[
        float, Query(gt=0, le=1000, description="Road km a van may move at most")
    ] = 100.0,
) -> MoveUpsRead:
    """When busy vans leave holes in the coverage within the promise, which idle vans should
    move to which stations to maximise the expected coverage (MEXCLP-style, as the
    simulation's move-up). Suggestions only: nothing changes until a dispatcher moves a van."""
    provider, _name = travel_provider(settings)
    plan = suggest_move_ups(
        db_session=db,
        provider=provider,
        now=utcnow(),
        promise_minutes=settings.promise_minutes,
        respect_shifts=settings.respect_shifts,
        max_moves=max_moves,
        max_move_km=max_move_km,
    )
    return MoveUpsRead.model_validate(asdict(plan))


@router.post(
    "/dispatch/move-ups/confirm",
    response_model=MoveUpConfirmedRead,
    summary="Confirm a move-up: move an idle van to another station",
    responses=STAFF_ERRORS,
)
def post_move_up(
    body: MoveUpConfirm,
    db: SessionDep,
    settings: SettingsDep,
    staff: Dispatcher,
    request: Request,
) -> MoveUpConfirmedRead:
    """The dispatcher's confirmation of a suggested move (or any move of a free van): the
    van's position becomes the station's, so the dispatch cycle times it from there; event
    `van_moved_up` on the van. Its own station brings it home. 404 for an unknown van or
    station, 409 for a van with a job, off shift or in maintenance, or already there."""
    provider, _name = travel_provider(settings)
    moved = confirm_move_up(
        db_session=db,
        van_id=body.van_id,
        to_station_id=body.to_station_id,
        actor=actor_of(staff),
        provider=provider,
        now=utcnow(),
    )
    state.get_dispatch_loop(request.app).poke()
    return MoveUpConfirmedRead.model_validate(asdict(moved))
