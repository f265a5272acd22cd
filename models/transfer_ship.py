"""Shipping a transfer: what leaves the source, never more than its books hold, possibly less than approved.

The source ships what is there: a line asks at most its approved quantity and at most the source's on-hand, so
a transfer never takes a store negative. Whoever ships may send less (a partial shipment); the destination then
receives the shipped quantity. To ship more than the books say, the store counts first (盘点), then ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import InvalidQuantity, NotAllowed
from models.catalog import Sku
from models.org import Staff
from models.stock import StockLevel, book_move, ensure_level
from models.transfer import Transfer, _guarded, lines_of


@dataclass(frozen=True)
class Shipped:
    """One line as shipped: the approved quantity, what left the source, and what the source had."""

    sku: Sku
    approved: int
    shipped: int
    available: int


def may_ship(actor: Staff, transfer: Transfer) -> bool:
    return actor.role == "admin" or (actor.store_id == transfer.from_store_id and actor.role in ("manager", "staff"))


async def _available(session: AsyncSession, store_id: int, sku_id: int) -> int:
    """The source's on-hand for the SKU, with its level row locked until the shipment is booked."""
    await ensure_level(session, store_id, sku_id)
    on_hand = (await session.execute(
        select(StockLevel.on_hand).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
        .with_for_update()
    )).scalar_one()
    return max(int(on_hand), 0)


async def plan(
    session: AsyncSession, transfer: Transfer, quantities: dict[int, int] | None = None
) -> list[Shipped]:
    """What shipping would send now: `quantities` (sku_id → qty) as asked, else each line capped at on-hand.

    A quantity above the approved one, above on-hand, or for a SKU not on the transfer raises InvalidQuantity.
    """
    lines = await lines_of(session, transfer.id)
    asked = quantities or {}
    unknown = set(asked) - {line.sku_id for line, _ in lines}
    if unknown:
        raise InvalidQuantity(f"SKUs {sorted(unknown)} are not on transfer {transfer.id}",
                              f"发货的商品不在调拨单 {transfer.id} 上，请核对。")
    out: list[Shipped] = []
    for line, sku in lines:
        available = await _available(session, transfer.from_store_id, line.sku_id)
        if line.sku_id not in asked:
            out.append(Shipped(sku, line.qty, min(line.qty, available), available))
            continue
        want = asked[line.sku_id]
        if not 0 <= want <= line.qty:
            raise InvalidQuantity(f"ship {want} of {sku.code}, approved {line.qty}",
                                  f"{sku.code} {sku.name} 最多发 {line.qty}（批准数量），请写 0 到 {line.qty}。")
        if want > available:
            raise InvalidQuantity(
                f"ship {want} of {sku.code}, on hand {available}",
                f"{sku.code} {sku.name} 账上只有 {available}，不能发 {want}。"
                f"如果实物更多，请先「盘点 {sku.code} 实际数量」再发货。")
        out.append(Shipped(sku, line.qty, want, available))
    if not any(s.shipped for s in out):
        raise InvalidQuantity(
            f"nothing to ship on transfer {transfer.id}",
            f"调拨单 {transfer.id} 的商品本店账上都没有货，无法出库。"
            "如实物有货请先盘点；没有货请联系调入门店取消调拨。")
    return out


async def ship(
    session: AsyncSession, transfer: Transfer, actor: Staff, now: datetime, quantities: dict[int, int] | None = None,
) -> list[Shipped]:
    """Approved → shipped: each line leaves the source as planned (transfer_out); returns what was shipped."""
    if not may_ship(actor, transfer):
        raise NotAllowed(f"{actor.userid} cannot ship transfer {transfer.id}", "只有调出门店的店员或店长可以确认出库。")
    await _guarded(session, transfer, ("approved",), "出库", state="shipped", shipped_at=now, shipped_by=actor.userid)
    shipped = await plan(session, transfer, quantities)
    by_sku = {s.sku.id: s.shipped for s in shipped}
    for line, _sku in await lines_of(session, transfer.id):
        line.shipped = by_sku[line.sku_id]
        if line.shipped:
            await book_move(session, store_id=transfer.from_store_id, sku_id=line.sku_id, kind="transfer_out",
                            qty=-line.shipped, at=now, ref=f"transfer:{transfer.id}", actor=actor.userid)
    await session.flush()
    return shipped
