"""The set-based sale booking (one UPDATE of the levels, one INSERT of the moves) books what a move per SKU would."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.alert import Alert
from models.stock import SaleLine, StockLevel, StockMove
from tests.conftest import AppClient
from tests.factories import Chain
from tests.stock.test_pos import on_hand, post_sale, sale


async def test_a_sale_with_a_repeated_sku_and_a_store_without_its_level_books_every_line_once(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():  # S002 has never held A005: no level row yet
        await s.execute(delete(StockLevel).where(StockLevel.store_id == chain.stores["S002"].id,
                                                 StockLevel.sku_id == chain.skus["A005"].id))
    lines = [{"sku": "A003", "qty": 2}, {"sku": "A005", "qty": 1}, {"sku": "A003", "qty": 5}]
    status, body = await post_sale(client, sale("POS-MIX", "S002", lines))
    assert (status, body["duplicate"]) == (200, False)
    assert await on_hand(sessions, chain, "S002", "A003") == 13
    assert await on_hand(sessions, chain, "S002", "A005") == -1
    async with sessions() as s:
        moves = (await s.execute(select(StockMove.sku_id, StockMove.qty, StockMove.balance_after, StockMove.ref)
                                 .where(StockMove.kind == "sale").order_by(StockMove.id))).all()
        n_lines = len((await s.execute(select(SaleLine.id))).all())
        kinds = {a.kind for a in (await s.execute(select(Alert))).scalars()}
    assert [tuple(m) for m in moves] == [(chain.skus["A003"].id, -7, 13, "sale:POS-MIX"),
                                         (chain.skus["A005"].id, -1, -1, "sale:POS-MIX")]
    assert n_lines == 3
    assert kinds == {"negative_stock"}  # the touched pairs were re-checked in the same transaction


async def test_concurrent_sales_over_the_same_skus_in_any_line_order_all_book(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """On PostgreSQL two sales lock their levels in sku order, so opposite line orders never deadlock."""
    rnd = random.Random(7)
    bodies = []
    for i in range(12):
        skus = ["A001", "A002", "A003", "A004"]
        rnd.shuffle(skus)
        bodies.append(sale(f"POS-C{i}", "S001", [{"sku": k, "qty": 1} for k in skus]))
    async with asyncio.timeout(60):
        results = await asyncio.gather(*(post_sale(client, b) for b in bodies))
    assert [(status, body["duplicate"]) for status, body in results] == [(200, False)] * 12
    for sku in ("A001", "A002", "A003", "A004"):
        assert await on_hand(sessions, chain, "S001", sku) == 8
    async with sessions() as s:
        balances = sorted(b for (b,) in (await s.execute(
            select(StockMove.balance_after).where(StockMove.sku_id == chain.skus["A001"].id,
                                                  StockMove.kind == "sale"))).all())
    assert balances == list(range(8, 20))  # every sale saw the one before it
