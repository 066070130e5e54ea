"""credits and plans

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 17:07:41.055312
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tilework.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("billing", sa.String(length=16), nullable=False),
        sa.Column("price_usd", sa.Float(), nullable=False),
        sa.Column("credits_per_month", sa.Integer(), nullable=False),
        sa.Column("top_up_rate_per_100_credits_usd", sa.Float(), nullable=True),
        sa.Column("auto_topup_eligible", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_table(
        "checkouts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("success_url", sa.Text(), nullable=True),
        sa.Column("cancel_url", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "completed_at",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_checkouts_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_checkouts_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkouts")),
    )
    op.create_table(
        "credit_accounts",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column(
            "started_at",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "current_period_start",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "current_period_end",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "canceled_at",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("scheduled_plan_id", sa.String(length=64), nullable=True),
        sa.Column("auto_topup_enabled", sa.Boolean(), nullable=False),
        sa.Column("auto_topup_threshold", sa.BigInteger(), nullable=False),
        sa.Column("auto_topup_quantity", sa.BigInteger(), nullable=False),
        sa.Column("topup_armed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_credit_accounts_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_credit_accounts_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_credit_accounts")),
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("node_type_id", sa.String(length=36), nullable=True),
        sa.Column("usd", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            tilework.store.models.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_credit_entries_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_entries")),
    )
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_credit_entries_org_created",
            ["organization_id", "created_at"],
            unique=False,
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "credits_held", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        batch_op.add_column(
            sa.Column(
                "credits_charged", sa.BigInteger(), nullable=False, server_default="0"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("credits_charged")
        batch_op.drop_column("credits_held")

    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_entries_org_created")

    op.drop_table("credit_entries")
    op.drop_table("credit_accounts")
    op.drop_table("checkouts")
    op.drop_table("plans")
