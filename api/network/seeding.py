"""Loading a network into the database."""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.adapters import (
    partner_row,
    registry_rows,
    rescue_provider_row,
    station_row,
    truck_row,
    van_row,
)
from fleet import Network

logger = logging.getLogger(__name__)


class NetworkAlreadySeeded(RuntimeError):
    """The database already holds a network and ``reset`` was not asked for."""


def network_counts(*, db_session: Session) -> dict[str, int]:
    def count(model: type[m.Base]) -> int:
        return int(db_session.scalar(select(func.count()).select_from(model)) or 0)

    return {
        "stations": count(m.Station),
        "vans": count(m.Van),
        "partners": count(m.Partner),
        "trucks": count(m.ReplacementTruck),
        "rescue_providers": count(m.PartnerProvider),
        "requests": count(m.RescueRequest),
        "contracts": count(m.ServiceContractRow),
        "registered_vehicles": count(m.RegisteredVehicleRow),
    }


def is_seeded(*, db_session: Session) -> bool:
    return db_session.scalar(select(func.count()).select_from(m.Station)) != 0


def seed_network(
    *, db_session: Session, network: Network, source: str, reset: bool = False
) -> dict[str, int]:
    """Write ``network`` into the database. Refuses when a network is already there unless
    ``reset``; with ``reset`` everything (requests, assignments, events included) is replaced.
    Runs inside the caller's transaction: either all of it is written or nothing."""
    if is_seeded(db_session=db_session):
        if not reset:
            counts = network_counts(db_session=db_session)
            raise NetworkAlreadySeeded(
                f"the database already holds a network ({counts['stations']} stations, "
                f"{counts['vans']} vans, {counts['requests']} requests); "
                "use --reset to replace it (this deletes all requests and their history)"
            )
        for model in (
            m.OutboxDelivery,  # notifications about the deleted requests (endpoints stay)
            m.OutboxMessage,
            m.Event,
            m.PartnerOffer,
            m.VanAssignment,
            m.ReplacementBooking,
            m.RescueRequest,
            m.RegisteredVehicleRow,
            m.ServiceContractRow,
            m.Van,
            m.ReplacementTruck,
            m.PartnerProvider,
            m.Partner,
            m.Station,
            m.NetworkMeta,
        ):
            db_session.execute(delete(model))
    db_session.add(m.NetworkMeta(id=1, name=network.name, source=source))
    db_session.add_all(station_row(s) for s in network.stations)
    db_session.flush()
    db_session.add_all(van_row(v) for v in network.vans)
    db_session.add_all(partner_row(p) for p in network.partners)
    db_session.flush()
    db_session.add_all(truck_row(t) for t in network.trucks)
    db_session.add_all(rescue_provider_row(p) for p in network.rescue_providers)
    contracts, vehicles = registry_rows(network.registry)
    db_session.add_all(contracts)
    db_session.flush()
    db_session.add_all(vehicles)
    db_session.flush()
    logger.info("seeded network %s from %s", network.name, source)
    return network_counts(db_session=db_session)
