"""Completing tasks from chat: 任务, the done button, text answers, count proof, broadcasts and their answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from handlers.task_gen import generate_due, run_now
from models.org import Staff
from models.points import PointsEntry
from models.stock import book_move
from models.task import record_task_count
from models.task_count import pick_skus, tick_counted_from_ledger
from tests.conftest import auth
from tests.factories import Chain
from tests.task_support import click, outbox, send, task_settings, tasks, text, texts, with_settings


async def _run(deps: Deps, settings: Settings, key: str, stores: list[str]) -> list[int]:
    template = settings.template(key)
    assert template is not None
    async with deps.sessions() as session, session.begin():
        return await run_now(session, settings, template, stores, deps.clock.now())


async def test_tasks_command_lists_open_tasks_with_store_local_due(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    deps = with_settings(deps, settings)
    async with deps.sessions() as session, session.begin():
        await generate_due(session, settings, clock.now())
    [task] = await tasks(deps.sessions, store_id=chain.stores["S001"].id, template_key="morning_check")
    who = "s1" if task.assignee_id == chain.staff["s1"].id else "s2"
    await send(deps, text(who, "任务", clock.now()))
    reply = texts(await outbox(deps.sessions, who))[-1]
    assert f"#{task.id} 晨检" in reply and "11-24 10:00" in reply  # 02:00 UTC shown as Shanghai time
    other = "s2" if who == "s1" else "s1"  # the store's task: the teammate sees it too, and whose turn it is
    await send(deps, text(other, "tasks", clock.now()))
    theirs = texts(await outbox(deps.sessions, other))[-1]
    assert f"#{task.id} 晨检" in theirs and f"今天轮到{chain.staff[who].name}" in theirs


async def test_confirm_button_completes_once_and_updates_the_card(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    deps = with_settings(deps, settings)
    [tid] = await _run(deps, settings, "open_door", ["S002"])
    await send(deps, click("s3", f"task:done:{tid}", clock.now(), code="rc-9"))
    [task] = await tasks(deps.sessions, id=tid)
    assert task.state == "done"
    sent = await outbox(deps.sessions, "s3")
    assert any(m.channel == "card_update" and m.payload["button"]["replace_name"] == "已完成" for m in sent)
    assert "积分 +4" in texts(sent)[-1]
    await send(deps, click("s3", f"task:done:{tid}", clock.now(), code="rc-10"))  # replayed / clicked twice
    assert "你已在 11-24 09:00 完成，不用再交" in texts(await outbox(deps.sessions, "s3"))[-1]
    await send(deps, click("s4", f"task:done:{tid}", clock.now(), code="rc-11"))  # another store's person
    assert "不是你的" in texts(await outbox(deps.sessions, "s4"))[-1]
    async with deps.sessions() as session:
        entries = (await session.execute(PointsEntry.__table__.select())).all()
    assert len(entries) == 1


async def test_count_task_completes_when_every_listed_sku_is_counted(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    deps = with_settings(deps, settings)
    clock.set(datetime(2026, 11, 24, 13, 30, tzinfo=UTC))
    [tid] = await _run(deps, settings, "closing_count", ["S002"])
    await send(deps, text("s3", "任务", clock.now()))
    assert "还差 3 个商品" in texts(await outbox(deps.sessions, "s3"))[-1]
    await send(deps, click("s3", f"task:how:{tid}", clock.now()))
    guide = texts(await outbox(deps.sessions, "s3"))[-1]
    assert "盘点 商品编码 数量" in guide and guide.count("· A00") == 3
    async with deps.sessions() as session, session.begin():
        from models.task import count_lines

        lines = await count_lines(session, tid)
        s3 = await session.get(Staff, chain.staff["s3"].id)
        assert s3 is not None
        for line in lines[:2]:
            assert await record_task_count(session, s3, line.store_id, line.sku_id, clock.now()) == []
    assert (await tasks(deps.sessions, id=tid))[0].state == "open"
    clock.advance(minutes=10)
    async with deps.sessions() as session, session.begin():  # the last one counted without 盘点 telling us
        await book_move(session, store_id=lines[2].store_id, sku_id=lines[2].sku_id, kind="count_adjustment",
                        qty=-1, at=clock.now(), ref="count:x", actor="s3")
        assert await tick_counted_from_ledger(session, clock.now()) == [tid]
    [task] = await tasks(deps.sessions, id=tid)
    assert task.state == "done" and task.completed_by == chain.staff["s3"].id


def test_cycle_count_pick_covers_stale_first_then_risk() -> None:
    staleness = {1: 1.0, 2: 50.0, 3: 2.0, 4: 10_000.0, 5: 3.0}
    assert pick_skus(2, staleness, {3: 2}, {5: 40}) == [4, 3]
    assert pick_skus(3, staleness, {}, {5: 40, 1: 3}) == [4, 2, 5]


async def test_text_task_takes_the_next_reply_as_the_answer_and_broadcast_lists_answers(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings],
    make_client: Callable[..., Awaitable[Any]],
) -> None:
    settings = task_settings(make_settings)
    deps = with_settings(deps, settings)
    client = await make_client(settings)
    body = {"title": "新品首日销售反馈", "body": "今天新品卖得怎么样？", "stores": ["S001", "S002"], "role": "staff",
            "proof": "text", "due_minutes": 1440}
    resp = await client.post("/api/tasks/broadcast", json=body, headers=auth())
    assert resp.status == 201
    made = await resp.json()
    assert made["created"] == 3  # s1, s2 at S001 and s3 at S002
    await send(deps, text("s1", "卖了 12 件，顾客说偏甜", clock.now()))
    await send(deps, text("s1", "帮助", clock.now()))  # a command is never taken as an answer
    answers = await (await client.get(f"/api/tasks/{made['id']}/answers", headers=auth())).json()
    assert answers["total"] == 3 and answers["answered"] == 1
    s1 = next(a for a in answers["answers"] if a["assignee"] == "s1")
    assert s1["answer"] == "卖了 12 件，顾客说偏甜" and s1["state"] == "done"
    assert "答复已收到" in texts(await outbox(deps.sessions, "s1"))[-2]
    bad = await client.post("/api/tasks/broadcast", json={**body, "stores": ["S404"]}, headers=auth())
    assert bad.status == 422 and "S404" in (await bad.json())["error"]
    missing = await client.get("/api/tasks/999/answers", headers=auth())
    assert missing.status == 404
    assert len(await tasks(deps.sessions)) == 3
