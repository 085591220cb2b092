"""cargo kind of a request

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The replacement matching needs to know how the cargo travels (semi-trailer, loose,
palletised, oversize); null means derived from the vehicle class.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("cargo_kind", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("cargo_kind")
