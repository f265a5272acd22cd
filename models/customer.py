"""Members: the Customer row with its running figures, tags, purchases (from POS sales) and behaviour events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    case,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.errors import UnknownEntity
from models.base import Base, UTCDateTime, dialect_name, insert_for

EVENT_TYPES = ("visit", "view", "group_message", "mp_order")
T = TypeVar("T")
STAGES = ("new", "active", "high_potential", "at_risk", "dormant", "lost")


class Customer(Base):
    """One member. purchases_total / spend_total / last_purchase_at are running figures kept by record_purchase
    in the sale's own transaction. The windowed figures (purchases_30d … spend_365d) and the stage are stored too:
    a sale adds itself to them in the same UPDATE, and the scheduled rebuild recomputes them from CustomerPurchase
    in one GROUP BY (purchases leaving a window are dropped then), so profiles and segments read columns."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    phone_tail: Mapped[str] = mapped_column(String(4), default="", index=True)
    home_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    external_userid: Mapped[str | None] = mapped_column(String(128), index=True)
    follow_userid: Mapped[str | None] = mapped_column(String(64), index=True)
    joined_at: Mapped[datetime | None]
    stage: Mapped[str] = mapped_column(String(16), default="new")  # as of the last segment rebuild
    purchases_total: Mapped[int] = mapped_column(default=0)
    spend_total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    last_purchase_at: Mapped[datetime | None]
    purchases_30d: Mapped[int] = mapped_column(default=0, server_default="0")
    spend_30d: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0), server_default="0")
    purchases_90d: Mapped[int] = mapped_column(default=0, server_default="0")
    spend_90d: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0), server_default="0")
    purchases_365d: Mapped[int] = mapped_column(default=0, server_default="0")
    spend_365d: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0), server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


WINDOWS = (30, 90, 365)  # the stored windows: Customer.purchases_{d}d / spend_{d}d


def stored_window(days: int) -> tuple[Any, Any]:
    """(purchases, spend) columns of a stored window (`days` one of WINDOWS)."""
    return getattr(Customer, f"purchases_{days}d"), getattr(Customer, f"spend_{days}d")


def window_columns(days: int) -> tuple[Any, Any] | None:
    """(purchases, spend) columns of a stored window, or None when `days` is not one of WINDOWS."""
    return stored_window(days) if days in WINDOWS else None


@dataclass(frozen=True)
class StageCuts:
    """The day cut-offs of the date-based stages at one moment (from [customers])."""

    new: datetime
    active: datetime
    at_risk: datetime
    dormant: datetime


def stage_by_dates(cuts: StageCuts, joined_at: Any, last_purchase_at: Any) -> Any:
    """The stage rule without high potential, as SQL over the given columns / expressions."""
    return case(
        (joined_at >= cuts.new, "new"),
        (last_purchase_at.is_(None), "lost"),
        (last_purchase_at >= cuts.active, "active"),
        (last_purchase_at >= cuts.at_risk, "at_risk"),
        (last_purchase_at >= cuts.dormant, "dormant"),
        else_="lost",
    )


class CustomerTag(Base):
    __tablename__ = "customer_tags"
    __table_args__ = (UniqueConstraint("customer_pk", "tag"), Index("ix_customer_tags_tag", "tag"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    tag: Mapped[str] = mapped_column(String(64))


class CustomerPurchase(Base):
    """A member's purchase: one per POS sale that carried a known customer_id (sale_id unique: replays book
    nothing)."""

    __tablename__ = "customer_purchases"
    __table_args__ = (
        Index("ix_customer_purchases_customer_at", "customer_pk", "at"),
        Index("ix_customer_purchases_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    sale_id: Mapped[str] = mapped_column(String(128), unique=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    at: Mapped[datetime]
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class CustomerEvent(Base):
    """A visit, a mini-program view, a community message or a mini-program order; event_id unique (idempotent)."""

    __tablename__ = "customer_events"
    __table_args__ = (Index("ix_customer_events_customer_type_at", "customer_pk", "type", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    store: Mapped[str | None] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


_PURCHASE_STATEMENTS: dict[tuple[str, tuple[int, ...], bool], tuple[Any, Any]] = {}


def _purchase_statements(dialect: str, windows: tuple[int, ...], staged: bool) -> tuple[Any, Any]:
    """The sale path's statements for one shape (dialect, the stored windows the sale falls in, whether the stage
    moves), built once with bound parameters: building the CASE/CTE expressions anew per sale cost more Python
    than the database work itself. (bump, insert): on PostgreSQL the INSERT carries the UPDATE as a CTE."""
    key = (dialect, windows, staged)
    built = _PURCHASE_STATEMENTS.get(key)
    if built is not None:
        return built
    table: Table = Customer.__table__  # type: ignore[assignment]
    purchases: Table = CustomerPurchase.__table__  # type: ignore[assignment]
    c = table.c
    at = bindparam("p_at", type_=UTCDateTime())
    amount = bindparam("p_amount", type_=Numeric(14, 2))
    last = case((c.last_purchase_at.is_(None) | (c.last_purchase_at < at), at), else_=c.last_purchase_at)
    values: dict[str, Any] = {"purchases_total": c.purchases_total + 1, "spend_total": c.spend_total + amount,
                              "last_purchase_at": last}
    for days in windows:
        values[f"purchases_{days}d"] = c[f"purchases_{days}d"] + 1
        values[f"spend_{days}d"] = c[f"spend_{days}d"] + amount
    if staged:
        cuts = StageCuts(**{f: bindparam(f"cut_{f}", type_=UTCDateTime())  # type: ignore[arg-type]
                            for f in ("new", "active", "at_risk", "dormant")})
        values["stage"] = case((c.stage == "high_potential", c.stage),
                               else_=stage_by_dates(cuts, c.joined_at, last))
    bump = (update(table).where(c.customer_id == bindparam("p_customer_id")).values(values)
            .returning(c.id))
    if dialect == "postgresql":  # one round trip: the UPDATE feeds the INSERT
        bumped = bump.cte("bumped")
        row = select(bumped.c.id, bindparam("p_sale_id", type_=String()), bindparam("p_store_id", type_=Integer()),
                     at, amount)
        insert: Any = (postgresql.insert(purchases)
                       .from_select(["customer_pk", "sale_id", "store_id", "at", "amount"], row)
                       .on_conflict_do_nothing(index_elements=["sale_id"]).add_cte(bumped)
                       .returning(purchases.c.customer_pk))
    else:
        insert = (sqlite.insert(purchases).values(customer_pk=bindparam("p_pk"), sale_id=bindparam("p_sale_id"),
                                                  store_id=bindparam("p_store_id"), at=at, amount=amount)
                  .on_conflict_do_nothing(index_elements=["sale_id"]))
    _PURCHASE_STATEMENTS[key] = (bump, insert)
    return bump, insert


async def record_purchase(
    session: AsyncSession, *, sale_id: str, customer_id: str, store_id: int | None, at: datetime, amount: Decimal,
    now: datetime | None = None, cuts: StageCuts | None = None,
) -> int | None:
    """Book a sale as the member's purchase, in the sale's transaction: one UPDATE of the running figures, the
    stored windows that contain `at` (relative to `now`) and the stage (by dates; high potential is kept and
    granted by the rebuild), and one INSERT; on PostgreSQL both in one statement. An unknown member books nothing
    (the sale itself stands); returns the member's pk, or None for an unknown member (or a replayed sale_id on
    PostgreSQL, where the pk comes back from the INSERT). The statements are built once per shape
    (`_purchase_statements`) and run on the session's connection with Core: no ORM bookkeeping on the sale path."""
    windows = tuple(d for d in WINDOWS if now is not None and at >= now - timedelta(days=d))
    dialect = dialect_name(session)
    bump, insert = _purchase_statements(dialect, windows, cuts is not None)
    params: dict[str, Any] = {"p_customer_id": customer_id, "p_at": at, "p_amount": amount, "p_sale_id": sale_id,
                              "p_store_id": store_id}
    if cuts is not None:
        params.update(cut_new=cuts.new, cut_active=cuts.active, cut_at_risk=cuts.at_risk, cut_dormant=cuts.dormant)
    conn = await session.connection()
    if dialect == "postgresql":
        inserted: int | None = (await conn.execute(insert, params)).scalar_one_or_none()
        return inserted
    pk: int | None = (await conn.execute(bump, params)).scalar_one_or_none()
    if pk is None:
        return None
    await conn.execute(insert, {**params, "p_pk": pk})
    return pk


@dataclass(frozen=True)
class EventIn:
    event_id: str
    customer_id: str
    type: str
    at: datetime
    store: str | None = None
    sku: str | None = None


async def record_events(session: AsyncSession, events: Sequence[EventIn], now: datetime) -> tuple[int, int]:
    """Store a batch of events; an unknown member or type rejects the whole batch (UnknownEntity names it).
    Returns (accepted, duplicates): a replayed event_id is a duplicate and stores nothing."""
    for i, ev in enumerate(events):
        if ev.type not in EVENT_TYPES:
            raise UnknownEntity("event type", ev.type, f"events.{i}.type: unknown type {ev.type!r}")
    wanted = {ev.customer_id for ev in events}
    pks: dict[str, int] = {}
    for chunk in _chunks(sorted(wanted), 500):
        rows = await session.execute(select(Customer.customer_id, Customer.id).where(Customer.customer_id.in_(chunk)))
        pks.update({str(cid): int(pk) for cid, pk in rows.all()})
    for i, ev in enumerate(events):
        if ev.customer_id not in pks:
            raise UnknownEntity("customer", ev.customer_id, f"events.{i}.customer_id: unknown customer "
                                                            f"{ev.customer_id!r}")
    accepted = 0
    insert = insert_for(session)
    for batch in _chunks(list(events), 500):
        values = [{"event_id": ev.event_id, "customer_pk": pks[ev.customer_id], "type": ev.type, "at": ev.at,
                   "store": ev.store, "sku": ev.sku, "created_at": now} for ev in batch]
        stmt = insert(CustomerEvent).values(values).on_conflict_do_nothing(index_elements=["event_id"])
        accepted += len((await session.execute(stmt.returning(CustomerEvent.id))).all())
    return accepted, len(events) - accepted


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def customer_by_id(session: AsyncSession, customer_id: str) -> Customer:
    row = (await session.execute(select(Customer).where(Customer.customer_id == customer_id))).scalar_one_or_none()
    if row is None:
        raise UnknownEntity("customer", customer_id, f"找不到会员 {customer_id}")
    return row


async def tags_of(session: AsyncSession, customer_pk: int) -> list[str]:
    rows = await session.execute(select(CustomerTag.tag).where(CustomerTag.customer_pk == customer_pk))
    return sorted(rows.scalars())


async def contact_changed(
    session: AsyncSession, *, change: str, staff_userid: str, external_userid: str, state: str, now: datetime,
) -> Customer | None:
    """change_external_contact: keep the member's WeCom link current. The member is found by external_userid,
    else by the `State` of the contact way (we put the member id there); returns the changed member or None."""
    member = (await session.execute(
        select(Customer).where(Customer.external_userid == external_userid).order_by(Customer.id).limit(1)
    )).scalar_one_or_none()
    if member is None and state:
        member = (await session.execute(select(Customer).where(Customer.customer_id == state))).scalar_one_or_none()
    if member is None:
        return None
    if change in ("add_external_contact", "edit_external_contact", "add_half_external_contact"):
        member.external_userid = external_userid
        member.follow_userid = staff_userid
    elif change in ("del_external_contact", "del_follow_user") and member.follow_userid == staff_userid:
        member.follow_userid = None  # nobody can reach them through WeCom until someone is added again
    else:
        return None
    member.updated_at = now
    return member
