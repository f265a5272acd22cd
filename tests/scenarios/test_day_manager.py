"""A store manager's day at 徐汇店 (S001), as 王店长 (m1) lives it on his phone: a count that waits on him (tapped
twice and delivered three times), the stock alerts after the morning's sales, a transfer to 静安店 shipped short
by chat, the shortage on receipt, 积分 with no points — and a barcode typed where a transfer id belongs."""

from __future__ import annotations

from tests.factories import Chain
from tests.scenarios.day import Day


def rows(card: dict[str, object]) -> list[tuple[str, str]]:
    listed = card.get("horizontal_content_list") or []
    assert isinstance(listed, list)
    return [(r["keyname"], r["value"]) for r in listed]


async def test_a_managers_day(day: Day, chain: Chain) -> None:
    d = day
    await d.at(9, 0)
    help_text = await d.ask("m1", "帮助")
    assert help_text.startswith("店长可以这样回复我：\n· 待审批 —— 等你审批的盘点差异")
    assert "· 发货 12 [数量] —— 发出调拨单 12，库存不够可少发" in help_text

    # a clerk's count far off the books waits on him: the card, 待审批, then two taps and a retried delivery
    await d.ask("s1", "盘点 可乐 47个")
    card = d.card("m1", "count-1")
    assert card.card["main_title"] == {"title": "盘点差异待审批", "desc": "徐汇店 A002 可口可乐 330ml"}
    assert rows(card.card)[:4] == [("实点", "47"), ("系统", "20"), ("差异", "+27"), ("盘点人", "李小妹（徐汇店）")]
    assert await d.ask("m1", "待审批") == (
        "等你审批（1 项）：\n盘点 #1 徐汇店(S001) A002 可口可乐 330ml：实点 47，系统 20，差 +27（李小妹，已等 刚刚）\n"
        "在对应的审批卡片上点「同意」或「拒绝」。")
    d.h.clock.advance(minutes=1)
    first = await d.h.sandbox.user_click("m1", "count:approve:1", card=card, repeat=3)  # WeCom retries it
    second = await d.h.sandbox.user_click("m1", "count:approve:1", card=card)  # the thumb taps again
    assert first.ok and second.ok
    await d.h.settle()
    assert d.texts("m1")[-1] == "盘点单 1 已处理过（已同意），不会重复入账。"
    assert card.replace_name == "已同意"
    assert d.texts("s1")[-1] == "你的盘点 A002 可口可乐 330ml（实点 47，系统 20）已由王店长同意并入账，调整 +27。"
    assert await d.stock("S001", "A002") == 47  # booked once
    assert await d.ask("m1", "待审批") == "现在没有等你审批的调拨或盘点差异。"

    # 10:00 the till sells 薯片 down below its safety line: one digest card; confirming twice says it is done
    await d.at(10, 0)
    await d.sale("POS-1", "S001", "A003", 17)
    d.h.clock.advance(minutes=6)  # the digest window closes
    await d.sale("POS-2", "S001", "A004", 1)
    alerts = d.card("m1", "alertdigest-")
    assert ("徐汇店 A003 乐事薯片 原味", "低于安全库存 现有3 安全5｜静安店可调15") in rows(alerts.card)
    ack_all = next(k for _, k in alerts.buttons if k.startswith("alert:ackall:"))
    d.h.clock.advance(minutes=1)
    await d.h.sandbox.user_click("m1", ack_all, card=alerts)
    await d.h.sandbox.user_click("m1", ack_all, card=alerts)
    await d.h.settle()
    done, again = d.texts("m1")[-2:]
    assert done.startswith("已确认 ")
    assert "条库存提醒" in done and "提醒会自动解除" in done
    assert again == "这些提醒已由你处理（已确认），无需再操作。"

    # 11:00 静安店 asks for water; the supervisor approves; the ship card names the goods; he ships 3 of 5
    await d.at(11, 0)
    await d.ask("s3", "调拨 S001 A001 5")
    await d.tap("sup1", "transfer:approve:1")
    ship = d.card("m1", "transfer-1-ship")
    assert ship.card["main_title"] == {"title": "调拨出库 #1",
                                       "desc": "徐汇店(S001) → 静安店(S002)：请备货发出，发货后点按钮"}
    assert rows(ship.card) == [("A001 农夫山泉 550ml", "批准×5｜本店存20")]
    assert ship.buttons == [("确认出库", "transfer:ship:1")]
    assert await d.ask("m1", "发货 6900000000011") == (  # a barcode where the transfer id belongs
        "「6900000000011」像是商品条码，不是调拨单号。发货写法：发货 <调拨单号> [数量]，例如「发货 12」按账上库存发，"
        "「发货 12 4」只发 4 个；多个商品写「发货 12 A001 4 A002 2」。")
    assert await d.ask("m1", "发货 1 3") == (
        "调拨单 1 已出库：A001 农夫山泉 550ml ×3（批准 5）。\n已通知调入门店按实发数量签收。")
    assert ship.replace_name == "部分出库" and ship.buttons == []  # the card no longer offers a second shipment
    assert await d.stock("S001", "A001") == 17
    assert await d.ask("m1", "我的调拨") == (
        "本店进行中的调拨单：\n#1 调出 → 静安店(S002)：A001 农夫山泉 550ml ×3\n  已出库，运输中，等对方签收")

    # 15:00 静安店 counts 2 on arrival: he reads the shortage once, as the discrepancy notice
    await d.at(15, 0)
    before = len(d.texts("m1"))
    await d.say("s3", "签收 1 2")
    assert d.texts("m1")[before:] == [
        "调拨单 1 签收有差异（徐汇店(S001) → 静安店(S002)）：\nA001 实发 3，实收 2，少 1\n"
        "已按实收入账。请两店店长核对出库和到货，查明原因后告知督导。"]
    assert await d.ask("m1", "我的调拨") == "本店现在没有进行中的调拨单。缺货时发「调拨 来源门店 商品 数量」申请调入。"

    # no store task is a manager's here: 积分 says so plainly, never "第 1 名，保持住！"
    assert await d.ask("m1", "积分") == "2026-11 你的积分 0：本月还没有得分。发「任务」看本店的待办，按时完成就能上榜。"

    # the day as it looks on the phone at 375×812: nothing cut off sideways
    await d.phones("manager", "m1")
