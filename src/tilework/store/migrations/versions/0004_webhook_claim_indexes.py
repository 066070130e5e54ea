"""webhook claim indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:43:03.626622
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_events_due"))
        batch_op.create_index(
            "ix_webhook_events_due_order",
            ["status", "next_attempt_at", "sequence"],
            unique=False,
        )
        batch_op.create_index(
            "ix_webhook_events_run_pending",
            ["run_id", "status", "sequence"],
            unique=False,
        )
        batch_op.drop_column("body")


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch_op.drop_index("ix_webhook_events_run_pending")
        batch_op.drop_index("ix_webhook_events_due_order")
        batch_op.create_index(
            batch_op.f("ix_webhook_events_due"),
            ["status", "next_attempt_at"],
            unique=False,
        )
