"""Shared fixtures: a real database (SQLite, or PostgreSQL when STOREBOT_TEST_PG_URL is set), a fake clock,
settings, the real app under aiohttp's test client, and a seeded sample chain."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

import models
from bot.app import create_app
from bot.clock import FakeClock
from bot.config import DatabaseSettings, Settings, settings_from_dict
from bot.db import make_engine, session_factory, upgrade
from bot.deps import Deps
from models.base import Base
from tests.factories import Chain, seed_chain

_ = models
PG_URL = os.environ.get("STOREBOT_TEST_PG_URL", "")
TEST_CORP_ID = "wwtestcorp0001"
TEST_TOKEN = "storebotTestToken"
TEST_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
TEST_SECRET = "sandbox-secret"
TEST_ADMIN_TOKEN = "test-admin-token"
TEST_POS_SECRET = "pos-secret"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set STOREBOT_TEST_PG_URL")
    for item in items:
        if "pg" in item.keywords:
            item.add_marker(skip)


_skipped_required: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and (
        (PG_URL and "pg" in report.keywords)
        or (os.environ.get("STOREBOT_TEST_REQUIRE_BROWSER") and "browser" in report.keywords)
    ):
        _skipped_required.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_required:
        print(f"\nFAILED: {len(_skipped_required)} test(s) that this run requires were skipped:")
        for nodeid in _skipped_required:
            print(f"  {nodeid}")
        session.exitstatus = 1


async def _create_pg_database(base_url: str, name: str) -> str:
    import asyncpg

    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    head, _, _ = base_url.rpartition("/")
    return f"{head}/{name}"


async def _drop_pg_database(base_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _create_schema(url: str) -> None:
    """Migrations to head, then create_all for anything a migration does not cover yet (tables added while a
    change is in progress); tests/edge/test_migrations.py fails until the migrations alone match the models."""
    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per test session, schema from the models (tests/edge/test_migrations.py checks the migrations
    produce the same schema)."""
    if PG_URL:
        name = f"storebot_t_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_create_pg_database(PG_URL, name))
        asyncio.run(_create_schema(url))
        yield url
        asyncio.run(_drop_pg_database(PG_URL, name))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'storebot.db'}"
        asyncio.run(_create_schema(url))
        yield url


_RESTART_SEQUENCES = """DO $$ DECLARE s record; BEGIN
  FOR s IN SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() LOOP
    EXECUTE format('ALTER SEQUENCE %I RESTART', s.sequencename);
  END LOOP;
END $$;"""


async def _wipe(engine: AsyncEngine) -> None:
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name != "alembic_version"]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One round trip of DELETEs (children first) and sequence restarts: on a loaded machine TRUNCATE of
            # every table took 1-3 s per test (new files, fsyncs, ACCESS EXCLUSIVE locks), this about a third.
            script = "".join(f'DELETE FROM "{t.name}";' for t in tables) + _RESTART_SEQUENCES
            raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg: a multi-statement script
            await raw.execute(script)
        else:
            for t in tables:
                await conn.execute(t.delete())
            await conn.execute(text("DELETE FROM sqlite_sequence")) if await _has_sqlite_sequence(conn) else None


async def _has_sqlite_sequence(conn: Any) -> bool:
    row = await conn.execute(text("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'"))
    return row.first() is not None


_PROJECT = Path(__file__).resolve().parent.parent
_NOT_OURS = (_PROJECT / ".venv", _PROJECT / ".ci-venv", _PROJECT / "bot" / "sandbox")  # the sandbox has its own fixture


def _runs(task: asyncio.Task[Any], where: Callable[[Path], bool]) -> bool:
    """Some coroutine in the task's await chain is code from a file `where` accepts."""
    coro: Any = task.get_coro()
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None and where(Path(code.co_filename)):
            return True
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return False


def _ours(task: asyncio.Task[Any]) -> bool:
    """The task runs project code that may touch the test database (its coroutine chain passes through our files)."""
    return _runs(task, lambda p: p.is_relative_to(_PROJECT) and not any(p.is_relative_to(n) for n in _NOT_OURS))


def _closing_a_connection(task: asyncio.Task[Any]) -> bool:
    """SQLAlchemy's own task that closes a connection whose user was cancelled mid-statement (the shielded
    graceful close of an invalidated connection). It must finish while the loop still runs: a loop closed under
    it leaves the aiosqlite thread to finish the statement (say, a BEGIN IMMEDIATE that waited for the lock) with
    nobody to close the connection, so the lock stays taken and the next test's fixture gets "database is
    locked", and the connection is later collected unclosed (ResourceWarning)."""
    return _runs(task, lambda p: any(part in ("sqlalchemy", "aiosqlite", "asyncpg") for part in p.parts))


async def _outlived(eng: AsyncEngine) -> str:
    """What of this test is still at work once its apps are closed: our tasks (cancelled and awaited here, so
    they cannot write into the next test) and pooled connections still checked out. A task or connection that
    outlives its test is what made a later fixture wait 30 s for SQLite's lock ("database is locked") and what
    left an aiosqlite connection to be garbage-collected unclosed (ResourceWarning) in some other test."""
    me = asyncio.current_task()
    stray = [t for t in asyncio.all_tasks() if t is not me and not t.done() and _ours(t)]
    names = [f"{t.get_name()} ({getattr(t.get_coro(), '__qualname__', t.get_coro())})" for t in stray]
    for task in stray:
        task.cancel()
    if stray:
        await asyncio.wait(stray, timeout=10)
    closing = [t for t in asyncio.all_tasks() if t is not me and not t.done() and _closing_a_connection(t)]
    if closing:  # not cancelled: cancelling them is what strands the connection
        _, unfinished = await asyncio.wait(closing, timeout=60)
        names += [f"{t.get_name()} (a connection close that did not finish)" for t in unfinished]
    held = eng.pool.checkedout() if isinstance(eng.pool, QueuePool) else 0
    problems = [f"task still running: {n}" for n in names]
    if held:
        problems.append(f"{held} database connection(s) still checked out")
    return "; ".join(problems)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A fresh engine on the session's database, emptied before the test. At teardown (after every app of the
    test is closed) nothing of the test may still run or hold a connection: that fails the test that leaked."""
    eng = make_engine(DatabaseSettings(url=db_url))
    await _wipe(eng)
    yield eng
    leaked = await _outlived(eng)
    await eng.dispose()
    if leaked:
        pytest.fail(f"outlived the test: {leaked}")


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for tests: the test database, known WeCom credentials, scheduler off; override by section."""

    def make(**sections: dict[str, Any]) -> Settings:
        data: dict[str, Any] = {
            "server": {"admin_token": TEST_ADMIN_TOKEN, "data_dir": str(tmp_path / "data"), "port": 0},
            "database": {"url": db_url},
            "wecom": {
                "corp_id": TEST_CORP_ID,
                "secret": TEST_SECRET,
                "token": TEST_TOKEN,
                "encoding_aes_key": TEST_AES_KEY,
                "api_base": "http://127.0.0.1:9",  # nothing listens: tests that send start a sandbox
            },
            "pos": {"webhook_secret": TEST_POS_SECRET},
            "scheduler": {"enabled": False},
            "alerts": {"quiet_hours": ""},
        }
        for name, values in sections.items():
            if isinstance(values, dict):
                data.setdefault(name, {}).update(values)
            else:
                data[name] = values
        return settings_from_dict(data)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def deps(settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> Deps:
    """Dependencies for calling domain functions and jobs directly (no WeCom client)."""
    return Deps(config=settings, sessions=sessions, clock=clock, data_dir=tmp_path / "data")


@pytest.fixture
async def chain(sessions: async_sessionmaker[AsyncSession]) -> Chain:
    """The sample chain: 2 regions, 4 stores, staff with every role, 5 SKUs, stock."""
    async with sessions() as session, session.begin():
        return await seed_chain(session)


AppClient = TestClient[web.Request, web.Application]


@pytest.fixture
async def make_client(
    engine: AsyncEngine, clock: FakeClock, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[AppClient]]]:
    """Start the real app (create_app) on a real port over the test database; several may run at once."""
    clients: list[AppClient] = []

    async def make(custom: Settings | None = None) -> AppClient:
        app = create_app(custom or settings, clock=clock, engine=engine)
        client: AppClient = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[AppClient]]) -> AppClient:
    return await make_client()


def auth(token: str = TEST_ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


from tests.fixtures_sandbox import *  # noqa: E402, F403  (the sandbox and harness fixtures)
