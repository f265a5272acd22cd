"""Alembic environment: runs on the connection bot.db.upgrade hands over (sync side of the async engine)."""

from __future__ import annotations

from alembic import context

import models
from models.base import Base

_ = models  # registers every table on Base.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `storebot db upgrade` (bot.db.upgrade), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
