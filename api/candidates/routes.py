"""GET /v1/requests/{id}/candidates: the console's "choose a van" list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.candidates.schemas import CandidatesRead
from api.candidates.service import van_candidates
from api.deps import Dispatcher, SessionDep, SettingsDep
from api.dispatching.travel import travel_provider
from api.responses import E401, E403, E404

router = APIRouter(prefix="/v1", tags=["requests"])


@router.get(
    "/requests/{request_id}/candidates",
    response_model=CandidatesRead,
    summary="Vans that could be sent to a request, and why others are excluded (dispatcher)",
    responses={**E401, **E403, **E404},
)
def candidates(
    request_id: str,
    db: SessionDep,
    _staff: Dispatcher,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many nearest vans")] = 25,
) -> CandidatesRead:
    """The nearest vans with road km, ETA and free-in: feasible ones first (what the dispatch
    cycle could choose), then vans only beyond their service radius (assignable with an
    `override_reason`), then the excluded ones with the reason. Partner providers: none yet."""
    provider, _ = travel_provider(settings)
    return van_candidates(
        db_session=db, request_id=request_id, provider=provider,
        respect_shifts=settings.respect_shifts, limit=limit,
    )  # fmt: skip
