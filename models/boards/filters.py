"""Board filters from a query string (region, store, category, date range, …) and the stores they select.

Parsing is pure: any mapping of strings gives a `Filters` or a `FilterError` naming the field in Chinese (the
page answers 400). Resolving against the database gives the stores a viewer may see under those filters; a store
or region outside the viewer's scope raises `OutOfScope` (the page answers 403), never an empty board.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal_column, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from models.catalog import Sku
from models.org import Region, Store

# Boards read days and months as the chain's people do: China time (no daylight saving, so a fixed offset).
BOARD_TZ = ZoneInfo("Asia/Shanghai")
BOARD_OFFSET_HOURS = 8
DATE_MIN, DATE_MAX = date(2000, 1, 1), date(2099, 12, 31)
MAX_RANGE_DAYS = 731
DEFAULT_RANGE_DAYS = 30
MAX_TEXT = 64
Stamp = ColumnElement[datetime] | InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None]
# constants in the SQL text, not bound: GROUP BY must repeat the very expression the SELECT has
_PG_OFFSET: ColumnElement[object] = literal_column(f"interval '{BOARD_OFFSET_HOURS} hours'")
_SQLITE_OFFSET: ColumnElement[object] = literal_column(f"'+{BOARD_OFFSET_HOURS} hours'")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class FilterError(ValueError):
    """A query parameter no board can use; `message` is what the page says (Chinese, what to change)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class OutOfScope(PermissionError):
    """A store or region the viewer may not look into."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"out of scope: {what}")


@dataclass(frozen=True)
class Filters:
    region: str | None = None
    store: str | None = None
    category: str | None = None
    date_from: date = date(2026, 1, 1)
    date_to: date = date(2026, 1, 31)
    days: int | None = None  # no-movement days (None: the rule's setting)
    sku: str | None = None
    pivot: date | None = None
    month: str | None = None  # YYYY-MM

    @property
    def start(self) -> datetime:
        """The range's first instant (board-local midnight) in UTC."""
        return datetime.combine(self.date_from, time(), tzinfo=BOARD_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The instant after the range's last day (`to` is inclusive)."""
        return datetime.combine(self.date_to + timedelta(days=1), time(), tzinfo=BOARD_TZ).astimezone(UTC)

    def query(self, **override: str | None) -> dict[str, str]:
        """The filters as query parameters (for links and export URLs), with some changed or dropped."""
        out = {"region": self.region, "store": self.store, "category": self.category,
               "from": self.date_from.isoformat(), "to": self.date_to.isoformat(),
               "days": str(self.days) if self.days is not None else None, "sku": self.sku,
               "pivot": self.pivot.isoformat() if self.pivot else None, "month": self.month}
        out.update(override)
        return {k: v for k, v in out.items() if v}


def _text(raw: Mapping[str, str], name: str, label: str) -> str | None:
    value = raw.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise FilterError(name, f"{label}不像有效的值（最多 {MAX_TEXT} 个字符，不能含控制字符），请重新选择。")
    return value


def _date(raw: Mapping[str, str], name: str, label: str, default: date | None) -> date | None:
    value = raw.get(name, "").strip()
    if not value:
        return default
    try:
        day = date.fromisoformat(value) if value.isascii() and len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise FilterError(name, f"{label}要写成 2026-11-24 这样的日期。")
    if not DATE_MIN <= day <= DATE_MAX:
        raise FilterError(name, f"{label}要在 {DATE_MIN} 到 {DATE_MAX} 之间。")
    return day


def parse_filters(raw: Mapping[str, str], today: date, *, default_days: int = DEFAULT_RANGE_DAYS) -> Filters:
    """Filters from query parameters; unknown parameters are ignored, a bad value is a FilterError. Without
    `from`, the range is the `default_days` up to `to` (never before DATE_MIN)."""
    region = _text(raw, "region", "区域")
    store = _text(raw, "store", "门店")
    category = _text(raw, "category", "品类")
    sku = _text(raw, "sku", "商品编码")
    last = _date(raw, "to", "结束日期", today)
    assert last is not None
    first = _date(raw, "from", "开始日期", max(DATE_MIN, last - timedelta(days=default_days - 1)))
    assert first is not None
    if first > last:
        raise FilterError("from", "开始日期不能晚于结束日期，请调换一下。")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise FilterError("from", f"日期范围最长 {MAX_RANGE_DAYS} 天，请缩短范围。")
    days_raw = raw.get("days", "").strip()
    days = None
    if days_raw:
        if not (days_raw.isascii() and days_raw.isdigit() and len(days_raw) <= 3 and 1 <= int(days_raw) <= 365):
            raise FilterError("days", "无动销天数要写 1 到 365 的整数。")
        days = int(days_raw)
    pivot = _date(raw, "pivot", "对比日期", None)
    month = raw.get("month", "").strip() or None
    if month is not None:
        m = _MONTH.match(month) if month.isascii() else None
        if m is None or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2099:
            raise FilterError("month", "月份要写成 2026-11 这样。")
    return Filters(region=region, store=store, category=category, date_from=first, date_to=last, days=days,
                   sku=sku, pivot=pivot, month=month)


@dataclass(frozen=True)
class StoreRef:
    id: int
    code: str
    name: str
    region_code: str
    region_name: str


@dataclass(frozen=True)
class Selection:
    """The stores a board shows: every one the viewer may see that the filters keep. `ids` is None when that is
    the whole chain (no store condition needed in SQL)."""

    stores: tuple[StoreRef, ...]
    ids: frozenset[int] | None
    category: str | None

    def by_id(self) -> dict[int, StoreRef]:
        return {s.id: s for s in self.stores}

    def where(self, column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None]) -> ColumnElement[bool]:
        """A condition keeping rows of the selected stores."""
        return true() if self.ids is None else column.in_(sorted(self.ids))

    def where_category(self, sku_column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        if self.category is None:
            return true()
        return sku_column.in_(select(Sku.id).where(Sku.category == self.category).scalar_subquery())


async def select_stores(session: AsyncSession, scope: frozenset[int] | None, filters: Filters) -> Selection:
    """The stores in scope that the region/store filters keep. A named store or region that exists but lies
    outside the scope raises OutOfScope; one that does not exist is a FilterError."""
    rows = (await session.execute(
        select(Store.id, Store.code, Store.name, Region.code, Region.name).join(Region, Region.id == Store.region_id)
        .order_by(Store.code)
    )).all()
    every = [StoreRef(*r) for r in rows]
    visible = [s for s in every if scope is None or s.id in scope]
    chosen = visible
    if filters.region is not None:
        in_region = [s for s in every if s.region_code == filters.region]
        if not in_region and not await _region_exists(session, filters.region):
            raise FilterError("region", f"没有区域「{filters.region}」，请从列表里选。")
        chosen = [s for s in chosen if s.region_code == filters.region]
        if in_region and not chosen:
            raise OutOfScope(f"region {filters.region}")
    if filters.store is not None:
        match = [s for s in every if s.code == filters.store]
        if not match:
            raise FilterError("store", f"没有门店「{filters.store}」，请从列表里选。")
        if scope is not None and match[0].id not in scope:
            raise OutOfScope(f"store {filters.store}")
        chosen = [s for s in chosen if s.code == filters.store]
    whole = scope is None and filters.region is None and filters.store is None
    return Selection(stores=tuple(chosen), ids=None if whole else frozenset(s.id for s in chosen),
                     category=filters.category)


async def _region_exists(session: AsyncSession, code: str) -> bool:
    return (await session.execute(select(Region.id).where(Region.code == code))).first() is not None


async def categories(session: AsyncSession) -> list[str]:
    """Every category in the catalogue (for the filter's list)."""
    stmt = select(Sku.category).where(Sku.category.is_not(None)).group_by(Sku.category).order_by(Sku.category)
    return [c for (c,) in await session.execute(stmt) if c]


def local_day(column: Stamp, dialect: str) -> ColumnElement[str]:
    """The board-local day of a stored (naive UTC) timestamp, as 'YYYY-MM-DD' text on both databases."""
    if dialect == "postgresql":
        return func.to_char(column + _PG_OFFSET, literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), column, _SQLITE_OFFSET)


def local_month(column: Stamp, dialect: str) -> ColumnElement[str]:
    """The board-local month of a stored timestamp, as 'YYYY-MM'."""
    if dialect == "postgresql":
        return func.to_char(column + _PG_OFFSET, literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column, _SQLITE_OFFSET)


