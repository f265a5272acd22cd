"""Counts that cannot drift: a newer count supersedes an older pending one, approving never books twice, and a
count processed late is booked at its own moment (or settled by a newer one), through the real app and sandbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deps import Deps
from handlers import dispatch
from models.alert import Alert
from models.count import StockCount
from models.outbox import OutboundMessage
from models.stock import StockMove, book_move
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.stock.test_count import click, outbox_texts, text
from tests.stock.test_pos import on_hand


async def counts(sessions: async_sessionmaker[AsyncSession]) -> list[StockCount]:
    async with sessions() as s:
        return list((await s.execute(select(StockCount).order_by(StockCount.id))).scalars())


async def adjustments(sessions: async_sessionmaker[AsyncSession], chain: Chain, sku: str) -> list[int]:
    async with sessions() as s:
        rows = await s.execute(select(StockMove.qty).where(
            StockMove.kind == "count_adjustment", StockMove.store_id == chain.stores["S001"].id,
            StockMove.sku_id == chain.skus[sku].id).order_by(StockMove.id))
        return list(rows.scalars())


async def set_on_hand(h: Harness, sessions: async_sessionmaker[AsyncSession], chain: Chain, sku: str,
                      qty: int) -> None:
    """A delivery brings S001's SKU to qty (the chain starts at 20), booked a minute before now."""
    async with sessions() as s, s.begin():
        await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus[sku].id, kind="receipt",
                        qty=qty - 20, at=h.clock.now() - timedelta(minutes=1), ref="receipt:setup")


async def test_two_pending_counts_of_one_sku_book_the_difference_once(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await set_on_hand(h, sessions, chain, "A003", 44)
    await h.say("s1", "盘点 A003 5")
    h.clock.advance(minutes=1)
    await h.say("s2", "盘点 A003 5")
    first, second = h.sandbox.cards_for("m1")
    assert first.replace_name == "已被新盘点取代" and first.buttons == []  # the older card cannot be approved
    assert [k for _, k in second.buttons] == ["count:approve:2", "count:reject:2"]
    assert any("已被" in t and "新盘点" in t and "取代" in t for t in h.texts_for("s1"))
    h.clock.advance(minutes=1)
    await h.tap("m1", "count:approve:2")
    assert await on_hand(sessions, chain, sku="A003") == 5
    assert await adjustments(sessions, chain, "A003") == [-39]
    assert [(c.state, c.superseded_by, c.booked_qty) for c in await counts(sessions)] == [
        ("superseded", 2, None), ("approved", None, -39)]
    async with sessions() as s:
        kinds = set((await s.execute(select(Alert.kind))).scalars())
    assert "negative_stock" not in kinds
    assert any("同意并入账，调整 -39" in t for t in h.texts_for("s2"))


async def test_approved_card_never_overwrites_a_later_count(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await set_on_hand(h, sessions, chain, "A003", 44)
    await h.say("s1", "盘点 A003 5")
    h.clock.advance(minutes=2)
    await h.say("s2", "盘点 A003 44")  # another clerk finds the books right
    assert "无差异" in h.texts_for("s2")[-1] and "+0" not in h.texts_for("s2")[-1]
    [card] = h.sandbox.cards_for("m1")
    assert card.replace_name == "已被新盘点取代"
    assert await on_hand(sessions, chain, sku="A003") == 44
    assert [c.state for c in await counts(sessions)] == ["superseded", "booked"]


async def test_tapping_a_superseded_card_whose_code_expired_books_nothing_and_says_so(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await h.say("s1", "盘点 A001 2")
    h.clock.advance(hours=73)  # the card's response_code can no longer edit it: the approver is told by text
    await h.say("s2", "盘点 A001 19")
    assert any("盘点单 1" in t and "无需再审批" in t for t in h.texts_for("m1"))
    h.clock.advance(minutes=1)
    await h.tap("m1", "count:approve:1")
    assert "以新的为准，这张不再入账" in h.texts_for("m1")[-1]
    assert h.sandbox.cards_for("m1")[0].replace_name == "已被新盘点取代"
    assert await on_hand(sessions, chain) == 19
    assert await adjustments(sessions, chain, "A001") == [-1]


async def test_a_card_superseded_before_it_was_sent_is_never_sent(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await h.sandbox.user_text("s1", "盘点 A002 2")  # both wait in the inbox (a slow minute, a backlog)
    h.clock.advance(seconds=30)
    await h.sandbox.user_text("s2", "盘点 A002 3")
    await h.settle()
    [card] = h.sandbox.cards_for("m1")
    assert [k for _, k in card.buttons] == ["count:approve:2", "count:reject:2"]
    async with sessions() as s:
        states = (await s.execute(select(OutboundMessage.card_task_id, OutboundMessage.state)
                                  .where(OutboundMessage.card_task_id.like("count-%"))
                                  .order_by(OutboundMessage.id))).all()
    assert [tuple(r) for r in states] == [("count-1", "cancelled"), ("count-2", "sent")]


async def test_approving_twice_or_after_a_decision_books_once(
    deps: Deps, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        await dispatch(text("s1", "盘点 A001 2", deps), deps, s)
    for who in ("m1", "sup1", "m1"):
        async with sessions() as s, s.begin():
            await dispatch(click(who, "count:approve:1", deps), deps, s)
    assert await on_hand(sessions, chain) == 2
    assert await adjustments(sessions, chain, "A001") == [-18]
    assert "已处理过（已同意），不会重复入账" in (await outbox_texts(sessions, "sup1"))[-1]


async def test_counts_processed_late_leave_the_newest_count(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await h.sandbox.user_text("s1", "盘点 A005 17")  # accepted, then the worker was down
    h.clock.advance(minutes=2)
    await h.sandbox.user_text("s1", "盘点 A005 20")
    h.clock.advance(minutes=30)
    await h.settle()
    assert await on_hand(sessions, chain, sku="A005") == 20
    assert await adjustments(sessions, chain, "A005") == [-3, 3]
    assert "现有库存 20" in h.texts_for("s1")[-1]


async def test_sale_after_a_late_processed_count_stays_booked(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await h.sandbox.user_text("s1", "盘点 A005 18")  # counted now, handled only after the sale below
    h.clock.advance(minutes=5)
    async with sessions() as s, s.begin():
        await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus["A005"].id, kind="sale", qty=-2,
                        at=h.clock.now(), ref="sale:after-count")
    await h.settle()
    assert await on_hand(sessions, chain, sku="A005") == 16  # the shelf had 18, then 2 were sold
    [count] = await counts(sessions)
    assert (count.system_qty, count.booked_qty, count.state) == (20, -2, "booked")


async def test_older_count_arriving_after_a_newer_one_never_sums_both(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await set_on_hand(h, sessions, chain, "A005", 30)
    start = h.clock.now()
    h.clock.advance(minutes=5)
    await h.say("s2", "盘点 A005 30")
    h.clock.set(start)  # s1's count, made five minutes earlier, is only delivered now (a WeCom retry)
    await h.sandbox.user_text("s1", "盘点 A005 25")
    h.clock.set(start + timedelta(minutes=6))
    await h.settle()
    assert await on_hand(sessions, chain, sku="A005") == 30
    assert [(c.state, c.superseded_by) for c in await counts(sessions)] == [("booked", None), ("outdated", 1)]
    reply = h.texts_for("s1")[-1]
    assert "到得晚了" in reply and "以较新的为准，库存未调整" in reply and "现有库存 30" in reply


async def test_count_older_than_an_import_books_nothing(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    async with sessions() as s, s.begin():  # master data imported minutes after the clerk counted
        await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus["A004"].id,
                        kind="import_adjustment", qty=10, at=h.clock.now() + timedelta(minutes=3), ref="import")
    await h.sandbox.user_text("s1", "盘点 A004 25")
    h.clock.advance(minutes=10)
    await h.settle()
    assert await on_hand(sessions, chain, sku="A004") == 30
    [count] = await counts(sessions)
    assert count.state == "outdated"
    assert "导入" in h.texts_for("s1")[-1]
