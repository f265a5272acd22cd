"""Task cards end to end through the WeCom sandbox: scheduled cards on the phones, photo proof with a real JPEG
downloaded over media/get, the done button, chasing, and 积分 — the real app over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from scheduler.task_jobs import chase_tasks, generate_tasks
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.task_support import NINE_LOCAL, jpeg, task_harness

NEAR_S002 = (31.2295, 121.4485)
FAR_FROM_S002 = (31.2600, 121.4800)


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    return await task_harness(sandbox, make_client, make_settings, clock)


async def tick(h: Harness, at: datetime | None = None) -> None:
    """What the scheduler does each minute: generate, chase; then let the (jittered) pushes go out."""
    if at is not None:
        h.clock.set(at)
    deps = h.app[DEPS]
    await generate_tasks(deps)
    await chase_tasks(deps)
    h.clock.advance(seconds=95)  # past the push jitter
    await h.settle()


async def api_tasks(h: Harness, **params: str) -> list[dict[str, Any]]:
    resp = await h.client.get("/api/tasks", params=params, headers=auth())
    assert resp.status == 200
    rows: list[dict[str, Any]] = await resp.json()
    return rows


async def test_nine_oclock_cards_reach_every_store_once_and_run_adds_nothing(harness: Harness, chain: Chain) -> None:
    h = harness
    await tick(h, NINE_LOCAL)
    await tick(h)  # a minute later: nothing new
    morning = [t for t in await api_tasks(h, date="2026-11-24") if t["template"] == "morning_check"]
    assert sorted(t["store"] for t in morning) == ["S001", "S002", "S003"]
    for t in morning:
        cards = [c for c in h.sandbox.cards_for(t["assignee"]) if c.payload["template_card"]["task_id"]
                 == f"task-{t['id']}"]
        assert len(cards) == 1
        assert cards[0].payload["template_card"]["main_title"]["title"] == "晨检"
    resp = await h.client.post("/api/tasks/run", json={"template": "morning_check"}, headers=auth())
    assert (await resp.json())["created"] == 0
    assert len(await api_tasks(h)) == len(morning)


async def test_photo_completes_with_tags_same_photo_refused_far_photo_flagged(harness: Harness, chain: Chain) -> None:
    h = harness
    await tick(h, NINE_LOCAL)
    h.clock.advance(minutes=1)
    await h.sandbox.user_location("s3", *NEAR_S002, label="静安店")
    h.clock.advance(minutes=1)
    picture = jpeg((120, 30, 30))
    assert (await h.sandbox.user_image("s3", picture)).status == 200
    await h.settle()
    [task] = await api_tasks(h, store="S002")
    assert task["state"] == "done" and not task["flagged"]
    assert any("晨检」已完成" in t and "拍摄时间 11-24 09:05" in t for t in h.texts_for("s3"))

    run = await h.client.post("/api/tasks/run", json={"template": "display_photo", "stores": ["S002"]},
                              headers=auth())
    assert (await run.json())["created"] == 1
    h.clock.advance(minutes=1)
    await h.sandbox.user_image("s3", picture)  # the same bytes again
    await h.settle()
    assert "之前已经交过" in h.texts_for("s3")[-1]
    assert [t["state"] for t in await api_tasks(h, store="S002")] == ["done", "open"]

    h.clock.advance(minutes=1)
    await h.sandbox.user_location("s3", *FAR_FROM_S002)
    h.clock.advance(minutes=1)
    await h.sandbox.user_image("s3", jpeg((10, 10, 160)))
    await h.settle()
    rows = await api_tasks(h, store="S002")
    assert rows[1]["state"] == "done" and rows[1]["flagged"]
    assert any("超出 300 米" in t for t in h.texts_for("m2"))


async def test_done_button_overdue_to_manager_and_points_rank(harness: Harness, chain: Chain) -> None:
    h = harness
    await tick(h, datetime(2026, 11, 24, 0, 0, tzinfo=UTC))  # 08:00: 开门确认 (confirm) fires
    rows = {t["store"]: t for t in await api_tasks(h)}
    h.clock.advance(minutes=1)
    assert (await h.sandbox.user_click("s3", f"task:done:{rows['S002']['id']}")).status == 200
    await h.settle()
    assert h.sandbox.cards_for("s3")[-1].replace_name == "已完成"
    await tick(h, datetime(2026, 11, 24, 0, 45, tzinfo=UTC))  # 08:45: S001's is overdue, its manager hears
    assert any("开门确认" in t and "还没有完成" in t for t in h.texts_for("m1"))
    s001 = rows["S001"]["assignee"]
    h.clock.advance(minutes=1)
    await h.sandbox.user_click(s001, f"task:done:{rows['S001']['id']}")
    await h.settle()
    assert h.sandbox.cards_for(s001)[-1].replace_name == "已补交"
    h.clock.advance(minutes=1)
    await h.sandbox.user_text(s001, "积分")
    await h.settle()
    assert "积分 2，华东区第 2 名" in h.texts_for(s001)[-1] and "还差 2 分" in h.texts_for(s001)[-1]


async def test_two_missed_stocktakes_put_an_improvement_plan_on_the_managers_phone(
    harness: Harness, chain: Chain
) -> None:
    h = harness
    first = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 21:30 Shanghai
    for at in (first, first + timedelta(days=1), first + timedelta(days=2)):
        await tick(h, at)
    plans = [c for c in h.sandbox.cards_for("m2") if "改进计划" in c.payload["template_card"]["main_title"]["title"]]
    assert len(plans) == 1
    [(_, key)] = plans[0].buttons
    assert any("连续两次" in t for t in h.texts_for("m2"))
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("m2", key)
    await h.settle()
    [plan] = [c for c in h.sandbox.cards_for("m2") if c.task_id == plans[0].task_id]
    assert plan.replace_name == "已完成"
    [row] = [t for t in await api_tasks(h, store="S002") if t["template"].startswith("improve-")]
    assert (row["state"], row["assignee"]) == ("done", "m2")
