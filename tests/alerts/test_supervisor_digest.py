"""The region supervisor's morning digest: open alerts, overdue transfers, tasks missed yesterday; once a day each,
at the store-local digest time, through the real app and the WeCom sandbox with a FakeClock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from handlers.digest import digest_due, send_supervisor_digests
from models.outbox import OutboundMessage
from scheduler.digest_jobs import supervisor_digests
from scheduler.task_jobs import generate_tasks
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.stock.test_pos import sign
from tests.task_support import TEMPLATES, task_harness

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    return await task_harness(sandbox, make_client, make_settings, clock, tasks=TEMPLATES[:1])  # 晨检 at 09:00, a photo


def test_digest_is_due_from_its_time_within_the_catch_up_window() -> None:
    at, window = time(8, 30), timedelta(hours=4)
    assert not digest_due(datetime(2026, 11, 24, 8, 29, 59), at, window)
    assert digest_due(datetime(2026, 11, 24, 8, 30), at, window)
    assert digest_due(datetime(2026, 11, 24, 12, 29), at, window)
    assert not digest_due(datetime(2026, 11, 24, 12, 30), at, window)


async def test_supervisor_gets_one_morning_digest_of_their_region(harness: Harness, chain: Chain) -> None:
    h = harness
    deps = h.app[DEPS]
    h.clock.set(local(23, 9, 0))
    await generate_tasks(deps)  # 晨检 for S001–S003; nobody does it
    h.clock.set(local(23, 13, 0))
    body = json.dumps({"sale_id": "POS-D1", "store": "S001", "sold_at": h.clock.now().isoformat(),
                       "lines": [{"sku": "A001", "qty": 17, "unit_price": 2.0}]}).encode()
    r = await h.client.post("/api/pos/sales", data=body, headers=sign(body))
    assert r.status == 200  # A001 at S001: 3 left, under the safety line of 5
    await h.say("s1", "调拨 S002 A002 5")  # waits for sup1's approval overnight
    await h.settle()

    h.clock.set(local(24, 8, 29))
    assert await supervisor_digests(deps) == 0  # not yet
    h.clock.set(local(24, 8, 30))
    assert await supervisor_digests(deps) == 2  # sup1 and sup2
    h.clock.advance(minutes=1)
    assert await supervisor_digests(deps) == 0  # once a day
    await h.settle()

    [digest] = [d for d in h.sandbox.messages_for("sup1") if d.msgtype == "markdown"]
    text = digest.payload["markdown"]["content"]
    assert text.startswith("### 华东区晨报 11-24")
    assert "**未处理的库存提醒 1 条**\n> 徐汇店 A001 农夫山泉 550ml：低于安全库存（现有 3）" in text
    assert "**超时的调拨 1 张**\n> #1 静安店→徐汇店：等审批已 19 小时，发「待审批」处理" in text
    assert "**昨天漏做的任务 2 个**" in text and "> 徐汇店「晨检」（" in text and "> 静安店「晨检」（钱多多）" in text
    assert "天河店" not in text  # another region
    south = h.texts_for("sup2")[-1]
    assert south.startswith("### 华南区晨报 11-24") and "> 天河店「晨检」（周周）" in south
    assert "**未处理的库存提醒 0 条**\n> 没有" in south and len(south.encode()) <= 2048

    h.clock.set(local(25, 8, 31))  # the next morning: a new digest; yesterday's tasks were not fired
    assert await supervisor_digests(deps) == 2
    async with deps.sessions() as session:
        keys = (await session.execute(select(OutboundMessage.dedupe_key).where(
            OutboundMessage.dedupe_key.like("supervisor-digest:sup1:%")))).scalars().all()
    assert sorted(keys) == ["supervisor-digest:sup1:2026-11-24", "supervisor-digest:sup1:2026-11-25"]


async def test_digest_time_off_sends_nothing(harness: Harness, chain: Chain,
                                             make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(alerts={"supervisor_digest_time": ""})
    async with harness.app[DEPS].sessions() as session, session.begin():
        assert await send_supervisor_digests(session, settings, local(24, 8, 30)) == 0
