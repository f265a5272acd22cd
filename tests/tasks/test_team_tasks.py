"""Tasks are the store's: everyone of the role sees the card and the task in 任务; whoever does it completes it
for all, the others' cards are updated with the response_code WeCom gave each card, and the points go to the
one who did it. Through the real app and the WeCom sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from models.catalog import Sku
from models.outbox import OutboundMessage
from models.points import PointsEntry
from models.task import TaskCountLine, TaskInstance, card_filter
from scheduler.task_jobs import generate_tasks
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.task_support import NINE_LOCAL, click, jpeg, send, task_harness, text
from tests.tasks.test_task_sandbox import tick

SHANGHAI = ZoneInfo("Asia/Shanghai")
CLOSING = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 21:30 Shanghai: 闭店盘点 fires


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    return await task_harness(sandbox, make_client, make_settings, clock)


async def s001_task(h: Harness, chain: Chain, template: str) -> TaskInstance:
    async with h.app[DEPS].sessions() as session:
        stmt = select(TaskInstance).where(TaskInstance.template_key == template,
                                          TaskInstance.store_id == chain.stores["S001"].id)
        return (await session.execute(stmt)).scalar_one()


def split(task: TaskInstance, chain: Chain) -> tuple[str, str]:
    """(the assignee on today's rota, their teammate) at S001."""
    return ("s1", "s2") if task.assignee_id == chain.staff["s1"].id else ("s2", "s1")


async def ask(h: Harness, userid: str, text: str) -> str:
    h.clock.advance(seconds=30)
    await h.say(userid, text)
    return h.texts_for(userid)[-1]


def task_card(h: Harness, userid: str, task_id: int) -> Any:
    [card] = [c for c in h.sandbox.cards_for(userid) if (c.task_id or "").startswith(f"task-{task_id}")]
    return card


async def points(h: Harness) -> list[tuple[int, int, int]]:
    async with h.app[DEPS].sessions() as session:
        rows = await session.execute(select(PointsEntry.staff_id, PointsEntry.task_id, PointsEntry.points))
        return sorted((a, b, c) for a, b, c in rows.all())


async def test_team_photo_task_done_by_the_teammate_updates_everyones_card(harness: Harness, chain: Chain) -> None:
    h = harness
    await tick(h, NINE_LOCAL)
    task = await s001_task(h, chain, "morning_check")
    rota, mate = split(task, chain)
    assert task_card(h, rota, task.id).task_id == f"task-{task.id}"
    assert task_card(h, mate, task.id).task_id == f"task-{task.id}-{mate}"
    mine = task_card(h, mate, task.id).card
    rows = {r["keyname"]: r["value"] for r in mine["horizontal_content_list"]}
    assert rows["轮值"].startswith(chain.staff[rota].name) and "谁做都算" in rows["轮值"]
    listing = await ask(h, mate, "任务")
    assert listing.startswith("你和本店的待办任务（1 个）：") and f"#{task.id} 晨检" in listing
    assert f"今天轮到{chain.staff[rota].name}" in listing and "积分归做的人" in listing

    h.clock.advance(minutes=1)
    await h.photo(mate, jpeg((90, 160, 30)))  # the teammate does it
    assert any("「晨检」已完成，积分 +10" in t for t in h.texts_for(mate))
    done = await s001_task(h, chain, "morning_check")
    assert (done.state, done.completed_by) == ("done", chain.staff[mate].id)
    assert task_card(h, mate, task.id).replace_name == "已完成"
    assert task_card(h, rota, task.id).replace_name == f"{chain.staff[mate].name}已完成"
    assert await points(h) == [(chain.staff[mate].id, task.id, 10)]  # the one who did it, nobody else
    assert (await ask(h, rota, "任务")) == "你现在没有待办任务。"

    # a card that could not be updated still must not offer the proof: 怎么交 says who did it, and when
    code = h.sandbox.issue_code(task_card(h, rota, task.id))
    await send(h.app[DEPS], click(rota, f"task:how:{task.id}", h.clock.now(), code=code))
    await h.settle()
    assert done.completed_at is not None
    when = done.completed_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M")
    assert h.texts_for(rota)[-1] == f"「晨检」已由{chain.staff[mate].name}在 {when} 完成，不用再交。"


async def test_count_card_lists_the_skus_and_progress_is_shared(harness: Harness, chain: Chain) -> None:
    h = harness
    await tick(h, CLOSING)
    task = await s001_task(h, chain, "closing_count")
    rota, mate = split(task, chain)
    async with h.app[DEPS].sessions() as session:
        codes = list((await session.execute(
            select(Sku.code).join(TaskCountLine, TaskCountLine.sku_id == Sku.id)
            .where(TaskCountLine.task_id == task.id).order_by(TaskCountLine.id))).scalars())
    assert len(codes) == 3
    for person in (rota, mate):
        card = task_card(h, person, task.id).card
        rows = {r["keyname"]: r["value"] for r in card["horizontal_content_list"]}
        assert rows["进度"] == "还差 3 个"
        assert all(code in card["sub_title_text"] for code in codes)

    await ask(h, mate, f"盘点 {codes[0]} 20")
    assert h.texts_for(mate)[-1].startswith(f"「闭店盘点」还差 2 个：{codes[1]} ")
    listing = await ask(h, rota, "任务")
    assert "还差 2 个商品" in listing and codes[0] not in listing
    # part-way the progress lives in the chat note and 任务; the cards keep their one response code for the end
    assert [task_card(h, person, task.id).updates for person in (rota, mate)] == [[], []]
    await ask(h, rota, f"盘点 {codes[1]} 20")
    await ask(h, rota, f"盘点 {codes[2]} 20")
    assert any("「闭店盘点」已完成，积分 +20" in t for t in h.texts_for(rota))
    assert task_card(h, rota, task.id).replace_name == "已完成"
    assert task_card(h, mate, task.id).replace_name == f"{chain.staff[rota].name}已完成"
    for person in (rota, mate):  # every copy is redrawn whole: the progress row no longer says "还差 3 个"
        card = task_card(h, person, task.id).card
        rows = {r["keyname"]: r["value"] for r in card["horizontal_content_list"]}
        assert rows["进度"] == "已全部盘完" and rows["门店"] == "徐汇店"
        assert card["task_id"] == task_card(h, person, task.id).task_id
        assert "还差" not in str(card) and not task_card(h, person, task.id).buttons
    assert await points(h) == [(chain.staff[rota].id, task.id, 20)]


async def test_card_not_sent_yet_is_dropped_when_the_task_is_done(harness: Harness, chain: Chain) -> None:
    h = harness
    deps = h.app[DEPS]
    h.clock.set(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))  # 08:00: 开门确认 (confirm); pushes are jittered
    await generate_tasks(deps)
    task = await s001_task(h, chain, "open_door")
    rota, mate = split(task, chain)
    await send(deps, text(mate, "任务", h.clock.now()))  # seen in 任务 before the card arrived
    await send(deps, click(mate, f"task:done:{task.id}", h.clock.now(), code=""))
    h.clock.advance(seconds=95)  # past the jitter: nothing of that task goes out any more
    await h.settle()
    assert not [c for c in h.sandbox.cards_for(rota) + h.sandbox.cards_for(mate)
                if (c.task_id or "").startswith(f"task-{task.id}")]
    async with deps.sessions() as session:
        states = (await session.execute(select(OutboundMessage.state).where(card_filter(task.id)))).scalars().all()
    assert sorted(states) == ["cancelled", "cancelled"]
    assert any("「开门确认」已完成，积分 +4" in t for t in h.texts_for(mate))
