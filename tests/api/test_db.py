"""Schema guarantees, on SQLite and on PostgreSQL: one active assignment per van and per
request, one active booking per truck, an append-only event log, migrations idempotent."""

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from api.db import models as m
from api.db.adapters import load_network
from api.db.engine import DatabaseUnavailable, make_engine, session_factory, transaction
from api.db.migrate import current_revision, head_revision, upgrade
from api.network.seeding import seed_network
from fleet import GeoPoint, Network, RescueVan, ServiceStation, StationGrade, VanCapability

SMALL = Network(
    name="tiny",
    stations=(
        ServiceStation(
            "S1", "s1", StationGrade.AAA, GeoPoint(36.6, 117.1), "370100", "370100", "370000"
        ),
    ),
    vans=(
        RescueVan("V1", "S1", VanCapability.HEAVY_SERVICE),
        RescueVan("V2", "S1", VanCapability.WRECKER),
    ),
)


def _request(rid: str) -> m.RescueRequest:
    return m.RescueRequest(
        id=rid, status="received", customer_name="张伟", customer_phone="13800000000",
        plate="鲁A12345", vehicle_class="tractor", lat=36.6, lon=117.1, tracking_token_hash="x",
    )  # fmt: skip


def test_migrations_reach_head_and_are_idempotent(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == "0008"
    upgrade(engine)
    assert current_revision(engine) == "0008"


def test_van_cannot_hold_two_active_assignments(engine: Engine) -> None:
    """The partial unique index refuses a second active assignment of the same van; an ended
    assignment does not count."""
    factory = session_factory(engine)
    with transaction(factory) as db:
        seed_network(db_session=db, network=SMALL, source="test")
        db.add_all([_request("r1"), _request("r2")])
        db.flush()
        db.add(m.VanAssignment(request_id="r1", van_id="V1", active=False))
        db.add(m.VanAssignment(request_id="r1", van_id="V1", active=True))
    with pytest.raises(IntegrityError), transaction(factory) as db:
        db.add(m.VanAssignment(request_id="r2", van_id="V1", active=True))
    with pytest.raises(IntegrityError), transaction(factory) as db:
        db.add(m.VanAssignment(request_id="r1", van_id="V2", active=True))
    with transaction(factory) as db:
        db.add(m.VanAssignment(request_id="r2", van_id="V2", active=True))
        active = select(func.count()).select_from(m.VanAssignment).where(m.VanAssignment.active)
        n = db.scalar(active)
    assert n == 2


def test_event_log_is_append_only(engine: Engine) -> None:
    """Events can be inserted, never updated."""
    factory = session_factory(engine)
    with transaction(factory) as db:
        db.add(m.Event(kind="request.received", data={"a": 1}))
    with pytest.raises(DBAPIError, match="append-only"), transaction(factory) as db:
        db.execute(update(m.Event).values(kind="tampered"))
    with transaction(factory) as db:
        assert db.scalar(select(m.Event.kind)) == "request.received"


def test_network_round_trips_through_the_database(engine: Engine) -> None:
    """Rows adapt back into exactly the dataclasses that were stored."""
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=SMALL, source="test")
    with transaction(session_factory(engine)) as db:
        loaded = load_network(db)
    assert loaded.stations == SMALL.stations
    assert loaded.vans == SMALL.vans


def test_datetimes_come_back_timezone_aware(engine: Engine) -> None:
    with transaction(session_factory(engine)) as db:
        db.add(m.Event(kind="x", created_at=dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)))
    with transaction(session_factory(engine)) as db:
        created = db.scalar(select(m.Event.created_at))
    assert created == dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    assert created.tzinfo is not None


def test_unreachable_or_malformed_url_is_one_clear_line() -> None:
    """The error names the scheme and host, never the password."""
    with pytest.raises(DatabaseUnavailable, match=r"postgresql\+psycopg://127.0.0.1:1/x") as info:
        make_engine("postgresql://bob:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(info.value)
    with pytest.raises(DatabaseUnavailable, match="malformed database URL"):
        make_engine("not a url")


def test_sqlite_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    eng.dispose()


def test_read_only_transaction_leaves_the_sqlite_write_lock_free(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A transaction marked read_only (the dispatch snapshot) does not take SQLite's write
    lock, so another process's writer goes ahead; an ordinary one still takes it up front."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from api.db.engine import make_engine, read_only, session_factory, transaction

    url = f"sqlite:///{tmp_path / 'lock.sqlite'}"
    reader = make_engine(url)
    writer = make_engine(url, connect_args={"check_same_thread": False, "timeout": 0.05})
    with transaction(session_factory(reader)) as db:
        read_only(db)
        assert db.execute(text("SELECT 1")).scalar() == 1
        with writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE written_meanwhile (x INTEGER)")
    with transaction(session_factory(reader)) as db:
        db.execute(text("SELECT 1"))
        with pytest.raises(OperationalError, match="database is locked"), writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE blocked (x INTEGER)")
    reader.dispose()
    writer.dispose()
