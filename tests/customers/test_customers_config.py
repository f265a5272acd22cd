"""[customers] thresholds change the stages; campaign health alerts respect the owner's store's quiet hours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from handlers.alert_delivery import flush_digests
from models.alert import AlertNotice
from models.outbox import OutboundMessage
from tests.conftest import AppClient, auth
from tests.customer_support import Member, add_members, make_settings, sell
from tests.customers.test_campaigns import campaign_body, forty_members
from tests.factories import Chain

Sessions = async_sessionmaker[AsyncSession]

__all__ = ["make_settings"]  # a fixture: the POS date window opened for member history


async def test_stage_thresholds_come_from_config(
    make_client: Callable[..., Awaitable[AppClient]], make_settings: Callable[..., Settings], sessions: Sessions,
    chain: Chain, clock: FakeClock,
) -> None:
    client = await make_client(make_settings(customers={"active_days": 45, "at_risk_days": 90}))
    await add_members(sessions, chain, [Member("C1", joined_at=clock.now() - timedelta(days=300))], clock.now())
    await sell(client, "P1", "C1", 20.0, clock.now() - timedelta(days=40))
    body = await (await client.get("/api/customers/C1", headers=auth())).json()
    assert body["stage"] == "active"  # 40 days: at risk by default, active with active_days = 45
    r = await client.put("/api/segments/act", json={"name": "a", "rule": {"stage": "active"}}, headers=auth())
    assert (await r.json())["sample"] == ["C1"]


async def test_campaign_alert_waits_for_the_end_of_quiet_hours(
    make_client: Callable[..., Awaitable[AppClient]], make_settings: Callable[..., Settings], sessions: Sessions,
    chain: Chain, clock: FakeClock,
) -> None:
    clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai
    settings = make_settings(alerts={"quiet_hours": "22:00-08:00"})
    client = await make_client(settings)
    await forty_members(client, sessions, chain, clock)
    await client.post("/api/campaigns", json=campaign_body(expected_min=100), headers=auth())
    await client.post("/api/campaigns/spring/launch", headers=auth())
    async with sessions() as s:
        notices = (await s.execute(select(AlertNotice).where(AlertNotice.recipient == "m1"))).scalars().all()
    morning = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert [n.due_at for n in notices] == [morning]  # held in the stock alerts' delivery until quiet hours end
    async with sessions() as s, s.begin():
        assert await flush_digests(s, settings, morning - timedelta(minutes=1)) == 0
    async with sessions() as s, s.begin():
        assert await flush_digests(s, settings, morning) == 1
    async with sessions() as s:
        rows = (await s.execute(select(OutboundMessage).where(OutboundMessage.recipient == "m1",
                                                              OutboundMessage.msgtype == "text"))).scalars().all()
    assert len(rows) == 1 and "低于预期的 100 人" in rows[0].payload["content"]
