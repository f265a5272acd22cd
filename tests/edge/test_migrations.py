"""Migrations: empty → head runs on this test run's database backend, and yields exactly the models' schema."""

from __future__ import annotations

import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from bot.config import DatabaseSettings
from bot.db import current_revision, head_revision, is_up_to_date, make_engine, upgrade
from models.base import Base
from tests.conftest import PG_URL, _create_pg_database, _drop_pg_database


async def test_empty_to_head_matches_models(tmp_path: Any) -> None:
    name = ""
    if PG_URL:
        name = f"storebot_m_{uuid.uuid4().hex[:10]}"
        url = await _create_pg_database(PG_URL, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(DatabaseSettings(url=url))
    try:
        assert not await is_up_to_date(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        def diff(conn: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == [], f"models and migrations differ: {differences}"
        await upgrade(engine)  # a second upgrade is a no-op
    finally:
        await engine.dispose()
        if name:
            await _drop_pg_database(PG_URL, name)
