"""Developer tool: write a new migration with the difference between the models and the current head.

    python -m bot.migrations.autogen "add transfer tables" --rev-id 0002_transfers

It upgrades a scratch SQLite database to head, then lets Alembic compare it with the models. Read the file it
writes before committing it: autogenerate misses renames and server defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection

from bot.config import DatabaseSettings
from bot.db import _alembic_config, make_engine, upgrade


async def _autogen(message: str, rev_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}"))
        await upgrade(engine)

        def _revision(conn: Connection) -> None:
            command.revision(_alembic_config(conn), message=message, autogenerate=True, rev_id=rev_id)

        async with engine.begin() as conn:
            await conn.run_sync(_revision)
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("message")
    parser.add_argument("--rev-id", required=True)
    args = parser.parse_args()
    asyncio.run(_autogen(args.message, args.rev_id))


if __name__ == "__main__":
    main()
