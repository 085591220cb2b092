"""Alembic environment: migrations run on the connection handed over by api.db.migrate (or
on RESCUE_DATABASE_URL when alembic is run by hand)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from api.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from api.db.engine import make_engine
        from api.settings import get_settings

        engine = make_engine(get_settings().database_url)
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
