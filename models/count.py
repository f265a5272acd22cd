"""Stock counts from chat: counted vs system, approval of large discrepancies, supersession, accuracy.

A count states what was on the shelf at its own moment (`counted_at`, the message's CreateTime). Its difference
is booked AT that moment, so moves booked after it stay booked. Of several counts of one store × SKU the newest
wins: a newer count supersedes an older pending one, and an older count that arrives after a newer one (or after
an import, which also states the whole quantity) is recorded as `outdated` and books nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import RulesSettings
from bot.errors import InvalidState
from models.base import Base
from models.stock import StockLevel, StockMove, book_move, ensure_level

STATES = ("booked", "pending", "approved", "rejected", "superseded", "outdated")
# A newer count in one of these states states the shelf later than an older one; rejected ones state nothing.
_STANDING = ("booked", "pending", "approved")
# Moves that set the whole quantity (an import), like a count does.
_ABSOLUTE_MOVES = ("opening", "import_adjustment")
STATE_NAMES = {"booked": "已入账", "pending": "待审批", "approved": "已同意", "rejected": "已驳回",
               "superseded": "已被新盘点取代", "outdated": "已有更新的盘点"}


class StockCount(Base):
    """Every count is kept (accuracy is computed from them), booked at once or after the manager's approval."""

    __tablename__ = "stock_counts"
    __table_args__ = (
        Index("ix_stock_counts_store_at", "store_id", "counted_at"),
        Index("ix_stock_counts_pair_at", "store_id", "sku_id", "counted_at"),
    )

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
    booked_qty: Mapped[int | None]  # the adjustment actually booked (None: nothing booked)
    superseded_by: Mapped[int | None]  # the newer count that replaced or outdated this one (None: an import)

    @property
    def diff(self) -> int:
        return self.counted - self.system_qty


@dataclass
class Recorded:
    """What recording a count did: the count itself, the older pending counts it superseded, and for an outdated
    count the newer count that settles it (None when an import did)."""

    count: StockCount
    superseded: list[StockCount] = field(default_factory=list)
    newer: StockCount | None = None


def needs_approval(rules: RulesSettings, counted: int, system: int) -> bool:
    """A difference above BOTH the unit and the percent thresholds waits for the manager."""
    diff = abs(counted - system)
    percent = 100.0 * diff / abs(system) if system else float("inf") if diff else 0.0
    return diff > rules.count_approval_units and percent > rules.count_approval_percent


async def _lock_pair(session: AsyncSession, store_id: int, sku_id: int) -> None:
    """Take the level row's lock (PostgreSQL): counts and decisions of one store × SKU queue here, so two of them
    never both see "no newer count". SQLite serialises writers already."""
    await ensure_level(session, store_id, sku_id)
    await session.execute(
        select(StockLevel.id).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id).with_for_update()
    )


async def shelf_at(session: AsyncSession, store_id: int, sku_id: int, at: datetime) -> int:
    """On-hand as a count made at `at` saw it: today's on-hand minus the moves from `at` on.

    CreateTime has whole seconds and people count before they type, so a sale stamped in the count's own second
    came after the count; an earlier count or import in that same second is before it (the later one wins).
    """
    level = (await session.execute(
        select(StockLevel.on_hand).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
    )).scalar_one_or_none()
    later = await session.execute(
        select(func.coalesce(func.sum(StockMove.qty), 0)).where(
            StockMove.store_id == store_id, StockMove.sku_id == sku_id,
            or_(StockMove.created_at > at,
                and_(StockMove.created_at == at, StockMove.kind.notin_(("count_adjustment", *_ABSOLUTE_MOVES)))),
        )
    )
    return (level or 0) - int(later.scalar_one())


async def newer_statement(
    session: AsyncSession, store_id: int, sku_id: int, at: datetime, *, exclude: int | None = None
) -> tuple[bool, StockCount | None]:
    """Whether something newer than `at` states this pair's whole quantity: (found, the newer count or None for
    an import)."""
    stmt = (
        select(StockCount)
        .where(StockCount.store_id == store_id, StockCount.sku_id == sku_id, StockCount.counted_at > at,
               StockCount.state.in_(_STANDING))
        .order_by(StockCount.counted_at.desc(), StockCount.id.desc()).limit(1)
    )
    if exclude is not None:
        stmt = stmt.where(StockCount.id != exclude)
    newer = (await session.execute(stmt)).scalar_one_or_none()
    if newer is not None:
        return True, newer
    imported = await session.execute(
        select(StockMove.id).where(StockMove.store_id == store_id, StockMove.sku_id == sku_id,
                                   StockMove.kind.in_(_ABSOLUTE_MOVES), StockMove.created_at > at).limit(1)
    )
    return imported.scalar_one_or_none() is not None, None


async def record_count(
    session: AsyncSession, *, rules: RulesSettings, store_id: int, sku_id: int, counted: int, userid: str,
    counted_at: datetime, now: datetime,
) -> Recorded:
    """Compare with the quantity at counted_at (moves booked since are not the counter's error) and book the
    difference at counted_at, or leave it pending when it is large; an older count than one already recorded
    books nothing."""
    at = min(counted_at, now)  # a sender's clock ahead of ours must not date a count in the future
    await _lock_pair(session, store_id, sku_id)
    system = await shelf_at(session, store_id, sku_id, at)
    found, newer = await newer_statement(session, store_id, sku_id, at)
    state = "outdated" if found else "pending" if needs_approval(rules, counted, system) else "booked"
    count = StockCount(
        store_id=store_id, sku_id=sku_id, counted=counted, system_qty=system, state=state, counted_by=userid,
        counted_at=at, created_at=now, superseded_by=newer.id if newer else None,
    )
    session.add(count)
    await session.flush()
    if found:
        return Recorded(count, newer=newer)
    superseded = await _supersede_older(session, count, now)
    if state == "booked":
        await _book(session, count)
    return Recorded(count, superseded=superseded)


async def _supersede_older(session: AsyncSession, count: StockCount, now: datetime) -> list[StockCount]:
    """Older pending counts of the pair are replaced by this one: they can no longer be approved."""
    stmt = (
        update(StockCount)
        .where(StockCount.store_id == count.store_id, StockCount.sku_id == count.sku_id,
               StockCount.state == "pending", StockCount.counted_at <= count.counted_at, StockCount.id != count.id)
        .values(state="superseded", superseded_by=count.id, decided_at=now)
        .returning(StockCount.id)
        .execution_options(synchronize_session=False)
    )
    ids = list((await session.execute(stmt)).scalars())
    if not ids:
        return []
    rows = await session.execute(
        select(StockCount).where(StockCount.id.in_(ids)).order_by(StockCount.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def _book(session: AsyncSession, count: StockCount) -> None:
    """Book counted minus the quantity at counted_at, dated counted_at: the moves after it stay booked.

    Always book, even a zero difference: last_counted_at moves and the ledger shows the count happened. The
    quantity is read again (not taken from system_qty): a sale dated before the count may have arrived since.
    """
    qty = count.counted - await shelf_at(session, count.store_id, count.sku_id, count.counted_at)
    count.booked_qty = qty
    await book_move(session, store_id=count.store_id, sku_id=count.sku_id, kind="count_adjustment", qty=qty,
                    at=count.counted_at, ref=f"count:{count.id}", actor=count.counted_by)
    await session.flush()


async def decide(session: AsyncSession, count_id: int, *, approve: bool, userid: str, now: datetime) -> StockCount:
    """pending → approved (books counted minus the quantity at counted_at, once) or rejected.

    Approving a count that something newer has settled meanwhile (an import) makes it `superseded` and books
    nothing: read the returned count's state. A count that is not pending raises InvalidState.
    """
    count = await session.get(StockCount, count_id, populate_existing=True)
    if count is None:
        raise InvalidState(f"count {count_id} does not exist", f"找不到盘点单 {count_id}")
    await _lock_pair(session, count.store_id, count.sku_id)
    found, newer = await newer_statement(session, count.store_id, count.sku_id, count.counted_at, exclude=count.id)
    state = ("superseded" if found else "approved") if approve else "rejected"
    values: dict[str, object] = {"state": state, "decided_by": userid, "decided_at": now}
    if state == "superseded":
        values["superseded_by"] = newer.id if newer else None
    result = await session.execute(
        update(StockCount).where(StockCount.id == count_id, StockCount.state == "pending").values(**values)
        .execution_options(synchronize_session=False)
    )
    count = await session.get(StockCount, count_id, populate_existing=True)
    assert count is not None
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidState(f"count {count_id} is {count.state}", refusal(count))
    if state == "approved":
        await _book(session, count)
    return count


def refusal(count: StockCount) -> str:
    """Why a decision on this count changed nothing, in the approver's words."""
    if count.state in ("superseded", "outdated"):
        newer = f"（#{count.superseded_by}）" if count.superseded_by else "（或导入）"
        return f"盘点单 {count.id} 之后已有更新的盘点{newer}，以新的为准，这张不再入账。"
    return f"盘点单 {count.id} 已处理过（{STATE_NAMES.get(count.state, count.state)}），不会重复入账。"


async def accuracy(
    session: AsyncSession, *, tolerance: int, date_from: datetime, date_to: datetime
) -> dict[int, tuple[int, int]]:
    """Per store: (accurate counted lines, counted lines) in [date_from, date_to)."""
    accurate = func.sum(case((func.abs(StockCount.counted - StockCount.system_qty) <= tolerance, 1), else_=0))
    stmt = select(StockCount.store_id, accurate, func.count()).where(
        StockCount.counted_at >= date_from, StockCount.counted_at < date_to
    ).group_by(StockCount.store_id)
    return {store: (int(ok or 0), int(n)) for store, ok, n in await session.execute(stmt)}
