"""The stock ledger: StockMove rows are the truth, StockLevel keeps their running sum per store and SKU."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, dialect_name

MOVE_KINDS = (
    "opening",
    "import_adjustment",
    "sale",
    "receipt",
    "transfer_out",
    "transfer_in",
    "count_adjustment",
    "damage",
    "return",
)


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (UniqueConstraint("store_id", "sku_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    on_hand: Mapped[int] = mapped_column(default=0)
    safety_stock: Mapped[int] = mapped_column(default=0)
    last_sold_at: Mapped[datetime | None]
    last_moved_at: Mapped[datetime | None]
    last_counted_at: Mapped[datetime | None]


class StockMove(Base):
    """One booked movement. Append-only: a correction is another move, never an edit."""

    __tablename__ = "stock_moves"
    __table_args__ = (Index("ix_stock_moves_store_sku_at", "store_id", "sku_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    kind: Mapped[str] = mapped_column(String(32))
    qty: Mapped[int]  # signed: negative leaves the store
    balance_after: Mapped[int]
    ref: Mapped[str | None] = mapped_column(String(128), index=True)  # e.g. "sale:POS-1", "transfer:17"
    actor: Mapped[str | None] = mapped_column(String(64))  # userid or "pos" / "import"
    note: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class MoveResult:
    store_id: int
    sku_id: int
    qty: int
    balance_after: int


def _insert_for(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert


async def ensure_level(session: AsyncSession, store_id: int, sku_id: int) -> None:
    """Create the (store, SKU) level row if it is missing; safe under concurrency."""
    insert = _insert_for(session)
    stmt = insert(StockLevel).values(store_id=store_id, sku_id=sku_id, on_hand=0, safety_stock=0)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["store_id", "sku_id"]))


async def book_move(
    session: AsyncSession,
    *,
    store_id: int,
    sku_id: int,
    kind: str,
    qty: int,
    at: datetime,
    ref: str | None = None,
    actor: str | None = None,
    note: str | None = None,
) -> MoveResult:
    """Book one move and keep on-hand in step, in the caller's transaction.

    The level row is updated with `on_hand = on_hand + qty` so two concurrent moves on PostgreSQL serialise
    on the row lock instead of overwriting each other.
    """
    if kind not in MOVE_KINDS:
        raise ValueError(f"unknown stock move kind {kind!r}")
    await ensure_level(session, store_id, sku_id)
    values: dict[str, object] = {"on_hand": StockLevel.on_hand + qty, "last_moved_at": at}
    if kind == "sale":
        values["last_sold_at"] = at
    if kind == "count_adjustment":
        values["last_counted_at"] = at
    stmt = (
        update(StockLevel)
        .where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
        .values(**values)
        .returning(StockLevel.on_hand)
    )
    balance = (await session.execute(stmt)).scalar_one()
    session.add(
        StockMove(
            store_id=store_id,
            sku_id=sku_id,
            kind=kind,
            qty=qty,
            balance_after=balance,
            ref=ref,
            actor=actor,
            note=note,
            created_at=at,
        )
    )
    return MoveResult(store_id, sku_id, qty, balance)


async def get_level(session: AsyncSession, store_id: int, sku_id: int) -> StockLevel | None:
    stmt = select(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
    return (await session.execute(stmt)).scalar_one_or_none()
