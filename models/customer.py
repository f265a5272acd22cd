"""Members: the Customer row with its running figures, tags, purchases (from POS sales) and behaviour events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import ForeignKey, Index, Numeric, String, UniqueConstraint, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.errors import UnknownEntity
from models.base import Base, insert_for

EVENT_TYPES = ("visit", "view", "group_message", "mp_order")
T = TypeVar("T")
STAGES = ("new", "active", "high_potential", "at_risk", "dormant", "lost")


class Customer(Base):
    """One member. purchases_total / spend_total / last_purchase_at are running figures kept by record_purchase
    in the sale's own transaction; windowed figures (30/90/365 days) come from CustomerPurchase."""

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
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


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


async def record_purchase(
    session: AsyncSession, *, sale_id: str, customer_id: str, store_id: int | None, at: datetime, amount: Decimal,
) -> int | None:
    """Book a sale as the member's purchase, in the sale's transaction: one UPDATE of the running figures and
    one INSERT. An unknown member books nothing (the sale itself stands); returns the member's pk or None."""
    stmt = (
        update(Customer).where(Customer.customer_id == customer_id)
        .values(
            purchases_total=Customer.purchases_total + 1,
            spend_total=Customer.spend_total + amount,
            last_purchase_at=case(
                (Customer.last_purchase_at.is_(None) | (Customer.last_purchase_at < at), at),
                else_=Customer.last_purchase_at,
            ),
        )
        .returning(Customer.id)
        .execution_options(synchronize_session=False)
    )
    pk = (await session.execute(stmt)).scalar_one_or_none()
    if pk is None:
        return None
    await session.execute(
        insert_for(session)(CustomerPurchase)
        .values(customer_pk=pk, sale_id=sale_id, store_id=store_id, at=at, amount=amount)
        .on_conflict_do_nothing(index_elements=["sale_id"])
    )
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
