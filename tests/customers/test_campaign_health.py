"""The seed's four campaign failures, each caught by storebot and told to the owner in WeCom with what to do:
a new-members-only audience, a silent push failure, a coupon cap of 100, redemption too hard. Plus unconfirmed
senders, escalation to the supervisor, and acknowledging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import models.campaign as campaign_model
import models.campaign_send as campaign_send_model
from bot.keys import DEPS
from bot.sandbox.externalcontact import confirm, contacts_of
from models.campaign import Coupon
from models.customer import Customer
from scheduler.campaign_jobs import campaign_tick, health_tick
from scheduler.stock_jobs import alert_tick
from tests.conftest import auth
from tests.customer_support import Member, add_members, make_settings, sell
from tests.customers.test_campaigns import campaign_body, forty_members
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

Sessions = async_sessionmaker[AsyncSession]

__all__ = ["make_settings"]  # a fixture: the POS date window opened for member history


def befriend_all(h: Harness) -> None:
    ec = contacts_of(h.sandbox)
    ec.contacts["s1"] = {f"wmM{i:02d}": "" for i in range(1, 31, 2)}
    ec.contacts["s2"] = {f"wmM{i:02d}": "" for i in range(2, 31, 2)}


async def launch(h: Harness, **over: object) -> None:
    r = await h.client.post("/api/campaigns", json=campaign_body(**over), headers=auth())
    assert r.status == 201, await r.text()
    r = await h.client.post("/api/campaigns/spring/launch", headers=auth())
    assert (await r.json())["launched"] is True
    await h.settle()


async def confirm_all(h: Harness) -> None:
    deps = h.app[DEPS]
    await campaign_tick(deps)
    for task in list(contacts_of(h.sandbox).tasks.values()):
        confirm(h.sandbox, task.msgid)
    await campaign_tick(deps)


async def told(h: Harness) -> None:
    """Campaign alerts go out in the person's next alert digest (handlers/alert_delivery.py): close the window,
    flush, deliver."""
    h.clock.advance(seconds=h.app[DEPS].config.alerts.digest_seconds)
    await alert_tick(h.app[DEPS])
    await h.settle()


def owner_heard(h: Harness, words: str, userid: str = "m1") -> bool:
    return any(words in t for t in h.texts_for(userid))


async def test_new_members_only_audience_is_caught_at_preflight_and_at_launch(
    harness: Harness, sessions: Sessions, chain: Chain,
) -> None:
    h = harness
    now = h.clock.now()
    members = [Member(f"N{i}", joined_at=now - timedelta(days=3)) for i in range(3)]
    members += [Member(f"O{i}", joined_at=now - timedelta(days=300)) for i in range(40)]
    await add_members(sessions, chain, members, now)
    await h.client.put("/api/segments/everyone", json={"name": "只含新会员", "rule": {"stage": "new"}}, headers=auth())
    r = await h.client.post("/api/campaigns", json=campaign_body(expected_min=30), headers=auth())
    assert any("只有 3 人，低于预期的 30 人" in p for p in (await r.json())["problems"])
    await h.settle()
    assert "只有 3 人" in h.sandbox.cards_for("m1")[-1].card["main_title"]["desc"]  # on the preflight card
    await h.client.post("/api/campaigns/spring/launch", headers=auth())
    await told(h)
    assert owner_heard(h, "目标人群只有 3 人，低于预期的 30 人：检查人群「everyone」的规则（例如是否只选了新会员）")
    assert await health_tick(h.app[DEPS]) == (0, 0)  # still open: told once, not again


async def test_silent_push_failure_for_one_sender_is_caught_with_who_and_why(
    harness: Harness, sessions: Sessions, chain: Chain,
) -> None:
    h = harness
    await forty_members(h.client, sessions, chain, h.clock)
    befriend_all(h)
    contacts_of(h.sandbox).contacts["s2"] = {}  # s2's customers all deleted them: WeCom answers status 2
    await launch(h)
    await confirm_all(h)
    assert (await health_tick(h.app[DEPS]))[0] == 1
    await told(h)
    assert owner_heard(h, "已不是好友")
    assert owner_heard(h, "张伟 的失败最多") and owner_heard(h, "请 张伟 检查客户好友关系")
    report = await (await h.client.get("/api/campaigns/spring/report", headers=auth())).json()
    assert report["failed"]["not_friend"] > 0 and report["delivered"] > 0


async def test_coupon_cap_is_caught_at_preflight_at_80_and_at_100_percent(
    harness: Harness, sessions: Sessions, chain: Chain,
) -> None:
    h = harness
    await forty_members(h.client, sessions, chain, h.clock)
    befriend_all(h)
    offer = {**campaign_body()["offer"], "cap_total": 5}
    r = await h.client.post("/api/campaigns", json=campaign_body(offer=offer), headers=auth())
    assert any("放开领取上限到至少 34 张" in p for p in (await r.json())["problems"])
    await h.client.post("/api/campaigns/spring/launch", headers=auth())
    async with sessions() as s:
        codes = list((await s.execute(select(Customer.customer_id, Coupon.code)
                                      .join(Coupon, Coupon.customer_pk == Customer.id).limit(5))).all())
    for n, (cid, code) in enumerate(codes[:4]):
        assert (await sell(h.client, f"C{n}", cid, 30.0, h.clock.now(), coupon_code=code))["coupon"] == "redeemed"
    await health_tick(h.app[DEPS])
    await told(h)
    assert owner_heard(h, "达到上限 5 张的 80%：效果好的话，放开领取上限")
    cid, code = codes[4]
    await sell(h.client, "C5", cid, 30.0, h.clock.now(), coupon_code=code)
    await health_tick(h.app[DEPS])
    await told(h)
    assert owner_heard(h, "到达上限 5 张，后面的会员用不了券：放开领取上限")


async def test_hard_redemption_is_caught_24_hours_after_launch(
    harness: Harness, sessions: Sessions, chain: Chain,
) -> None:
    h = harness
    await forty_members(h.client, sessions, chain, h.clock)
    befriend_all(h)
    await launch(h)
    await confirm_all(h)
    h.clock.advance(hours=23)
    await health_tick(h.app[DEPS])
    await told(h)
    assert not owner_heard(h, "只核销")  # too early to judge
    h.clock.advance(hours=2)
    await health_tick(h.app[DEPS])
    await told(h)
    assert owner_heard(h, "发出 24 小时只核销 0 张，远低于预计的 1 张：到门店试一次核销")


async def test_unconfirmed_senders_are_named_then_escalated_to_the_supervisor_until_acknowledged(
    harness: Harness, sessions: Sessions, chain: Chain,
) -> None:
    h = harness
    await forty_members(h.client, sessions, chain, h.clock)
    befriend_all(h)
    await launch(h)
    await campaign_tick(h.app[DEPS])
    h.clock.advance(hours=12)
    await health_tick(h.app[DEPS])
    await told(h)
    assert owner_heard(h, "还有 2 位店员超过 12 小时没确认发送（李小妹、张伟）：提醒 2 位店员确认发送")
    h.clock.advance(minutes=121)
    assert (await health_tick(h.app[DEPS]))[1] == 1
    await told(h)
    assert owner_heard(h, "以下活动问题还没人处理", userid="sup1")
    card = h.sandbox.cards_for("m1")[-1]
    ack_key = card.card["button_list"][0]["key"]
    await h.tap("m1", ack_key)
    h.clock.advance(hours=6)
    assert (await health_tick(h.app[DEPS]))[1] == 0  # acknowledged: the admin is not woken
    assert not owner_heard(h, "还没人处理", userid="admin")


async def test_big_senders_get_tasks_of_at_most_the_limit_and_a_refused_task_is_reported(
    harness: Harness, sessions: Sessions, chain: Chain, monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    monkeypatch.setattr(campaign_model, "TASK_MAX", 5)
    monkeypatch.setattr(campaign_send_model, "TASK_MAX", 5)
    await forty_members(h.client, sessions, chain, h.clock)
    befriend_all(h)
    del h.sandbox.config.users["s2"]  # WeCom refuses s2's tasks (60111: userid not found)
    await launch(h)
    await confirm_all(h)
    tasks = list(contacts_of(h.sandbox).tasks.values())
    assert all(t.sender == "s1" and len(t.external_userids) <= 5 for t in tasks) and len(tasks) == 3
    assert sum(len(t.external_userids) for t in tasks) == 12  # s1's reachable treatment members (5 + 5 + 2)
    await health_tick(h.app[DEPS])
    await told(h)
    assert owner_heard(h, "企业微信拒绝 14") and owner_heard(h, "张伟 的失败最多")
