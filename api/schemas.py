"""Pydantic schemas of the HTTP API (suffixes: XRead, XCreate, XUpdate)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fleet import StationGrade, TruckStatus, TruckType, VanCapability, VanStatus


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


class HealthRead(BaseModel):
    status: str = Field(examples=["ok"])
    database: str = Field(examples=["sqlite://"])
    network: NetworkCounts
