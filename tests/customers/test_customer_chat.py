"""客户 and 活动 in chat, through the sandbox's phones: a short profile that never shows the full phone number,
candidates by phone tail, and running campaigns with their health for managers, supervisors and admins."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.keys import DEPS
from scheduler.campaign_jobs import campaign_tick, health_tick
from tests.conftest import auth
from tests.customer_support import Member, add_members, make_settings, sell
from tests.customers.test_campaigns import campaign_body, forty_members
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

Sessions = async_sessionmaker[AsyncSession]

__all__ = ["make_settings"]  # a fixture: the POS date window opened for member history


async def test_customer_profile_in_two_lines_without_the_full_phone(harness: Harness, sessions: Sessions,
                                                                  chain: Chain) -> None:
    h = harness
    now = h.clock.now()
    await add_members(sessions, chain, [
        Member("C001", phone="13800001234", joined_at=now - timedelta(days=200)),
        Member("C002", phone="13900001234", joined_at=now - timedelta(days=200), home_store="S002"),
        Member("C003", phone="13700005678", joined_at=now - timedelta(days=200), external_userid="wmC3",
               follow_userid="s1"),
    ], now)
    await sell(h.client, "P1", "C001", 88.0, now - timedelta(days=100))
    await h.say("s1", "客户 C001")
    reply = h.texts_for("s1")[-1]
    lines = reply.splitlines()
    assert len(lines) == 2, reply
    assert lines[0].startswith("C001") and "138****1234" in lines[0] and "沉睡" in lines[0] and "100天前" in lines[0]
    assert lines[1].startswith("建议：送唤醒礼") and "邀请添加" in lines[1]
    assert "13800001234" not in reply
    await h.say("s1", "客户 １２３４")  # full-width digits: the phone tail
    listing = h.texts_for("s1")[-1]
    assert "C001" in listing and "C002" in listing and "13800001234" not in listing
    assert listing.index("C001") < listing.index("C002")  # the sender's own store first
    await h.say("s1", "客户 5678")
    assert h.texts_for("s1")[-1].startswith("C003") and "邀请添加" not in h.texts_for("s1")[-1]
    await h.say("s1", "客户 9999")
    assert "没找到会员「9999」" in h.texts_for("s1")[-1]
    await h.say("s1", "客户")
    assert "客户 手机尾号4位" in h.texts_for("s1")[-1]


async def test_campaigns_in_chat_by_role_with_health(harness: Harness, sessions: Sessions, chain: Chain) -> None:
    h = harness
    await forty_members(h.client, sessions, chain, h.clock)
    await h.say("m1", "活动")
    assert h.texts_for("m1")[-1] == "现在没有进行中的活动。"
    await h.client.post("/api/campaigns", json=campaign_body(expected_min=100), headers=auth())
    await h.client.post("/api/campaigns/spring/launch", headers=auth())
    await campaign_tick(h.app[DEPS])
    await health_tick(h.app[DEPS])
    await h.say("s1", "活动")
    assert "只对店长、督导和管理员开放" in h.texts_for("s1")[-1]
    for userid in ("m1", "sup1", "admin"):
        await h.say(userid, "campaigns")
        text = h.texts_for(userid)[-1]
        assert "春季会员日：发券 34 人，已送达 0，待店员确认 26，已核销 0" in text, (userid, text)
        assert "⚠ 活动「春季会员日」目标人群只有 40 人" in text
    await h.say("m2", "活动")  # S002's manager: none of their staff sends it, they do not own it
    assert h.texts_for("m2")[-1] == "现在没有进行中的活动。"
    await h.say("sup2", "活动")
    assert h.texts_for("sup2")[-1] == "现在没有进行中的活动。"
