"""Each role's own chat: help per role, 待审批, 我的调拨 and 积分 for clerks, managers, supervisors and admins,
through the real edge and the WeCom sandbox."""

from __future__ import annotations

from bot.messages import render
from tests.factories import Chain
from tests.fixtures_sandbox import Harness


async def say(h: Harness, userid: str, text: str) -> str:
    """The user types; the bot's newest text or markdown on their phone is the answer."""
    h.clock.advance(seconds=30)
    before = len(h.texts_for(userid))
    await h.say(userid, text)
    answers = h.texts_for(userid)[before:]
    assert answers, f"{userid} got no answer to {text!r}"
    return answers[-1]


async def tap(h: Harness, userid: str, key: str) -> None:
    h.clock.advance(minutes=1)  # WeCom dedupes events by sender + CreateTime
    await h.tap(userid, key)


async def test_help_is_each_roles_own_list(harness: Harness, chain: Chain) -> None:
    h = harness
    clerk, manager = await say(h, "s1", "帮助"), await say(h, "m1", "help")
    supervisor, admin = await say(h, "sup1", "帮助"), await say(h, "admin", "帮助")
    assert clerk.startswith("可以这样回复我") and "拍照发给我" in clerk and "待审批" not in clerk
    assert manager.startswith("店长可以这样回复我") and "待审批 —— 等你审批的盘点差异" in manager
    assert supervisor.startswith("督导可以这样回复我") and "待审批 —— 等你审批的调拨和盘点差异" in supervisor
    assert "盘点 A001 7" not in supervisor and "晨报" in supervisor
    assert admin.startswith("管理员可以这样回复我")
    answer = "· 答复 [编号] 内容 —— 交文字任务的答案；只有一个文字任务时可不写编号"
    assert answer in clerk and answer in manager  # the roles that get text tasks
    assert "答复" not in supervisor and "答复" not in admin
    assert len({clerk, manager, supervisor, admin}) == 4


async def test_not_understood_reply_fits_the_role(harness: Harness, chain: Chain) -> None:
    h = harness
    supervisor = await say(h, "sup1", "早上好")
    assert supervisor == render("help", reason="没看懂这条消息。", role="supervisor")
    assert supervisor.startswith("没看懂这条消息。\n督导可以这样回复我")
    assert (await say(h, "s1", "早上好")).startswith("没看懂这条消息。\n可以这样回复我")


async def test_pending_lists_what_waits_on_each_approver(harness: Harness, chain: Chain) -> None:
    h = harness
    assert await say(h, "sup1", "待审批") == "现在没有等你审批的调拨或盘点差异。"
    await say(h, "s1", "调拨 S002 A001 5")
    await say(h, "s1", "盘点 A002 60")  # system 20: +40 is above both thresholds, so it waits for m1
    sup1 = await say(h, "sup1", "待审批")
    assert sup1.startswith("等你审批（1 项）：\n"
                           "调拨 #1 静安店(S002)→徐汇店(S001)：A001 农夫山泉 550ml ×5（李小妹申请，已等")
    assert "在对应的审批卡片上点「同意」或「拒绝」" in sup1
    assert await say(h, "sup2", "pending") == "现在没有等你审批的调拨或盘点差异。"  # another region
    m1 = await say(h, "m1", "待审批")
    assert m1.startswith("等你审批（1 项）：\n"
                         "盘点 #1 徐汇店(S001) A002 可口可乐 330ml：实点 60，系统 20，差 +40（李小妹，已等")
    assert "调拨" not in m1.splitlines()[1]
    assert (await say(h, "s1", "待审批")).startswith("你没有需要审批的事项")
    assert await say(h, "admin", "待审批") == "现在没有等你审批的调拨或盘点差异。"  # not escalated to the admins

    await tap(h, "sup1", "transfer:approve:1")
    await tap(h, "m1", "count:approve:1")
    assert await say(h, "sup1", "待审批") == "现在没有等你审批的调拨或盘点差异。"
    assert await say(h, "m1", "待审批") == "现在没有等你审批的调拨或盘点差异。"


async def test_my_transfers_shows_the_stores_open_transfers_in_and_out(harness: Harness, chain: Chain) -> None:
    h = harness
    assert (await say(h, "s1", "我的调拨")).startswith("本店现在没有进行中的调拨单。")
    await say(h, "s1", "调拨 S002 A001 5")
    assert await say(h, "s2", "我的调拨") == (
        "本店进行中的调拨单：\n#1 调入 ← 静安店(S002)：A001 农夫山泉 550ml ×5\n  待审批，等督导审批"
    )
    await tap(h, "sup1", "transfer:approve:1")
    assert await say(h, "m2", "my transfers") == (
        "本店进行中的调拨单：\n#1 调出 → 徐汇店(S001)：A001 农夫山泉 550ml ×5\n"
        "  已同意，待出库：发货后点出库卡片的「确认出库」"
    )
    assert (await say(h, "s1", "我的调拨")).endswith("已同意，待出库，等对方发货")
    await tap(h, "m2", "transfer:ship:1")
    assert (await say(h, "s1", "我的调拨")).endswith("已出库，运输中：到货后回复「签收 1」")
    assert (await say(h, "s3", "我的调拨")).endswith("已出库，运输中，等对方签收")
    region = await say(h, "sup1", "我的调拨")
    assert region.startswith("本区进行中的调拨单：\n#1 静安店(S002)→徐汇店(S001)")
    assert (await say(h, "m3", "我的调拨")).startswith("本店现在没有进行中的调拨单")  # another region's store
    await say(h, "s1", "签收 1")
    assert (await say(h, "s1", "我的调拨")).startswith("本店现在没有进行中的调拨单。")


async def test_points_rank_clerks_and_show_supervisors_their_regions_board(harness: Harness, chain: Chain) -> None:
    h = harness
    clerk = await say(h, "s1", "积分")
    assert "积分 0" in clerk and "第 1 名" not in clerk and "保持住" not in clerk
    board = await say(h, "sup1", "积分")
    assert board.startswith("华东区 2026-11 积分榜：\n本月还没有人得分。")
    assert "督导不参与排名" in board and "第 1 名" not in board
    admin = await say(h, "admin", "points")
    assert "华东区 2026-11 积分榜" in admin and "华南区 2026-11 积分榜" in admin and "管理员不参与排名" in admin
