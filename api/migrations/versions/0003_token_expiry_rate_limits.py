"""staff token expiry and the shared rate-limit windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Staff tokens get an expiry (existing tokens keep none: they stay valid until revoked; new
ones expire after RESCUE_TOKEN_TTL_DAYS). ``rate_limit_windows`` holds one row per client
address so that every server process on a PostgreSQL database shares one limit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rate_limit_windows",
        sa.Column("client_key", sa.String(length=100), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_key", name=op.f("pk_rate_limit_windows")),
    )
    op.create_index(
        op.f("ix_rate_limit_windows_window_ends_at"), "rate_limit_windows", ["window_ends_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limit_windows_window_ends_at"), table_name="rate_limit_windows")
    op.drop_table("rate_limit_windows")
    with op.batch_alter_table("staff_tokens") as batch:
        batch.drop_column("expires_at")
