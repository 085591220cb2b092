"""Schemas of the partner, offer and crew routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas import ORMModel, StrictFloat, StrictModel
from fleet import RescueCapability

OfferKindName = Literal["truck", "rescue"]
OfferStatusName = Literal["offered", "accepted", "declined", "expired", "withdrawn"]


class OfferJobRead(BaseModel):
    """What the partner needs to do the job; the customer's contact only once accepted."""

    vehicle_class: str
    plate: str
    fault_code: str | None
    lat: float
    lon: float
    cargo_weight_t: float | None
    cargo_destination_lat: float | None
    cargo_destination_lon: float | None
    cargo_deadline: dt.datetime | None
    customer_name: str | None = Field(description="Only on an accepted offer")
    customer_phone: str | None = Field(description="Only on an accepted offer")


class OfferRead(BaseModel):
    id: int
    request_id: str
    kind: OfferKindName
    status: OfferStatusName
    partner_id: str
    truck_id: str | None
    provider_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="Unanswered by then, the offer counts as declined")
    answered_at: dt.datetime | None
    proposed_eta_minutes: float | None = Field(description="Our estimate when offering")
    eta_minutes: float | None = Field(description="The partner's ETA given with its acceptance")
    eta_at: dt.datetime | None
    cost_cny: float | None = Field(description="Contract cost of the job")
    decline_reason: str
    job: OfferJobRead


class OfferAccept(StrictModel):
    eta_minutes: StrictFloat = Field(
        gt=0, le=24 * 60, description="Minutes until the partner is at the breakdown"
    )


class OfferDecline(StrictModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="Why the partner cannot take the job", examples=["no driver free"]
    )


class AckRead(BaseModel):
    assignment_id: int
    van_id: str
    request_id: str
    acknowledged_at: dt.datetime


IdText = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
]


class PartnerProviderBase(BaseModel):
    partner_id: IdText = Field(description="The partner company (GET /v1/partners) it belongs to")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    provinces: list[Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]] = Field(
        default_factory=list, max_length=40, description="Province adcodes it covers"
    )
    base_lat: float = Field(ge=-90, le=90)
    base_lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(
        default=0.0, ge=0, le=2000, description="Also covers this great-circle radius of its base"
    )
    capabilities: list[RescueCapability] = Field(min_length=1, max_length=3)
    promised_response_minutes: float = Field(gt=0, le=24 * 60)
    callout_fee_cny: float = Field(ge=0, le=1e6)
    per_km_cny: float = Field(ge=0, le=1e4)
    capacity_jobs: int = Field(ge=1, le=1000, description="Jobs it takes at once")


class PartnerProviderCreate(PartnerProviderBase, StrictModel):
    id: IdText
    base_lat: StrictFloat = Field(ge=-90, le=90)
    base_lon: StrictFloat = Field(ge=-180, le=180)
    radius_km: StrictFloat = Field(default=0.0, ge=0, le=2000)
    promised_response_minutes: StrictFloat = Field(gt=0, le=24 * 60)
    callout_fee_cny: StrictFloat = Field(ge=0, le=1e6)
    per_km_cny: StrictFloat = Field(ge=0, le=1e4)


class PartnerProviderRead(PartnerProviderBase, ORMModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    partner_id: str
    active_jobs: int = Field(default=0, description="Open offers and accepted open jobs")
