"""The inbox worker over the real app and database: one transaction per event, retries, shared claiming."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.messages import render
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from tests.conftest import AppClient
from tests.edge.test_callback import MakeClient, accept_only, inbox_worker, post
from tests.edge.test_callback_parse import load_payload
from tests.factories import Chain


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> list[OutboundMessage]:
    async with sessions() as s:
        return list((await s.execute(select(OutboundMessage).order_by(OutboundMessage.id))).scalars())


async def inbox(sessions: async_sessionmaker[AsyncSession]) -> list[InboundEvent]:
    async with sessions() as s:
        return list((await s.execute(select(InboundEvent).order_by(InboundEvent.id))).scalars())


async def test_help_and_gibberish_get_the_help_reply_and_the_event_is_done(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Chain,
) -> None:
    client = await accept_only(make_client, make_settings)
    for i, text in enumerate(["帮助", "HELP", "ｈｅｌｐ", "今天天气不错"]):
        assert await post(client, load_payload("text", user="s1", msgid=100 + i, content=text), clock) == 200
    assert await inbox_worker(client).drain() == 4
    replies = [m.payload["content"] for m in await outbox(sessions)]
    assert replies[:3] == [render("help", reason="")] * 3
    assert replies[3] == render("help", reason="没看懂这条消息。")
    assert {(e.state, e.attempts) for e in await inbox(sessions)} == {("done", 1)}


async def test_unknown_user_is_told_so_and_nothing_else_happens(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Chain,
) -> None:
    client = await accept_only(make_client, make_settings)
    assert await post(client, load_payload("text", user="stranger", content="盘点 A001 7"), clock) == 200
    assert await post(client, load_payload("enter_agent", user="stranger"), clock) == 200
    assert await inbox_worker(client).drain() == 2
    [reply] = await outbox(sessions)
    assert (reply.recipient, reply.payload["content"]) == ("stranger", render("unknown_user", userid="stranger"))
    assert [e.state for e in await inbox(sessions)] == ["done", "done"]


async def _store_raw(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, payload: dict[str, Any]) -> int:
    """An event the current parser cannot read (stored by an older version, say): the worker must cope."""
    async with sessions() as s, s.begin():
        row = InboundEvent(dedupe_key="msg:broken-1", from_user=payload["FromUserName"], msg_type=payload["MsgType"],
                           payload=payload, received_at=clock.now(), state="pending", attempts=0)
        s.add(row)
    return row.id


async def test_a_failing_event_is_retried_with_backoff_then_failed_and_the_user_told_once(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Chain,
) -> None:
    client = await make_client(make_settings(inbox={"workers": 0, "max_attempts": 3, "backoff_base_seconds": 10}))
    worker = inbox_worker(client)
    payload = {"FromUserName": "s1", "CreateTime": "1795000000", "MsgType": "location", "Location_X": "north",
               "Location_Y": "121.4", "MsgId": "broken-1"}
    await _store_raw(sessions, clock, payload)
    assert await worker.drain() == 1
    [row] = await inbox(sessions)
    assert (row.state, row.attempts) == ("pending", 1) and "Location_X" in (row.last_error or "")
    assert row.claimed_until == clock.now() + timedelta(seconds=10)
    assert await worker.drain() == 0  # not due yet
    clock.advance(seconds=10)
    assert await worker.drain() == 1
    clock.advance(seconds=19)
    assert await worker.drain() == 0  # second backoff is 20 s
    clock.advance(seconds=1)
    assert await worker.drain() == 1
    [row] = await inbox(sessions)
    assert (row.state, row.attempts) == ("failed", 3)
    clock.advance(hours=1)
    assert await worker.drain() == 0
    busy = [m for m in await outbox(sessions) if m.payload["content"] == render("system_busy")]
    assert [(m.recipient, m.dedupe_key) for m in busy] == [("s1", f"inbox-busy:{row.id}")]


async def test_several_workers_share_the_inbox_and_process_each_event_once(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Chain,
) -> None:
    accept = await accept_only(make_client, make_settings)
    for i in range(30):
        assert await post(accept, load_payload("text", user="s2", msgid=500 + i, content="帮助"), clock) == 200
    # Two more app instances on the same database, as two server processes would be.
    others: list[AppClient] = [await accept_only(make_client, make_settings) for _ in range(2)]
    workers = [inbox_worker(accept)] + [inbox_worker(c) for c in others]
    async with asyncio.timeout(60):
        counts = await asyncio.gather(*(w.drain() for w in workers))
    assert sum(counts) == 30
    assert len(await outbox(sessions)) == 30
    assert {(e.state, e.attempts) for e in await inbox(sessions)} == {("done", 1)}


async def test_the_background_loop_processes_a_callback_without_being_asked(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Chain,
) -> None:
    client = await make_client(make_settings(inbox={"workers": 2, "poll_seconds": 30}))
    assert await post(client, load_payload("text", user="m1", content="help"), clock) == 200
    async with asyncio.timeout(10):  # woken by the callback, not by the 30 s poll
        while True:  # poll the database: the effect is all there is to observe
            if await outbox(sessions):
                break
            await asyncio.sleep(0.02)
    [row] = await inbox(sessions)
    assert row.state == "done"


async def test_shutdown_cancels_the_worker_tasks(
    make_client: MakeClient, make_settings: Callable[..., Settings], chain: Chain,
) -> None:
    client = await make_client(make_settings(inbox={"workers": 3}))
    worker = inbox_worker(client)
    tasks = set(worker.loop.tasks)
    assert len(tasks) == 3 and not any(t.done() for t in tasks)
    await client.close()
    assert all(t.done() for t in tasks) and not worker.loop.tasks
