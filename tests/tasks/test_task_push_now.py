"""`POST /api/tasks/run` and `/api/tasks/broadcast` push now: the push jitter belongs to the scheduled fan-out
only (issue 10: manual runs were pushed up to 90 s late)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from handlers.task_gen import jitter_seconds
from scheduler.task_jobs import generate_tasks
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.task_support import NINE_LOCAL, outbox, task_harness

SPREAD = 90


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    return await task_harness(sandbox, make_client, make_settings, clock, task_rules={"push_jitter_seconds": SPREAD})


def task_cards(h: Harness, userid: str) -> list[str]:
    return [str(c.payload["template_card"]["task_id"]) for c in h.sandbox.cards_for(userid)]


async def test_tasks_run_was_pushed_late_by_the_schedule_jitter(harness: Harness, chain: Chain) -> None:
    h = harness
    h.clock.set(NINE_LOCAL)
    resp = await h.client.post("/api/tasks/run", json={"template": "morning_check", "stores": ["S001", "S002"]},
                               headers=auth())
    assert resp.status == 200
    created = (await resp.json())["tasks"]
    assert len(created) == 2
    assert any(jitter_seconds(t, SPREAD) > 0 for t in created)  # the schedule would have delayed them
    await h.settle()  # the clock has not moved: "now" means now
    rows = [r for r in await outbox(h.app[DEPS].sessions) if r.msgtype == "template_card"]
    assert len(rows) == 3  # a store's task goes to everyone of the role there: s1 and s2 (S001), s3 (S002)
    assert all(r.state == "sent" and r.next_attempt_at == NINE_LOCAL for r in rows)
    pushed = {card for user in ("s1", "s2", "s3") for card in task_cards(h, user)}
    assert len(pushed) == 3
    assert {card.split("-")[1] for card in pushed} == {str(t) for t in created}


async def test_broadcast_was_pushed_late_by_the_schedule_jitter(harness: Harness, chain: Chain) -> None:
    h = harness
    body = {"title": "消防检查", "body": "检查灭火器", "stores": ["S001"], "role": "staff", "proof": "text"}
    resp = await h.client.post("/api/tasks/broadcast", json=body, headers=auth())
    assert resp.status == 201
    created = (await resp.json())["tasks"]
    assert len(created) == 2  # s1 and s2
    await h.settle()
    assert [r.state for r in await outbox(h.app[DEPS].sessions) if r.msgtype == "template_card"] == ["sent"] * 2
    assert task_cards(h, "s1") and task_cards(h, "s2")


async def test_scheduled_fan_out_keeps_its_jitter(harness: Harness, chain: Chain) -> None:
    h = harness
    h.clock.set(NINE_LOCAL)
    created = await generate_tasks(h.app[DEPS])
    assert created
    rows = {r.dedupe_key: r for r in await outbox(h.app[DEPS].sessions) if r.msgtype == "template_card"}
    for task_id in created:
        row = rows[f"task-card:{task_id}"]
        assert (row.next_attempt_at - NINE_LOCAL).total_seconds() == jitter_seconds(task_id, SPREAD)
