"""Campaign health alerts travel the stock alerts' delivery (handlers/alert_delivery.py): held through quiet hours,
escalated along the chain until someone taps, and merged with stock alerts into one digest per person per window."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.keys import DEPS
from models.alert import Alert
from models.campaign_alert import CampaignAlert
from scheduler.campaign_jobs import health_tick
from tests.alerts.test_alert_digest import Make, card_keys, make_harness, pos_sale, tick
from tests.conftest import auth
from tests.customer_support import make_settings
from tests.customers.test_campaigns import campaign_body, forty_members
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

Sessions = async_sessionmaker[AsyncSession]

__all__ = ["make_harness", "make_settings"]  # fixtures

TOLD = "目标人群只有 40 人，低于预期的 100 人"


async def launch_too_small(h: Harness, sessions: Sessions, chain: Chain) -> None:
    """A campaign whose audience (40) is below what the owner m1 expected (100): audience_low at launch."""
    await forty_members(h.client, sessions, chain, h.clock)
    r = await h.client.post("/api/campaigns", json=campaign_body(expected_min=100), headers=auth())
    assert r.status == 201, await r.text()
    r = await h.client.post("/api/campaigns/spring/launch", headers=auth())
    assert (await r.json())["launched"] is True


def heard(h: Harness, userid: str, words: str) -> bool:
    return any(words in t for t in h.texts_for(userid))


async def test_campaign_alert_raised_in_quiet_hours_waits_for_the_morning_digest(
    make_harness: Make, chain: Chain, sessions: Sessions,
) -> None:
    h = await make_harness(alerts={"quiet_hours": "22:00-08:00"})
    h.clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai
    await launch_too_small(h, sessions, chain)
    await tick(h, minutes=5)
    await tick(h, hours=8, minutes=54)  # 07:59 local
    assert not heard(h, "m1", TOLD)
    assert not [c for c in h.sandbox.cards_for("m1") if c.card["main_title"]["title"] == "活动健康提醒"]
    h.clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))  # 08:00 local: quiet hours end
    await tick(h)
    assert heard(h, "m1", TOLD) and heard(h, "m1", "检查人群「everyone」的规则")  # says what to do
    [card] = h.sandbox.cards_for("m1")[-1:]
    assert card.at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert card.card["main_title"]["title"] == "活动健康提醒"
    assert card_keys(h, "m1")[-1][0].startswith("alert:ackall:")


async def test_unacknowledged_campaign_alert_escalates_and_a_tap_stops_the_chain(
    make_harness: Make, chain: Chain, sessions: Sessions,
) -> None:
    h = await make_harness()
    deps = h.app[DEPS]
    await launch_too_small(h, sessions, chain)
    await tick(h, minutes=5)
    assert heard(h, "m1", TOLD)  # the owner, step 0
    assert h.sandbox.cards_for("sup1") == []
    h.clock.advance(minutes=116)  # 121 minutes after launch: the supervisor's step is due
    assert (await health_tick(deps))[1] == 1
    await tick(h, minutes=5)
    assert heard(h, "sup1", "以下活动问题还没人处理") and heard(h, "sup1", TOLD)
    [sup_card] = h.sandbox.cards_for("sup1")
    ackall = sup_card.buttons[0][1]
    assert ackall.startswith("alert:ackall:")
    await h.tap("sup1", ackall)
    assert h.sandbox.cards_for("sup1")[-1].replace_name == "已确认"
    assert heard(h, "sup1", "已确认 1 条活动提醒")
    owner_card = [c for c in h.sandbox.cards_for("m1") if c.card["main_title"]["title"] == "活动健康提醒"][-1]
    assert (owner_card.replace_name or "").startswith("已由")  # the owner's copy says someone handled it
    async with sessions() as s:
        assert (await s.execute(select(CampaignAlert.state, CampaignAlert.acknowledged_by))).one() == (
            "acknowledged", "sup1")
    h.clock.advance(hours=6)
    assert (await health_tick(deps))[1] == 0  # acknowledged: the admin's step never fires
    await tick(h, minutes=5)
    assert h.sandbox.cards_for("admin") == [] and not heard(h, "admin", "还没人处理")


async def test_stock_and_campaign_alerts_of_one_window_reach_the_manager_in_one_card(
    make_harness: Make, chain: Chain, sessions: Sessions,
) -> None:
    h = await make_harness()
    await launch_too_small(h, sessions, chain)  # owner m1, S001's manager
    await pos_sale(h, "POS-1", [("A001", 16)])  # S001 A001 below its safety line: m1 again
    await tick(h, minutes=5)
    [card] = h.sandbox.cards_for("m1")[-1:]
    assert len([c for c in h.sandbox.cards_for("m1") if "提醒" in c.card["main_title"]["title"]]) == 1
    text = json.dumps(card.card, ensure_ascii=False)
    assert card.card["main_title"]["title"] == "库存与活动提醒汇总"
    assert "A001" in text and "春季会员日" in text
    keys = card_keys(h, "m1")[-1]
    assert keys[0].startswith("alert:ackall:") and any(k.startswith("alert:transfer:") for k in keys)
    assert any(k.startswith("campaign:ack:") for k in keys)
    assert heard(h, "m1", TOLD)  # the campaign sentence in full, with what to do, beside the card
    await h.tap("m1", keys[0])  # 全部确认: both kinds
    assert heard(h, "m1", "已确认 1 条库存提醒和 1 条活动提醒")
    async with sessions() as s:
        assert (await s.execute(select(Alert.state))).scalar_one() == "acknowledged"
        assert (await s.execute(select(CampaignAlert.state))).scalar_one() == "acknowledged"
