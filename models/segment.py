"""Segments: versioned rule trees compiled to one set-based INSERT ... SELECT per rebuild (never user SQL text)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    String,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.selectable import FromClause

from bot.config_customers import CustomersSettings, SegmentConfig
from bot.errors import UnknownEntity
from bot.segment_rules import All, AnyOf, HomeStore, Metric, Not, Rule, Stage, Tag, parse_rule, windows
from models.base import Base, dialect_name
from models.customer import Customer, CustomerEvent, CustomerPurchase, CustomerTag, window_columns
from models.customer_stage import rebuild_figures, rebuild_stages
from models.org import Store

SAMPLE = 10
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    rule: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(default=1)
    source: Mapped[str] = mapped_column(String(16))  # config | api
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    built_at: Mapped[datetime | None]
    built_version: Mapped[int | None]
    count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(512))
    error_at: Mapped[datetime | None]


class SegmentMember(Base):
    __tablename__ = "segment_members"

    segment_pk: Mapped[int] = mapped_column(ForeignKey("segments.id"), primary_key=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True, index=True)


class _Compiler:
    """One LEFT JOIN per (source, days) aggregate the rule needs; every leaf is a strict true/false (NULL never
    leaks into NOT)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.aggs: dict[tuple[str, int], Subquery] = {}
        self.means: dict[tuple[str, int, str], float | None] = {}

    def aggregate(self, source: str, days: int) -> Subquery:
        key = (source, days)
        if key not in self.aggs:
            since = self.now - timedelta(days=days)
            q: Any
            if source == "purchases":
                p = CustomerPurchase
                q = select(p.customer_pk.label("pk"), func.count().label("n"), func.sum(p.amount).label("s")) \
                    .where(p.at >= since).group_by(p.customer_pk)
            else:
                e = CustomerEvent
                q = select(e.customer_pk.label("pk"), func.count().label("n"), literal(0).label("s")) \
                    .where(e.type == source, e.at >= since).group_by(e.customer_pk)
            self.aggs[key] = q.subquery(f"w_{source}_{days}")
        return self.aggs[key]

    @staticmethod
    def value_of(metric: str, sub: Subquery) -> ColumnElement[Any]:
        if metric == "spend":
            return func.coalesce(sub.c.s, 0)
        if metric == "avg_basket":
            return sub.c.s * 1.0 / sub.c.n
        return func.coalesce(sub.c.n, 0)

    async def prepare_means(self, session: AsyncSession, rule: Rule) -> None:
        """times_mean: the mean over members with at least one purchase (visit, view) in the window."""
        if isinstance(rule, All | AnyOf):
            for item in rule.items:
                await self.prepare_means(session, item)
        elif isinstance(rule, Not):
            await self.prepare_means(session, rule.item)
        elif isinstance(rule, Metric) and rule.times_mean is not None:
            source = next(iter(windows(rule)))[0]
            key = (source, rule.days, rule.metric)
            if key not in self.means:
                stored = window_columns(rule.days) if source == "purchases" else None
                if stored:  # the stored window: a scan of members, no purchases
                    n, s = stored
                    stmt = select(func.avg(_stored_value(rule.metric, n, s))).where(n > 0)
                else:
                    stmt = select(func.avg(self.value_of(rule.metric, self.aggregate(source, rule.days))))
                mean = (await session.execute(stmt)).scalar_one()
                self.means[key] = None if mean is None else float(mean)

    def condition(self, rule: Rule) -> ColumnElement[bool]:
        if isinstance(rule, All):
            return and_(*(self.condition(r) for r in rule.items))
        if isinstance(rule, AnyOf):
            return or_(*(self.condition(r) for r in rule.items))
        if isinstance(rule, Not):
            return not_(self.condition(rule.item))
        if isinstance(rule, Stage | Tag) or (isinstance(rule, Metric) and rule.metric != "avg_basket"):
            return self.leaf(rule)  # never NULL (stage is NOT NULL, EXISTS, coalesced figures): planners see through
        return case((self.leaf(rule), 1), else_=0) == 1  # strict: a NULL comparison is false, and NOT of it true

    def leaf(self, rule: Rule) -> ColumnElement[bool]:
        c = Customer
        if isinstance(rule, Stage):
            return c.stage == rule.stage
        if isinstance(rule, Tag):
            return exists().where(CustomerTag.customer_pk == c.id, CustomerTag.tag == rule.tag)
        if isinstance(rule, HomeStore):
            return c.home_store_id == select(Store.id).where(Store.code == rule.code).scalar_subquery()
        assert isinstance(rule, Metric)
        if rule.metric == "days_since_purchase":
            return self.days_since(rule)
        source = next(iter(windows(rule)))[0]
        stored = window_columns(rule.days) if source == "purchases" else None
        if rule.times_mean is not None:
            mean = self.means.get((source, rule.days, rule.metric))
            if mean is None:
                return false()
            threshold = rule.times_mean * mean
        else:
            threshold = float(rule.value or 0)
        if stored:  # Customer.purchases_{d}d / spend_{d}d, kept by each sale and the rebuild's one GROUP BY
            n, s = stored
            compared = _OPS[rule.op](_stored_value(rule.metric, n, s), threshold)
            return and_(n > 0, compared) if rule.metric == "avg_basket" else compared
        sub = self.aggregate(source, rule.days)
        compared = _OPS[rule.op](self.value_of(rule.metric, sub), threshold)
        return and_(sub.c.n > 0, compared) if rule.metric == "avg_basket" else compared

    def days_since(self, rule: Metric) -> ColumnElement[bool]:
        """Whole days since the last purchase (never = endless), as comparisons of last_purchase_at to cutoffs."""
        v = int(rule.value or 0)
        last = Customer.last_purchase_at

        def at_least(days: int) -> ColumnElement[bool]:
            return or_(last.is_(None), last <= self.now - timedelta(days=days))

        exactly = and_(at_least(v), not_(at_least(v + 1)))
        conditions: dict[str, ColumnElement[bool]] = {
            ">=": at_least(v), ">": at_least(v + 1), "<=": not_(at_least(v + 1)), "<": not_(at_least(v)),
            "==": exactly, "!=": not_(exactly),
        }
        return conditions[rule.op]

    def source(self) -> FromClause:
        joined: FromClause = Customer.__table__
        for sub in self.aggs.values():
            joined = joined.outerjoin(sub, sub.c.pk == Customer.id)
        return joined


def _stored_value(metric: str, n: Any, s: Any) -> ColumnElement[Any]:
    """A metric over stored window columns; avg_basket is NULL (not a division by zero) without purchases."""
    if metric == "avg_basket":
        return s * 1.0 / func.nullif(n, 0)  # type: ignore[no-any-return]
    return s if metric == "spend" else n  # type: ignore[no-any-return]


async def members_query(session: AsyncSession, rule: Rule, now: datetime) -> tuple[FromClause, ColumnElement[bool]]:
    compiler = _Compiler(now)
    await compiler.prepare_means(session, rule)
    cond = compiler.condition(rule)
    return compiler.source(), cond


async def rebuild(session: AsyncSession, segment: Segment, now: datetime) -> int:
    """Replace the segment's members with those its rule selects now; set-based, in the caller's transaction."""
    rule = parse_rule(segment.rule)
    source, cond = await members_query(session, rule, now)
    # Only the difference is written: members who left, then members who joined (a rebuild mostly changes few).
    if dialect_name(session) == "postgresql":
        await session.execute(_diff_in_one(segment.id, select(Customer.id.label("id")).select_from(source).where(cond)))
    else:  # SQLite runs NOT IN once into a temporary index
        gone = SegmentMember.customer_pk.not_in(select(Customer.id).select_from(source).where(cond))
        await session.execute(delete(SegmentMember).where(SegmentMember.segment_pk == segment.id, gone)
                              .execution_options(synchronize_session=False))
        have = exists().where(SegmentMember.segment_pk == segment.id, SegmentMember.customer_pk == Customer.id)
        await session.execute(insert(SegmentMember).from_select(
            ["segment_pk", "customer_pk"], select(literal(segment.id), Customer.id).select_from(source)
            .where(cond, not_(have))
        ))
    count = (await session.execute(
        select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_pk == segment.id)
    )).scalar_one()
    segment.count, segment.built_at, segment.built_version = int(count), now, segment.version
    segment.error = segment.error_at = None
    return int(count)


def _diff_in_one(segment_pk: int, chosen_q: Any) -> Any:
    """PostgreSQL: the rule is evaluated once (a CTE), and one statement deletes the members who left and inserts
    those who joined (a data-modifying CTE; hash anti-joins both ways)."""
    table: Table = SegmentMember.__table__  # type: ignore[assignment]
    t = table.c
    chosen = chosen_q.cte("chosen")
    left = (delete(table)
            .where(t.segment_pk == segment_pk, not_(exists().where(chosen.c.id == t.customer_pk)))
            .returning(t.customer_pk).cte("left_segment"))
    joined = select(literal(segment_pk), chosen.c.id).where(
        not_(exists().where(t.segment_pk == segment_pk, t.customer_pk == chosen.c.id)))
    return (insert(table).from_select(["segment_pk", "customer_pk"], joined)
            .add_cte(chosen).add_cte(left))


async def upsert_segment(session: AsyncSession, key: str, name: str, rule: dict[str, Any], source: str,
                         now: datetime) -> Segment:
    """Create or update; a changed rule is a new version (and needs a rebuild)."""
    parse_rule(rule)
    segment = (await session.execute(select(Segment).where(Segment.key == key))).scalar_one_or_none()
    if segment is None:
        segment = Segment(key=key, name=name, rule=rule, version=1, source=source, created_at=now, updated_at=now,
                          count=0)
        session.add(segment)
        await session.flush()
        return segment
    if segment.rule != rule:
        segment.version += 1
    segment.name, segment.rule, segment.source, segment.updated_at = name, rule, source, now
    return segment


async def sync_config(session: AsyncSession, segments: tuple[SegmentConfig, ...], now: datetime) -> None:
    for cfg in segments:
        await upsert_segment(session, cfg.key, cfg.name, cfg.rule, "config", now)


async def rebuild_all(session: AsyncSession, cfg: CustomersSettings, segments: tuple[SegmentConfig, ...],
                      now: datetime) -> dict[str, int | str]:
    """Stages first (rules may use them), then every segment, each in a savepoint: one failing records its
    error and leaves its previous members in place. Returns count or error per key."""
    if dialect_name(session) == "postgresql":  # the figures' GROUP BY hashes a million members without spilling
        await session.execute(text("SET LOCAL work_mem = '64MB'"))
    await sync_config(session, segments, now)
    await rebuild_figures(session, now)
    await rebuild_stages(session, cfg, now)
    out: dict[str, int | str] = {}
    for segment in (await session.execute(select(Segment).order_by(Segment.key))).scalars():
        try:
            async with session.begin_nested():
                out[segment.key] = await rebuild(session, segment, now)
        except Exception as err:  # a failing rule must not stop the others; it is recorded and shown
            segment.error, segment.error_at = f"{type(err).__name__}: {err}"[:512], now
            out[segment.key] = segment.error
    return out


async def get_segment(session: AsyncSession, key: str) -> Segment:
    segment = (await session.execute(select(Segment).where(Segment.key == key))).scalar_one_or_none()
    if segment is None:
        raise UnknownEntity("segment", key, f"找不到人群 {key}")
    return segment


async def page_members(session: AsyncSession, segment: Segment, *, limit: int, after: str | None) -> list[str]:
    stmt = (select(Customer.customer_id).join(SegmentMember, SegmentMember.customer_pk == Customer.id)
            .where(SegmentMember.segment_pk == segment.id))
    if after:
        stmt = stmt.where(Customer.customer_id > after)
    return list((await session.execute(stmt.order_by(Customer.customer_id).limit(limit))).scalars())


async def segments_of(session: AsyncSession, customer_pk: int) -> list[str]:
    stmt = select(Segment.key).join(SegmentMember, SegmentMember.segment_pk == Segment.id) \
        .where(SegmentMember.customer_pk == customer_pk).order_by(Segment.key)
    return list((await session.execute(stmt)).scalars())


def describe(segment: Segment, sample: list[str], now: datetime, cfg: CustomersSettings) -> dict[str, Any]:
    stale_after = timedelta(minutes=2 * cfg.segment_rebuild_minutes)
    stale = (segment.built_at is None or segment.built_version != segment.version
             or now - segment.built_at > stale_after)
    return {"key": segment.key, "name": segment.name, "rule": segment.rule, "version": segment.version,
            "count": segment.count, "built_at": segment.built_at.isoformat() if segment.built_at else None,
            "sample": sample, "stale": stale, "error": segment.error}
