"""Seeding: the national network in one transaction; a second seed refuses unless reset."""

import pytest
from sqlalchemy import Engine

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.network.seeding import NetworkAlreadySeeded, network_counts, seed_network
from fleet import build_national_network


def test_seed_national_then_refuse_then_reset(engine: Engine) -> None:
    """The national network lands whole; seeding again refuses and changes nothing; --reset
    replaces the network and clears operational data."""
    national = build_national_network()
    factory = session_factory(engine)
    with transaction(factory) as db:
        counts = seed_network(db_session=db, network=national, source="china-national")
    assert counts == {
        "stations": len(national.stations), "vans": len(national.vans),
        "partners": len(national.partners), "trucks": len(national.trucks), "requests": 0,
        "contracts": 3, "registered_vehicles": 200,
        "rescue_providers": len(national.rescue_providers),
    }  # fmt: skip
    assert len(national.rescue_providers) == 62
    with transaction(factory) as db:
        db.add(m.Event(kind="x"))
    with pytest.raises(NetworkAlreadySeeded, match="use --reset"), transaction(factory) as db:
        seed_network(db_session=db, network=national, source="again")
    with transaction(factory) as db:
        assert network_counts(db_session=db)["stations"] == len(national.stations)
        seed_network(db_session=db, network=national, source="again", reset=True)
    with transaction(factory) as db:
        assert network_counts(db_session=db)["vans"] == len(national.vans)


def test_failed_seed_leaves_nothing(engine: Engine) -> None:
    """A failure in the middle of the seed rolls everything back (all or nothing)."""
    national = build_national_network()
    factory = session_factory(engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction(factory) as db:
        seed_network(db_session=db, network=national, source="x")
        raise Boom
    with transaction(factory) as db:
        assert network_counts(db_session=db)["stations"] == 0
