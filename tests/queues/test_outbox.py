"""The outbox worker against the WeCom sandbox as a real HTTP server: delivery under faults, exactly once as the
sandbox counts, per-recipient budgets that defer and never drop, dead letters, leases, card updates."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import OUTBOX
from bot.queues.outbox import OutboxWorker
from bot.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from models.outbox import OutboundMessage, enqueue, send_card, send_text, send_to_chat, update_card_button
from tests.conftest import TEST_ADMIN_TOKEN, TEST_CORP_ID, TEST_SECRET, AppClient, auth

ROBOT_KEY = "sandbox-robot-key"


@dataclass
class Rig:
    sandbox: Sandbox
    client: AppClient
    worker: OutboxWorker
    sessions: async_sessionmaker[AsyncSession]
    clock: FakeClock

    async def queue_texts(self, recipients: list[str], per_recipient: int, prefix: str = "msg") -> None:
        async with self.sessions() as session, session.begin():
            for i in range(per_recipient):
                for r in recipients:
                    await send_text(session, r, f"{prefix} {r} #{i}", now=self.clock.now())

    async def states(self) -> dict[str, int]:
        async with self.sessions() as session:
            rows = await session.execute(select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state))
            return {row[0]: row[1] for row in rows}

    async def settle(self, step: timedelta = timedelta(minutes=5), rounds: int = 60) -> int:
        """Drain, move the clock past backoffs and budget windows, until nothing is pending or sending."""
        total = 0
        async with asyncio.timeout(120):
            for _ in range(rounds):
                total += await self.worker.drain()
                states = await self.states()
                if not states.get("pending") and not states.get("sending"):
                    return total
                self.clock.advance(step)
        raise AssertionError(f"outbox did not settle: {await self.states()}")


async def first_retry_of(rig: Rig, recipient: str, *, before: datetime) -> datetime | None:
    """When the earliest row to `recipient` whose attempt failed is due again, if that is before `before`."""
    async with rig.sessions() as session:
        due: datetime | None = (await session.execute(
            select(func.min(OutboundMessage.next_attempt_at))
            .where(OutboundMessage.recipient == recipient, OutboundMessage.state == "pending",
                   OutboundMessage.attempts > 0, OutboundMessage.next_attempt_at < before)
        )).scalar_one()
        return due


def delivered(sandbox: Sandbox, channel: str = "app") -> list[Any]:
    return [d for d in sandbox.deliveries if d.channel == channel and not d.dropped]


@pytest.fixture
async def make_rig(
    make_client: Callable[..., Awaitable[AppClient]],
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    servers: list[TestServer] = []

    async def make(sandbox: Sandbox | None = None, outbox: dict[str, Any] | None = None,
                   users: int = 60, **faults: Any) -> Rig:
        if sandbox is None:
            names = {f"u{i:03d}": f"员工{i}" for i in range(users)} | {"m1": "王店长", "s1": "李小妹"}
            cfg = SandboxConfig(corp_id=TEST_CORP_ID, corp_secret=TEST_SECRET, users=names, seed=7, **faults)
            sandbox = Sandbox(cfg, clock=clock)
            server = TestServer(create_sandbox_app(sandbox))
            await server.start_server()
            servers.append(server)
            sandbox.config.public_url = str(server.make_url("")).rstrip("/")
        settings = make_settings(
            wecom={"api_base": sandbox.config.public_url, "retry_attempts": 3, "retry_base_seconds": 0.001,
                   "retry_max_seconds": 0.01, "request_timeout_seconds": 5},
            outbox={"background": False, "backoff_base_seconds": 1, "backoff_max_seconds": 60,
                    **(outbox or {})},
        )
        client = await make_client(settings)
        return Rig(sandbox, client, client.app[OUTBOX], sessions, clock)

    yield make
    for server in servers:
        await server.close()


async def test_thousand_messages_under_30pct_faults_are_all_delivered_exactly_once(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig(fault_rate=0.15, http_502_rate=0.15, token_ttl_seconds=7200)
    recipients = [f"u{i:03d}" for i in range(50)]
    await rig.queue_texts(recipients, 10, "first")
    first = await rig.worker.drain()
    assert first >= 500
    tokens_before = rig.sandbox.token_requests
    clock.advance(hours=2, minutes=1)  # every token has expired, on both sides, in the middle of the run
    await rig.queue_texts(recipients, 10, "second")
    await rig.settle()

    sent = delivered(rig.sandbox)
    contents = Counter(d.payload["text"]["content"] for d in sent)
    assert len(contents) == 1000
    assert max(contents.values()) == 1, [c for c, n in contents.items() if n > 1][:5]
    assert not [d for d in rig.sandbox.deliveries if d.dropped]
    assert await rig.states() == {"sent": 1000}
    assert rig.sandbox.faults_injected["http_502"] + rig.sandbox.faults_injected["errcode"] > 300  # ~30% of calls
    assert tokens_before == 1
    assert rig.sandbox.token_requests == 2  # refreshed once for the second half, not per message


async def test_member_budget_defers_the_41st_message_and_delivers_it_a_minute_later(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    await rig.queue_texts(["m1"], 40)
    assert await rig.worker.drain() == 30
    assert len(rig.sandbox.messages_for("m1")) == 30
    assert await rig.states() == {"sent": 30, "pending": 10}
    assert await rig.worker.drain() == 0  # still inside the minute: nothing goes
    clock.advance(seconds=61)
    assert await rig.worker.drain() == 10
    assert len(rig.sandbox.messages_for("m1")) == 40
    assert not [d for d in rig.sandbox.deliveries if d.dropped]


async def test_hourly_member_budget_holds(make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock) -> None:
    rig = await make_rig(outbox={"per_member_per_minute": 30, "per_member_per_hour": 50})
    await rig.queue_texts(["m1"], 60)
    await rig.worker.drain()
    clock.advance(seconds=61)
    await rig.worker.drain()
    clock.advance(seconds=61)
    await rig.worker.drain()
    assert len(rig.sandbox.messages_for("m1")) == 50
    clock.advance(hours=1)
    await rig.worker.drain()
    assert len(rig.sandbox.messages_for("m1")) == 60


async def test_robot_budget_is_20_a_minute_per_key(make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock) -> None:
    rig = await make_rig()
    async with rig.sessions() as session, session.begin():
        for i in range(25):
            await enqueue(session, channel="webhook", recipient=ROBOT_KEY, msgtype="text",
                          payload={"content": f"robot {i}"}, now=clock.now())
    assert await rig.worker.drain() == 20
    assert len(delivered(rig.sandbox, "robot")) == 20
    clock.advance(seconds=61)
    assert await rig.worker.drain() == 5
    assert len(delivered(rig.sandbox, "robot")) == 25


async def test_dead_letter_after_max_attempts_is_listed_and_counted(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await make_rig(http_502_rate=1.0, outbox={"max_attempts": 3})
    await rig.queue_texts(["m1"], 1)
    await rig.settle()
    assert await rig.states() == {"failed": 1}

    resp = await rig.client.get("/api/outbox", params={"state": "failed"}, headers=auth())
    assert resp.status == 200
    [row] = await resp.json()
    assert row["recipient"] == "m1" and row["channel"] == "app" and row["msgtype"] == "text"
    assert row["attempts"] == 3 and "HTTP 502" in row["last_error"] and row["sent_at"] is None
    assert set(row) >= {"id", "channel", "recipient", "msgtype", "state", "attempts", "last_error", "created_at",
                        "sent_at"}

    metrics = await (await rig.client.get("/metrics")).text()
    assert 'storebot_outbox_messages{state="failed"} 1.0' in metrics
    assert 'storebot_outbox_sends_total{outcome="dead_letter"} 1.0' in metrics
    assert 'storebot_outbox_sends_total{outcome="retry"} 2.0' in metrics


async def test_dead_letter_can_be_requeued_after_the_cause_is_fixed(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await make_rig(http_502_rate=1.0, outbox={"max_attempts": 1})
    await rig.queue_texts(["m1"], 1)
    await rig.worker.drain()
    [row] = await (await rig.client.get("/api/outbox?state=failed", headers=auth())).json()
    rig.sandbox.config.http_502_rate = 0.0
    resp = await rig.client.post(f"/api/outbox/{row['id']}/retry", headers=auth())
    assert resp.status == 200
    assert (await rig.client.post(f"/api/outbox/{row['id']}/retry", headers=auth())).status == 409
    assert await rig.worker.drain() == 1
    assert len(rig.sandbox.messages_for("m1")) == 1


async def test_outbox_api_refuses_bad_filters_and_missing_token(make_rig: Callable[..., Awaitable[Rig]]) -> None:
    rig = await make_rig()
    assert (await rig.client.get("/api/outbox?state=nope", headers=auth())).status == 400
    assert (await rig.client.get("/api/outbox?limit=0", headers=auth())).status == 400
    assert (await rig.client.get("/api/outbox")).status == 401
    assert (await rig.client.get("/api/outbox", headers=auth(TEST_ADMIN_TOKEN + "x"))).status == 401


async def test_unknown_recipient_fails_at_once_without_retries(make_rig: Callable[..., Awaitable[Rig]]) -> None:
    rig = await make_rig()
    await rig.queue_texts(["nobody"], 1)
    assert await rig.worker.drain() == 1
    [row] = await (await rig.client.get("/api/outbox?state=failed", headers=auth())).json()
    assert row["attempts"] == 1 and "81013" in row["last_error"]


async def test_robot_key_is_not_shown_in_the_listing(make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock) -> None:
    rig = await make_rig()
    async with rig.sessions() as session, session.begin():
        await enqueue(session, channel="webhook", recipient=ROBOT_KEY, msgtype="text", payload={"content": "x"},
                      now=clock.now())
    body = await (await rig.client.get("/api/outbox", headers=auth())).text()
    assert ROBOT_KEY not in body


def _card(task_id: str) -> dict[str, Any]:
    return {
        "card_type": "button_interaction", "task_id": task_id,
        "main_title": {"title": "调拨申请", "desc": "S002 → S001"},
        "button_list": [{"text": "同意", "key": "transfer:approve:1", "style": 1},
                        {"text": "拒绝", "key": "transfer:reject:1", "style": 2}],
    }


async def test_card_response_code_is_kept_and_a_click_updates_the_card(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    async with rig.sessions() as session, session.begin():
        await send_card(session, "m1", _card("transfer-1"), now=clock.now())
    await rig.worker.drain()
    async with rig.sessions() as session:
        row = (await session.execute(select(OutboundMessage))).scalar_one()
    assert row.state == "sent" and row.msgid and row.response_code
    async with rig.sessions() as session, session.begin():
        await update_card_button(session, "m1", row.response_code, "已同意", now=clock.now())
    assert await rig.worker.drain() == 1
    [card] = rig.sandbox.cards_for("m1")
    assert card.replace_name == "已同意"


async def test_response_code_older_than_72_hours_is_not_used(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    async with rig.sessions() as session, session.begin():
        await send_card(session, "m1", _card("transfer-2"), now=clock.now())
    await rig.worker.drain()
    async with rig.sessions() as session:
        code = (await session.execute(select(OutboundMessage.response_code))).scalar_one()
    assert code
    clock.advance(hours=73)
    async with rig.sessions() as session, session.begin():
        await update_card_button(session, "m1", code, "已同意", now=clock.now())
    calls_before = len(rig.sandbox.deliveries)
    await rig.worker.drain()
    [row] = await (await rig.client.get("/api/outbox?state=failed", headers=auth())).json()
    assert row["channel"] == "card_update" and "72 h" in row["last_error"] and "new card" in row["last_error"]
    assert row["attempts"] == 0  # never sent
    [card] = rig.sandbox.cards_for("m1")
    assert card.replace_name is None and len(rig.sandbox.deliveries) == calls_before


async def test_rows_of_a_crashed_worker_are_sent_after_their_lease_expires(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    await rig.queue_texts(["m1", "s1"], 2)
    crashed = OutboxWorker(rig.worker.deps, rig.worker.client, rig.worker.metrics, name="crashed")
    claimed, _ = await crashed.claim()  # leased, then the process dies before sending
    assert len(claimed) == 4
    assert await rig.worker.drain() == 0  # someone else's live lease
    clock.advance(seconds=rig.worker.settings.lease_seconds + 1)
    assert await rig.worker.drain() == 4
    assert len(rig.sandbox.messages_for("m1")) == 2 and len(rig.sandbox.messages_for("s1")) == 2
    # the late worker's result cannot overwrite the new owner's: its rows are no longer its own
    outcome = await crashed.send(claimed[0])
    await crashed._record([outcome])
    async with rig.sessions() as session:
        owners = set((await session.execute(select(OutboundMessage.claimed_by))).scalars())
    assert owners == {rig.worker.name}


async def test_sends_carry_duplicate_check_so_a_resend_is_not_delivered_twice(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    await rig.queue_texts(["m1"], 1)
    await rig.worker.drain()
    async with rig.sessions() as session, session.begin():  # as if the answer was lost: the row is sent again
        await session.execute(update(OutboundMessage).values(state="pending", next_attempt_at=clock.now()))
    await rig.worker.drain()
    assert len(rig.sandbox.messages_for("m1")) == 1
    assert rig.sandbox.duplicates_suppressed == 1
    async with rig.sessions() as session:
        assert (await session.execute(select(OutboundMessage.state))).scalar_one() == "sent"


@pytest.mark.pg
async def test_two_servers_on_one_database_send_each_message_once_and_share_budgets(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    first = await make_rig(fault_rate=0.1, outbox={"batch_size": 50})
    second = await make_rig(first.sandbox, outbox={"batch_size": 50})
    recipients = [f"u{i:03d}" for i in range(40)]
    await first.queue_texts(recipients, 10)
    await first.queue_texts(["m1"], 45, "budget")
    async with asyncio.timeout(120):
        a, b = await asyncio.gather(first.worker.drain(), second.worker.drain())
    assert a > 0 and b > 0  # both did part of the work
    # A granted send can exhaust the client's 3 tries on injected faults (which call meets which fault depends on
    # how the two workers interleave): it is then retried after a backoff of under a second, inside the same
    # budget minute. Wait for that condition, every granted m1 row answered, before counting the minute's sends.
    start = clock.now()
    first.sandbox.config.fault_rate = 0.0
    while retry_at := await first_retry_of(first, "m1", before=start + timedelta(seconds=60)):
        clock.advance(retry_at - clock.now())
        await first.worker.drain()
    assert len(first.sandbox.messages_for("m1")) == 30  # the budget held across the two processes
    async with first.sessions() as session:
        m1_states = Counter((await session.execute(
            select(OutboundMessage.state).where(OutboundMessage.recipient == "m1"))).scalars())
    assert m1_states == {"sent": 30, "pending": 15}  # the rest wait out the minute
    first.sandbox.config.fault_rate = 0.1
    clock.advance(start + timedelta(seconds=61) - clock.now())
    await first.settle()
    contents = Counter(d.payload["text"]["content"] for d in delivered(first.sandbox))
    assert len(contents) == 445 and max(contents.values()) == 1
    assert not [d for d in first.sandbox.deliveries if d.dropped]


@pytest.mark.pg
async def test_concurrent_claims_for_one_member_never_exceed_the_budget_together(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Each worker locks different rows (SKIP LOCKED), so only the budget lock stops both from granting 20 of 30."""
    first = await make_rig(outbox={"batch_size": 20})
    second = await make_rig(first.sandbox, outbox={"batch_size": 20})
    await first.queue_texts(["m1"], 40)
    async with asyncio.timeout(30):
        (a, a_later), (b, b_later) = await asyncio.gather(first.worker.claim(), second.worker.claim())
    assert len(a) + len(b) == 30
    assert a_later + b_later == 10
    assert {r.id for r in a}.isdisjoint({r.id for r in b})


async def test_frequency_limit_defers_the_row_without_spending_an_attempt(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    rig.sandbox.config.robot_per_minute = 3  # WeCom's real limit turns out lower than ours: it answers 45009
    async with rig.sessions() as session, session.begin():
        for i in range(5):
            await enqueue(session, channel="webhook", recipient=ROBOT_KEY, msgtype="text",
                          payload={"content": f"robot {i}"}, now=clock.now())
    assert await rig.worker.drain() == 5
    assert len(delivered(rig.sandbox, "robot")) == 3
    pending = await (await rig.client.get("/api/outbox?state=pending", headers=auth())).json()
    assert len(pending) == 2
    assert all(row["attempts"] == 0 and "45009" in row["last_error"] for row in pending)
    assert await rig.worker.drain() == 0  # waits out the window
    clock.advance(seconds=61)
    assert await rig.worker.drain() == 2
    assert len(delivered(rig.sandbox, "robot")) == 5


async def test_group_chat_messages_go_to_the_chat(make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock) -> None:
    rig = await make_rig()
    rig.sandbox.create_chat("chat-S001", "徐汇店", "m1", ["m1", "s1"])
    async with rig.sessions() as session, session.begin():
        await send_to_chat(session, "chat-S001", "markdown", {"content": "**今日任务**已发布"}, now=clock.now())
    assert await rig.worker.drain() == 1
    [message] = rig.sandbox.messages_for("s1")
    assert message.channel == "appchat" and message.payload["markdown"]["content"] == "**今日任务**已发布"


async def test_a_card_update_without_a_response_code_fails_at_once(
    make_rig: Callable[..., Awaitable[Rig]], clock: FakeClock
) -> None:
    rig = await make_rig()
    async with rig.sessions() as session, session.begin():
        await enqueue(session, channel="card_update", recipient="m1", msgtype="button",
                      payload={"button": {"replace_name": "已处理"}}, now=clock.now())
    assert await rig.worker.drain() == 1
    [row] = await (await rig.client.get("/api/outbox?state=failed", headers=auth())).json()
    assert row["attempts"] == 1 and "needs response_code" in row["last_error"]
