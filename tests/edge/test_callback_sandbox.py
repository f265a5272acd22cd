"""The callback edge end to end: the WeCom sandbox's user side sends signed callbacks, the phone shows replies."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messages import render
from models.inbox import InboundEvent
from tests.factories import Chain
from tests.fixtures_sandbox import Harness


async def inbox_rows(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as s:
        rows = await s.execute(select(InboundEvent.msg_type, InboundEvent.state).order_by(InboundEvent.id))
        return [(t, st) for t, st in rows]


async def test_same_callback_delivered_three_times_by_wecom_has_one_effect(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    outcome = await harness.sandbox.user_text("s1", "帮助", repeat=3)
    assert outcome.status == 200 and outcome.tries == 3
    await harness.settle()
    assert await inbox_rows(sessions) == [("text", "done")]
    assert harness.texts_for("s1") == [render("help", reason="")]


async def test_gibberish_from_the_phone_gets_help_and_unknown_user_is_told(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    harness.sandbox.config.users["visitor"] = "访客"
    assert (await harness.sandbox.user_text("m1", "今天几号")).status == 200
    assert (await harness.sandbox.user_text("visitor", "帮助")).status == 200
    await harness.settle()
    assert harness.texts_for("m1") == [render("help", reason="没看懂这条消息。", role="manager")]
    assert harness.texts_for("visitor") == [render("unknown_user", userid="visitor")]


async def test_every_kind_of_user_callback_is_accepted_and_processed(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sb = harness.sandbox
    outcomes = [
        await sb.user_enter("s2"),
        await sb.user_location_event("s2", 31.19, 121.43),
        await sb.user_location("s2", 31.19, 121.43, label="徐汇店"),
        await sb.user_menu_click("s2", "my_tasks"),
        await sb.user_scan("s2", "scan_in", "6900000000011"),
    ]
    assert [o.status for o in outcomes] == [200] * 5
    await harness.settle()
    rows = await inbox_rows(sessions)
    assert len(rows) == 5 and {state for _, state in rows} == {"done"}
    async with sessions() as s:
        events = (await s.execute(select(func.count()).where(InboundEvent.msg_type == "event"))).scalar_one()
    assert events == 4
