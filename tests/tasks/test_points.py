"""Points: on time, late (half), missed (0), replays award nothing more, 积分 rank, the monthly leaderboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from handlers.task_chase import chase
from handlers.task_gen import run_now
from models.org import Staff
from models.points import PointsEntry, award, leaderboard, standing
from scheduler.task_jobs import board_due, post_leaderboards, previous_month
from tests.factories import Chain
from tests.task_support import click, outbox, send, task_settings, tasks, text, texts, with_settings

EIGHT_LOCAL = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, when open_door fires


async def _open_door(deps: Deps, stores: list[str]) -> list[int]:
    template = deps.config.template("open_door")  # confirm proof, 4 points, due in 30 minutes
    assert template is not None
    async with deps.sessions() as session, session.begin():
        return await run_now(session, deps.config, template, stores, deps.clock.now())


async def _ledger(deps: Deps) -> list[tuple[int, int, int, str]]:
    async with deps.sessions() as session:
        rows = (await session.execute(select(PointsEntry).order_by(PointsEntry.id))).scalars()
        return [(e.staff_id, e.task_id, e.points, e.reason) for e in rows]


async def test_on_time_late_and_missed_points_and_replays_award_nothing_more(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    deps = with_settings(deps, task_settings(make_settings))
    clock.set(EIGHT_LOCAL)
    t2, t3 = await _open_door(deps, ["S002", "S003"])
    await send(deps, click("s3", f"task:done:{t2}", clock.now()))  # on time: 4
    clock.advance(minutes=31)
    await send(deps, click("s4", f"task:done:{t3}", clock.now()))  # late: half
    [late] = await tasks(deps.sessions, id=t3)
    assert late.state == "late_done"
    assert "积分减半" in texts(await outbox(deps.sessions, "s4"))[-1]
    s3, s4 = chain.staff["s3"].id, chain.staff["s4"].id
    assert await _ledger(deps) == [(s3, t2, 4, "done"), (s4, t3, 2, "late_done")]

    await send(deps, click("s3", f"task:done:{t2}", clock.now(), code="rc-again"))  # replayed completion
    async with deps.sessions() as session, session.begin():
        [task] = await tasks(deps.sessions, id=t2)
        staff = await session.get(Staff, s3)
        assert staff is not None
        assert await award(session, task, staff, 4, reason="done", now=clock.now()) is False
    assert len(await _ledger(deps)) == 2

    [t1] = await _open_door(deps, ["S001"])
    [task] = await tasks(deps.sessions, id=t1)
    async with deps.sessions() as session, session.begin():
        await chase(session, deps.config, task.closes_at)
    assert (await tasks(deps.sessions, id=t1))[0].state == "missed"
    assert (await _ledger(deps))[-1] == (task.assignee_id, t1, 0, "missed")


async def test_points_command_shows_points_rank_and_gap(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    deps = with_settings(deps, task_settings(make_settings))
    clock.set(EIGHT_LOCAL)
    t1, t2 = await _open_door(deps, ["S001", "S002"])
    [first] = await tasks(deps.sessions, id=t1)
    s001_user = "s1" if first.assignee_id == chain.staff["s1"].id else "s2"
    await send(deps, click("s3", f"task:done:{t2}", clock.now()))
    clock.advance(minutes=40)
    await send(deps, click(s001_user, f"task:done:{t1}", clock.now()))
    await send(deps, text(s001_user, "积分", clock.now()))
    reply = texts(await outbox(deps.sessions, s001_user))[-1]
    assert "2026-11" in reply and "积分 2" in reply and "华东区第 2 名" in reply and "还差 2 分" in reply
    await send(deps, text("s3", "points", clock.now()))
    assert "第 1 名" in texts(await outbox(deps.sessions, "s3"))[-1]
    await send(deps, text("m1", "积分", clock.now()))  # nothing yet: ranked after everyone with points
    assert "积分 0" in texts(await outbox(deps.sessions, "m1"))[-1]
    async with deps.sessions() as session:
        sup = await session.get(Staff, chain.staff["m1"].id)
        assert sup is not None
        mine = await standing(session, sup, "2026-11")
        assert mine is not None and (mine.rank, mine.gap) == (3, 2)


def test_board_is_due_on_the_first_from_nine() -> None:
    at = datetime(2026, 12, 1, 9, 0)
    assert board_due(at) and not board_due(at - timedelta(hours=1)) and not board_due(at + timedelta(days=1))
    assert previous_month(at) == "2026-11" and previous_month(datetime(2027, 1, 1, 10)) == "2026-12"


async def test_monthly_leaderboard_goes_to_every_store_chat_once_top_ten_only(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    deps = with_settings(deps, task_settings(make_settings))
    [t2] = await _open_door(deps, ["S002"])
    await send(deps, click("s3", f"task:done:{t2}", clock.now()))
    clock.set(datetime(2026, 12, 1, 0, 30, tzinfo=UTC))  # 08:30 on the 1st in Shanghai: not yet
    assert await post_leaderboards(deps) == 0
    clock.set(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    assert await post_leaderboards(deps) == 4
    assert await post_leaderboards(deps) == 0  # once per month
    chats = {m.recipient: m.payload["content"] for m in await outbox(deps.sessions) if m.channel == "appchat"}
    assert set(chats) == {"chat-S001", "chat-S002", "chat-S003", "chat-S004"}
    assert "1. 钱多多（静安店）4 分" in chats["chat-S001"] and "2026-11" in chats["chat-S001"]
    assert "还没有人得分" in chats["chat-S003"]
    async with deps.sessions() as session:
        assert len(await leaderboard(session, chain.regions["R1"].id, "2026-11", top=10)) == 1
