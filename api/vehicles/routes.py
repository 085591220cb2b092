"""``GET /v1/vehicles/{plate}`` (staff): what the registry says about a plate."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep, StaffUser
from api.exceptions import InvalidInput, NotFound
from api.responses import STAFF_ERRORS
from api.schemas import ContractRead, VehicleRead
from api.vehicles.service import vehicle_terms
from fleet.contracts import RegistryError

router = APIRouter(prefix="/v1", tags=["network"])


@router.get(
    "/vehicles/{plate}",
    response_model=VehicleRead,
    summary="A registered vehicle: class, designated station, contract",
    responses=STAFF_ERRORS,
)
def get_vehicle(plate: str, db: SessionDep, _staff: StaffUser) -> VehicleRead:
    """Any spelling of the plate that normalises the same (full-width letters, spaces, the
    middle dot) finds it. 404 for a plate the registry does not know (requests from it get
    the default contract)."""
    try:
        terms = vehicle_terms(db_session=db, plate=plate)
    except RegistryError as exc:
        raise InvalidInput("plate", str(exc)) from None
    if not terms.registered:
        raise NotFound(
            f"no registered vehicle with plate {terms.plate!r} "
            f"(its requests get the default contract {terms.contract.id!r})"
        )
    return VehicleRead(
        plate=terms.plate,
        registered=True,
        vehicle_class=terms.vehicle_class,
        designated_station_id=terms.designated_station_id,
        contract=ContractRead.model_validate(terms.contract, from_attributes=True),
    )
