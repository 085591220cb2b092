"""vehicle registry and contracts; the triage risk on requests

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30

A registered plate gives its request a designated station and a contract (threshold and
booking probability) without the customer typing them. Requests keep the contract they were
triaged under, the probability of overrunning its threshold, the workshop the estimate
assumed and whether the estimate is the catalogue's or the technician's.
Nothing else refers to this revision's number: it can be re-pointed to another parent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_contracts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("threshold_hours", sa.Float(), nullable=False),
        sa.Column("booking_probability", sa.Float(), nullable=False),
        sa.Column("downtime_cost_per_hour_cny", sa.Float(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_contracts")),
    )
    op.create_table(
        "registered_vehicles",
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("vehicle_class", sa.String(length=32), nullable=False),
        sa.Column("designated_station_id", sa.String(length=64), nullable=True),
        sa.Column("contract_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["designated_station_id"],
            ["stations.id"],
            name=op.f("fk_registered_vehicles_designated_station_id_stations"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["service_contracts.id"],
            name=op.f("fk_registered_vehicles_contract_id_service_contracts"),
        ),
        sa.PrimaryKeyConstraint("plate", name=op.f("pk_registered_vehicles")),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("contract_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("booking_probability", sa.Float(), nullable=True))
        batch.add_column(sa.Column("p_exceeds_threshold", sa.Float(), nullable=True))
        batch.add_column(sa.Column("workshop_station_id", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "estimate_source",
                sa.String(length=16),
                nullable=False,
                server_default="catalogue",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for column in (
            "estimate_source",
            "workshop_station_id",
            "p_exceeds_threshold",
            "booking_probability",
            "contract_id",
        ):
            batch.drop_column(column)
    op.drop_table("registered_vehicles")
    op.drop_table("service_contracts")
