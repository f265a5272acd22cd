"""库存 board: stock below its safety line, negative, without movement, in transit, counts waiting for approval,
the per-SKU ledger (who did what) and count accuracy per store over time.

The stock part is one statement: a single scan of the selected stock levels keeps only the rows that need
attention, and window functions give each kind's total and its first `limit` rows, so the board costs about one
aggregate over those rows (bench/bench_boards.py measures it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, literal, null, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import dialect_name
from models.boards.filters import Filters, Selection, local_day
from models.catalog import Sku
from models.count import StockCount
from models.org import Staff
from models.stock import StockLevel, StockMove
from models.transfer import Transfer, TransferLine

KINDS = ("negative", "below", "stale")
KIND_NAMES = {"negative": "负库存", "below": "低于安全库存", "stale": "无动销"}
MOVE_LABELS = {
    "opening": "期初", "import_adjustment": "导入调整", "sale": "销售", "receipt": "入库",
    "transfer_out": "调出", "transfer_in": "调入", "count_adjustment": "盘点调整", "damage": "报损", "return": "退货",
}
ROW_LIMIT = 50
LEDGER_LIMIT = 200


@dataclass(frozen=True)
class StockRow:
    kind: str
    store_id: int
    sku_code: str
    sku_name: str
    category: str | None
    on_hand: int
    safety_stock: int
    last_at: datetime | None  # last sale, else last movement


@dataclass(frozen=True)
class TransitRow:
    transfer_id: int
    from_store_id: int
    to_store_id: int
    sku_code: str
    sku_name: str
    qty: int
    shipped_at: datetime | None


@dataclass(frozen=True)
class PendingCountRow:
    count_id: int
    store_id: int
    sku_code: str
    sku_name: str
    counted: int
    system_qty: int
    counted_by: str
    counted_at: datetime


@dataclass(frozen=True)
class LedgerRow:
    at: datetime
    store_id: int
    sku_code: str
    sku_name: str
    kind: str
    qty: int
    balance_after: int
    actor: str  # a person's name where the actor is someone in the directory, else what the system recorded
    ref: str | None

    @property
    def kind_name(self) -> str:
        return MOVE_LABELS.get(self.kind, self.kind)


@dataclass
class InventoryBoard:
    totals: dict[str, int] = field(default_factory=dict)
    rows: dict[str, list[StockRow]] = field(default_factory=dict)
    in_transit: list[TransitRow] = field(default_factory=list)
    in_transit_units: int = 0
    pending_counts: list[PendingCountRow] = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)
    ledger_sku: str | None = None
    accuracy: list[tuple[str, int, int, int]] = field(default_factory=list)  # (day, store_id, accurate, lines)


async def attention_rows(
    session: AsyncSession, sel: Selection, *, cutoff: datetime, limit: int = ROW_LIMIT
) -> tuple[dict[str, int], dict[str, list[StockRow]]]:
    """Per kind (negative / below / stale): how many stock levels are in it, and the `limit` most urgent rows.

    A level is in one kind only, the first that applies (as in models.alert's rules): negative on-hand, else
    on-hand below the safety stock, else on-hand above zero with no sale (or movement) since `cutoff`.
    One scan of the selected levels keeps the flagged rows in a materialised CTE; the totals (one GROUP BY) and
    each kind's first rows (ORDER BY … LIMIT, a bounded sort) then read only those."""
    sl = StockLevel
    last_at = func.coalesce(sl.last_sold_at, sl.last_moved_at)
    # the kind as a small integer (an index into KINDS): cheaper to group and compare than text
    kind = case((sl.on_hand < 0, literal(0)), (sl.on_hand < sl.safety_stock, literal(1)), else_=literal(2))
    flagged = (
        select(sl.store_id, sl.sku_id, sl.on_hand, sl.safety_stock, last_at.label("last_at"), kind.label("kind"))
        .where(sel.where(sl.store_id), sel.where_category(sl.sku_id),
               or_(sl.on_hand < sl.safety_stock, sl.on_hand < 0, and_(sl.on_hand > 0, last_at < cutoff)))
        .cte("flagged").prefix_with("MATERIALIZED")
    )
    c = flagged.c
    none_int = cast(null(), Integer)  # typed NULLs: PostgreSQL matches UNION columns by type
    parts = [select(c.kind, func.count().label("n"), none_int.label("store_id"), none_int.label("sku_id"),
                    none_int.label("on_hand"), none_int.label("safety_stock"),
                    cast(null(), StockLevel.last_moved_at.type).label("last_at"))
             .group_by(c.kind)]
    order = ((c.on_hand, c.store_id, c.sku_id),  # negative: the deepest first
             (c.on_hand - c.safety_stock, c.store_id, c.sku_id),  # below: the furthest under the line first
             (c.last_at, c.store_id, c.sku_id))  # stale: the longest without a sale first
    for k in range(len(KINDS)):
        top = (select(c.kind, cast(null(), BigInteger).label("n"), c.store_id, c.sku_id, c.on_hand,
                      c.safety_stock, c.last_at)
               .where(c.kind == k).order_by(*order[k]).limit(limit).subquery(f"top_{KINDS[k]}"))
        parts.append(select(*top.c))
    result = (await session.execute(union_all(*parts))).all()
    totals = dict.fromkeys(KINDS, 0)
    picked: dict[str, list[tuple[int, int, int, int, datetime | None]]] = {k: [] for k in KINDS}
    for code, n, store_id, sku_id, on_hand, safety, last in result:
        if n is not None:
            totals[KINDS[code]] = int(n)
        else:
            picked[KINDS[code]].append((store_id, sku_id, on_hand, safety, _aware(last)))
    sku_ids = sorted({row[1] for rows in picked.values() for row in rows})
    skus = {i: (code, name, cat) for i, code, name, cat in await session.execute(
        select(Sku.id, Sku.code, Sku.name, Sku.category).where(Sku.id.in_(sku_ids)))} if sku_ids else {}
    rows = {k: [StockRow(k, store_id, *skus[sku_id], on_hand, safety, last)
                for store_id, sku_id, on_hand, safety, last in picked[k]] for k in KINDS}
    return totals, rows


# PostgreSQL guesses that about half of the levels are flagged (an OR of column-to-column comparisons), so it keeps
# the scan single-threaded (shipping "half a million" rows from workers looks dear) and spills the CTE to disk at
# the default work_mem; about a tenth are. For this transaction only: cheap worker rows, memory for ~100k flagged
# rows, and no JIT (compiling costs more than it saves on a query of a few hundred milliseconds).
_PG_TUNING = ("SET LOCAL parallel_tuple_cost = 0.001", "SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


async def _tune(session: AsyncSession) -> None:
    if dialect_name(session) == "postgresql":
        for statement in _PG_TUNING:
            await session.execute(text(statement))


def _aware(value: datetime | str | None) -> datetime | None:
    """A timestamp from a raw subquery column (SQLite hands back text, PostgreSQL a naive datetime) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def in_transit(session: AsyncSession, sel: Selection, limit: int = ROW_LIMIT) -> tuple[list[TransitRow], int]:
    """Shipped and not yet received lines of transfers from or to a selected store; the units in total."""
    moving = (TransferLine.shipped - func.coalesce(TransferLine.received, 0))
    cond = and_(Transfer.state == "shipped", or_(sel.where(Transfer.from_store_id), sel.where(Transfer.to_store_id)),
                sel.where_category(TransferLine.sku_id), moving > 0)
    base = select(Transfer.id, Transfer.from_store_id, Transfer.to_store_id, Sku.code, Sku.name, moving,
                  Transfer.shipped_at).join(TransferLine, TransferLine.transfer_id == Transfer.id).join(
        Sku, Sku.id == TransferLine.sku_id).where(cond)
    rows = [TransitRow(tid, src, dst, code, name, int(qty or 0), at) for tid, src, dst, code, name, qty, at in
            await session.execute(base.order_by(Transfer.shipped_at, Transfer.id).limit(limit))]
    total = (await session.execute(
        select(func.coalesce(func.sum(moving), 0)).select_from(Transfer)
        .join(TransferLine, TransferLine.transfer_id == Transfer.id).where(cond)
    )).scalar_one()
    return rows, int(total or 0)


async def pending_counts(session: AsyncSession, sel: Selection, limit: int = ROW_LIMIT) -> list[PendingCountRow]:
    """Counts waiting for the manager's approval (a difference above both thresholds)."""
    stmt = (
        select(StockCount.id, StockCount.store_id, Sku.code, Sku.name, StockCount.counted, StockCount.system_qty,
               func.coalesce(Staff.name, StockCount.counted_by), StockCount.counted_at)
        .join(Sku, Sku.id == StockCount.sku_id).outerjoin(Staff, Staff.userid == StockCount.counted_by)
        .where(StockCount.state == "pending", sel.where(StockCount.store_id), sel.where_category(StockCount.sku_id))
        .order_by(StockCount.counted_at).limit(limit)
    )
    return [PendingCountRow(*r) for r in await session.execute(stmt)]


async def ledger(session: AsyncSession, sel: Selection, filters: Filters, limit: int = LEDGER_LIMIT) -> list[LedgerRow]:
    """Moves in the date range, newest first: of one SKU (code or barcode) when filters.sku is set, else all."""
    stmt = (
        select(StockMove.created_at, StockMove.store_id, Sku.code, Sku.name, StockMove.kind, StockMove.qty,
               StockMove.balance_after, func.coalesce(Staff.name, StockMove.actor, ""), StockMove.ref)
        .join(Sku, Sku.id == StockMove.sku_id).outerjoin(Staff, Staff.userid == StockMove.actor)
        .where(sel.where(StockMove.store_id), sel.where_category(StockMove.sku_id),
               StockMove.created_at >= filters.start, StockMove.created_at < filters.end)
    )
    if filters.sku is not None:
        stmt = stmt.where(or_(Sku.code == filters.sku, Sku.barcode == filters.sku))
    stmt = stmt.order_by(StockMove.created_at.desc(), StockMove.id.desc()).limit(limit)
    return [LedgerRow(*r) for r in await session.execute(stmt)]


async def accuracy_by_day(
    session: AsyncSession, sel: Selection, filters: Filters, tolerance: int
) -> list[tuple[str, int, int, int]]:
    """Counted lines per store and board-local day in the range: (day, store_id, accurate lines, lines)."""
    day = local_day(StockCount.counted_at, dialect_name(session)).label("day")
    ok = func.sum(case((func.abs(StockCount.counted - StockCount.system_qty) <= tolerance, 1), else_=0))
    stmt = (
        select(day, StockCount.store_id, ok, func.count())
        .where(sel.where(StockCount.store_id), sel.where_category(StockCount.sku_id),
               StockCount.counted_at >= filters.start, StockCount.counted_at < filters.end)
        .group_by(day, StockCount.store_id).order_by(day, StockCount.store_id)
    )
    return [(d, s, int(a or 0), int(n)) for d, s, a, n in await session.execute(stmt)]


async def inventory_board(
    session: AsyncSession, sel: Selection, filters: Filters, *, now: datetime, no_movement_days: int,
    tolerance: int, limit: int = ROW_LIMIT,
) -> InventoryBoard:
    board = InventoryBoard(ledger_sku=filters.sku)
    await _tune(session)
    cutoff = now - timedelta(days=filters.days or no_movement_days)
    board.totals, board.rows = await attention_rows(session, sel, cutoff=cutoff, limit=limit)
    board.in_transit, board.in_transit_units = await in_transit(session, sel)
    board.pending_counts = await pending_counts(session, sel)
    board.ledger = await ledger(session, sel, filters)
    board.accuracy = await accuracy_by_day(session, sel, filters, tolerance)
    return board
