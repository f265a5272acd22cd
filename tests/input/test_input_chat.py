"""Chat input read plainly: issue 10's inputs that got silence or 系统繁忙, names, units, punctuation, several items."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deps import Deps
from models.count import StockCount
from models.stock import StockLevel, StockMove
from models.transfer import Transfer
from tests.factories import Chain
from tests.input_support import click, replies, say, text, texts_to


async def on_hand(sessions: async_sessionmaker[AsyncSession], chain: Chain, sku: str, store: str = "S001") -> int:
    async with sessions() as s:
        stmt = select(StockLevel.on_hand).where(StockLevel.store_id == chain.stores[store].id,
                                                StockLevel.sku_id == chain.skus[sku].id)
        return (await s.execute(stmt)).scalar_one()


async def moves(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return (await s.execute(select(func.count()).select_from(StockMove))).scalar_one()


# --- issue 10, "Input that must get a plain answer", one by one ---------------------------------------------------

async def test_receive_with_a_barcode_for_the_transfer_id_says_it_is_a_barcode(deps: Deps, chain: Chain) -> None:
    reply = await say(deps, "s1", "签收 6900000000011")
    assert "像是商品条码" in reply and "调拨单号" in reply and "签收 12" in reply


async def test_receive_with_a_twenty_digit_id_says_it_is_no_transfer_id(deps: Deps, chain: Chain) -> None:
    reply = await say(deps, "s1", "签收 99999999999999999999")
    assert "不是有效的调拨单号" in reply and "签收写法" in reply


async def test_count_with_a_5000_digit_quantity_says_the_quantity_is_wrong(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    reply = await say(deps, "s1", "盘点 A001 " + "9" * 5000)
    assert "数量" in reply and "0 到" in reply and len(reply) < 120
    assert await moves(sessions) == 20


async def test_transfer_with_an_ethiopic_digit_says_the_quantity_is_wrong(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    reply = await say(deps, "s1", "调拨 S002 A001 ፩")
    assert "数量“፩”不是整数" in reply
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Transfer))).scalar_one() == 0


async def test_receive_superscript_two_gets_a_plain_answer_and_signs_nothing(deps: Deps, chain: Chain) -> None:
    assert "「²」不是有效的调拨单号" in await say(deps, "s1", "签收 ²")  # not read as transfer 2


async def test_count_with_a_superscript_or_circled_quantity_says_it_is_no_whole_number(deps: Deps,
                                                                                       chain: Chain) -> None:
    assert "数量“²”不是整数" in await say(deps, "s1", "盘点 A001 ²", keep=False)
    assert "数量“①”不是整数" in await say(deps, "s1", "盘点 A001 ①", keep=False)


@pytest.mark.parametrize("key", ["transfer:approve:99999999999999999999", "transfer:reject:²", "task:done:²",
                                 "task:done:99999999999999999999", "count:approve:²", "alert:ack:99999999999999999999",
                                 "alert:ackall:²", "transfer:ship:-1", "transfer::", "::", "",
                                 "stock:level:99999999999999999999", "stock:level:²", "stock:pick:1"])
async def test_card_key_that_cannot_be_an_id_says_the_button_is_stale(deps: Deps, chain: Chain, key: str) -> None:
    rows = await replies(deps, click("sup1", key))
    assert [r.recipient for r in rows] == ["sup1"]
    assert "按钮已失效" in rows[0].payload["content"]


async def test_three_thousand_character_echo_is_cut_to_fit_wecom(deps: Deps, chain: Chain) -> None:
    for content in ("库存 " + "乐" * 3000, "盘点 A001 " + "五" * 3000, "签收 " + "x" * 3000,
                    "盘点 " + " ".join(["A001 1"] * 1500)):
        reply = await say(deps, "s1", content, keep=False)
        assert len(reply.encode()) <= 2048


# --- quantities as people type them --------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["盘点 A005 17个", "盘点:A005 17", "盘点，A005，17", "盘点：A005 17提",
                                     "盘点 A005 17 个", "盘点A005 17。", "ｃｏｕｎｔ ａ００５ １７", "count: a005, 17"])
async def test_count_with_units_and_punctuation_is_booked(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession], content: str
) -> None:
    reply = await say(deps, "s1", content)
    assert "盘点已入账" in reply and "实点 17" in reply
    assert await on_hand(sessions, chain, "A005") == 17


async def test_several_items_in_one_count_get_one_reply_line_by_line(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rows = await replies(deps, text(
        "s1", "盘点 A005 17 A004 19个 NOPE 3 A003 五"), keep=True)
    [reply] = texts_to(rows, "s1")
    assert reply.startswith("盘点 4 项，记录 2 项，2 项未记录")
    assert "1. 盘点已入账" in reply and "A005" in reply and "实点 17" in reply
    assert "A004" in reply and "实点 19" in reply
    assert "3. 未记录 NOPE：找不到商品 NOPE" in reply
    assert "4. 未记录 A003：数量“五”不是整数" in reply
    assert (await on_hand(sessions, chain, "A005"), await on_hand(sessions, chain, "A004")) == (17, 19)
    assert await on_hand(sessions, chain, "A003") == 20


async def test_several_items_with_a_large_difference_wait_for_the_manager(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rows = await replies(deps, text("s1", "盘点 A001 2 A002 19"),
                         keep=True)
    [reply] = texts_to(rows, "s1")
    assert "已提交王店长审批" in reply and "实点 19" in reply
    assert [r.recipient for r in rows if r.msgtype == "template_card"] == ["m1"]
    async with sessions() as s:
        states = sorted((await s.execute(select(StockCount.state))).scalars())
    assert states == ["booked", "pending"]


async def test_count_too_many_items_says_the_limit(deps: Deps, chain: Chain) -> None:
    assert "最多盘点 10 个" in await say(deps, "s1", "盘点 " + " ".join(["A001 1"] * 11), keep=False)


async def test_count_item_without_quantity_names_it(deps: Deps, chain: Chain) -> None:
    assert "A002 后面缺少数量" in await say(deps, "s1", "盘点 A001 20 A002", keep=False)


# --- products by name ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["可口可乐", "可口", "可口可乐 330ml", "可口可乐，330ml", "6900000000028", "a002"])
async def test_stock_by_name_or_a_unique_part_of_it(deps: Deps, chain: Chain, query: str) -> None:
    reply = await say(deps, "s1", f"库存 {query}")
    assert reply.startswith("徐汇店 A002 可口可乐 330ml：现有 20")


async def test_count_by_a_name_part_several_match_lists_the_candidates(deps: Deps, chain: Chain) -> None:
    reply = await say(deps, "s1", "盘点 ml 5")  # 农夫山泉 550ml, 可口可乐 330ml
    assert "「ml」对应 2 个商品" in reply and "1. A001 农夫山泉 550ml" in reply and "2. A002 可口可乐 330ml" in reply


async def test_stock_by_a_name_part_several_match_offers_one_button_each(deps: Deps, chain: Chain) -> None:
    [card] = await replies(deps, text("sup1", "库存 ml"))
    assert card.msgtype == "template_card" and card.recipient == "sup1"
    keys = [(b["text"], b["key"]) for b in card.payload["button_list"]]
    a001, a002 = chain.skus["A001"].id, chain.skus["A002"].id
    assert keys == [("A001 农夫山泉 550ml", f"stock:level:{a001}"), ("A002 可口可乐 330ml", f"stock:level:{a002}")]
    rows = await replies(deps, click("sup1", f"stock:level:{a002}"))
    [reply] = texts_to(rows, "sup1")
    assert "A002 可口可乐 330ml 各店库存" in reply and "静安店（S002）：20" in reply
    assert [r.payload["button"]["replace_name"] for r in rows if r.channel == "card_update"] == ["已选 A002"]


async def test_count_by_product_name(deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]) -> None:
    assert "实点 18" in await say(deps, "s1", "盘点 维达抽纸 3包 18")
    assert "实点 16" in await say(deps, "s1", "盘点 薯片 16袋")
    assert (await on_hand(sessions, chain, "A005"), await on_hand(sessions, chain, "A003")) == (18, 16)


async def test_transfer_by_product_name_and_unit(deps: Deps, chain: Chain,
                                                 sessions: async_sessionmaker[AsyncSession]) -> None:
    reply = await say(deps, "s1", "调拨 S002 可口可乐 5罐")
    assert "A002" in reply or "可口可乐" in reply
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Transfer))).scalar_one() == 1


async def test_like_wildcards_in_a_name_match_literally(deps: Deps, chain: Chain) -> None:
    assert "找不到商品 %" in await say(deps, "s1", "库存 %", keep=False)
    assert "找不到商品 _" in await say(deps, "s1", "库存 _", keep=False)


# --- 库存 [门店] SKU by role ----------------------------------------------------------------------------------------

async def test_supervisor_stock_without_a_store_lists_the_region_lowest_first(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await say(deps, "s3", "盘点 A001 18")  # S002 now 18
    reply = await say(deps, "sup1", "库存 A001")
    assert "还没有绑定门店" not in reply
    assert reply.index("静安店（S002）：18") < reply.index("徐汇店（S001）：20")
    assert "天河店" not in reply  # region R2


async def test_admin_stock_without_a_store_lists_every_store(deps: Deps, chain: Chain) -> None:
    reply = await say(deps, "admin", "stock A001")
    assert all(name in reply for name in ("徐汇店", "静安店", "天河店", "福田店"))


@pytest.mark.parametrize(("user", "content", "says"), [
    ("sup1", "库存 S002 A001", "静安店 A001 农夫山泉 550ml：现有 20"),
    ("sup1", "库存 静安店 A001", "静安店 A001 农夫山泉 550ml：现有 20"),
    ("admin", "库存 s003 可口可乐", "天河店 A002 可口可乐 330ml：现有 20"),
    ("m1", "库存 S001 A001", "徐汇店 A001"),
    ("s1", "库存 S001 A001", "徐汇店 A001"),
    ("sup1", "库存 S003 A001", "天河店不在你督导的区域内"),
    ("m1", "库存 S002 A001", "你只能查本店（徐汇店）的库存"),
    ("s1", "库存 S002 A001", "你只能查本店（徐汇店）的库存"),
])
async def test_stock_of_a_named_store_follows_the_scope(deps: Deps, chain: Chain, user: str, content: str,
                                                       says: str) -> None:
    assert says in await say(deps, user, content, keep=False)
