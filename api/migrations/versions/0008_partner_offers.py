"""partner offers, partner rescue providers, partner/crew tokens, crew acknowledgement

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Partners are asked, not booked: ``partner_offers`` holds each offer of a job (a replacement
truck or a rescue) with its expiry and answer; a partial unique index keeps one accepted
rescue offer per request whatever accepts concurrently (trucks: the bookings' indexes). ``partner_providers`` are the partner
rescue / tow companies. Staff tokens may be bound to a partner company or a van (the
``partner`` and ``crew`` roles); van assignments record the crew's acknowledgement.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_tokens") as batch:
        batch.add_column(sa.Column("partner_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("van_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("van_assignments") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "partner_providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provinces", sa.JSON(), nullable=False),
        sa.Column("base_lat", sa.Float(), nullable=False),
        sa.Column("base_lon", sa.Float(), nullable=False),
        sa.Column("radius_km", sa.Float(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("promised_response_minutes", sa.Float(), nullable=False),
        sa.Column("callout_fee_cny", sa.Float(), nullable=False),
        sa.Column("per_km_cny", sa.Float(), nullable=False),
        sa.Column("capacity_jobs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_providers_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_providers")),
    )
    op.create_index(op.f("ix_partner_providers_partner_id"), "partner_providers", ["partner_id"])
    op.create_table(
        "partner_offers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("truck_id", sa.String(length=64), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_eta_minutes", sa.Float(), nullable=True),
        sa.Column("eta_minutes", sa.Float(), nullable=True),
        sa.Column("eta_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_eta_minutes", sa.Float(), nullable=True),
        sa.Column("cost_cny", sa.Float(), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_partner_offers_request_id_requests")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_offers_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["truck_id"],
            ["replacement_trucks.id"],
            name=op.f("fk_partner_offers_truck_id_replacement_trucks"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["partner_providers.id"],
            name=op.f("fk_partner_offers_provider_id_partner_providers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_offers")),
    )
    op.create_index(op.f("ix_partner_offers_request_id"), "partner_offers", ["request_id"])
    op.create_index(op.f("ix_partner_offers_partner_id"), "partner_offers", ["partner_id"])
    op.create_index(op.f("ix_partner_offers_status"), "partner_offers", ["status"])
    op.create_index(
        "uq_partner_offers_accepted_rescue",
        "partner_offers",
        ["request_id"],
        unique=True,
        sqlite_where=sa.text("status = 'accepted' AND kind = 'rescue'"),
        postgresql_where=sa.text("status = 'accepted' AND kind = 'rescue'"),
    )


def downgrade() -> None:
    op.drop_index("uq_partner_offers_accepted_rescue", table_name="partner_offers")
    op.drop_index(op.f("ix_partner_offers_status"), table_name="partner_offers")
    op.drop_index(op.f("ix_partner_offers_partner_id"), table_name="partner_offers")
    op.drop_index(op.f("ix_partner_offers_request_id"), table_name="partner_offers")
    op.drop_table("partner_offers")
    op.drop_index(op.f("ix_partner_providers_partner_id"), table_name="partner_providers")
    op.drop_table("partner_providers")
    with op.batch_alter_table("van_assignments") as batch:
        batch.drop_column("acknowledged_at")
    with op.batch_alter_table("staff_tokens") as batch:
        batch.drop_column("van_id")
        batch.drop_column("partner_id")
