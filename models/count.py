"""Stock counts from chat: counted vs system, approval of large discrepancies, accuracy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import RulesSettings
from bot.errors import InvalidState
from models.base import Base
from models.stock import book_move, on_hand_at

STATES = ("booked", "pending", "approved", "rejected")


class StockCount(Base):
    """Every count is kept (accuracy is computed from them), booked at once or after the manager's approval."""

    __tablename__ = "stock_counts"
    __table_args__ = (Index("ix_stock_counts_store_at", "store_id", "counted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    counted: Mapped[int]
    system_qty: Mapped[int]  # on-hand at the moment of counting
    state: Mapped[str] = mapped_column(String(16))
    counted_by: Mapped[str] = mapped_column(String(64))
    counted_at: Mapped[datetime]  # when the person counted (the message's CreateTime)
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]

    @property
    def diff(self) -> int:
        return self.counted - self.system_qty


def needs_approval(rules: RulesSettings, counted: int, system: int) -> bool:
    """A difference above BOTH the unit and the percent thresholds waits for the manager."""
    diff = abs(counted - system)
    percent = 100.0 * diff / abs(system) if system else float("inf") if diff else 0.0
    return diff > rules.count_approval_units and percent > rules.count_approval_percent


async def record_count(
    session: AsyncSession, *, rules: RulesSettings, store_id: int, sku_id: int, counted: int, userid: str,
    counted_at: datetime, now: datetime,
) -> StockCount:
    """Compare with the quantity at counted_at (sales booked since are not the counter's error) and book the
    difference, or leave it pending when it is large."""
    system = await on_hand_at(session, store_id, sku_id, min(counted_at, now))
    pending = needs_approval(rules, counted, system)
    count = StockCount(
        store_id=store_id, sku_id=sku_id, counted=counted, system_qty=system,
        state="pending" if pending else "booked", counted_by=userid, counted_at=counted_at, created_at=now,
    )
    session.add(count)
    await session.flush()
    if not pending:
        await _book(session, count, now)
    return count


async def _book(session: AsyncSession, count: StockCount, now: datetime) -> None:
    # always book, even a zero difference: last_counted_at moves and the ledger shows the count happened
    await book_move(session, store_id=count.store_id, sku_id=count.sku_id, kind="count_adjustment",
                    qty=count.diff, at=now, ref=f"count:{count.id}", actor=count.counted_by)


async def decide(session: AsyncSession, count_id: int, *, approve: bool, userid: str, now: datetime) -> StockCount:
    """pending → approved (books counted - system-at-count, so later sales stay booked) or rejected."""
    result = await session.execute(
        update(StockCount).where(StockCount.id == count_id, StockCount.state == "pending")
        .values(state="approved" if approve else "rejected", decided_by=userid, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    count = await session.get(StockCount, count_id, populate_existing=True)
    if count is None:
        raise InvalidState(f"count {count_id} does not exist", f"找不到盘点单 {count_id}")
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidState(f"count {count_id} is {count.state}", f"这张盘点单已处理过（{_STATE_NAMES[count.state]}）")
    if approve:
        await _book(session, count, now)
    return count


_STATE_NAMES = {"booked": "已入账", "pending": "待审批", "approved": "已同意", "rejected": "已驳回"}


async def accuracy(
    session: AsyncSession, *, tolerance: int, date_from: datetime, date_to: datetime
) -> dict[int, tuple[int, int]]:
    """Per store: (accurate counted lines, counted lines) in [date_from, date_to)."""
    accurate = func.sum(case((func.abs(StockCount.counted - StockCount.system_qty) <= tolerance, 1), else_=0))
    stmt = select(StockCount.store_id, accurate, func.count()).where(
        StockCount.counted_at >= date_from, StockCount.counted_at < date_to
    ).group_by(StockCount.store_id)
    return {store: (int(ok or 0), int(n)) for store, ok, n in await session.execute(stmt)}
