"""盘点 from chat: small differences booked at once, large ones wait for the store manager's card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deps import Deps
from bot.events import CardClick, TextMessage
from handlers import dispatch
from models.count import StockCount
from models.outbox import OutboundMessage
from models.stock import StockMove, book_move
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.stock.test_pos import on_hand


async def counts(sessions: async_sessionmaker[AsyncSession]) -> list[StockCount]:
    async with sessions() as s:
        return list((await s.execute(select(StockCount).order_by(StockCount.id))).scalars())


async def test_small_difference_is_booked_and_both_numbers_replied(harness: Harness, chain: Chain,
                                                                  sessions: async_sessionmaker[AsyncSession]) -> None:
    await harness.say("s1", "盘点 A001 18")
    assert await on_hand(sessions, chain) == 18
    [reply] = harness.texts_for("s1")
    assert "实点 18" in reply and "系统 20" in reply and "差异 -2" in reply
    [count] = await counts(sessions)
    assert (count.state, count.counted, count.system_qty) == ("booked", 18, 20)
    assert harness.sandbox.cards_for("m1") == []


async def test_large_difference_waits_for_the_manager_and_books_on_approve(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await h.say("s1", "盘点 A001 5")
    assert await on_hand(sessions, chain) == 20  # not booked yet
    assert "店长" in h.texts_for("s1")[0] and "审批" in h.texts_for("s1")[0]
    [card] = h.sandbox.cards_for("m1")
    assert [k for _, k in card.buttons] == ["count:approve:1", "count:reject:1"]
    async with sessions() as s, s.begin():  # a sale between the count and the approval stays booked
        await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus["A001"].id, kind="sale", qty=-2,
                        at=h.clock.now(), ref="sale:between")
    h.clock.advance(minutes=1)
    await h.tap("m1", "count:approve:1")
    assert await on_hand(sessions, chain) == 3  # 20 - 2 (sale) - 15 (counted 5 against 20 at the count)
    assert h.sandbox.cards_for("m1")[0].replace_name == "已同意"
    assert any("同意并入账" in t for t in h.texts_for("s1"))
    [count] = await counts(sessions)
    assert (count.state, count.decided_by) == ("approved", "m1")


async def test_reject_books_nothing(harness: Harness, chain: Chain,
                                    sessions: async_sessionmaker[AsyncSession]) -> None:
    await harness.say("s1", "盘点 A001 40")
    harness.clock.advance(minutes=1)
    await harness.tap("m1", "count:reject:1")
    assert await on_hand(sessions, chain) == 20
    assert harness.sandbox.cards_for("m1")[0].replace_name == "已驳回"
    assert any("驳回" in t for t in harness.texts_for("s1"))


def click(user: str, key: str, deps: Deps) -> CardClick:
    return CardClick(from_user=user, create_time=deps.clock.now(), agent_id=1000002, key=key, task_id="count-1",
                     card_type="button_interaction", response_code=f"rc-{user}")


def text(user: str, content: str, deps: Deps, minutes_ago: float = 0) -> TextMessage:
    at = deps.clock.now() - timedelta(minutes=minutes_ago)
    return TextMessage(from_user=user, create_time=at, agent_id=1000002, content=content, msg_id=f"m-{content}")


async def outbox_texts(sessions: async_sessionmaker[AsyncSession], user: str) -> list[str]:
    async with sessions() as s:
        rows = (await s.execute(select(OutboundMessage).where(OutboundMessage.recipient == user,
                                                              OutboundMessage.msgtype == "text")
                                .order_by(OutboundMessage.id))).scalars()
        return [str(r.payload["content"]) for r in rows]


@pytest.mark.parametrize("clicker", ["s2", "m2", "sup2"])
async def test_someone_else_approving_is_refused_and_nothing_changes(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession], clicker: str
) -> None:
    async with sessions() as s, s.begin():
        await dispatch(text("s1", "盘点 A001 2", deps), deps, s)
    async with sessions() as s, s.begin():
        await dispatch(click(clicker, "count:approve:1", deps), deps, s)
    [count] = await counts(sessions)
    assert count.state == "pending"
    assert await on_hand(sessions, chain) == 20
    assert "只有本店店长" in (await outbox_texts(sessions, clicker))[-1]
    async with sessions() as s, s.begin():  # the region's supervisor may
        await dispatch(click("sup1", "count:approve:1", deps), deps, s)
    assert await on_hand(sessions, chain) == 2


async def test_count_compares_with_the_quantity_at_the_moment_of_counting(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():  # sold 3 after the person counted, booked before the message is handled
        await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus["A001"].id, kind="sale", qty=-3,
                        at=deps.clock.now() - timedelta(minutes=1), ref="sale:late")
    async with sessions() as s, s.begin():
        await dispatch(text("s1", "盘点 A001 20", deps, minutes_ago=5), deps, s)
    [count] = await counts(sessions)
    assert (count.system_qty, count.diff, count.state) == (20, 0, "booked")
    assert await on_hand(sessions, chain) == 17


@pytest.mark.parametrize(
    ("user", "content", "says"),
    [
        ("s1", "盘点 NOPE 3", "找不到商品 NOPE"),
        ("s1", "盘点 A001 -3", "数量"),
        ("s1", "盘点 A001 999999", "数量"),
        ("s1", "盘点 A001 三", "数量"),
        ("s1", "盘点 S002 A001 5", "只能盘点本店"),
        ("sup1", "盘点 A001 5", "还没有绑定门店"),
        ("s1", "盘点 A001", "用法"),
    ],
)
async def test_bad_count_gets_a_clear_reply_and_writes_nothing(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession], user: str, content: str, says: str
) -> None:
    async with sessions() as s, s.begin():
        await dispatch(text(user, content, deps), deps, s)
    assert says in (await outbox_texts(sessions, user))[-1]
    assert await counts(sessions) == []
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(StockMove))).scalar_one() == 20


async def test_stock_query_answers_on_hand_and_safety_line(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        await dispatch(text("s1", "库存 6900000000028", deps), deps, s)
        await dispatch(text("s2", "stock a003", deps), deps, s)
    assert "现有 20，安全库存 5" in (await outbox_texts(sessions, "s1"))[-1]
    assert "A003" in (await outbox_texts(sessions, "s2"))[-1]
