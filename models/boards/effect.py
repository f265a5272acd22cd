"""成效 board: the seed's own table per store and month — inventory accuracy, slow-moving share, emergency
replenishments — and each store's average before and after a chosen date."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import dialect_name
from models.boards.filters import Filters, Selection, local_month
from models.count import StockCount
from models.stock import StockLevel, StockMove
from models.transfer import Transfer

METRICS = ("accuracy", "slow_share", "emergencies")
METRIC_NAMES = {"accuracy": "库存准确率", "slow_share": "滞销占比", "emergencies": "紧急补货次数"}


@dataclass
class StoreMonth:
    store_id: int
    month: str
    counted: int = 0
    accurate: int = 0
    stocked: int = 0
    sold: int = 0
    emergencies: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.accurate / self.counted if self.counted else None

    @property
    def slow_share(self) -> float | None:
        return max(self.stocked - self.sold, 0) / self.stocked if self.stocked else None


@dataclass
class EffectBoard:
    months: list[str] = field(default_factory=list)
    cells: dict[tuple[int, str], StoreMonth] = field(default_factory=dict)
    # store_id -> metric -> (before, after) averages of the monthly values (None: no month on that side)
    compare: dict[int, dict[str, tuple[float | None, float | None]]] = field(default_factory=dict)


def months_between(filters: Filters) -> list[str]:
    out, y, m = [], filters.date_from.year, filters.date_from.month
    while (y, m) <= (filters.date_to.year, filters.date_to.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


async def effect_board(session: AsyncSession, sel: Selection, filters: Filters, *, tolerance: int) -> EffectBoard:
    """Per selected store and month of the range. Slow-moving share = in-stock SKUs (today) without a sale in
    that month, over in-stock SKUs; accuracy = counted lines within `tolerance` of the system quantity."""
    dialect = dialect_name(session)
    board = EffectBoard(months=months_between(filters))
    cells: dict[tuple[int, str], StoreMonth] = {}

    def cell(store_id: int, month: str) -> StoreMonth:
        return cells.setdefault((store_id, month), StoreMonth(store_id, month))

    month = local_month(StockCount.counted_at, dialect).label("m")
    ok = func.sum(case((func.abs(StockCount.counted - StockCount.system_qty) <= tolerance, 1), else_=0))
    for store_id, m, good, n in await session.execute(
        select(StockCount.store_id, month, ok, func.count())
        .where(sel.where(StockCount.store_id), sel.where_category(StockCount.sku_id),
               StockCount.counted_at >= filters.start, StockCount.counted_at < filters.end)
        .group_by(StockCount.store_id, month)
    ):
        c = cell(store_id, m)
        c.accurate, c.counted = int(good or 0), int(n)
    sale_month = local_month(StockMove.created_at, dialect).label("m")
    for store_id, m, n in await session.execute(
        select(StockMove.store_id, sale_month, func.count(func.distinct(StockMove.sku_id)))
        .where(StockMove.kind == "sale", sel.where(StockMove.store_id), sel.where_category(StockMove.sku_id),
               StockMove.created_at >= filters.start, StockMove.created_at < filters.end)
        .group_by(StockMove.store_id, sale_month)
    ):
        cell(store_id, m).sold = int(n)
    stocked = dict((await session.execute(
        select(StockLevel.store_id, func.count())
        .where(StockLevel.on_hand > 0, sel.where(StockLevel.store_id), sel.where_category(StockLevel.sku_id))
        .group_by(StockLevel.store_id)
    )).all())
    t_month = local_month(Transfer.created_at, dialect).label("m")
    for store_id, m, n in await session.execute(
        select(Transfer.to_store_id, t_month, func.count())
        .where(Transfer.emergency, sel.where(Transfer.to_store_id), Transfer.created_at >= filters.start,
               Transfer.created_at < filters.end)
        .group_by(Transfer.to_store_id, t_month)
    ):
        cell(store_id, m).emergencies = int(n)
    # a month before the store's first booked move has no history to judge: no slow-moving share there
    first = dict((await session.execute(
        select(StockMove.store_id, func.min(local_month(StockMove.created_at, dialect)))
        .where(sel.where(StockMove.store_id)).group_by(StockMove.store_id))).all())
    for store in sel.stores:
        for m in board.months:
            if store.id in first and m >= first[store.id]:
                cell(store.id, m).stocked = int(stocked.get(store.id, 0))
    board.cells = {k: v for k, v in cells.items() if sel.ids is None or k[0] in sel.ids}
    if filters.pivot is not None:
        pivot = f"{filters.pivot.year:04d}-{filters.pivot.month:02d}"
        for store in sel.stores:
            board.compare[store.id] = {
                metric: (_mean(board, store.id, metric, lambda m: m < pivot),
                         _mean(board, store.id, metric, lambda m: m >= pivot))
                for metric in METRICS
            }
    return board


def _mean(board: EffectBoard, store_id: int, metric: str, side: object) -> float | None:
    assert callable(side)
    values = []
    for m in board.months:
        c = board.cells.get((store_id, m))
        if c is None or not side(m):
            continue
        v = getattr(c, metric)
        if v is not None:
            values.append(float(v))
    return sum(values) / len(values) if values else None


def by_month(board: EffectBoard, metric: str) -> dict[int, list[float | None]]:
    """store_id -> the metric per month of the board (for the charts)."""
    out: dict[int, list[float | None]] = defaultdict(list)
    for (store_id, _), _c in sorted(board.cells.items()):
        out.setdefault(store_id, [])
    for store_id in out:
        for m in board.months:
            c = board.cells.get((store_id, m))
            v = getattr(c, metric) if c is not None else None
            out[store_id].append(None if v is None else float(v))
    return dict(out)
