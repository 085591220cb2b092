"""Van position reports."""

from __future__ import annotations

from fastapi import APIRouter

from api.db import models as m
from api.deps import Dispatcher, SessionDep, actor_of
from api.routes.requests import STAFF_ERRORS
from api.schemas import VanPositionUpdate, VanRead
from api.services.vans import update_position
from fleet import VanStatus

router = APIRouter(prefix="/v1", tags=["network"])


@router.put(
    "/vans/{van_id}/position",
    response_model=VanRead,
    summary="Report a van's position (and duty status)",
    responses=STAFF_ERRORS,
)
def put_position(van_id: str, body: VanPositionUpdate, db: SessionDep, staff: Dispatcher) -> m.Van:
    """The next dispatch cycle times this van from here. `status` may set available,
    off_shift, maintenance or returning (409 while the van holds a request)."""
    return update_position(
        db_session=db,
        van_id=van_id,
        lat=body.lat,
        lon=body.lon,
        status=VanStatus(body.status) if body.status is not None else None,
        actor=actor_of(staff),
    )
