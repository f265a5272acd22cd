"""Photo proof off the chat path: a slow media download stalls no one else's replies, and a photo recorded before
a crash or restart still completes its task, once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS, INBOX, OUTBOX, PHOTOS
from bot.queues.photos import LEASE
from bot.sandbox import Sandbox
from models.points import PointsEntry
from models.task import TaskInstance
from models.task_proof import TaskPhoto
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.task_support import NINE_LOCAL, TEMPLATES, jpeg

MakeBot = Callable[[], Awaitable[Harness]]


@pytest.fixture
def make_bot(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> MakeBot:
    """A server with the task templates on the shared test database; no background loops (drain() moves all)."""

    async def make() -> Harness:
        settings = make_settings(wecom={"api_base": sandbox.config.public_url}, inbox={"workers": 0},
                                 outbox={"background": False}, tasks=TEMPLATES)
        client = await make_client(settings)
        sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
        return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)

    return make


async def photo_task(h: Harness) -> int:
    h.clock.set(NINE_LOCAL)
    resp = await h.client.post("/api/tasks/run", json={"template": "morning_check", "stores": ["S002"]},
                               headers=auth())
    assert (await resp.json())["created"] == 1
    await h.settle()
    return 1


async def task_state(h: Harness) -> list[tuple[str, int]]:
    """(state, points entries) per task."""
    async with h.app[DEPS].sessions() as session:
        states = (await session.execute(select(TaskInstance.state).order_by(TaskInstance.id))).scalars().all()
        points = (await session.execute(select(PointsEntry.id))).scalars().all()
    return [(s, len(points)) for s in states]


async def test_one_slow_media_download_does_not_hold_up_three_other_users(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    h = await make_bot()
    await photo_task(h)
    sandbox.media_hold = asyncio.Event()  # WeCom's media server takes as long as this test wants
    assert (await sandbox.user_image("s3", jpeg((120, 30, 30)))).ok
    for userid in ("s1", "m1", "s4"):
        assert (await sandbox.user_text(userid, "帮助")).ok
    async with asyncio.timeout(30):
        assert await h.app[INBOX].drain() == 4  # the photo is recorded, not downloaded, in the chat path
        downloading = asyncio.create_task(h.app[PHOTOS].drain())
        await h.app[OUTBOX].drain()
        for userid in ("s1", "m1", "s4"):
            assert len(h.texts_for(userid)) == 1, userid  # answered while the download still hangs
        assert not downloading.done()
        sandbox.media_hold.set()
        assert await downloading == 1
        await h.settle()
    assert await task_state(h) == [("done", 1)]
    assert [t for t in h.texts_for("s3") if "已完成" in t]


async def test_a_photo_recorded_before_a_restart_completes_its_task_once_later(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    first = await make_bot()
    await photo_task(first)
    assert (await sandbox.user_image("s3", jpeg((30, 120, 30)))).ok
    await first.app[INBOX].drain()  # recorded; the server stops before its photo worker ran
    await first.client.close()
    second = await make_bot()
    await second.settle()
    await second.settle()
    assert await task_state(second) == [("done", 1)]
    assert len([t for t in second.texts_for("s3") if "已完成" in t]) == 1


async def test_a_photo_whose_worker_died_mid_download_is_taken_again_after_the_lease(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox, clock: FakeClock
) -> None:
    first = await make_bot()
    await photo_task(first)
    assert (await sandbox.user_image("s3", jpeg((30, 30, 120)))).ok
    await first.app[INBOX].drain()
    async with first.app[DEPS].sessions() as session, session.begin():  # leased by a worker that then died
        await session.execute(update(TaskPhoto).values(next_try_at=clock.now() + LEASE))
    await first.client.close()
    second = await make_bot()
    await second.settle()
    assert await task_state(second) == [("open", 0)]  # its lease still holds
    clock.advance(LEASE + timedelta(seconds=1))
    await second.settle()
    assert await task_state(second) == [("done", 1)]
    assert len([t for t in second.texts_for("s3") if "已完成" in t]) == 1
