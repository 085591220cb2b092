"""live operations: promised ETAs, at-risk flags, escalations, the server secret

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

- ``van_assignments.promised_eta_at``: the arrival time told when the van was assigned (the
  promise that ``late_by_minutes`` and ``at_risk`` are measured against); ``eta_at`` keeps
  moving with the van's position reports.
- ``van_assignments.at_risk_at``: when the job was first found at risk; ``arrived_at``: when
  the van reached the breakdown (KPIs count arrivals against the promise); ``queued``: the
  job starts when the van's current one ends (a van finishing a job nearby is a candidate),
  so the one-active-assignment-per-van index now counts current jobs, and a second partial
  unique index allows one queued job per van.
- ``requests.escalated_at`` / ``escalation_reason``: the cycle found no own van in radius.
- ``server_secrets``: a generated secret shared by all server processes (tracking tokens are
  derived from it by HMAC, so an idempotent replay returns the same token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


_VAN_INDEXES = (
    ("uq_van_assignments_active_van", "active AND NOT queued"),
    ("uq_van_assignments_queued_van", "active AND queued"),
)


def upgrade() -> None:
    with op.batch_alter_table("van_assignments") as batch:
        batch.add_column(sa.Column("promised_eta_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("at_risk_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("queued", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # A van holds one current job and at most one queued next job.
    op.drop_index("uq_van_assignments_active_van", table_name="van_assignments")
    for name, where in _VAN_INDEXES:
        op.create_index(
            name,
            "van_assignments",
            ["van_id"],
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("escalation_reason", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("escalation_reason")
        batch.drop_column("escalated_at")
    for name, _ in _VAN_INDEXES:
        op.drop_index(name, table_name="van_assignments")
    op.create_index(
        "uq_van_assignments_active_van",
        "van_assignments",
        ["van_id"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    with op.batch_alter_table("van_assignments") as batch:
        batch.drop_column("queued")
        batch.drop_column("arrived_at")
        batch.drop_column("at_risk_at")
        batch.drop_column("promised_eta_at")
