"""Rescue requests: customer intake and tracking, the dispatcher's queue and actions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api import state
from api.db.engine import transaction
from api.deps import (
    BearerDep,
    Dispatcher,
    RateLimited,
    SessionDep,
    SettingsDep,
    StaffUser,
    actor_of,
)
from api.dispatching.travel import travel_provider
from api.requests import intake, queries, views
from api.requests import service as svc
from api.responses import E401, E403, E404, E409, STAFF_ERRORS
from api.schemas import (
    AssignmentCreate,
    CancelCreate,
    DiagnosisCreate,
    ErrorRead,
    EventRead,
    RequestCreate,
    RequestCreated,
    RequestRead,
    StatusChange,
)
from api.security import (
    SCOPED_ROLES,
    TOKEN_PREFIX,
    find_staff_token,
    request_for_tracking_token,
    sees_full_customer,
)
from api.settings import Settings
from dispatch import RequestStatus

router = APIRouter(prefix="/v1", tags=["requests"])


@router.post(
    "/requests",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestCreated,
    summary="Report a breakdown",
    dependencies=[RateLimited],
    responses={
        400: {"model": ErrorRead, "description": "Malformed JSON"},
        409: {"model": ErrorRead, "description": "Idempotency-Key reused with another body"},
        413: {"model": ErrorRead, "description": "Body too large"},
        429: {"model": ErrorRead, "description": "Rate limit"},
    },
)
async def create_request(
    body: RequestCreate,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Makes retries safe: the same key and body return the same request",
        ),
    ] = None,
) -> Response:
    """Anyone may report (rate-limited per address). Validates, stores the request and its
    first event, runs triage (a registered plate brings its designated station and contract;
    repair estimate with the risk of overrunning the contract threshold; a replacement is
    needed when that risk reaches the contract's booking probability) and returns the
    tracking token **once**."""
    settings = state.get_settings(request.app)  # not a dependency: the hot path's cost
    if idempotency_key is None and body.vehicle.designated_station_id is None:
        # Usually answered by api/requests/fast_lane.py before it gets here; the same code.
        return await store_fresh_intake(request.app, body, settings)
    return await run_in_threadpool(_create_checked, body, request, settings, idempotency_key)


async def store_fresh_intake(app: Any, body: RequestCreate, settings: Settings) -> Response:
    """The hot path (no Idempotency-Key, no designated station: nothing to read first):
    everything is computed on the event loop before any database work, then the intake
    writer commits it together with the other requests waiting (group commit) and answers
    once it is committed."""
    plan = intake.plan_intake(
        body=body,
        threshold_hours=settings.replacement_threshold_hours,
        reference=state.get_intake_reference(app),
        token_secret=state.get_token_secret(app),
    )
    await state.get_intake_writer(app).store(plan)
    if settings.dispatch_on_request:
        state.get_dispatch_loop(app).poke()
    return _created(intake.intake_response(plan), {})


def _create_checked(
    body: RequestCreate, request: Request, settings: Settings, idempotency_key: str | None
) -> Response:
    """The intake that reads first: an Idempotency-Key (replay or conflict) or a designated
    station (must exist); one unit of work, under the writer lock (shared with the intake
    writer)."""
    app = request.app
    with state.get_write_lock(app), transaction(state.get_session_factory(app)) as db:
        stored = intake.create_request(
            db_session=db,
            body=body,
            threshold_hours=settings.replacement_threshold_hours,
            token_secret=state.get_token_secret(app),
            idempotency_key=idempotency_key,
            reference=state.get_intake_reference(app),
        )
        created = views.created_view(stored)
    headers = {}
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    elif settings.dispatch_on_request:
        state.get_dispatch_loop(app).poke()
    return _created(created, headers)


def _created(created: RequestCreated, headers: dict[str, str]) -> Response:
    """The 201 response, serialised once (the model is built from checked values, so
    FastAPI's response-model validation is skipped by returning a Response)."""
    return Response(
        created.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers=headers,
    )


@router.get(
    "/requests",
    response_model=list[RequestRead],
    summary="The queue (staff)",
    responses={**E401, **E403},
)
def list_requests(
    db: SessionDep,
    _staff: StaffUser,
    status_: Annotated[
        list[RequestStatus] | None,
        Query(alias="status", description="Filter by status (repeatable)"),
    ] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only requests neither closed nor cancelled")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[RequestRead]:
    rows = queries.list_requests(
        db_session=db, statuses=status_, open_only=open_only, limit=limit, offset=offset
    )
    out = views.request_views(db_session=db, rows=rows, staff=True)
    return out if sees_full_customer(_staff) else [masked_customer(v) for v in out]


@router.get(
    "/requests/{request_id}",
    response_model=RequestRead,
    summary="Status, van and ETA, replacement truck and ETAs",
    responses={**E401, **E404, 403: {"model": ErrorRead, "description": "Token for another"}},
)
def get_request(request_id: str, db: SessionDep, token: BearerDep) -> RequestRead:
    """With the request's tracking token (customer: phone and name masked) or any staff
    token (planners see the customer masked too). A tracking token opens its own request
    only: 403 for any other id, existing or not."""
    if token.startswith(TOKEN_PREFIX):
        staff = find_staff_token(db_session=db, token=token)
        if staff is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid, expired or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if staff.role in SCOPED_ROLES:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {staff.role} token sees its jobs through its own routes, not the requests",
            )
        full = views.request_view(db_session=db, request_id=request_id)
        return full if sees_full_customer(staff) else masked_customer(full)
    row = request_for_tracking_token(db_session=db, request_id=request_id, token=token)
    return views.request_views(db_session=db, rows=[row], staff=False)[0]


@router.get(
    "/requests/{request_id}/events",
    response_model=list[EventRead],
    summary="Event history of a request (staff)",
    responses={**E401, **E403, **E404},
)
def request_events(request_id: str, db: SessionDep, _staff: StaffUser) -> list[Any]:
    return queries.request_events(db_session=db, request_id=request_id)


def masked_customer(view: RequestRead) -> RequestRead:
    """The view with the customer masked as a tracking-token holder sees it."""
    return view.model_copy(update={"customer": views.masked_customer_view(view.customer)})


@router.post(
    "/requests/{request_id}/diagnosis",
    response_model=RequestRead,
    summary="Record the technician's repair estimate",
    responses=STAFF_ERRORS,
)
def record_diagnosis(
    request_id: str, body: DiagnosisCreate, db: SessionDep, staff: Dispatcher
) -> RequestRead:
    """`{"estimated_repair_hours": h}`. Over the request's threshold (24 h by default) a
    request with cargo needs a replacement truck: on site it moves to
    `awaiting_replacement` and the next dispatch cycle books one. 409 on a closed request."""
    svc.record_diagnosis(
        db_session=db,
        request_id=request_id,
        hours=body.estimated_repair_hours,
        note=body.note,
        actor=actor_of(staff),
    )
    return views.request_view(db_session=db, request_id=request_id)


@router.post(
    "/requests/{request_id}/status",
    response_model=RequestRead,
    summary="Lifecycle transition",
    responses=STAFF_ERRORS,
)
def change_status(
    request_id: str,
    body: StatusChange,
    db: SessionDep,
    staff: Dispatcher,
    settings: SettingsDep,
    request: Request,
) -> RequestRead:
    """Moves the request along `dispatch.lifecycle` (e.g. `en_route`, `on_site`, `repaired`,
    `towing`, `cargo_transferred`, `delivered`, `closed`); 409 names the invalid move and the
    allowed ones. Leaving the van track releases the van; delivery releases the truck. Each
    change wakes the dispatch cycle (an arrival or a release changes what is free)."""
    provider, _ = travel_provider(settings)
    svc.change_status(
        db_session=db,
        request_id=request_id,
        target=body.status,
        reason=body.reason,
        actor=actor_of(staff),
        provider=provider,
    )
    state.get_dispatch_loop(request.app).poke()
    return views.request_view(db_session=db, request_id=request_id)


@router.post(
    "/requests/{request_id}/assignment",
    response_model=RequestRead,
    summary="Assign a van manually, or override the optimiser's choice",
    responses=STAFF_ERRORS,
)
def assign_van(
    request_id: str,
    body: AssignmentCreate,
    db: SessionDep,
    staff: Dispatcher,
    settings: SettingsDep,
) -> RequestRead:
    """The van must be free, on duty and able to handle the vehicle; the reason is recorded
    (events `van_assigned` / `assignment_override`). The previous van is released. A van whose
    home station is beyond its service radius (road km) needs an `override_reason` (422
    naming it otherwise); `GET /v1/requests/{id}/candidates` lists the vans."""
    provider, _ = travel_provider(settings)
    svc.assign_van(
        db_session=db,
        request_id=request_id,
        van_id=body.van_id,
        reason=body.reason,
        actor=actor_of(staff),
        provider=provider,
        override_reason=body.override_reason,
    )
    return views.request_view(db_session=db, request_id=request_id)


@router.post(
    "/requests/{request_id}/cancel",
    response_model=RequestRead,
    summary="Cancel a request (dispatcher, or the customer with the tracking token)",
    responses={**E401, **E404, **E409, 403: {"model": ErrorRead, "description": "Wrong token"}},
)
def cancel_request(
    request_id: str, body: CancelCreate, db: SessionDep, token: BearerDep, request: Request
) -> RequestRead:
    if token.startswith(TOKEN_PREFIX):
        staff = find_staff_token(db_session=db, token=token)
        if staff is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid, expired or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if staff.role not in ("dispatcher", "admin"):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {staff.role!r} may not cancel requests"
            )
        actor = actor_of(staff)
    else:
        request_for_tracking_token(db_session=db, request_id=request_id, token=token)
        actor = "customer"
    svc.cancel_request(db_session=db, request_id=request_id, reason=body.reason, actor=actor)
    state.get_dispatch_loop(request.app).poke()  # a van may be free for another job
    return views.request_view(db_session=db, request_id=request_id)
