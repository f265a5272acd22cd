"""The store manager's alert cards on the phone: product names, the next step in one tap (a transfer from the
region's store with most to spare, 已补货, a recount for a negative stock), cleared cards greyed, stale taps."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.events import CardClick
from bot.keys import DEPS
from handlers import dispatch
from models.alert import Alert
from models.task import TaskCountLine, TaskInstance
from models.transfer import Transfer, TransferLine
from tests.alerts.test_alert_digest import pos_sale, tick
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

ROW_A001 = "徐汇店 A001 农夫山泉 550ml"


def rows(h: Harness, userid: str) -> list[tuple[str, str]]:
    [card] = h.sandbox.cards_for(userid)
    return [(r["keyname"], r["value"]) for r in card.card["horizontal_content_list"]]


def buttons(h: Harness, userid: str) -> list[tuple[str, str]]:
    return h.sandbox.cards_for(userid)[-1].buttons


async def alert_row(sessions: async_sessionmaker[AsyncSession], alert_id: int = 1) -> Alert:
    async with sessions() as s:
        alert = await s.get(Alert, alert_id)
        assert alert is not None
        return alert


async def low_a001_card(h: Harness) -> None:
    """S001 sells 16 of its 20 A001 (safety 5): 4 left; the digest reaches 王店长 after the 5-minute window."""
    await pos_sale(h, "POS-1", [("A001", 16)])
    await tick(h, minutes=5)


async def test_low_stock_card_names_the_product_and_the_store_to_transfer_from(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await pos_sale(h, "POS-S002", [("A001", 3)], store="S002")  # S002: 17, 12 above its line: the most to spare
    await low_a001_card(h)
    assert rows(h, "m1") == [(ROW_A001, "低于安全库存 现有4 安全5｜静安店可调12")]
    assert buttons(h, "m1") == [("全部确认", "alert:ackall:1"), ("暂停24小时", "alert:snoozeall:1"),
                                ("从静安店调货", "alert:transfer:1"), ("已补货 A001", "alert:restocked:1")]

    card = h.sandbox.find_card("m1", "alert:transfer:1")
    await h.sandbox.user_click("m1", "alert:transfer:1", card=card)
    await h.sandbox.user_click("m1", "alert:transfer:1", card=card)  # a double tap, before the card greys
    await h.settle()

    async with sessions() as s:
        transfers = (await s.execute(select(Transfer))).scalars().all()
        lines = (await s.execute(select(TransferLine.sku_id, TransferLine.qty))).all()
    assert [(t.from_store_id, t.to_store_id, t.requested_by, t.state) for t in transfers] == [
        (chain.stores["S002"].id, chain.stores["S001"].id, "m1", "requested")]
    assert lines == [(chain.skus["A001"].id, 1)]  # back up to the safety line
    alert = await alert_row(sessions)
    assert (alert.state, alert.acknowledged_by, alert.handled_as) == ("acknowledged", "m1", "transfer:1")
    assert h.texts_for("m1") == [
        "调拨单 1 已提交：从静安店(S002)调入 A001 农夫山泉 550ml ×1。\n已发给郑督导审批，结果会通知你。",
        "这条提醒已由你处理（已申请调拨 #1），无需再操作。",
    ]
    assert h.sandbox.cards_for("m1")[0].replace_name == "已申请调拨 #1"
    # the supervisor's approval card says who asked and how urgent
    [approval] = h.sandbox.cards_for("sup1")
    assert approval.card["main_title"]["desc"] == "王店长（徐汇店(S001)）申请从 静安店(S002) 调货"
    assert [(r["keyname"], r["value"]) for r in approval.card["horizontal_content_list"]][:2] == [
        ("申请人", "王店长（徐汇店）"), ("紧急程度", "低于安全线（A001 存4/安全5）")]


async def test_no_store_with_surplus_says_so_and_restocked_records_who(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await pos_sale(h, "POS-S002", [("A001", 15)], store="S002")  # S002 at its line: nothing to spare
    await low_a001_card(h)
    assert rows(h, "m1") == [(ROW_A001, "低于安全库存 现有4 安全5｜区内无店可调")]
    assert "alert:transfer:1" not in [k for _, k in buttons(h, "m1")]

    h.clock.advance(minutes=1)
    await h.tap("m1", "alert:restocked:1")
    alert = await alert_row(sessions)
    assert (alert.state, alert.acknowledged_by, alert.handled_as) == ("acknowledged", "m1", "restocked")
    assert h.texts_for("m1")[-1] == ("A001 农夫山泉 550ml 记为已补货。"
                                     "到货后请扫码入库，库存回到安全线以上提醒会自动解除。")
    assert h.sandbox.cards_for("m1")[0].replace_name == "已补货"
    async with sessions() as s:
        assert (await s.execute(select(Transfer))).first() is None


async def test_a_supervisor_card_offers_no_transfer_they_could_not_request(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await low_a001_card(h)
    await tick(h, minutes=120)  # unacknowledged: the chain reaches the supervisor
    await tick(h, minutes=5)
    [card] = h.sandbox.cards_for("sup1")
    assert [k for _, k in card.buttons] == ["alert:ackall:2", "alert:snoozeall:2", "alert:restocked:1"]
    assert [(r["keyname"], r["value"]) for r in card.card["horizontal_content_list"]] == [
        (ROW_A001, "低于安全库存 现有4 安全5｜静安店可调15")]


async def test_negative_stock_offers_a_recount_and_cannot_be_snoozed(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await pos_sale(h, "POS-1", [("A001", 25)])  # 20 on the books, 25 sold: -5
    await tick(h, minutes=5)
    assert rows(h, "m1") == [(ROW_A001, "负库存 现有-5 安全5｜请复盘")]
    assert buttons(h, "m1") == [("全部确认", "alert:ackall:1"), ("安排复盘 A001", "alert:recount:1")]
    assert h.sandbox.cards_for("m1")[0].card["sub_title_text"] == "负库存不能暂停，请先安排复盘。点卡片看完整清单。"

    # a snooze key sent anyway (an old client, a forged tap) is refused in plain words and changes nothing
    for key in ("alert:snooze:1", "alert:snoozeall:1"):
        async with sessions() as s, s.begin():
            await dispatch(CardClick(from_user="m1", create_time=h.clock.now(), agent_id=1, key=key,
                                     task_id="alertdigest-1", card_type="button_interaction", response_code="rc"),
                           h.app[DEPS], s)
        await h.settle()
        assert h.texts_for("m1")[-1] == ("负库存不能暂停：A001 农夫山泉 550ml 账上是负数，说明记录有误。"
                                         "请点「安排复盘」，或点清实物后回复「盘点 编码 数量」。")
    alert = await alert_row(sessions)
    assert (alert.state, alert.snoozed_until) == ("open", None)

    h.clock.advance(minutes=1)
    await h.say("m1", "库存 A001")
    assert h.texts_for("m1")[-1] == ("徐汇店 A001 农夫山泉 550ml：现有 -5，安全库存 5。"
                                     "账上是负数，多半是漏记了入库或出库，"
                                     "先别补货：请点清实物后回复「盘点 A001 实际数量」。")

    h.clock.advance(minutes=1)
    await h.tap("m1", "alert:recount:1")
    async with sessions() as s:
        [task] = (await s.execute(select(TaskInstance))).scalars().all()
        [line] = (await s.execute(select(TaskCountLine))).scalars().all()
    assert (task.template_key, task.proof, task.store_id, task.state, task.title) == (
        "recount-1", "count", chain.stores["S001"].id, "open", "复盘 A001 农夫山泉 550ml")
    assert (line.sku_id, line.counted_at) == (chain.skus["A001"].id, None)
    alert = await alert_row(sessions)
    assert (alert.state, alert.acknowledged_by, alert.handled_as) == ("acknowledged", "m1", f"recount:{task.id}")
    assert h.texts_for("m1")[-1] == ("已安排复盘：「复盘 A001 农夫山泉 550ml」已发给徐汇店的店员，"
                                     "点清实物回复「盘点 A001 数量」后账会更正。")
    assert h.sandbox.cards_for("m1")[0].replace_name == "已安排复盘"
    for clerk in ("s1", "s2"):  # the store's clerks both get the card listing the SKU
        [task_card] = h.sandbox.cards_for(clerk)
        assert task_card.card["main_title"]["title"] == "复盘 A001 农夫山泉 550ml"
        assert ("进度", "还差 1 个") in [(r["keyname"], r["value"]) for r in task_card.card["horizontal_content_list"]]

    h.clock.advance(minutes=1)
    await h.say("s2", "盘点 A001 3")
    async with sessions() as s:
        done = await s.get(TaskInstance, task.id)
        assert done is not None and done.state == "done"
    for clerk in ("s1", "s2"):  # both copies of the recount card read as done, not "还差 1 个"
        [task_card] = h.sandbox.cards_for(clerk)
        assert ("进度", "已全部盘完") in [(r["keyname"], r["value"]) for r in task_card.card["horizontal_content_list"]]
        assert task_card.buttons == []


async def test_a_card_whose_alert_cleared_by_itself_is_greyed_and_a_stale_tap_needs_nothing(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await low_a001_card(h)
    [card] = h.sandbox.cards_for("m1")
    stale = dataclasses.replace(card, updates=[])  # the same card, still open on another device
    h.clock.advance(minutes=10)
    r = await h.client.post("/api/stock/receipts", headers=auth(), json={
        "receipt_id": "R1", "store": "S001", "received_at": h.clock.now().isoformat(),
        "lines": [{"sku": "A001", "qty": 10}]})
    assert r.status == 200
    await h.settle()
    assert (await alert_row(sessions)).state == "resolved"
    assert card.replace_name == "已自动解除" and card.buttons == []  # updated with the code from message/send
    assert card.response_code is not None

    h.clock.advance(minutes=1)
    await h.sandbox.user_click("m1", "alert:restocked:1", card=stale)
    await h.settle()
    assert h.texts_for("m1") == ["这条提醒已经解除，无需处理。"]
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("m1", "alert:ackall:1", card=dataclasses.replace(card, updates=[]))
    await h.settle()
    assert h.texts_for("m1")[-1] == "这条提醒已经解除，无需处理。"
    assert not any("已处理过" in t for t in h.texts_for("m1"))
    alert = await alert_row(sessions)
    assert (alert.state, alert.acknowledged_by, alert.handled_as) == ("resolved", None, None)


async def test_a_tapped_card_is_not_regreyed_when_its_alert_clears_later(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await low_a001_card(h)
    h.clock.advance(minutes=1)
    await h.tap("m1", "alert:ackall:1")
    assert h.texts_for("m1")[-1] == "已确认 1 条库存提醒。到货入库后提醒会自动解除。"
    r = await h.client.post("/api/stock/receipts", headers=auth(), json={
        "receipt_id": "R1", "store": "S001", "received_at": h.clock.now().isoformat(),
        "lines": [{"sku": "A001", "qty": 10}]})
    assert r.status == 200
    await h.settle()
    assert h.sandbox.cards_for("m1")[0].replace_name == "已确认"


async def test_manager_and_supervisor_tapping_at_once_make_one_decision(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await low_a001_card(h)
    await tick(h, minutes=120)  # unacknowledged: the supervisor's copy arrives too
    await tick(h, minutes=5)
    mine = h.sandbox.find_card("m1", "alert:restocked:1")
    theirs = h.sandbox.find_card("sup1", "alert:restocked:1")
    await h.sandbox.user_click("sup1", "alert:restocked:1", card=theirs)
    await h.sandbox.user_click("m1", "alert:transfer:1", card=mine)
    await h.settle()
    alert = await alert_row(sessions)
    assert (alert.acknowledged_by, alert.handled_as) == ("sup1", "restocked")
    assert h.texts_for("m1")[-1] == "这条提醒已由郑督导处理（已补货），无需再操作。"
    async with sessions() as s:
        assert (await s.execute(select(Transfer))).first() is None


async def test_handling_from_one_card_greys_the_other_copies_with_who(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await pos_sale(h, "POS-1", [("A001", 16)])
    await tick(h, minutes=5)
    await tick(h, minutes=120)  # nobody acted: the supervisor's copy arrives
    await tick(h, minutes=5)
    [escalated] = h.sandbox.cards_for("sup1")
    await tap_and_settle(h, "m1", "alert:restocked:1")
    assert h.sandbox.cards_for("m1")[0].replace_name == "已补货"
    assert escalated.replace_name == "已由王店长处理" and escalated.buttons == []
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("sup1", "alert:ackall:2", card=dataclasses.replace(escalated, updates=[]))
    await h.settle()
    assert h.texts_for("sup1")[-1] == "这条提醒已由王店长处理（已补货），无需再操作。"


async def tap_and_settle(h: Harness, userid: str, key: str) -> None:
    h.clock.advance(minutes=1)
    await h.tap(userid, key)


async def test_a_transfer_key_on_a_negative_stock_asks_for_a_recount_instead(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await pos_sale(h, "POS-1", [("A001", 25)])
    await tick(h, minutes=5)
    async with sessions() as s, s.begin():
        await dispatch(CardClick(from_user="m1", create_time=h.clock.now(), agent_id=1, key="alert:transfer:1",
                                 task_id="alertdigest-1", card_type="button_interaction", response_code="rc"),
                       h.app[DEPS], s)
    await h.settle()
    assert h.texts_for("m1")[-1] == "A001 农夫山泉 550ml 账上是负数，先别调货：请点「安排复盘」核实实物。"
    assert (await alert_row(sessions)).state == "open"
    async with sessions() as s:
        assert (await s.execute(select(Transfer))).first() is None
