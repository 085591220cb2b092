"""Persistence: SQLAlchemy 2 models, engines, Alembic migrations. Only ``api`` imports it."""
