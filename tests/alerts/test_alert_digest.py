"""Alerts as people get them: one digest card per window, escalation when nobody acknowledges, quiet hours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.events import CardClick
from bot.keys import DEPS
from bot.sandbox import Sandbox
from handlers import dispatch
from models.alert import Alert, AlertDigest, AlertNotice
from models.catalog import Sku
from models.stock import StockLevel, book_move
from scheduler.stock_jobs import alert_tick, evaluate_rules
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.stock.test_pos import sign

Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Make:
    """The harness with extra config sections (quiet hours, chains); only settle() moves messages."""

    async def make(**sections: dict[str, Any]) -> Harness:
        settings = make_settings(wecom={"api_base": sandbox.config.public_url}, inbox={"workers": 0},
                                 outbox={"background": False}, **sections)
        client = await make_client(settings)
        sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
        return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)

    return make


async def pos_sale(h: Harness, sale_id: str, lines: list[tuple[str, int]], store: str = "S001") -> bool:
    body = json.dumps({"sale_id": sale_id, "store": store, "sold_at": h.clock.now().isoformat(),
                       "lines": [{"sku": s, "qty": q, "unit_price": 1} for s, q in lines]}).encode()
    r = await h.client.post("/api/pos/sales", data=body, headers=sign(body))
    assert r.status == 200, await r.text()
    return bool((await r.json())["duplicate"])


async def tick(h: Harness, **advance: float) -> None:
    if advance:
        h.clock.advance(timedelta(**advance))
    await alert_tick(h.app[DEPS])
    await h.settle()


def card_keys(h: Harness, userid: str) -> list[list[str]]:
    return [[k for _, k in c.buttons] for c in h.sandbox.cards_for(userid)]


async def test_sale_under_the_line_reaches_the_manager_as_one_digest_within_the_window(
    make_harness: Make, chain: Chain
) -> None:
    h = await make_harness()
    assert await pos_sale(h, "POS-1", [("A001", 16)]) is False
    await tick(h)
    assert h.sandbox.cards_for("m1") == []  # the window is still open: more may come
    await tick(h, seconds=299)
    assert h.sandbox.cards_for("m1") == []
    assert await pos_sale(h, "POS-1", [("A001", 16)]) is True  # replay: nothing more
    await tick(h, seconds=1)
    [card] = h.sandbox.cards_for("m1")
    assert card.at <= datetime(2026, 11, 24, 1, 5, tzinfo=UTC)
    assert card_keys(h, "m1") == [["alert:ackall:1", "alert:snoozeall:1", "alert:transfer:1", "alert:restocked:1"]]
    assert "A001" in json.dumps(card.card, ensure_ascii=False)
    assert card.card["card_action"]["url"].endswith("/dashboard")
    await tick(h, minutes=10)
    assert len(h.sandbox.cards_for("m1")) == 1
    assert h.sandbox.cards_for("s1") == [] and h.sandbox.cards_for("sup1") == []


async def add_skus(sessions: async_sessionmaker[AsyncSession], chain: Chain, n: int) -> list[str]:
    codes = []
    async with sessions() as s, s.begin():
        for i in range(n):
            sku = Sku(code=f"B{i:03d}", name=f"测试商品{i}")
            s.add(sku)
            await s.flush()
            s.add(StockLevel(store_id=chain.stores["S001"].id, sku_id=sku.id, on_hand=0, safety_stock=5))
            await s.flush()
            await book_move(s, store_id=chain.stores["S001"].id, sku_id=sku.id, kind="opening", qty=20,
                            at=datetime(2026, 11, 23, tzinfo=UTC))
            codes.append(sku.code)
    return codes


async def test_ten_skus_under_the_line_still_make_one_card(
    make_harness: Make, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = await make_harness()
    codes = await add_skus(sessions, chain, 10)
    await pos_sale(h, "POS-A", [(c, 16) for c in codes[:6]])
    await tick(h, seconds=60)
    await pos_sale(h, "POS-B", [(c, 17) for c in codes[6:]])
    await tick(h, seconds=240)
    [card] = h.sandbox.cards_for("m1")
    body = card.card
    assert "共 10 条" in body["main_title"]["desc"] and "另有 4 条" in body["main_title"]["desc"]
    assert len(body["horizontal_content_list"]) == 6 and len(body["button_list"]) == 6
    assert body["horizontal_content_list"][0]["keyname"] == f"徐汇店 {codes[6]} 测试商品6"  # worst first: 3 left of 5
    assert h.sandbox.messages_for("m1") == [card]


async def test_unacknowledged_goes_to_the_supervisor_after_the_wait_acknowledged_stops(
    make_harness: Make, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = await make_harness()
    await pos_sale(h, "POS-1", [("A001", 16)])
    await pos_sale(h, "POS-2", [("A002", 16)], store="S002")
    await tick(h, minutes=5)
    assert len(h.sandbox.cards_for("m1")) == len(h.sandbox.cards_for("m2")) == 1
    h.clock.advance(minutes=1)
    await h.tap("m2", "alert:ackall:2")  # S002's manager acknowledges; S001's does not
    assert h.sandbox.cards_for("m2")[0].replace_name == "已确认"
    await tick(h, minutes=110)
    assert h.sandbox.cards_for("sup1") == []  # 116 min: not yet
    await tick(h, minutes=4)
    await tick(h, minutes=5)
    [escalated] = h.sandbox.cards_for("sup1")
    text = json.dumps(escalated.card, ensure_ascii=False)
    assert "A001" in text and "A002" not in text  # only the unacknowledged S001 alert
    await tick(h, minutes=30)
    await alert_tick(h.app[DEPS])  # a second process / a restart fires nothing again
    await h.settle()
    assert len(h.sandbox.cards_for("sup1")) == 1
    async with sessions() as s:
        states = dict((await s.execute(select(Alert.sku_id, Alert.state))).all())
    assert states == {chain.skus["A001"].id: "open", chain.skus["A002"].id: "acknowledged"}


async def test_staff_cannot_acknowledge(make_harness: Make, chain: Chain,
                                        sessions: async_sessionmaker[AsyncSession]) -> None:
    h = await make_harness()
    await pos_sale(h, "POS-1", [("A001", 16)])
    await tick(h, minutes=5)
    deps = h.app[DEPS]
    async with sessions() as s, s.begin():
        await dispatch(CardClick(from_user="s1", create_time=h.clock.now(), agent_id=1, key="alert:ack:1",
                                 task_id="x", card_type="button_interaction", response_code="rc"), deps, s)
    await h.settle()
    assert any("只有本店店长" in t for t in h.texts_for("s1"))
    async with sessions() as s:
        assert (await s.execute(select(Alert.state))).scalar_one() == "open"


async def test_quiet_hours_hold_until_opening_but_critical_passes(make_harness: Make, chain: Chain) -> None:
    h = await make_harness(alerts={"quiet_hours": "22:00-08:00"})
    h.clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai
    await pos_sale(h, "POS-N", [("A001", 16), ("A002", 25)])  # A001 low (held), A002 negative (critical)
    await tick(h, minutes=5)
    [night] = h.sandbox.cards_for("m1")
    text = json.dumps(night.card, ensure_ascii=False)
    assert "A002" in text and "负库存" in text and "A001" not in text
    await tick(h, minutes=60)
    await tick(h, hours=7, minutes=54)  # 07:59 local
    assert len(h.sandbox.cards_for("m1")) == 1
    h.clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))  # 08:00 local: opening
    await tick(h)
    morning = h.sandbox.cards_for("m1")[1]
    assert "A001" in json.dumps(morning.card, ensure_ascii=False)
    assert morning.at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


async def test_rules_on_schedule_raise_resolve_and_stay_unique(
    make_harness: Make, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = await make_harness()
    deps = h.app[DEPS]
    s001, a001 = chain.stores["S001"].id, chain.skus["A001"].id
    async with sessions() as s, s.begin():
        await book_move(s, store_id=s001, sku_id=a001, kind="damage", qty=-17, at=h.clock.now())
    # A001 low + the 19 other levels with no sale since they were stocked on 11-01 (A001 moved just now)
    assert await evaluate_rules(deps) == 20
    assert await evaluate_rules(deps) == 0  # one open alert per (store, sku, kind)
    async with sessions() as s, s.begin():
        await book_move(s, store_id=s001, sku_id=a001, kind="receipt", qty=30, at=h.clock.now())
    await evaluate_rules(deps)
    async with sessions() as s:
        rows = (await s.execute(select(Alert.kind, Alert.state).where(Alert.sku_id == a001,
                                                                     Alert.store_id == s001))).all()
        assert sorted(rows) == [("low_stock", "resolved")]
        n_open = (await s.execute(select(func.count()).select_from(Alert).where(Alert.state == "open"))).scalar_one()
        assert n_open == 19
    h.clock.advance(days=4)  # nothing moved A001 for more than no_movement_days: now it is slow-moving
    assert await evaluate_rules(deps) == 1


async def test_snooze_holds_the_chain_until_it_ends(make_harness: Make, chain: Chain,
                                                    sessions: async_sessionmaker[AsyncSession]) -> None:
    h = await make_harness()
    await pos_sale(h, "POS-1", [("A001", 16)])
    await tick(h, minutes=5)
    h.clock.advance(minutes=1)
    await h.tap("m1", "alert:snoozeall:1")
    assert h.sandbox.cards_for("m1")[0].replace_name == "已暂停24小时"
    await tick(h, hours=3)
    assert h.sandbox.cards_for("sup1") == []
    await tick(h, hours=21)  # the snooze ended, still unacknowledged: the overdue step fires now
    await tick(h, minutes=5)
    assert len(h.sandbox.cards_for("sup1")) == 1


async def test_alert_resolves_itself_when_stock_comes_back(make_harness: Make, chain: Chain,
                                                           sessions: async_sessionmaker[AsyncSession]) -> None:
    h = await make_harness()
    await pos_sale(h, "POS-1", [("A001", 16)])
    r = await h.client.post("/api/stock/receipts", headers={"Authorization": "Bearer test-admin-token"}, json={
        "receipt_id": "R1", "store": "S001", "received_at": h.clock.now().isoformat(),
        "lines": [{"sku": "A001", "qty": 10}]})
    assert r.status == 200
    await tick(h, minutes=5)
    assert h.sandbox.cards_for("m1") == []  # cleared before the window closed: nothing to say
    async with sessions() as s:
        assert (await s.execute(select(Alert.state))).scalar_one() == "resolved"


async def test_two_processes_ticking_at_once_fire_each_step_and_digest_once(
    make_harness: Make, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = await make_harness()
    await pos_sale(h, "POS-1", [("A001", 16)])
    deps = h.app[DEPS]
    h.clock.advance(minutes=5)
    await asyncio.gather(alert_tick(deps), alert_tick(deps), alert_tick(deps))
    h.clock.advance(minutes=120)
    await asyncio.gather(alert_tick(deps), alert_tick(deps), alert_tick(deps))
    h.clock.advance(minutes=5)
    await asyncio.gather(alert_tick(deps), alert_tick(deps), alert_tick(deps))
    await h.settle()
    assert (len(h.sandbox.cards_for("m1")), len(h.sandbox.cards_for("sup1"))) == (1, 1)
    async with sessions() as s:
        notices = (await s.execute(select(AlertNotice.step, AlertNotice.recipient))).all()
        assert sorted(notices) == [(0, "m1"), (1, "sup1")]
        assert (await s.execute(select(func.count()).select_from(AlertDigest))).scalar_one() == 2
