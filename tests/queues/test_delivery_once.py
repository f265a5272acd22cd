"""Each reply reaches the phone exactly once: WeCom's duplicate check decided from the database (restarts, two
servers, slow answers after delivery), card updates retried after a timeout, events in the same second."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS, OUTBOX, WECOM
from bot.sandbox import Sandbox
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

STOCK_REPLY = "库存 A002"
# the client gives up after 0.5 s; the sandbox answers slow calls after 0.8 s (a margin for a loaded machine)
SLOW_CLIENT = {"request_timeout_seconds": 0.5, "retry_attempts": 2, "retry_base_seconds": 0.01,
               "retry_max_seconds": 0.02}

SLOW = 0.8
MakeBot = Callable[..., Awaitable[Harness]]


@pytest.fixture
def make_bot(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> MakeBot:
    """A server process on the shared test database, answering the sandbox's callbacks from now on; several may
    run at once or one after another (a restart). No background loops: drain() moves messages."""

    async def make(**wecom: Any) -> Harness:
        settings = make_settings(wecom={"api_base": sandbox.config.public_url, **wecom}, inbox={"workers": 0},
                                 outbox={"background": False})
        client = await make_client(settings)
        sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
        return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)

    return make


async def outbox_states(h: Harness) -> dict[str, int]:
    async with h.app[DEPS].sessions() as session:
        rows = await session.execute(select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state))
        return {str(r[0]): int(r[1]) for r in rows}


async def drain_until_sent(*bots: Harness, step: timedelta = timedelta(minutes=5), rounds: int = 40) -> None:
    """Drain every server at once, moving the clock past backoffs, until no row is pending or in flight."""
    clock = bots[0].clock
    async with asyncio.timeout(120):
        for _ in range(rounds):
            await asyncio.gather(*(b.settle(60) for b in bots))
            states = await outbox_states(bots[0])
            if not states.get("pending") and not states.get("sending"):
                return
            clock.advance(step)
    raise AssertionError(f"outbox did not settle: {await outbox_states(bots[0])}")


async def test_the_same_question_after_a_restart_is_answered_not_swallowed(
    make_bot: MakeBot, chain: Chain, clock: FakeClock
) -> None:
    first = await make_bot()
    await first.say("s1", STOCK_REPLY)
    await first.client.close()  # the server stops; a new process starts with an empty memory
    clock.advance(seconds=40)  # inside WeCom's 30-minute window: a check over it would swallow the reply
    second = await make_bot()
    await second.say("s1", STOCK_REPLY)
    replies = second.texts_for("s1")
    assert len(replies) == 2 and replies[0] == replies[1]
    assert second.sandbox.suppressed == []


async def test_a_retry_after_a_restart_mid_send_is_delivered_once(
    make_bot: MakeBot, chain: Chain, clock: FakeClock
) -> None:
    """A server leases a reply, sends it and dies before writing the answer: the next one resends it, once."""
    first = await make_bot()
    await first.sandbox.user_text("s1", STOCK_REPLY)
    await first.settle()
    async with first.app[DEPS].sessions() as session, session.begin():  # as if the answer was never written
        [row] = (await session.execute(select(OutboundMessage))).scalars()
        row.state, row.claimed_by, row.claimed_until = "sending", "dead", clock.now() - timedelta(seconds=1)
        row.next_attempt_at, row.sent_at = clock.now() - timedelta(seconds=5), None
    await first.client.close()
    clock.advance(seconds=30)
    second = await make_bot()
    await second.settle()
    assert len(second.texts_for("s1")) == 1 and len(second.sandbox.suppressed) == 1
    assert await outbox_states(second) == {"sent": 1}


async def test_slow_answers_after_delivery_six_rows_make_six_messages(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    """WeCom delivers, then answers after the client gave up: the client's own retry and the outbox's later
    retries must be caught by the duplicate check, while six identical replies still all arrive."""
    bot = await make_bot(**SLOW_CLIENT)
    await bot.app[WECOM].get_token()
    for _ in range(6):
        await sandbox.user_text("s1", STOCK_REPLY)
    sandbox.config.slow_rate, sandbox.config.slow_seconds = 1.0, SLOW
    sandbox.config.slow_paths = ["/cgi-bin/message/send"]
    await bot.settle(60)  # every first try times out after delivering
    sandbox.config.slow_rate = 0.5
    await drain_until_sent(bot)
    assert sandbox.faults_injected["slow"] >= 6
    assert len(bot.texts_for("s1")) == 6
    assert await outbox_states(bot) == {"sent": 6}


async def test_slow_answers_to_a_lone_reply_are_not_delivered_twice(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    bot = await make_bot(**SLOW_CLIENT)
    await bot.app[WECOM].get_token()
    sandbox.config.slow_rate, sandbox.config.slow_seconds = 1.0, SLOW
    sandbox.config.slow_paths = ["/cgi-bin/message/send"]
    await sandbox.user_text("s1", "帮助")
    await bot.settle(60)
    async with bot.app[DEPS].sessions() as session:
        row = (await session.execute(select(OutboundMessage))).scalar_one()
    assert row.state == "pending" and row.uncertain_since is not None  # delivered, but we cannot know
    sandbox.config.slow_rate = 0.0
    await drain_until_sent(bot)
    assert len(bot.texts_for("s1")) == 1 and len(sandbox.suppressed) >= 2  # the client's retry and the outbox's


async def test_two_servers_on_one_database_deliver_identical_replies_once_each(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    a = await make_bot(**SLOW_CLIENT)
    b = await make_bot(**SLOW_CLIENT)
    for bot in (a, b):
        await bot.app[WECOM].get_token()
    for _ in range(6):
        await sandbox.user_text("s1", STOCK_REPLY)
    sandbox.config.slow_rate, sandbox.config.slow_seconds = 0.5, SLOW
    sandbox.config.slow_paths = ["/cgi-bin/message/send"]
    await drain_until_sent(a, b)
    assert len(a.texts_for("s1")) == 6
    assert await outbox_states(a) == {"sent": 6}


async def test_a_card_update_that_timed_out_and_was_retried_gets_42022_and_is_not_dead_lettered(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox, clock: FakeClock
) -> None:
    bot = await make_bot(**{**SLOW_CLIENT, "retry_attempts": 1})  # no retry inside the call: the outbox retries
    await bot.app[WECOM].get_token()
    await bot.say("s3", "调拨 S001 A001 5")
    clock.advance(minutes=1)
    sandbox.config.slow_rate, sandbox.config.slow_seconds = 1.0, SLOW
    sandbox.config.slow_paths = ["/cgi-bin/message/update_template_card"]
    await sandbox.user_click("sup1", "transfer:approve:1")
    await bot.settle(60)
    sandbox.config.slow_rate = 0.0
    await drain_until_sent(bot)
    async with bot.app[DEPS].sessions() as session:
        [update] = (await session.execute(
            select(OutboundMessage).where(OutboundMessage.channel == "card_update"))).scalars()
    assert update.state == "sent" and update.attempts >= 2 and "42022" in (update.last_error or "")
    assert sandbox.cards_for("sup1")[0].replace_name == "已同意"


async def test_a_supervisor_approving_two_transfers_in_one_second_approves_both(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox, clock: FakeClock
) -> None:
    bot = await make_bot()
    await bot.say("s3", "调拨 S001 A001 5")
    await bot.say("s3", "调拨 S001 A002 3")
    clock.advance(minutes=1)
    sandbox.config.unique_create_times = False  # as WeCom does: two taps in one second share a CreateTime
    first = await sandbox.user_click("sup1", "transfer:approve:1")
    second = await sandbox.user_click("sup1", "transfer:approve:2", repeat=2)  # and WeCom retries it
    assert first.ok and second.ok
    await bot.settle()
    for transfer in (1, 2):
        view = await (await bot.client.get(f"/api/transfers/{transfer}", headers=auth())).json()
        assert view["state"] == "approved", view


async def test_two_change_contact_events_in_one_second_are_both_kept_and_a_retry_adds_nothing(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox, clock: FakeClock
) -> None:
    bot = await make_bot()
    created = int(clock.now().timestamp())

    def change(userid: str) -> str:
        return (f"<ToUserName><![CDATA[{sandbox.config.corp_id}]]></ToUserName>"
                f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{created}</CreateTime>"
                "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
                f"<ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[{userid}]]></UserID>")

    for userid, repeat in (("s1", 1), ("s2", 3)):
        assert (await sandbox._deliver(change(userid), repeat)).ok
    async with bot.app[DEPS].sessions() as session:
        rows = (await session.execute(
            select(InboundEvent.payload).where(InboundEvent.event == "change_contact"))).scalars().all()
    assert sorted(r["UserID"] for r in rows) == ["s1", "s2"]


async def test_rows_with_the_same_text_for_one_member_are_all_delivered_by_one_drain(
    make_bot: MakeBot, chain: Chain, sandbox: Sandbox
) -> None:
    """Identical replies queued together go one after another (each waits for the previous one's answer)."""
    bot = await make_bot()
    for _ in range(3):
        await sandbox.user_text("s1", "帮助")
    await bot.settle()
    assert len(bot.texts_for("s1")) == 3 and sandbox.suppressed == []
    assert bot.app[OUTBOX] is not None
