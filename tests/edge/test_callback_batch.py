"""One callback the inbox cannot take must fail alone: the rest of its group commit is stored and answered 200."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messages import render
from bot.sandbox.user import CallbackOutcome, cdata
from bot.wecom import callback
from models.inbox import InboundEvent
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

USERS = ("s1", "s2", "m1", "s3", "m2", "s4")


async def deliver_nested(harness: Harness, userid: str, depth: int) -> CallbackOutcome:
    """A validly signed text message carrying an extra element `depth` levels deep (WeCom nests four at most)."""
    sb = harness.sandbox
    return await sb._deliver(
        sb._head(userid, "text") + f"<Content>{cdata('帮助')}</Content><MsgId>{sb._msg_id()}</MsgId>"
        + "<Extra>" + "<a>" * depth + "x" + "</a>" * depth + "</Extra>"
    )


async def send_with_41_others(harness: Harness, depth: int) -> tuple[CallbackOutcome, list[CallbackOutcome]]:
    """The nested message and 41 ordinary ones at the same moment: they share the inbox's group commits."""
    sb = harness.sandbox
    others = [sb.user_text(USERS[i % len(USERS)], f"库存 A00{i % 5 + 1}") for i in range(41)]
    async with asyncio.timeout(30):
        bad, *rest = await asyncio.gather(deliver_nested(harness, "s1", depth), *others)
    return bad, rest


async def states(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as s:
        rows = await s.execute(select(InboundEvent.state, func.count()).group_by(InboundEvent.state))
        return {str(state): int(n) for state, n in rows.all()}


@pytest.mark.parametrize("depth", [9, 940, 5000])
async def test_a_deeply_nested_callback_is_refused_alone_and_the_41_others_in_its_batch_get_200(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession], depth: int
) -> None:
    bad, others = await send_with_41_others(harness, depth)
    assert bad.status == 400
    assert [o.status for o in others] == [200] * 41
    await harness.settle()
    assert await states(sessions) == {"done": 41}
    for user in USERS:
        assert harness.texts_for(user)  # every sender got the stock answer


async def test_a_row_the_database_cannot_take_fails_alone_and_never_stalls_the_worker(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the edge's depth check: PostgreSQL's JSON encoder gives up inside the group commit's INSERT; SQLite
    # stores the row, and the worker's JSON decoder gives up on it instead.
    monkeypatch.setattr(callback, "MAX_DEPTH", 10_000)
    bad, others = await send_with_41_others(harness, 940)
    assert [o.status for o in others] == [200] * 41
    assert bad.status in (200, 503)  # stored, or refused alone with "try again"
    await harness.settle()
    found = await states(sessions)
    assert "pending" not in found and found.get("done", 0) >= 41  # handled or failed alone, never in the way
    assert sum(found.values()) == (42 if bad.status == 200 else 41)
    assert await harness.say("s2", "帮助")  # the worker is not stuck on it


async def test_a_stored_event_the_worker_cannot_decode_fails_alone_and_the_next_one_is_answered(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A row stored before the edge checked the depth (or by another version): the worker used to raise on the
    claim itself, at every poll, and answered nobody after it."""
    assert (await harness.sandbox.user_text("s1", "帮助")).status == 200
    deep = '{"FromUserName": "s1", "CreateTime": "1", "MsgType": "text", "X": ' + "[" * 3000 + "]" * 3000 + "}"
    async with sessions() as s, s.begin():
        payload = "CAST(:p AS JSON)" if s.get_bind().dialect.name == "postgresql" else ":p"
        await s.execute(text(f"UPDATE inbox SET payload = {payload}"), {"p": deep})
    await harness.say("s2", "帮助")
    async with sessions() as s:
        query = select(InboundEvent.from_user, InboundEvent.state, InboundEvent.attempts, InboundEvent.last_error)
        rows = {r.from_user: r for r in await s.execute(query)}
    assert (rows["s1"].state, rows["s1"].attempts) == ("failed", harness.settings.inbox.max_attempts)
    assert "RecursionError" in (rows["s1"].last_error or "")
    assert rows["s2"].state == "done"
    assert harness.texts_for("s1") == [render("system_busy")]
    assert harness.texts_for("s2") == [render("help", reason="")]
