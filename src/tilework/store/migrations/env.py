"""Alembic environment: runs on the connection handed over by ``store.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from tilework.store.models import Base

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as fresh:
            _migrate(fresh)
        return
    _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
