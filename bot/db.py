"""The database: engine setup for SQLite (WAL, foreign keys, busy timeout) and PostgreSQL, and Alembic upgrades."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.dml import UpdateBase

from bot.config import DatabaseSettings
from bot.errors import SchemaNotCurrent

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(db: DatabaseSettings) -> AsyncEngine:
    if db.url.startswith("sqlite"):
        engine = create_async_engine(db.url, echo=db.echo, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        db.url, echo=db.echo, pool_size=db.pool_size, max_overflow=db.pool_size, pool_pre_ping=True
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL so readers never wait, foreign keys on, and BEGIN IMMEDIATE so concurrent writers queue on the
    busy timeout instead of failing with "database is locked" when a read transaction upgrades to a write."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Executemany:
    """One DML statement run for many rows, compiled once per dialect and handed to the driver's executemany.

    For a narrow UPDATE by primary key, SQLAlchemy's per-row parameter handling costs more than the database's
    own work; here a row becomes a plain tuple, each value passed through its column type's bind processor (so
    a datetime is stored exactly as the ORM stores it). Values fixed in the statement are taken from it."""

    def __init__(self, stmt: UpdateBase) -> None:
        self.stmt = stmt
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.stmt.compile(dialect=dialect)
            if compiled.positiontup is None:
                raise TypeError(f"{dialect.name}: Executemany needs a positional parameter style")
            names: list[tuple[str, Any]] = []
            at: dict[str, list[int]] = {}
            for i, name in enumerate(compiled.positiontup):
                bind = compiled.binds[name]
                names.append((name, _REQUIRED if bind.required else bind.effective_value))
                at.setdefault(name, []).append(i)
            processors: list[tuple[list[int], Callable[[Any], Any]]] = [
                (positions, process)
                for name, positions in at.items()
                if (process := compiled.binds[name].type.bind_processor(dialect)) is not None
            ]
            plan = self._plans[dialect.name] = _Plan(str(compiled), names, processors)
        return plan

    async def run(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute for every row (a mapping of the statement's parameter names; a missing one is a KeyError);
        returns the rows matched, or -1 where the driver does not count them (asyncpg)."""
        if not rows:
            return 0
        plan = self._plan(conn.dialect)
        params: list[tuple[Any, ...]] = []
        for row in rows:
            values = [row[name] if fixed is _REQUIRED else row.get(name, fixed) for name, fixed in plan.names]
            for positions, process in plan.processors:  # once per parameter, however often it is used
                value = process(values[positions[0]])
                for i in positions:
                    values[i] = value
            params.append(tuple(values))
        result = await conn.exec_driver_sql(plan.sql, params)
        return result.rowcount


class _Plan(NamedTuple):
    sql: str
    names: list[tuple[str, Any]]  # per position: the parameter's name and its fixed value (or _REQUIRED)
    processors: list[tuple[list[int], Callable[[Any], Any]]]  # where each converting parameter goes


_REQUIRED = object()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` over the engine's own connection."""

    def _run(conn: Connection) -> None:
        command.upgrade(_alembic_config(conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)
    log.info("database schema at %s", revision)


async def is_up_to_date(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


async def prepare_schema(database: DatabaseSettings, engine: AsyncEngine) -> None:
    """`serve`, `import` and `demo` alike: an outdated schema is upgraded when database.auto_migrate is on, else
    refused with SchemaNotCurrent."""
    if await is_up_to_date(engine):
        return
    if not database.auto_migrate:
        raise SchemaNotCurrent(await current_revision(engine), head_revision())
    await upgrade(engine)
