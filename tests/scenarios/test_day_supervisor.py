"""A region supervisor's day, as 郑督导 (sup1, 华东区) lives it on his phone: yesterday left a low shelf, two
transfers waiting and missed tasks; the 08:30 digest says so; 待审批 lists what waits on him; an approval tapped
twice and delivered three times counts once; stock across the region; the region's board — and the slips."""

from __future__ import annotations

from tests.factories import Chain
from tests.scenarios.day import Day, local


async def test_a_supervisors_day(day: Day, chain: Chain) -> None:
    d = day
    # yesterday: the morning tasks go out and nobody does them; the till empties a shelf; two stores ask for goods
    d.h.clock.set(local(7, 30, day=23))
    await d.at(9, 0, day=23)
    await d.push()
    await d.at(13, 0, day=23)
    await d.sale("POS-1", "S001", "A001", 17)
    await d.ask("s1", "调拨 S002 A002 5")
    await d.ask("s3", "调拨 S001 A003 4")
    await d.ask("s4", "调拨 S004 A001 2")  # another region's: never on his phone

    # 08:30 the digest, once; not a minute before
    await d.at(8, 29)
    assert await d.digests() == 0
    await d.at(8, 30)
    assert await d.digests() == 2  # 华东 and 华南
    await d.at(8, 31)
    assert await d.digests() == 0
    [digest] = [m for m in d.h.sandbox.messages_for("sup1") if m.msgtype == "markdown"]
    text = digest.payload["markdown"]["content"]
    assert text.startswith("### 华东区晨报 11-24\n**未处理的库存提醒 ")
    assert "> 徐汇店 A001 农夫山泉 550ml：低于安全库存（现有 3）" in text
    assert ("**超时的调拨 2 张**\n> #1 静安店→徐汇店：等审批已 19 小时，发「待审批」处理\n"
            "> #2 徐汇店→静安店：等审批已 19 小时，发「待审批」处理") in text
    assert "**昨天漏做的任务 2 个**\n> 徐汇店「晨检」（" in text and "> 静安店「晨检」（钱多多）" in text
    assert "天河店" not in text and "福田店" not in text
    assert text.endswith("发「待审批」处理等你审批的事项，发「我的调拨」看本区调拨进度。</font>")

    # 08:40 what waits on him, with ids
    await d.at(8, 40)
    assert await d.ask("sup1", "待审批") == (
        "等你审批（2 项）：\n"
        "调拨 #1 静安店(S002)→徐汇店(S001)：A002 可口可乐 330ml ×5（李小妹申请，已等 19 小时）\n"
        "调拨 #2 徐汇店(S001)→静安店(S002)：A003 乐事薯片 原味 ×4（钱多多申请，已等 19 小时）\n"
        "在对应的审批卡片上点「同意」或「拒绝」；调拨卡片找不到时，等提醒会重发一张。")
    card = d.card("sup1", "transfer-1-approve")
    assert card.card["main_title"] == {"title": "调拨审批 #1", "desc": "李小妹（徐汇店(S001)）申请从 静安店(S002) 调货"}
    assert card.buttons[:2] == [("同意", "transfer:approve:1"), ("拒绝", "transfer:reject:1")]
    before = len(d.texts("sup1"))
    d.h.clock.advance(minutes=1)
    first = await d.h.sandbox.user_click("sup1", "transfer:approve:1", card=card, repeat=3)  # WeCom retries it
    second = await d.h.sandbox.user_click("sup1", "transfer:approve:1", card=card)  # and he taps again
    assert first.ok and second.ok
    await d.h.settle()
    assert d.texts("sup1")[before:] == ["调拨单 1 当前已同意，待出库，不能再审批。"]
    assert card.replace_name == "已同意，待出库"
    assert sum("已由郑督导同意" in t for t in d.texts("s1")) == 1  # the requester hears it once
    assert [c.task_id for c in d.cards("m2")] == ["transfer-1-ship-m2"]  # one ship card at the source
    assert await d.ask("sup1", "待审批") == (
        "等你审批（1 项）：\n"
        "调拨 #2 徐汇店(S001)→静安店(S002)：A003 乐事薯片 原味 ×4（钱多多申请，已等 19 小时）\n"
        "在对应的审批卡片上点「同意」或「拒绝」；调拨卡片找不到时，等提醒会重发一张。")

    # stock across his region, lowest first; a store outside it is refused plainly
    assert await d.ask("sup1", "库存 A001") == (
        "A001 农夫山泉 550ml 各店库存（从少到多）：\n· 徐汇店（S001）：3，低于安全线 5\n· 静安店（S002）：20\n"
        "查单店详情：库存 S001 A001")
    assert await d.ask("sup1", "库存 S001 可乐") == "徐汇店 A002 可口可乐 330ml：现有 20，安全库存 5。"
    assert await d.ask("sup1", "库存 S003 A001") == "天河店不在你督导的区域内，只能查本区域门店的库存。"
    assert await d.ask("sup1", "签收 6900000000011") == (  # a barcode where an id belongs
        "「6900000000011」像是商品条码，不是调拨单号。签收写法：签收 <调拨单号> [实收数量]，"
        "例如「签收 12」或「签收 12 4」。")

    # the region's board, not his own rank among clerks
    assert await d.ask("sup1", "积分") == (
        "华东区 2026-11 积分榜：\n本月还没有人得分。\n督导不参与排名；积分来自店员和店长按时完成的任务。")
    help_text = await d.ask("sup1", "帮助")
    assert help_text.startswith("督导可以这样回复我：\n· 待审批 —— 等你审批的调拨和盘点差异")
    assert "你还没有绑定门店" not in help_text

    # the day as it looks on the phone at 375×812: nothing cut off sideways
    await d.phones("supervisor", "sup1")
