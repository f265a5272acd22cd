"""The day scenarios' stage: the task harness with the shipped-style templates (open_door 08:00 confirm, 晨检 09:00
photo, 陈列拍照 10:00 photo, 闭店盘点 21:30 count)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.sandbox import Sandbox
from tests.fixtures_sandbox import Harness
from tests.scenarios.day import Day, local
from tests.task_support import task_harness


@pytest.fixture
async def day(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Day:
    clock.set(local(7, 30))  # the day starts before the stores open
    harness: Harness = await task_harness(sandbox, make_client, make_settings, clock)
    return Day(harness)
