"""`storebot task run`: fires a template through the running server's own /api/tasks/run, as the demo prints."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from models.task import TaskInstance
from tests.conftest import TEST_ADMIN_TOKEN, AppClient
from tests.edge.test_serve import STARTUP_SECONDS, SUBPROCESS_TEST_TIMEOUT
from tests.factories import Chain


def cli_config(path: Path, client: AppClient) -> Path:
    path.write_text(f'[server]\npublic_url = "{client.make_url("/")}"\nadmin_token = "{TEST_ADMIN_TOKEN}"\n')
    return path


async def storebot(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(STARTUP_SECONDS):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@SUBPROCESS_TEST_TIMEOUT
async def test_task_run_creates_the_cards_once(
    make_client: Callable[..., Awaitable[AppClient]], make_settings: Callable[..., Settings], chain: Chain,
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    morning = {"key": "morning_check", "title": "晨检", "schedule": "0 9 * * *", "proof": "photo"}
    client = await make_client(make_settings(tasks=[morning]))
    cfg = cli_config(tmp_path / "c.toml", client)
    code, out = await storebot("task", "run", "morning_check", "--stores", "S001", "--config", str(cfg))
    assert code == 0, out
    code, out = await storebot("task", "run", "morning_check", "--stores", "S001", "--config", str(cfg))
    assert code == 0, out
    async with sessions() as session:
        n = (await session.execute(select(func.count()).select_from(TaskInstance))).scalar_one()
    assert n == 1  # the second run for the same period created nothing


async def test_task_run_with_an_unknown_template_exits_2(client: AppClient, chain: Chain, tmp_path: Path) -> None:
    code, out = await storebot("task", "run", "no_such_task", "--config", str(cli_config(tmp_path / "c.toml", client)))
    assert code == 2, out
    assert "no_such_task" in out
