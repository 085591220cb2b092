"""Pydantic schemas of the HTTP API (suffixes: XRead, XCreate, XUpdate)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    field_validator,
    model_validator,
)

from api.service_area import check_in_service_area
from dispatch.lifecycle import RequestStatus
from dispatch.replacement import CargoKind, UnmatchedReason
from dispatch.vans import UnassignedReason
from fleet import StationGrade, TruckStatus, TruckType, VanCapability, VanStatus, VehicleClass
from fleet.province_index import province_at


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StationRead(ORMModel):
    id: str
    name: str
    grade: StationGrade
    lat: float
    lon: float
    adcode: str
    prefecture_adcode: str
    province_adcode: str
    heavy_duty_bay: bool
    towing: bool
    open_hour: int
    close_hour: int


class VanRead(ORMModel):
    id: str
    station_id: str
    capability: VanCapability
    service_radius_km: float
    status: VanStatus
    lat: float | None = Field(description="Current position; null = at its home station")
    lon: float | None


class PartnerRead(ORMModel):
    id: str
    name: str
    provinces: list[str]
    callout_fee_cny: float
    per_empty_km_cny: float
    per_loaded_km_cny: float
    promised_response_minutes: float


class ReplacementTruckRead(ORMModel):
    id: str
    partner_id: str
    truck_type: TruckType
    capacity_t: float
    depot_lat: float
    depot_lon: float
    depot_adcode: str
    status: TruckStatus


class NetworkCounts(BaseModel):
    stations: int
    vans: int
    partners: int
    trucks: int
    requests: int
    rescue_providers: int = 0
    contracts: int = 0
    registered_vehicles: int = 0


class HealthRead(BaseModel):
    status: str = Field(examples=["ok"])
    database: str = Field(examples=["sqlite://"])
    network: NetworkCounts


# -- rescue requests -------------------------------------------------------------------------

PHONE_PATTERN = r"^\+?[0-9][0-9 \-]{4,24}$"

REQUEST_EXAMPLE: dict[str, Any] = {
    "customer": {"name": "张伟", "phone": "13800000000"},
    "vehicle": {"plate": "鲁A12345", "vehicle_class": "tractor", "model": "HOWO T7H"},
    "location": {"lat": 36.651, "lon": 117.120},
    "fault": {"code": "ENGINE_NO_START", "description": "engine cranks but will not start"},
    "cargo": {
        "weight_t": 28.0,
        "destination": {"lat": 31.230, "lon": 121.474},
        "deadline": "2030-11-25T18:00:00+08:00",
    },
}


StrictFloat = Annotated[float, Strict()]
"""A JSON number (an integer is fine): never a bool (``true`` is not 1.0) nor a string."""

MAX_DEADLINE_DAYS = 366
"""A cargo deadline further ahead than this is refused (no contract plans that far, and a
year-9999 deadline overflows the database's datetime range once converted to UTC)."""


class StrictModel(BaseModel):
    """Input models: unknown fields are refused, NaN/inf, NUL characters and text that is not
    valid Unicode (lone surrogates) never accepted. Strings are taken as sent (no stripping),
    so the OpenAPI patterns and lengths are exactly what the server checks."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL refuses NUL in text, and no driver can encode a lone surrogate: without
        # this such a value would fail at the insert, after validation.
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("must not contain the NUL character (\\u0000)")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text (no lone surrogates)") from None
        return value


class CustomerIn(StrictModel):
    name: str = Field(min_length=1, max_length=200, examples=["张伟"])
    phone: str = Field(
        pattern=PHONE_PATTERN,
        max_length=25,
        description="Digits, optional leading +, spaces or dashes",
        examples=["13800000000"],
    )


class VehicleIn(StrictModel):
    plate: str = Field(min_length=1, max_length=20, examples=["鲁A12345"])
    vehicle_class: VehicleClass = Field(description="One of the documented vehicle classes")
    model: str = Field(default="", max_length=100, examples=["HOWO T7H"])
    designated_station_id: str | None = Field(
        default=None,
        max_length=64,
        description="The tractor customer's designated service station (preferred for the van)",
    )


class LocationIn(StrictModel):
    """A point where service is needed: inside the service area (mainland China for the
    default network; see ``api/service_area.py``), else a 422."""

    lat: StrictFloat = Field(ge=-90, le=90, description="WGS84 latitude", examples=[36.651])
    lon: StrictFloat = Field(ge=-180, le=180, description="WGS84 longitude", examples=[117.12])

    _province_adcode: str | None = PrivateAttr(default=None)
    _province_known: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _in_service_area(self) -> LocationIn:
        self._province_adcode = check_in_service_area(self.lat, self.lon)
        self._province_known = True
        return self

    def province_adcode(self) -> str | None:
        """The province of the point (``fleet.province_index.province_at``), as found by
        the service-area check (looked up again only for a model built without it)."""
        if not self._province_known:
            self._province_adcode = province_at(self.lat, self.lon)
            self._province_known = True
        return self._province_adcode


class FaultIn(StrictModel):
    code: str | None = Field(
        default=None,
        max_length=64,
        description="Fault catalogue code (GET /v1/fault-codes); omitted = UNKNOWN",
        examples=["ENGINE_NO_START"],
    )
    description: str = Field(max_length=2000, examples=["engine cranks but will not start"])


class CargoIn(StrictModel):
    weight_t: StrictFloat = Field(
        gt=0, le=100, description="Cargo weight in tonnes", examples=[28.0]
    )
    destination: LocationIn
    deadline: AwareDatetime | None = Field(
        default=None,
        description="When the cargo must be delivered (ISO 8601 with a time zone; in the "
        f"future, at most {MAX_DEADLINE_DAYS} days ahead)",
    )
    kind: CargoKind | None = Field(
        default=None,
        description="How the cargo travels; default semi_trailer for tractors, else palletised",
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_in_future(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        now = dt.datetime.now(dt.UTC)
        # Compared as UTC offsets from now: converting 9999-12-31T23:59-12:00 itself to UTC
        # would overflow.
        ahead = value - now
        if ahead <= dt.timedelta(0):
            raise ValueError("the deadline is in the past")
        if ahead > dt.timedelta(days=MAX_DEADLINE_DAYS):
            raise ValueError(f"the deadline is more than {MAX_DEADLINE_DAYS} days ahead")
        return value.astimezone(dt.UTC)


class RequestCreate(StrictModel):
    """A breakdown report (POST /v1/requests)."""

    model_config = ConfigDict(json_schema_extra={"examples": [REQUEST_EXAMPLE]})

    customer: CustomerIn
    vehicle: VehicleIn
    location: LocationIn
    fault: FaultIn
    cargo: CargoIn | None = None


class EstimateRead(BaseModel):
    fault_code: str = Field(examples=["ENGINE_NO_START"])
    source: str = Field(description="catalogue (intake) or diagnosis", examples=["catalogue"])
    expected_repair_hours: float = Field(examples=[10.3])
    p90_repair_hours: float | None = Field(examples=[25.8])
    p_on_site_fix: float | None = Field(examples=[0.55])
    needs_tow: bool
    needs_replacement: bool
    threshold_hours: float = Field(examples=[24.0])
    priority: float = Field(description="Weight >= 1 in the van matching", examples=[3.0])
    p_exceeds_threshold: float | None = Field(
        None,
        description="Staff only: P(not back on the road within threshold_hours)",
        examples=[0.36],
    )
    contract_id: str | None = Field(None, description="Staff only", examples=["standard"])
    booking_probability: float | None = Field(
        None, description="Staff only: the contract's booking probability", examples=[0.5]
    )
    workshop_station_id: str | None = Field(
        None, description="Staff only: the workshop the estimate assumes", examples=["AAA-370100"]
    )


class ContractRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["premium"])
    name: str = Field(examples=["premium 8 h"])
    threshold_hours: float = Field(examples=[8.0])
    booking_probability: float = Field(examples=[0.3])
    downtime_cost_per_hour_cny: float | None = Field(examples=[800.0])


class VehicleRead(BaseModel):
    plate: str = Field(description="Normalised plate", examples=["鲁A12345"])
    registered: bool
    vehicle_class: VehicleClass | None
    designated_station_id: str | None = Field(examples=["AAA-370100"])
    contract: ContractRead


class RequestCreated(BaseModel):
    id: str = Field(examples=["0b5f3c9e-3f0e-4f4e-9a55-4f3c1b1f9d2a"])
    status: RequestStatus
    tracking_token: str = Field(
        description="Secret for GET /v1/requests/{id}; shown once (only its hash is stored)",
        examples=["trk_4bG0bW3u..."],
    )
    created_at: dt.datetime
    estimate: EstimateRead


class VanOnRequest(BaseModel):
    id: str
    station_id: str
    capability: VanCapability
    lat: float | None = Field(description="Current position (null: at its station)")
    lon: float | None
    eta_at: dt.datetime | None = Field(
        description="Current arrival estimate (re-timed by road from each position report)"
    )
    eta_minutes: float | None = Field(
        description="Minutes from now until eta_at; negative while the van is overdue and "
        "has not reported since (never clamped); null once it has arrived"
    )
    promised_eta_at: dt.datetime | None = Field(
        default=None, description="The arrival time told when the van was assigned"
    )
    late_by_minutes: float | None = Field(
        default=None,
        description="How much later than the promise the van is expected (or arrived); >= 0",
    )
    at_risk: bool = Field(
        default=False,
        description="Not there by its ETA plus the grace, or expected later than the promise "
        "plus the grace (RESCUE_ETA_GRACE_MINUTES)",
    )
    last_position_at: dt.datetime | None = Field(
        default=None, description="When the van last reported its position"
    )
    arrived_at: dt.datetime | None = Field(default=None, description="When it reached the site")
    queued: bool = Field(
        default=False,
        description="The van is finishing another job first (eta_at counts that in)",
    )
    travel_km: float | None
    assigned_at: dt.datetime
    source: str = Field(description="optimizer or manual", examples=["optimizer"])
    reason: str = ""


class ReplacementOnRequest(BaseModel):
    truck_id: str
    partner_id: str
    partner_name: str
    truck_type: TruckType
    capacity_t: float
    pickup_eta_at: dt.datetime | None
    delivery_eta_at: dt.datetime | None
    cost_cny: float | None
    booked_at: dt.datetime


class CargoRead(BaseModel):
    weight_t: float
    destination: LocationIn
    deadline: dt.datetime | None
    kind: CargoKind


class CustomerRead(BaseModel):
    name: str
    phone: str = Field(description="Masked for tracking-token holders")


class RequestRead(BaseModel):
    id: str
    status: RequestStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    waited_minutes: float = Field(description="Minutes since the request was received")
    customer: CustomerRead
    vehicle: VehicleIn
    location: LocationIn
    province_adcode: str | None
    fault: FaultIn
    cargo: CargoRead | None
    estimate: EstimateRead
    van: VanOnRequest | None = Field(description="The active van assignment")
    escalated: bool = Field(
        default=False,
        description="No own van covers the breakdown: escalated to a partner (the dispatch "
        "cycle sets it; a van assigned later clears it)",
    )
    escalation_reason: str | None = Field(
        default=None, examples=["no_van_in_radius"], description="Why it was escalated"
    )
    replacement: ReplacementOnRequest | None = Field(description="The active truck booking")
    partner: PartnerOnRequest | None = Field(
        default=None,
        description="A partner job: 'looking_for_partner' while offers wait for an answer, "
        "'accepted' once a partner took it (with its ETA)",
    )


class DiagnosisCreate(StrictModel):
    estimated_repair_hours: StrictFloat = Field(
        ge=0, le=10000, description="The technician's estimate of the repair time", examples=[30]
    )
    note: str = Field(default="", max_length=2000)


class StatusChange(StrictModel):
    status: RequestStatus = Field(description="Target status (dispatch.lifecycle rules)")
    reason: str = Field(default="", max_length=2000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "en_route"}]})


class AssignmentCreate(StrictModel):
    van_id: str = Field(min_length=1, max_length=64, examples=["V-370100-001"])
    reason: str = Field(
        min_length=1, max_length=2000, description="Why (recorded)", examples=["customer VIP"]
    )
    override_reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Required when the breakdown is beyond the van's service radius (recorded)",
        examples=["no van in radius for 2 h; customer agreed to wait"],
    )


class CancelCreate(StrictModel):
    reason: str = Field(default="", max_length=2000, examples=["customer fixed it"])


SettableVanStatus = Literal["available", "off_shift", "maintenance", "returning"]
"""Van statuses a position report may set; the others follow the request lifecycle."""


class VanPositionUpdate(StrictModel):
    lat: StrictFloat = Field(ge=-90, le=90, examples=[36.7])
    lon: StrictFloat = Field(ge=-180, le=180, examples=[117.0])
    status: SettableVanStatus | None = Field(
        default=None,
        description="Optionally also set available / off_shift / maintenance / returning",
    )


class EventRead(ORMModel):
    id: int
    created_at: dt.datetime
    kind: str = Field(examples=["van_assigned"])
    request_id: str | None
    van_id: str | None
    truck_id: str | None
    actor: str
    data: dict[str, Any]


class AssignedRead(BaseModel):
    request_id: str
    van_id: str
    eta_minutes: float
    eta_at: dt.datetime
    travel_km: float
    designated: bool
    queued: bool = Field(
        default=False, description="The van takes it once it finishes its current job"
    )


class ReassignedRead(AssignedRead):
    """A re-planned job: the van moved, or the request lost its van to a better use."""

    previous_van_id: str | None
    reason: str = Field(description="Why (recorded in the event log)")


class UnassignedRead(BaseModel):
    request_id: str
    reason: UnassignedReason
    suggestion: str
    nearest_van_id: str | None
    nearest_eta_minutes: float | None


class BookedRead(BaseModel):
    request_id: str
    truck_id: str
    partner_id: str
    pickup_eta_at: dt.datetime
    delivery_eta_at: dt.datetime
    cost_cny: float
    lateness_minutes: float


class OfferMadeRead(BaseModel):
    """An offer a dispatch cycle sent to a partner (nothing is held until it accepts)."""

    offer_id: int
    request_id: str
    kind: Literal["truck", "rescue"]
    partner_id: str
    truck_id: str | None
    provider_id: str | None
    expires_at: dt.datetime
    proposed_eta_minutes: float | None
    cost_cny: float | None


class PartnerOnRequest(BaseModel):
    """The partner side of a request, as the customer may see it."""

    kind: Literal["truck", "rescue"]
    status: Literal["looking_for_partner", "accepted"]
    partner_name: str = Field(description="Empty while looking")
    eta_at: dt.datetime | None = Field(description="The partner's own ETA once accepted")


class UnmatchedRead(BaseModel):
    request_id: str
    reason: UnmatchedReason
    detail: str


class DispatchRunRead(BaseModel):
    cycle_id: str
    ran: bool
    skipped_reason: str | None = Field(description="Why nothing ran (another cycle holds the lock)")
    started_at: dt.datetime
    seconds: float
    provider: str = Field(examples=["road"])
    open_requests: int
    free_vans: int
    assigned: list[AssignedRead]
    unassigned: list[UnassignedRead]
    booked: list[BookedRead]
    offered: list[OfferMadeRead] = Field(
        default_factory=list, description="Partner offers sent (trucks and rescues)"
    )
    expired: list[int] = Field(
        default_factory=list, description="Offers that lapsed unanswered (counted as declines)"
    )
    replanned: list[str] = Field(
        default_factory=list,
        description="Requests whose van assignment was not acknowledged in time",
    )
    unmatched: list[UnmatchedRead]
    conflicts: list[str] = Field(
        description="Decisions dropped because a concurrent change got there first"
    )
    replanned_jobs: int = Field(
        default=0, description="Assigned jobs not yet reached that this cycle reconsidered"
    )
    reassigned: list[ReassignedRead] = Field(
        default_factory=list, description="Jobs whose van the re-planning changed"
    )
    released: list[str] = Field(
        default_factory=list,
        description="Requests that lost their van to a higher-priority job (back in the queue)",
    )
    at_risk: list[str] = Field(
        default_factory=list, description="Requests this cycle found late (newly at risk)"
    )
    escalated: list[str] = Field(
        default_factory=list, description="Requests this cycle escalated (no own van in radius)"
    )


class KpiRead(BaseModel):
    generated_at: dt.datetime
    open: int = Field(description="Requests neither closed nor cancelled")
    received: int = Field(description="Waiting for a van")
    assigned: int = Field(description="Requests with an active van (assigned or en route)")
    on_site: int
    awaiting_replacement: int
    replacement_assigned: int
    within_promise: float | None = Field(
        description="Share of the requests whose outcome against the promise is known: "
        "arrivals within promise_minutes of the request (within_promise_count), over arrivals "
        "(arrived) plus requests still waiting for a van past the promise (overdue, already a "
        "miss). Requests still waiting within their promise are not counted yet (they can "
        "still make it); null when nothing is counted"
    )
    within_promise_count: int = Field(
        description="Requests whose van arrived within promise_minutes of the request"
    )
    arrived: int = Field(
        default=0, description="Requests whose van has arrived (ever), within the promise or late"
    )
    overdue: int = Field(
        default=0,
        description="Requests still waiting for a van (received, assigned or en route) more "
        "than promise_minutes after the request: already a miss, counted in within_promise",
    )
    waiting_for_van: int = Field(
        default=0,
        description="Received, assigned or en route: no van there yet (overdue included; the "
        "rest, still within their promise, are not counted in within_promise yet)",
    )
    at_risk: int = Field(default=0, description="Jobs whose van is late beyond the grace")
    promise_minutes: float
    mean_eta_minutes: float | None = Field(
        description="Mean minutes from request to (expected) van arrival, active assignments"
    )
    mean_wait_minutes: float | None = Field(description="Mean minutes waited by received requests")
    vans_available: int
    vans_busy: int
    trucks_booked: int


class FaultCodeRead(BaseModel):
    code: str
    name: str
    grade: str
    expected_repair_hours: float


class ErrorRead(BaseModel):
    detail: str = Field(examples=["invalid, expired or revoked token"])


class FieldErrorRead(BaseModel):
    field: str = Field(examples=["location.lat"])
    message: str = Field(examples=["Input should be less than or equal to 90"])


class ValidationErrorRead(BaseModel):
    """The 422 body: every problem, each naming the field and the reason (never the value)."""

    detail: str = Field(examples=["location.lat: Input should be less than or equal to 90"])
    errors: list[FieldErrorRead]


class MoveUpSuggestionRead(BaseModel):
    van_id: str
    from_station_id: str
    to_station_id: str
    km: float = Field(description="Estimated road km of the move")
    expected_coverage_gain: float = Field(
        description="Expected share of demand reached within the promise gained by this move"
    )


class MoveUpsRead(BaseModel):
    """Suggestions only: a dispatcher confirms and moves the van."""

    busy_share: float = Field(description="Share of on-shift vans busy now")
    expected_coverage: float = Field(
        description="Expected share of demand reached within the promise now (MEXCLP)"
    )
    expected_coverage_all_idle: float = Field(
        description="The same with every on-shift van idle at its own station"
    )
    expected_coverage_after: float = Field(description="The same after the suggested moves")
    suggestions: list[MoveUpSuggestionRead]


class MoveUpConfirm(StrictModel):
    """A dispatcher confirms one move-up (usually a suggestion of `GET /v1/dispatch/move-ups`)."""

    van_id: str = Field(min_length=1, max_length=64, examples=["V0001"])
    to_station_id: str = Field(
        min_length=1, max_length=64, examples=["S0002"],
        description="Where the van goes; its own station brings it home",
    )  # fmt: skip


class MoveUpConfirmedRead(BaseModel):
    van_id: str
    home_station_id: str = Field(description="The van's own station (unchanged)")
    from_station_id: str = Field(description="Where the van was (its own or a posted station)")
    to_station_id: str
    km: float | None = Field(description="Road km of the move (null: no road between)")
    lat: float = Field(description="The van's new position (the station's)")
    lon: float
