"""A clerk's day at 徐汇店 (S001), as 李小妹 (s1) lives it on her phone: open the door, one photo while two photo
tasks are open, counts by name and unit, a transfer that arrives short, the closing count done by her teammate
张伟 (s2), her points — and the slips people make (a tap delivered three times, a barcode where an id belongs)."""

from __future__ import annotations

from sqlalchemy import select

from bot.keys import DEPS
from models.task import TaskCountLine, TaskInstance
from models.task_proof import TaskPhoto
from tests.factories import Chain
from tests.scenarios.day import Day
from tests.task_support import jpeg

GUIDE = "谁做都算，积分归做的人。拍照任务直接发照片；盘点任务回复「盘点 商品编码 数量」；文字任务回复「答复 内容」。"


async def test_a_clerks_day(day: Day, chain: Chain) -> None:
    d = day
    s001 = chain.stores["S001"].id

    # 08:00 the door: both clerks get the store's card; a tap WeCom delivers three times counts once
    await d.at(8, 0)
    await d.push()
    card = d.card("s1", "task-1")
    assert card.card["main_title"]["title"] == "开门确认"
    assert ("轮值", "李小妹（谁做都算，积分归做的人）") in [(r["keyname"], r["value"]) for r in
                                                    card.card["horizontal_content_list"]]
    assert await d.ask("s1", "任务") == f"你和本店的待办任务（1 个）：\n#1 开门确认，截止 11-24 08:30\n{GUIDE}"
    assert await d.tap("s1", "task:done:1", card=card, repeat=3) == ["「开门确认」已完成，积分 +4。"]
    assert card.replace_name == "已完成"
    assert d.card("s2", "task-1-s2").replace_name == "李小妹已完成"  # the teammate's card shows it done

    # 10:00 two photo tasks are open (晨检 late already, 陈列拍照 new): one photo asks which, one tap answers
    await d.at(9, 0)
    await d.push()
    await d.at(10, 0)
    await d.push()
    assert await d.ask("s1", "任务") == (
        "你和本店的待办任务（2 个）：\n#4 晨检，截止 11-24 10:00（已超时，尽快补上）\n#7 陈列拍照，截止 11-24 11:30\n"
        + GUIDE)
    assert await d.photo("s1", jpeg((9, 9, 9))) == []  # the answer is a card, not a guess
    which = d.card("s1", "photo-")
    assert which.card["main_title"] == {"title": "这张照片交给哪个任务？",
                                        "desc": "本店有 2 个拍照任务还没交，点一下要交的那个就完成。"}
    assert which.buttons == [("晨检", "task:photo:4"), ("陈列拍照", "task:photo:7")]
    [done] = await d.tap("s1", "task:photo:7", card=which)
    assert done.startswith("「陈列拍照」已完成，积分 +10。")
    assert which.replace_name == "已交给陈列拍照"
    # the teammate's photo now meets one open task: no question, it is taken (late: half the points)
    [late] = await d.photo("s2", jpeg((90, 9, 9)))
    assert late.startswith("「晨检」已补交（超时，积分减半），积分 +5。")
    assert d.card("s1", "task-4").replace_name == "张伟已补交"
    async with d.h.app[DEPS].sessions() as session:
        photos = (await session.execute(select(TaskPhoto.state, TaskPhoto.task_id).order_by(TaskPhoto.id))).all()
    assert [tuple(p) for p in photos] == [("accepted", 7), ("accepted", 4)]

    # 10:20 counts by name and unit, several in one message, a name that fits two products
    await d.at(10, 20)
    assert await d.ask("s1", "盘点 可乐 20罐") == (
        "盘点已入账：徐汇店 A002 可口可乐 330ml，实点 20，系统 20，无差异。现有库存 20。")
    assert await d.ask("s1", "盘点：农夫山泉 19瓶，薯片 20袋") == (
        "盘点 2 项：\n1. 盘点已入账：徐汇店 A001 农夫山泉 550ml，实点 19，系统 20，差异 -1。现有库存 19。\n"
        "2. 盘点已入账：徐汇店 A003 乐事薯片 原味，实点 20，系统 20，无差异。现有库存 20。")
    assert await d.ask("s1", "盘点 乐 3") == (
        "「乐」对应 2 个商品，请用编码重发（例如把「乐」换成 A003）：\n1. A003 乐事薯片 原味\n2. A002 可口可乐 330ml")
    assert await d.ask("s1", "盘点 可乐 47个") == (
        "盘点差异较大：A002 可口可乐 330ml 实点 47，系统 20，差异 +27。已提交王店长审批，同意后才入账，请等待。")
    assert await d.stock("S001", "A001") == 19 and await d.stock("S001", "A002") == 20

    # 11:00 a transfer: asked, approved, shipped short by 静安店, received one short again
    await d.at(11, 0)
    assert await d.ask("s1", "调拨 S002 A001 5") == (
        "调拨单 1 已提交：从静安店(S002)调入 A001 农夫山泉 550ml ×5。\n已发给郑督导审批，结果会通知你。")
    assert await d.ask("s1", "我的调拨") == (
        "本店进行中的调拨单：\n#1 调入 ← 静安店(S002)：A001 农夫山泉 550ml ×5\n  待审批，等督导审批")
    await d.tap("sup1", "transfer:approve:1")
    assert any("已由郑督导同意" in t for t in d.texts("s1"))
    await d.at(14, 0)
    await d.say("m2", "发货 1 3")
    assert await d.ask("s1", "我的调拨") == (
        "本店进行中的调拨单：\n#1 调入 ← 静安店(S002)：A001 农夫山泉 550ml ×3\n  已出库，运输中：到货后回复「签收 1」")
    wrong = await d.ask("s1", "签收 6900000000011")  # a barcode typed where the transfer id belongs
    assert wrong == ("「6900000000011」像是商品条码，不是调拨单号。签收写法：签收 <调拨单号> [实收数量]，"
                     "例如「签收 12」或「签收 12 4」。")
    assert await d.ask("s1", "签收 1 2") == (
        "调拨单 1 已由徐汇店(S001)签收：A001 农夫山泉 550ml ×2，已按实收入账。\n"
        "到货比实发少（A001 实发 3、实收 2），已通知两店店长和督导核对，有结果会告诉你。")
    assert await d.stock("S001", "A001") == 21
    assert any("实发 3，实收 2，少 1" in t for t in d.texts("m1"))

    # 21:30 the closing count goes to both clerks; 张伟 counts the list; 李小妹's card and 任务 show it done
    await d.at(21, 30)
    await d.push()
    async with d.h.app[DEPS].sessions() as session:
        closing = (await session.execute(select(TaskInstance).where(
            TaskInstance.store_id == s001, TaskInstance.template_key == "closing_count"))).scalar_one()
        listed = (await session.execute(select(TaskCountLine.sku_id).where(TaskCountLine.task_id == closing.id)
                                        .order_by(TaskCountLine.id))).scalars().all()
    codes = {sku.id: code for code, sku in chain.skus.items()}
    words = " ".join([f"{codes[sid]} {await d.stock('S001', codes[sid])}" for sid in listed])
    counted = await d.ask("s2", f"盘点 {words}")  # one answer: no "还差 2 个" notes before it
    assert counted.startswith("盘点 3 项：\n1. 盘点已入账：徐汇店 ")
    assert counted.endswith("「闭店盘点」已完成，积分 +20。")
    assert await d.ask("s1", "任务") == "你现在没有待办任务。"
    mine = d.card("s1", f"task-{closing.id}")  # the card before the count said "还差 3 个"; it was redrawn
    assert mine.replace_name == "张伟已完成" and mine.buttons == []
    assert [b["text"] for b in mine.card["button_list"]] == ["张伟已完成"]
    rows = {r["keyname"]: r["value"] for r in mine.card["horizontal_content_list"]}
    assert rows["进度"] == "已全部盘完"
    assert "还差" not in str(mine.card)
    assert mine.card["sub_title_text"] == "「闭店盘点」的商品已全部盘完（张伟已完成），不用再盘。"
    assert d.card("s2", f"task-{closing.id}").replace_name == "已完成"  # the counter's own copy too
    assert await d.ask("s1", "积分") == "2026-11 你的积分 14，华东区第 2 名。离前一名还差 11 分，按时完成任务就能追上。"
    assert await d.ask("s2", "积分") == "2026-11 你的积分 25，华东区第 1 名。你是第一名，保持住！"

    # the day as it looks on the phone at 375×812: nothing cut off sideways
    await d.phones("clerk", "s1", "s2")
