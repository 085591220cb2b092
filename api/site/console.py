"""The dispatcher console (static files) and the small public data it draws."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from api.schemas import FaultCodeRead
from api.site.geo import county_places, simplified_provinces
from fleet import load_fault_catalogue

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get(
    "/v1/geo/provinces",
    summary="Simplified province outlines (GeoJSON) for the console's map",
)
def provinces() -> dict[str, Any]:
    """Public, vendored data (see NOTICE): rings decimated to ~0.08 degrees, rounded to 0.01."""
    return simplified_provinces()


@router.get(
    "/v1/geo/places",
    summary="County and prefecture seats (names, coordinates) for the console's place names",
)
def places() -> dict[str, Any]:
    """Public, vendored data (see NOTICE): `places` is a list of `[lat, lon, county name,
    prefecture name]`; the console names a breakdown after the nearest seat."""
    return {"places": county_places()}


@router.get(
    "/v1/fault-codes", response_model=list[FaultCodeRead], summary="The fault catalogue's codes"
)
def fault_codes() -> list[FaultCodeRead]:
    """Valid values of `fault.code` in POST /v1/requests."""
    return [
        FaultCodeRead(
            code=f.code,
            name=f.name,
            grade=f.grade.value,
            expected_repair_hours=round(f.expected_repair_hours(), 2),
        )
        for f in load_fault_catalogue()
    ]
