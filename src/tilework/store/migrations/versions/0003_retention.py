"""retention

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 17:13:16.635888
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tilework.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "expires_at",
                tilework.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "purged_at",
                tilework.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )

    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "expires_at",
                tilework.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "purged_at",
                tilework.store.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("expires_at")

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("expires_at")
