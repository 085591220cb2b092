"""Read models of requests: what the customer (masked, no costs) and the staff see.

Views are built from the rows of a fixed number of queries however many requests are shown
(:mod:`api.requests.queries`), never one query per request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from api.clock import utcnow
from api.db import models as m
from api.db.adapters import default_cargo_kind
from api.dispatching.live import lateness, minutes_between
from api.requests import queries as q
from api.requests.intake import Intake, triage
from api.schemas import (
    CargoRead,
    CustomerRead,
    EstimateRead,
    FaultIn,
    LocationIn,
    PartnerOnRequest,
    ReplacementOnRequest,
    RequestCreated,
    RequestRead,
    VanOnRequest,
    VehicleIn,
)
from dispatch.lifecycle import RequestStatus
from dispatch.replacement import CargoKind
from fleet import TruckType, VanCapability, VehicleClass


def masked_customer_view(customer: CustomerRead) -> CustomerRead:
    """Name initial and masked phone: what a tracking-token holder or a planner sees."""
    return CustomerRead(name=customer.name[:1] + "**", phone=mask_phone(customer.phone))


def mask_phone(phone: str) -> str:
    digits = phone.replace(" ", "").replace("-", "")
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def estimate_view(row: m.RescueRequest, *, staff: bool = False) -> EstimateRead:
    """The catalogue estimate, or the technician's diagnosis once given. Staff also see the
    risk, the contract and the workshop assumed; the customer only the threshold."""
    base = triage(row.fault_code, row.vehicle_class, row.replacement_threshold_hours)
    hours = row.estimated_repair_hours
    diagnosed = row.estimate_source == "diagnosis"
    return EstimateRead(
        fault_code=base.fault_code,
        source="diagnosis" if diagnosed else "catalogue",
        expected_repair_hours=hours if hours is not None else base.expected_hours,
        p90_repair_hours=row.estimated_repair_p90_hours,
        p_on_site_fix=None if diagnosed else base.p_on_site_fix,
        needs_tow=row.needs_tow,
        needs_replacement=row.needs_replacement,
        threshold_hours=row.replacement_threshold_hours,
        priority=row.priority,
        p_exceeds_threshold=row.p_exceeds_threshold if staff else None,
        contract_id=row.contract_id if staff else None,
        booking_probability=row.booking_probability if staff else None,
        workshop_station_id=row.workshop_station_id if staff else None,
    )


def created_view(intake: Intake) -> RequestCreated:
    """The 201 body of an intake of the checked path (fresh or replayed)."""
    row = intake.request
    return RequestCreated.model_construct(
        id=row.id,
        status=RequestStatus(row.status),
        tracking_token=intake.tracking_token,
        created_at=row.created_at,
        estimate=estimate_view(row),
    )


def _van_view(a: m.VanAssignment, v: m.Van, *, staff: bool, now: dt.datetime) -> VanOnRequest:
    """The van on a request. ``eta_minutes`` is signed: an overdue van that has not reported
    since shows how overdue it is, never a reassuring 0."""
    eta_min = None
    if a.eta_at is not None and a.arrived_at is None:
        eta_min = minutes_between(now, a.eta_at)
    late = lateness(a, now=now)
    return VanOnRequest(
        id=v.id,
        station_id=v.station_id,
        capability=VanCapability(v.capability),
        lat=v.lat,
        lon=v.lon,
        eta_at=a.eta_at,
        eta_minutes=round(eta_min, 1) if eta_min is not None else None,
        promised_eta_at=a.promised_eta_at or a.eta_at,
        late_by_minutes=round(late.late_by_minutes, 1)
        if late.late_by_minutes is not None
        else None,
        at_risk=a.at_risk_at is not None and a.arrived_at is None,
        last_position_at=v.position_updated_at,
        arrived_at=a.arrived_at,
        queued=a.queued,
        travel_km=round(a.travel_km, 1) if a.travel_km is not None else None,
        assigned_at=a.created_at,
        source=a.source,
        reason=a.reason if staff else "",
    )


def _replacement_view(
    b: m.ReplacementBooking, t: m.ReplacementTruck, p: m.Partner | None, *, staff: bool
) -> ReplacementOnRequest:
    return ReplacementOnRequest(
        truck_id=t.id,
        partner_id=t.partner_id,
        partner_name=p.name if p else "",
        truck_type=TruckType(t.truck_type),
        capacity_t=t.capacity_t,
        pickup_eta_at=b.pickup_eta_at,
        delivery_eta_at=b.delivery_eta_at,
        cost_cny=b.cost_cny if staff else None,
        booked_at=b.created_at,
    )


def _cargo_view(r: m.RescueRequest) -> CargoRead | None:
    if r.cargo_weight_t is None or r.cargo_destination_lat is None:
        return None
    return CargoRead(
        weight_t=r.cargo_weight_t,
        destination=LocationIn.model_construct(
            lat=r.cargo_destination_lat, lon=r.cargo_destination_lon or 0.0
        ),
        deadline=r.cargo_deadline,
        kind=CargoKind(r.cargo_kind or default_cargo_kind(r.vehicle_class)),
    )


def _request_view(
    r: m.RescueRequest,
    *,
    van: VanOnRequest | None,
    replacement: ReplacementOnRequest | None,
    staff: bool,
    now: dt.datetime,
    partner: PartnerOnRequest | None = None,
) -> RequestRead:
    return RequestRead(
        id=r.id,
        status=RequestStatus(r.status),
        created_at=r.created_at,
        updated_at=r.updated_at,
        waited_minutes=round(max(0.0, (now - r.created_at).total_seconds() / 60.0), 1),
        customer=CustomerRead(
            name=r.customer_name if staff else r.customer_name[:1] + "**",
            phone=r.customer_phone if staff else mask_phone(r.customer_phone),
        ),
        vehicle=VehicleIn.model_construct(
            plate=r.plate,
            vehicle_class=VehicleClass(r.vehicle_class),
            model=r.vehicle_model,
            designated_station_id=r.designated_station_id,
        ),
        location=LocationIn.model_construct(lat=r.lat, lon=r.lon),
        province_adcode=r.province_adcode,
        fault=FaultIn.model_construct(code=r.fault_code, description=r.fault_description),
        cargo=_cargo_view(r),
        estimate=estimate_view(r, staff=staff),
        van=van,
        replacement=replacement,
        escalated=r.escalated_at is not None,
        escalation_reason=r.escalation_reason or None,
        partner=partner,
    )


def request_views(
    *,
    db_session: Session,
    rows: Sequence[m.RescueRequest],
    staff: bool,
    now: dt.datetime | None = None,
) -> list[RequestRead]:
    """Views with the active van and truck (batched: a fixed number of queries)."""
    now = now or utcnow()
    ids = [r.id for r in rows]
    assignments = q.active_assignments_of(db_session, ids)
    bookings = q.active_bookings_of(db_session, ids)
    vans = q.vans_by_id(db_session, {a.van_id for a in assignments.values()})
    trucks = q.trucks_by_id(db_session, {b.truck_id for b in bookings.values()})
    partners = q.partners_by_id(db_session, {t.partner_id for t in trucks.values()})
    offers = q.partner_offers_of(db_session, ids)
    partners_of_offers = q.partners_by_id(
        db_session, {o.partner_id for os in offers.values() for o in os}
    )
    out = []
    for r in rows:
        a, b = assignments.get(r.id), bookings.get(r.id)
        van = _van_view(a, vans[a.van_id], staff=staff, now=now) if a and a.van_id in vans else None
        replacement = None
        if b is not None and b.truck_id in trucks:
            t = trucks[b.truck_id]
            replacement = _replacement_view(b, t, partners.get(t.partner_id), staff=staff)
        out.append(
            _request_view(
                r,
                van=van,
                replacement=replacement,
                staff=staff,
                now=now,
                partner=_partner_view(offers.get(r.id, []), partners_of_offers, booked=b),
            )
        )
    return out


def _partner_view(
    offers: Sequence[m.PartnerOffer],
    partners: dict[str, m.Partner],
    *,
    booked: m.ReplacementBooking | None,
) -> PartnerOnRequest | None:
    """'accepted' for a partner rescue that was taken (with the partner's ETA); else
    'looking_for_partner' while an offer waits for an answer (a truck offer only until a
    truck is booked: the replacement view shows that)."""
    for o in offers:
        if o.kind == "rescue" and o.status == "accepted":
            p = partners.get(o.partner_id)
            return PartnerOnRequest(
                kind="rescue", status="accepted", partner_name=p.name if p else "", eta_at=o.eta_at
            )
    for o in offers:
        if o.status == "offered" and not (o.kind == "truck" and booked is not None):
            return PartnerOnRequest(
                kind="truck" if o.kind == "truck" else "rescue",
                status="looking_for_partner",
                partner_name="",
                eta_at=None,
            )
    return None


def request_view(*, db_session: Session, request_id: str, staff: bool = True) -> RequestRead:
    """One request's view (the answer of the dispatcher's actions)."""
    row = q.get_request(db_session=db_session, request_id=request_id)
    return request_views(db_session=db_session, rows=[row], staff=staff)[0]
