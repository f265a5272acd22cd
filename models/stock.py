"""The stock ledger: StockMove rows are the truth, StockLevel keeps their running sum per store and SKU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    case,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from bot.errors import UnknownEntity
from models.base import Base, UTCDateTime, dialect_name, insert_for
from models.catalog import Sku
from models.org import Store

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


async def ensure_level(session: AsyncSession, store_id: int, sku_id: int) -> None:
    """Create the (store, SKU) level row if it is missing; safe under concurrency."""
    insert = insert_for(session)
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
    values: dict[str, object] = {"on_hand": StockLevel.on_hand + qty,
                                 "last_moved_at": _latest(StockLevel.last_moved_at, at)}
    if kind == "sale":
        values["last_sold_at"] = _latest(StockLevel.last_sold_at, at)
    if kind == "count_adjustment":
        values["last_counted_at"] = _latest(StockLevel.last_counted_at, at)
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


def _latest(column: InstrumentedAttribute[datetime | None], at: datetime) -> ColumnElement[datetime | None]:
    """The later of the stored time and `at`: a move dated in the past (a count booked at its own moment, a late
    sale) must not move last_*_at back, or the no-movement rule would see an active SKU as idle."""
    stamp = literal(at, UTCDateTime())
    return case((or_(column.is_(None), column < stamp), stamp), else_=column)


async def book_moves(
    session: AsyncSession, *, store_id: int, qtys: Mapping[int, int], kind: str, at: datetime, ref: str | None = None,
    actor: str | None = None,
) -> list[MoveResult]:
    """book_move for several SKUs of one store moved by one event (a sale, a receipt), set-based: one UPDATE of
    the levels RETURNING the balances (missing levels created, then updated), one INSERT of all the moves.
    The same rows and balances as a book_move per SKU in sku_id order; on PostgreSQL the level rows are
    locked in that order first, so two sales never wait on each other crosswise."""
    if kind not in MOVE_KINDS:
        raise ValueError(f"unknown stock move kind {kind!r}")
    if not qtys:
        return []
    balances = await _add_to_levels(session, store_id, qtys, kind, at)
    missing = sorted(set(qtys) - set(balances))
    if missing:
        for sku_id in missing:
            await ensure_level(session, store_id, sku_id)
        balances.update(await _add_to_levels(session, store_id, {k: qtys[k] for k in missing}, kind, at))
    order = sorted(qtys)
    await session.execute(insert(StockMove), [
        {"store_id": store_id, "sku_id": k, "kind": kind, "qty": qtys[k], "balance_after": balances[k], "ref": ref,
         "actor": actor, "note": None, "created_at": at}
        for k in order
    ])
    return [MoveResult(store_id, k, qtys[k], balances[k]) for k in order]


async def _add_to_levels(
    session: AsyncSession, store_id: int, qtys: Mapping[int, int], kind: str, at: datetime
) -> dict[int, int]:
    """on_hand += qty for the SKUs' existing levels; their new balances by sku_id."""
    where = (StockLevel.store_id == store_id, StockLevel.sku_id.in_(sorted(qtys)))
    if dialect_name(session) == "postgresql":
        await session.execute(select(StockLevel.id).where(*where).order_by(StockLevel.sku_id).with_for_update())
    values: dict[str, object] = {"on_hand": StockLevel.on_hand + case(dict(qtys), value=StockLevel.sku_id),
                                 "last_moved_at": _latest(StockLevel.last_moved_at, at)}
    if kind == "sale":
        values["last_sold_at"] = _latest(StockLevel.last_sold_at, at)
    stmt = (
        update(StockLevel).where(*where).values(**values).returning(StockLevel.sku_id, StockLevel.on_hand)
        .execution_options(synchronize_session=False)
    )
    return {int(sku_id): int(on_hand) for sku_id, on_hand in (await session.execute(stmt)).all()}


async def get_level(session: AsyncSession, store_id: int, sku_id: int) -> StockLevel | None:
    stmt = select(StockLevel).where(StockLevel.store_id == store_id, StockLevel.sku_id == sku_id)
    return (await session.execute(stmt)).scalar_one_or_none()


class Sale(Base):
    """One POS sale; sale_id is unique, so a replayed webhook books nothing twice."""

    __tablename__ = "sales"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[str] = mapped_column(String(128), unique=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    sold_at: Mapped[datetime]
    customer_id: Mapped[str | None] = mapped_column(String(128))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime]


class SaleLine(Base):
    __tablename__ = "sale_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_pk: Mapped[int] = mapped_column(ForeignKey("sales.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    qty: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))


class Receipt(Base):
    """One delivery booked through /api/stock/receipts; receipt_id is unique (idempotent replays)."""

    __tablename__ = "stock_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[str] = mapped_column(String(128), unique=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    received_at: Mapped[datetime]
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class SaleLineIn:
    sku: str
    qty: int
    unit_price: Decimal = Decimal(0)


@dataclass(frozen=True)
class Booked:
    """What a sale or receipt did: duplicate=True means it was seen before and nothing was booked."""

    duplicate: bool
    store_id: int
    pairs: tuple[tuple[int, int], ...] = ()


async def _resolve(session: AsyncSession, store_code: str, skus: Sequence[str]) -> tuple[int, dict[str, int]]:
    """The store id and the SKU ids by code or barcode; an unknown one raises UnknownEntity naming it."""
    store_id = (await session.execute(select(Store.id).where(Store.code == store_code))).scalar_one_or_none()
    if store_id is None:
        raise UnknownEntity("store", store_code, f"找不到门店 {store_code}")
    wanted = set(skus)
    rows = await session.execute(
        select(Sku.id, Sku.code, Sku.barcode).where(or_(Sku.code.in_(wanted), Sku.barcode.in_(wanted)))
    )
    found: dict[str, int] = {}
    for sku_id, code, barcode in rows:
        found[code] = sku_id
        if barcode:
            found[barcode] = sku_id
    for sku in skus:
        if sku not in found:
            raise UnknownEntity("sku", sku, f"找不到商品 {sku}")
    return store_id, found


def _merged(lines: Sequence[tuple[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for sku_id, qty in lines:
        out[sku_id] = out.get(sku_id, 0) + qty
    return out


async def book_sale(
    session: AsyncSession, *, sale_id: str, store_code: str, sold_at: datetime, lines: Sequence[SaleLineIn],
    customer_id: str | None, now: datetime,
) -> Booked:
    """Book a POS sale atomically in the caller's transaction; the same sale_id again books nothing.

    The Sale row goes in first with ON CONFLICT DO NOTHING: a concurrent twin on PostgreSQL waits for the
    winner's commit and then sees the conflict, so exactly one of them deducts.
    """
    store_id, ids = await _resolve(session, store_code, [line.sku for line in lines])
    total = sum((line.unit_price * line.qty for line in lines), Decimal(0))
    insert = insert_for(session)
    stmt = insert(Sale).values(
        sale_id=sale_id, store_id=store_id, sold_at=sold_at, customer_id=customer_id, total=total, created_at=now
    )
    sale_pk = (
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["sale_id"]).returning(Sale.id))
    ).scalar_one_or_none()
    if sale_pk is None:
        return Booked(duplicate=True, store_id=store_id)
    await session.execute(insert(SaleLine), [
        {"sale_pk": sale_pk, "sku_id": ids[line.sku], "qty": line.qty, "unit_price": line.unit_price}
        for line in lines
    ])
    merged = _merged([(ids[line.sku], line.qty) for line in lines])
    await book_moves(session, store_id=store_id, qtys={k: -q for k, q in merged.items()}, kind="sale", at=sold_at,
                     ref=f"sale:{sale_id}", actor="pos")
    return Booked(duplicate=False, store_id=store_id, pairs=tuple((store_id, s) for s in sorted(merged)))


async def book_receipt(
    session: AsyncSession, *, receipt_id: str, store_code: str, received_at: datetime,
    lines: Sequence[tuple[str, int]], actor: str | None, now: datetime,
) -> Booked:
    """Book a delivery atomically; the same receipt_id again books nothing."""
    store_id, ids = await _resolve(session, store_code, [sku for sku, _ in lines])
    insert = insert_for(session)
    stmt = insert(Receipt).values(receipt_id=receipt_id, store_id=store_id, received_at=received_at, created_at=now)
    pk = (
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["receipt_id"]).returning(Receipt.id))
    ).scalar_one_or_none()
    if pk is None:
        return Booked(duplicate=True, store_id=store_id)
    merged = _merged([(ids[sku], qty) for sku, qty in lines])
    await book_moves(session, store_id=store_id, qtys=merged, kind="receipt", at=received_at,
                     ref=f"receipt:{receipt_id}", actor=actor)
    return Booked(duplicate=False, store_id=store_id, pairs=tuple((store_id, s) for s in sorted(merged)))

