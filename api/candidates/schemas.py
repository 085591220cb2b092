"""Read models of the candidates route."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fleet import VanCapability, VanStatus


class VanCandidateRead(BaseModel):
    van_id: str = Field(examples=["V-370100-001"])
    station_id: str
    station_name: str = Field(examples=["济南市 AAA"])
    capability: VanCapability
    status: VanStatus
    road_km: float | None = Field(description="Road km from where the van is (null: unreachable)")
    home_km: float | None = Field(
        description="Road km from the station the van serves from (its home station, or "
        "posted_station_id): what its service radius is measured on"
    )
    posted_station_id: str | None = Field(
        default=None,
        description="A free van a dispatcher moved up to another station (POST "
        "/v1/dispatch/move-ups/confirm): that station, its radius's centre until its next job",
    )
    service_radius_km: float
    free_in_minutes: float = Field(description="Minutes until the van is free (0: free now)")
    eta_minutes: float | None = Field(description="free_in_minutes + travel minutes")
    within_radius: bool
    feasible: bool = Field(
        description="The dispatch cycle could send it: free, on shift, capable, in radius"
    )
    assignable: bool = Field(
        description="A dispatcher may send it: feasible, or only beyond its radius "
        "(then with an override_reason)"
    )
    excluded_reason: str | None = Field(
        description="Why the dispatch cycle would not send it",
        examples=["busy with request 0b5f..."],
    )
    current: bool = Field(description="The van already assigned to this request")


class CandidatesRead(BaseModel):
    request_id: str
    vehicle_class: str
    needs_tow: bool
    vans: list[VanCandidateRead] = Field(
        description="The nearest vans: feasible ones first by ETA, then beyond-radius ones, "
        "then the excluded ones with their reason"
    )
    not_listed: int = Field(description="Vans farther away than the last one listed")
    partners: list[str] = Field(
        default_factory=list, description="Partner providers (not offered yet: always empty)"
    )
