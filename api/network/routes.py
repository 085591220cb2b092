"""The network's routes: read-only listings (staff) and van position reports."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from api import state
from api.db import models as m
from api.deps import CrewOrDispatcher, SessionDep, SettingsDep, StaffUser, actor_of
from api.dispatching.travel import travel_provider
from api.network.service import update_position
from api.partners.service import check_van_scope
from api.responses import STAFF_ERRORS
from api.schemas import (
    PartnerRead,
    ReplacementTruckRead,
    StationRead,
    VanPositionUpdate,
    VanRead,
)
from fleet import StationGrade, TruckStatus, VanStatus

router = APIRouter(prefix="/v1", tags=["network"])


@router.get("/stations", response_model=list[StationRead], summary="Service stations")
def list_stations(
    db: SessionDep,
    _staff: StaffUser,
    province: str | None = Query(None, description="Province adcode, e.g. 370000"),
    grade: StationGrade | None = None,
) -> list[m.Station]:
    stmt = select(m.Station).order_by(m.Station.id)
    if province:
        stmt = stmt.where(m.Station.province_adcode == province)
    if grade:
        stmt = stmt.where(m.Station.grade == grade.value)
    return list(db.scalars(stmt))


@router.get("/vans", response_model=list[VanRead], summary="Rescue vans")
def list_vans(
    db: SessionDep,
    _staff: StaffUser,
    status: VanStatus | None = None,
    station_id: str | None = None,
) -> list[m.Van]:
    stmt = select(m.Van).order_by(m.Van.id)
    if status:
        stmt = stmt.where(m.Van.status == status.value)
    if station_id:
        stmt = stmt.where(m.Van.station_id == station_id)
    return list(db.scalars(stmt))


@router.get("/partners", response_model=list[PartnerRead], summary="Partner logistics companies")
def list_partners(db: SessionDep, _staff: StaffUser) -> list[m.Partner]:
    return list(db.scalars(select(m.Partner).order_by(m.Partner.id)))


@router.get(
    "/replacement-trucks",
    response_model=list[ReplacementTruckRead],
    summary="Partner replacement trucks",
)
def list_trucks(
    db: SessionDep,
    _staff: StaffUser,
    status: TruckStatus | None = None,
    partner_id: str | None = None,
) -> list[m.ReplacementTruck]:
    stmt = select(m.ReplacementTruck).order_by(m.ReplacementTruck.id)
    if status:
        stmt = stmt.where(m.ReplacementTruck.status == status.value)
    if partner_id:
        stmt = stmt.where(m.ReplacementTruck.partner_id == partner_id)
    return list(db.scalars(stmt))


@router.put(
    "/vans/{van_id}/position",
    response_model=VanRead,
    summary="Report a van's position (and duty status)",
    responses=STAFF_ERRORS,
)
def put_position(
    van_id: str,
    body: VanPositionUpdate,
    db: SessionDep,
    staff: CrewOrDispatcher,
    settings: SettingsDep,
    request: Request,
) -> m.Van:
    """The next dispatch cycle times this van from here. A van on its way to a job has that
    job's ETA re-timed by road from this position (event `eta_updated`; the customer is told
    `request.delayed` when it grew by more than 15 min; `at_risk` once it is late beyond the
    grace). `status` may set available, off_shift, maintenance or returning (409 while the
    van holds a request). Each report wakes the dispatch cycle (re-planning). A dispatcher,
    or the crew of this van (403 for another van's crew)."""
    check_van_scope(staff, van_id)
    provider, _ = travel_provider(settings)
    van = update_position(
        db_session=db,
        van_id=van_id,
        lat=body.lat,
        lon=body.lon,
        status=VanStatus(body.status) if body.status is not None else None,
        actor=actor_of(staff),
        provider=provider,
        grace_minutes=settings.eta_grace_minutes,
    )
    state.get_dispatch_loop(request.app).poke()
    return van
