"""Looking a plate up in the registry the database holds."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.adapters import contract_from_row
from fleet.contracts import DEFAULT_CONTRACT, RegistryError, VehicleTerms, normalise_plate
from fleet.model import VehicleClass


def vehicle_terms(*, db_session: Session, plate: str) -> VehicleTerms:
    """What a request from ``plate`` gets: the registered class, designated station and
    contract, or (``registered`` False) the default contract. ``RegistryError`` for a plate
    that is empty once normalised."""
    key = normalise_plate(plate)
    if not key:
        raise RegistryError(f"plate must not be empty, got {plate!r}")
    row = db_session.get(m.RegisteredVehicleRow, key)
    if row is not None and row.contract_id is not None:
        contract_row = db_session.get(m.ServiceContractRow, row.contract_id)
    else:
        contract_row = db_session.scalar(
            select(m.ServiceContractRow).where(m.ServiceContractRow.is_default.is_(True))
        )
    contract = contract_from_row(contract_row) if contract_row is not None else DEFAULT_CONTRACT
    if row is None:
        return VehicleTerms(key, False, None, None, contract)
    return VehicleTerms(
        key, True, VehicleClass(row.vehicle_class), row.designated_station_id, contract
    )
