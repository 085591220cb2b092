"""SQLAlchemy 2 typed models: the network, requests, assignments, bookings, events, tokens.

Rules that the database itself enforces (so that no concurrent writer can break them):

- a van holds at most one current and one queued assignment, a request at most one active
  van (partial unique indexes on ``van_assignments``);
- a partner truck holds at most one active booking, a request at most one active booking
  (partial unique indexes on ``replacement_bookings``);
- a request has at most one accepted partner rescue offer (a partial unique index on
  ``partner_offers``; an accepted truck offer is its booking, kept unique above);
- the event log is append-only (a trigger refuses UPDATE; see the first migration).

Relationships load ``lazy="raise"``: every load is explicit in the service code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class NetworkMeta(Base):
    """One row: which network is loaded."""

    __tablename__ = "network_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500))
    seeded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    grade: Mapped[str] = mapped_column(String(8))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    adcode: Mapped[str] = mapped_column(String(12))
    prefecture_adcode: Mapped[str] = mapped_column(String(12))
    province_adcode: Mapped[str] = mapped_column(String(12), index=True)
    heavy_duty_bay: Mapped[bool] = mapped_column(Boolean)
    towing: Mapped[bool] = mapped_column(Boolean)
    open_hour: Mapped[int] = mapped_column(Integer)
    close_hour: Mapped[int] = mapped_column(Integer)
    parts_in_stock: Mapped[list[str]] = mapped_column(JSON, default=list)

    vans: Mapped[list[Van]] = relationship(back_populates="station", lazy="raise")


class Van(Base):
    __tablename__ = "vans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    capability: Mapped[str] = mapped_column(String(32))
    service_radius_km: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(32), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    position_updated_at: Mapped[dt.datetime | None]
    busy_until: Mapped[dt.datetime | None]
    """Expected time the van is free again (for vans busy elsewhere)."""

    station: Mapped[Station] = relationship(back_populates="vans", lazy="raise")


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    provinces: Mapped[list[str]] = mapped_column(JSON)
    callout_fee_cny: Mapped[float] = mapped_column(Float)
    per_empty_km_cny: Mapped[float] = mapped_column(Float)
    per_loaded_km_cny: Mapped[float] = mapped_column(Float)
    promised_response_minutes: Mapped[float] = mapped_column(Float)


class ReplacementTruck(Base):
    __tablename__ = "replacement_trucks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    truck_type: Mapped[str] = mapped_column(String(32))
    capacity_t: Mapped[float] = mapped_column(Float)
    depot_lat: Mapped[float] = mapped_column(Float)
    depot_lon: Mapped[float] = mapped_column(Float)
    depot_adcode: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(32), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class RescueRequest(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_phone: Mapped[str] = mapped_column(String(40))
    plate: Mapped[str] = mapped_column(String(20))
    vehicle_class: Mapped[str] = mapped_column(String(32))
    vehicle_model: Mapped[str] = mapped_column(String(100), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    province_adcode: Mapped[str | None] = mapped_column(String(12))
    fault_code: Mapped[str | None] = mapped_column(String(64))
    fault_description: Mapped[str] = mapped_column(Text, default="")
    cargo_weight_t: Mapped[float | None] = mapped_column(Float)
    cargo_destination_lat: Mapped[float | None] = mapped_column(Float)
    cargo_destination_lon: Mapped[float | None] = mapped_column(Float)
    cargo_deadline: Mapped[dt.datetime | None]
    cargo_kind: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[float] = mapped_column(Float, default=1.0)
    needs_tow: Mapped[bool] = mapped_column(Boolean, default=False)
    estimated_repair_hours: Mapped[float | None] = mapped_column(Float)
    estimated_repair_p90_hours: Mapped[float | None] = mapped_column(Float)
    replacement_threshold_hours: Mapped[float] = mapped_column(Float, default=24.0)
    needs_replacement: Mapped[bool] = mapped_column(Boolean, default=False)
    designated_station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    contract_id: Mapped[str | None] = mapped_column(String(64))
    """The contract the request was triaged under (no foreign key: a reseed may drop it)."""
    booking_probability: Mapped[float | None] = mapped_column(Float)
    p_exceeds_threshold: Mapped[float | None] = mapped_column(Float)
    """P(not back on the road within the threshold) of the current estimate."""
    workshop_station_id: Mapped[str | None] = mapped_column(String(64))
    estimate_source: Mapped[str] = mapped_column(
        String(16), default="catalogue", server_default="catalogue"
    )
    """``catalogue`` (intake) or ``diagnosis`` (the technician's figure)."""
    tracking_token_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[dt.datetime | None]
    """When a dispatch cycle found no own van whose radius covers the breakdown."""
    escalation_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ServiceContractRow(Base):
    """A contract of the registry (:class:`fleet.contracts.ServiceContract`)."""

    __tablename__ = "service_contracts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    threshold_hours: Mapped[float] = mapped_column(Float)
    booking_probability: Mapped[float] = mapped_column(Float)
    downtime_cost_per_hour_cny: Mapped[float | None] = mapped_column(Float)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    """Exactly one row: the contract of unknown plates."""


class RegisteredVehicleRow(Base):
    """A registered plate (normalised, :func:`fleet.contracts.normalise_plate`)."""

    __tablename__ = "registered_vehicles"

    plate: Mapped[str] = mapped_column(String(20), primary_key=True)
    vehicle_class: Mapped[str] = mapped_column(String(32))
    designated_station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    contract_id: Mapped[str | None] = mapped_column(ForeignKey("service_contracts.id"))


class VanAssignment(Base):
    __tablename__ = "van_assignments"
    __table_args__ = (
        Index(
            "uq_van_assignments_active_van",
            "van_id",
            unique=True,
            sqlite_where=text("active AND NOT queued"),
            postgresql_where=text("active AND NOT queued"),
        ),
        Index(
            "uq_van_assignments_queued_van",
            "van_id",
            unique=True,
            sqlite_where=text("active AND queued"),
            postgresql_where=text("active AND queued"),
        ),
        Index(
            "uq_van_assignments_active_request",
            "request_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    van_id: Mapped[str] = mapped_column(ForeignKey("vans.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    eta_at: Mapped[dt.datetime | None]
    """The current arrival estimate (re-timed from each position report of the van)."""
    promised_eta_at: Mapped[dt.datetime | None]
    """The arrival time told when the van was assigned: lateness is measured against it."""
    at_risk_at: Mapped[dt.datetime | None]
    """When the van was first found late (promise + grace passed, or expected to); cleared
    when a position report brings it back within."""
    arrived_at: Mapped[dt.datetime | None]
    """When the van reached the breakdown (status on_site)."""
    queued: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The van is still on another job: this one starts when that one releases it."""
    travel_minutes: Mapped[float | None] = mapped_column(Float)
    travel_km: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="optimizer")
    """optimizer | manual"""
    reason: Mapped[str] = mapped_column(Text, default="")
    end_reason: Mapped[str] = mapped_column(Text, default="")
    acknowledged_at: Mapped[dt.datetime | None]
    """When the van's crew acknowledged it (``POST .../ack``); unacknowledged past
    ``RESCUE_CREW_ACK_TIMEOUT_MINUTES`` the cycle re-plans the request."""


class ReplacementBooking(Base):
    __tablename__ = "replacement_bookings"
    __table_args__ = (
        Index(
            "uq_replacement_bookings_active_truck",
            "truck_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
        Index(
            "uq_replacement_bookings_active_request",
            "request_id",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    truck_id: Mapped[str] = mapped_column(ForeignKey("replacement_trucks.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    pickup_eta_at: Mapped[dt.datetime | None]
    delivery_eta_at: Mapped[dt.datetime | None]
    cost_cny: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="optimizer")
    reason: Mapped[str] = mapped_column(Text, default="")
    end_reason: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """Append-only log of everything that happened to a request, a van or a truck."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    van_id: Mapped[str | None] = mapped_column(String(64))
    truck_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StaffToken(Base):
    """A staff bearer token; only its SHA-256 is stored. Usable until ``expires_at`` (null:
    a token from before expiry existed, never expires) unless revoked."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    partner_id: Mapped[str | None] = mapped_column(String(64))
    """The partner company a ``partner`` token is bound to."""
    van_id: Mapped[str | None] = mapped_column(String(64))
    """The van a ``crew`` token is bound to."""


class PartnerProvider(Base):
    """A partner rescue / tow service company's service: not an owned asset, so it is asked
    (an offer) rather than sent. Coverage: its provinces, or ``radius_km`` (great-circle) around
    its base."""

    __tablename__ = "partner_providers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    provinces: Mapped[list[str]] = mapped_column(JSON, default=list)
    base_lat: Mapped[float] = mapped_column(Float)
    base_lon: Mapped[float] = mapped_column(Float)
    radius_km: Mapped[float] = mapped_column(Float)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    promised_response_minutes: Mapped[float] = mapped_column(Float)
    callout_fee_cny: Mapped[float] = mapped_column(Float)
    per_km_cny: Mapped[float] = mapped_column(Float)
    capacity_jobs: Mapped[int] = mapped_column(Integer)


class PartnerOffer(Base):
    """A job offered to a partner: a replacement truck (``kind`` truck, ``truck_id``) or a
    rescue (``kind`` rescue, ``provider_id``). Status: offered -> accepted | declined |
    expired (silence past ``expires_at``) | withdrawn (the job went elsewhere or ended).
    Only an accepted offer holds the truck or the job."""

    __tablename__ = "partner_offers"
    __table_args__ = (
        Index(
            "uq_partner_offers_accepted_rescue",
            "request_id",
            unique=True,
            sqlite_where=text("status = 'accepted' AND kind = 'rescue'"),
            postgresql_where=text("status = 'accepted' AND kind = 'rescue'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """truck | rescue"""
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    truck_id: Mapped[str | None] = mapped_column(ForeignKey("replacement_trucks.id"))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("partner_providers.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    answered_at: Mapped[dt.datetime | None]
    proposed_eta_minutes: Mapped[float | None] = mapped_column(Float)
    """Our estimate when offering (pickup for a truck, arrival for a rescue)."""
    eta_minutes: Mapped[float | None] = mapped_column(Float)
    """The partner's own ETA, given with the acceptance."""
    eta_at: Mapped[dt.datetime | None]
    delivery_eta_minutes: Mapped[float | None] = mapped_column(Float)
    cost_cny: Mapped[float | None] = mapped_column(Float)
    decline_reason: Mapped[str] = mapped_column(Text, default="")


class ServerSecret(Base):
    """A secret generated once and shared by every server process (when the setting is unset):
    tracking tokens are derived from it, so restarts and other processes keep them valid."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# -- notifications (transactional outbox) ---------------------------------------------------


class NotificationEndpoint(Base):
    """Where customer-visible changes are sent: a webhook (URL + signing secret) or the SMS
    gateway (one row per process setting, kept by the delivery worker). Deleting an endpoint
    deactivates it, so that its delivery history stays."""

    __tablename__ = "notification_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16), default="webhook")
    """webhook | sms"""
    url: Mapped[str | None] = mapped_column(String(2000))
    secret: Mapped[str | None] = mapped_column(String(200))
    """Standard Webhooks secret (``whsec_<base64>``), kept as given: HMAC signing needs it."""
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Notification types sent here; empty = all of them."""
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]


class OutboxMessage(Base):
    """One customer-visible change, written in the transaction of the change itself. ``body``
    is the exact JSON sent (and signed) on every attempt; ``message_id`` is the stable
    ``webhook-id``."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    eta_at: Mapped[dt.datetime | None]
    """The van arrival time this message told the customer (the delay rule compares to it)."""
    body: Mapped[str] = mapped_column(Text)


class OutboxDelivery(Base):
    """One message to one endpoint. ``next_attempt_at`` is both the retry schedule and the
    claim: a worker that takes a delivery moves it a lease into the future, so a worker that
    dies mid-send leaves it due again once the lease has passed (at least once)."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        Index(
            "ix_outbox_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("notification_endpoints.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending | delivered | failed (gave up after the maximum age) | cancelled (endpoint
    deleted)"""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    delivered_at: Mapped[dt.datetime | None]


class RateLimitWindow(Base):
    """One client's current rate-limit window, shared by every server process on the
    database (PostgreSQL): a fixed window opened by the client's first request."""

    __tablename__ = "rate_limit_windows"

    client_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_ends_at: Mapped[dt.datetime] = mapped_column(index=True)
    hits: Mapped[int] = mapped_column(Integer)
