"""Live KPIs."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep, SettingsDep, StaffUser
from api.kpis.service import live_kpis
from api.responses import E401, E403
from api.schemas import KpiRead

router = APIRouter(prefix="/v1", tags=["kpis"])


@router.get("/kpis", response_model=KpiRead, summary="Live KPIs", responses={**E401, **E403})
def get_kpis(db: SessionDep, settings: SettingsDep, _staff: StaffUser) -> KpiRead:
    """Open / waiting / assigned counts; the share within the promised arrival time
    (RESCUE_PROMISE_MINUTES, 120 by default) of the requests whose outcome is known: arrivals,
    plus requests still waiting for a van past the promise (overdue); mean ETA, fleet use."""
    return live_kpis(db_session=db, promise_minutes=settings.promise_minutes)
