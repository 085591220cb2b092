"""Partner offers (partner tokens answer their own), the dispatcher's view of every offer,
partner rescue providers (admin) and crew acknowledgements.

Scope: a partner token sees and answers only its own company's offers (another partner's
offer is 404, as if it did not exist); a crew token acts for its own van only (403)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import select

from api import state
from api.clock import utcnow
from api.db import models as m
from api.db.adapters import rescue_provider_row
from api.deps import Admin, CrewUser, Dispatcher, PartnerUser, RowId, SessionDep, actor_of
from api.exceptions import Conflict, InvalidInput
from api.partners import service as svc
from api.partners.schemas import (
    AckRead,
    OfferAccept,
    OfferDecline,
    OfferJobRead,
    OfferRead,
    OfferStatusName,
    PartnerProviderCreate,
    PartnerProviderRead,
)
from api.responses import E401, E403, E404, E409, STAFF_ERRORS
from api.security import Role
from fleet import GeoPoint, PartnerRescueProvider

router = APIRouter(prefix="/v1", tags=["partners"])


def _partner_of(token: m.StaffToken) -> str:
    """The partner a token answers for: partner tokens only (an admin is no partner)."""
    if token.role != Role.PARTNER.value or token.partner_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs a partner token (--role partner)")
    return token.partner_id


def offer_reads(
    db: SessionDep, offers: Sequence[m.PartnerOffer], *, partner_view: bool
) -> list[OfferRead]:
    reqs = {
        r.id: r
        for r in db.scalars(
            select(m.RescueRequest).where(m.RescueRequest.id.in_({o.request_id for o in offers}))
        )
    }
    out = []
    for o in offers:
        r = reqs[o.request_id]
        contact = (not partner_view) or o.status == svc.OfferStatus.ACCEPTED.value
        out.append(
            OfferRead(
                id=o.id,
                request_id=o.request_id,
                kind=o.kind,
                status=o.status,
                partner_id=o.partner_id,
                truck_id=o.truck_id,
                provider_id=o.provider_id,
                created_at=o.created_at,
                expires_at=o.expires_at,
                answered_at=o.answered_at,
                proposed_eta_minutes=o.proposed_eta_minutes,
                eta_minutes=o.eta_minutes,
                eta_at=o.eta_at,
                cost_cny=o.cost_cny,
                decline_reason=o.decline_reason,
                job=OfferJobRead(
                    vehicle_class=r.vehicle_class,
                    plate=r.plate,
                    fault_code=r.fault_code,
                    lat=r.lat,
                    lon=r.lon,
                    cargo_weight_t=r.cargo_weight_t,
                    cargo_destination_lat=r.cargo_destination_lat,
                    cargo_destination_lon=r.cargo_destination_lon,
                    cargo_deadline=r.cargo_deadline,
                    customer_name=r.customer_name if contact else None,
                    customer_phone=r.customer_phone if contact else None,
                ),
            )
        )
    return out


@router.get(
    "/partner/offers",
    response_model=list[OfferRead],
    summary="The calling partner's offers",
    responses={**E401, **E403},
)
def partner_offers(
    db: SessionDep,
    token: PartnerUser,
    offer_status: OfferStatusName | None = Query(default=None, alias="status"),
) -> list[OfferRead]:
    """Only the calling partner company's offers (newest first); the customer's contact is
    shown once an offer is accepted."""
    partner_id = _partner_of(token)
    offers = svc.list_offers(
        db_session=db, partner_id=partner_id, status=[offer_status] if offer_status else None
    )
    return offer_reads(db, offers, partner_view=True)


@router.post(
    "/partner/offers/{offer_id}/accept",
    response_model=OfferRead,
    summary="Accept an offer with an ETA",
    responses={**E401, **E403, **E404, **E409},
)
def accept_offer(
    offer_id: RowId, body: OfferAccept, request: Request, db: SessionDep, token: PartnerUser
) -> OfferRead:
    """`{"eta_minutes": m}`: the truck is booked (or the rescue job taken) now. 409 when the
    offer is no longer open (expired, withdrawn, answered) or another partner accepted the
    job first; 404 for another partner's offer."""
    offer = svc.accept_offer(
        db_session=db, offer_id=offer_id, partner_id=_partner_of(token),
        eta_minutes=body.eta_minutes, actor=actor_of(token), now=utcnow(),
    )  # fmt: skip
    return offer_reads(db, [offer], partner_view=True)[0]


@router.post(
    "/partner/offers/{offer_id}/decline",
    response_model=OfferRead,
    summary="Decline an offer with a reason",
    responses={**E401, **E403, **E404, **E409},
)
def decline_offer(
    offer_id: RowId, body: OfferDecline, request: Request, db: SessionDep, token: PartnerUser
) -> OfferRead:
    """`{"reason": "..."}`: the next dispatch cycle offers the job to the next best partner,
    never again to this one."""
    offer = svc.decline_offer(
        db_session=db, offer_id=offer_id, partner_id=_partner_of(token), reason=body.reason,
        actor=actor_of(token), now=utcnow(),
    )  # fmt: skip
    state.get_dispatch_loop(request.app).poke()
    return offer_reads(db, [offer], partner_view=True)[0]


@router.get(
    "/offers",
    response_model=list[OfferRead],
    summary="Every partner offer (dispatcher)",
    responses={**E401, **E403},
)
def all_offers(
    db: SessionDep,
    _staff: Dispatcher,
    offer_status: OfferStatusName | None = Query(default=None, alias="status"),
) -> list[OfferRead]:
    """All offers, newest first, each with its expiry; `status=offered` lists those in
    flight."""
    offers = svc.list_offers(db_session=db, status=[offer_status] if offer_status else None)
    return offer_reads(db, offers, partner_view=False)


def _provider_read(row: m.PartnerProvider, loads: dict[str, int]) -> PartnerProviderRead:
    read = PartnerProviderRead.model_validate(row)
    return read.model_copy(update={"active_jobs": loads.get(row.id, 0)})


@router.get(
    "/partner-providers",
    response_model=list[PartnerProviderRead],
    summary="Partner rescue / tow providers (admin)",
    responses={**E401, **E403},
)
def list_providers(db: SessionDep, _admin: Admin) -> list[PartnerProviderRead]:
    loads = svc.provider_loads(db)
    rows = db.scalars(select(m.PartnerProvider).order_by(m.PartnerProvider.id))
    return [_provider_read(r, loads) for r in rows]


@router.post(
    "/partner-providers",
    response_model=PartnerProviderRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a partner rescue / tow provider (admin)",
    responses={**E401, **E403, **E409},
)
def create_provider(
    body: PartnerProviderCreate, db: SessionDep, _admin: Admin
) -> PartnerProviderRead:
    """The provider belongs to an existing partner company (422 naming `partner_id`
    otherwise); it needs provinces or a radius. 409 for an id already used."""
    if db.get(m.Partner, body.partner_id) is None:
        raise InvalidInput("partner_id", f"no partner company {body.partner_id!r}")
    if db.get(m.PartnerProvider, body.id) is not None:
        raise Conflict(f"a partner provider with id {body.id!r} exists")
    try:
        provider = PartnerRescueProvider(
            id=body.id, partner_id=body.partner_id, name=body.name,
            base=GeoPoint(body.base_lat, body.base_lon), capabilities=frozenset(body.capabilities),
            promised_response_minutes=body.promised_response_minutes,
            callout_fee_cny=body.callout_fee_cny, per_km_cny=body.per_km_cny,
            capacity_jobs=body.capacity_jobs, provinces=frozenset(body.provinces),
            radius_km=body.radius_km,
        )  # fmt: skip
    except ValueError as exc:
        field = "radius_km" if "coverage" in str(exc) else "body"
        raise InvalidInput(field, str(exc).split(": ", 1)[-1]) from None
    row = rescue_provider_row(provider)
    db.add(row)
    db.flush()
    return _provider_read(row, {})


@router.post(
    "/vans/{van_id}/assignments/{assignment_id}/ack",
    response_model=AckRead,
    summary="The crew acknowledges its van's assignment",
    responses=STAFF_ERRORS,
)
def acknowledge(van_id: str, assignment_id: RowId, db: SessionDep, token: CrewUser) -> AckRead:
    """Only the crew of that van (403 for another van's crew). Unacknowledged past
    `RESCUE_CREW_ACK_TIMEOUT_MINUTES`, the dispatch cycle re-plans the request."""
    svc.check_van_scope(token, van_id)
    a = svc.acknowledge_assignment(
        db_session=db, van_id=van_id, assignment_id=assignment_id, actor=actor_of(token),
        now=utcnow(),
    )  # fmt: skip
    assert a.acknowledged_at is not None
    return AckRead(
        assignment_id=a.id, van_id=a.van_id, request_id=a.request_id,
        acknowledged_at=a.acknowledged_at,
    )  # fmt: skip
