"""A photo while two photo tasks are open asks which (one tap per task) instead of guessing; the tap gives that
photo to that task; a second tap, a retried tap and a tap on a task someone else finished get a plain answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from models.task import TaskInstance
from models.task_proof import TaskPhoto
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.task_support import jpeg, task_harness


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    return await task_harness(sandbox, make_client, make_settings, clock)


async def run(h: Harness, template: str, store: str = "S001") -> None:
    resp = await h.client.post("/api/tasks/run", json={"template": template, "stores": [store]}, headers=auth())
    assert resp.status == 200 and (await resp.json())["created"] == 1
    h.clock.advance(minutes=5)  # past the push jitter
    await h.settle()


async def rows(h: Harness) -> tuple[list[TaskInstance], list[TaskPhoto]]:
    async with h.app[DEPS].sessions() as s:
        tasks = list((await s.execute(select(TaskInstance).order_by(TaskInstance.id))).scalars())
        photos = list((await s.execute(select(TaskPhoto).order_by(TaskPhoto.id))).scalars())
    return tasks, photos


async def test_one_open_photo_task_is_completed_without_asking(harness: Harness, chain: Chain) -> None:
    h = harness
    await run(h, "morning_check")
    h.clock.advance(minutes=1)
    await h.photo("s1", jpeg((10, 20, 30)))
    [task], [photo] = await rows(h)
    assert task.state == "done" and photo.state == "accepted" and photo.task_id == task.id
    assert not [c for c in h.sandbox.cards_for("s1") if c.task_id and c.task_id.startswith("photo-")]
    assert "「晨检」已完成" in h.texts_for("s1")[-1]


async def test_two_open_photo_tasks_ask_which_and_the_tap_completes_that_one(harness: Harness, chain: Chain) -> None:
    h = harness
    await run(h, "morning_check")
    await run(h, "display_photo")
    h.clock.advance(minutes=1)
    before = len(h.texts_for("s1"))
    await h.photo("s1", jpeg((1, 100, 1)))
    tasks, [photo] = await rows(h)
    assert [t.state for t in tasks] == ["open", "open"] and photo.state == "unassigned" and photo.path
    assert h.texts_for("s1")[before:] == []  # the card is the answer
    card = h.sandbox.cards_for("s1")[-1]
    assert card.task_id == f"photo-{photo.id}"
    assert card.card["main_title"]["title"] == "这张照片交给哪个任务？"
    assert "本店有 2 个拍照任务还没交" in card.card["main_title"]["desc"]
    morning, display = tasks
    assert card.buttons == [("晨检", f"task:photo:{morning.id}"), ("陈列拍照", f"task:photo:{display.id}")]

    h.clock.advance(minutes=1)
    before = len(h.texts_for("s1"))
    # WeCom delivers the tap three times (a retried callback), and the person taps again before the card greys
    first = await h.sandbox.user_click("s1", f"task:photo:{display.id}", card=card, repeat=3)
    second = await h.sandbox.user_click("s1", f"task:photo:{display.id}", card=card)
    assert first.ok and second.ok
    await h.settle()
    tasks, [photo] = await rows(h)
    assert [t.state for t in tasks] == ["open", "done"] and photo.state == "accepted" and photo.task_id == display.id
    assert tasks[1].completed_by == chain.staff["s1"].id
    said = h.texts_for("s1")[before:]
    assert len(said) == 2
    assert "「陈列拍照」已完成，积分 +10" in said[0]
    assert said[1] == "这张照片已经交给「陈列拍照」了，不用再点。还有别的拍照任务，就再拍一张发给我。"
    assert card.replace_name == "已交给陈列拍照" and card.buttons == []
    assert [c.replace_name for c in h.sandbox.cards_for("s2") if c.task_id == f"task-{display.id}-s2"] == [
        "李小妹已完成"]  # the other clerk's task card shows it done


async def test_a_tap_on_a_task_someone_else_finished_keeps_the_photo(harness: Harness, chain: Chain) -> None:
    h = harness
    await run(h, "morning_check")
    await run(h, "display_photo")
    h.clock.advance(minutes=1)
    await h.photo("s1", jpeg((200, 1, 1)))
    s1_card = h.sandbox.cards_for("s1")[-1]
    h.clock.advance(minutes=1)
    await h.photo("s2", jpeg((1, 1, 200)))
    morning, display = (await rows(h))[0]
    h.clock.advance(minutes=1)
    await h.tap("s2", f"task:photo:{morning.id}")  # s2 gives their photo to 晨检 first
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("s1", f"task:photo:{morning.id}", card=s1_card)
    await h.settle()
    assert h.texts_for("s1")[-1] == (
        "「晨检」已由张伟在 11-24 09:13 完成，不用再交。\n"
        "这张照片还留着：点卡片上的其他任务，或回复「交图 编号」交给别的任务。"
    )
    tasks, photos = await rows(h)
    assert photos[0].state == "unassigned" and tasks[0].completed_by == chain.staff["s2"].id
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("s1", f"task:photo:{display.id}", card=s1_card)
    await h.settle()
    tasks, photos = await rows(h)
    assert [t.state for t in tasks] == ["done", "done"] and photos[0].task_id == display.id
    assert "「陈列拍照」已完成" in h.texts_for("s1")[-1]
