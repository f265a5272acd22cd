"""Retention: which finished rows may be deleted (pure cutoffs and the selections that spare work still needed),
one bounded batch per call, and the running totals per table that /metrics reports.

Never deleted: pending or in-flight inbox and outbox rows; a card (outbox row) while its transfer, count or task
is still open, or while its response_code can still update it; a photo of an open task or one still being
downloaded. A batch is claimed with FOR UPDATE SKIP LOCKED on PostgreSQL, so several servers prune side by side
without waiting on each other; on SQLite the batch is one short BEGIN IMMEDIATE transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, String, and_, cast, delete, exists, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import Settings
from models.base import Base, dialect_name, insert_for
from models.count import StockCount
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from models.task import TaskInstance
from models.task_proof import TaskPhoto, UserLocation
from models.transfer import Transfer

TABLES = ("inbox", "outbox", "user_locations", "task_photos")
TRANSFER_CLOSED = ("rejected", "cancelled", "received", "partially_received")
INBOX_FINISHED = ("done", "failed")
OUTBOX_FINISHED = ("sent", "failed", "cancelled")
PHOTO_IN_PROGRESS = ("pending",)


class RetentionStat(Base):
    """Rows deleted so far per table, by every server (one row per table, updated in the deleting transaction)."""

    __tablename__ = "retention_stats"

    table_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    pruned: Mapped[int] = mapped_column(BigInteger, default=0)
    last_pruned_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these may go (each still subject to its table's "still needed" rules)."""

    inbox: datetime
    outbox: datetime
    user_locations: datetime
    task_photos: datetime

    def of(self, table: str) -> datetime:
        value: datetime = getattr(self, table)
        return value


def cutoffs(settings: Settings, now: datetime) -> Cutoffs:
    """Pure: the cutoffs for `now`. The outbox keeps at least the card window, so no updatable card is lost."""
    r = settings.retention
    card_window = timedelta(hours=settings.outbox.card_update_max_age_hours)
    return Cutoffs(
        inbox=now - timedelta(days=r.inbox_days),
        outbox=now - max(timedelta(days=r.outbox_days), card_window),
        user_locations=now - timedelta(days=r.locations_days),
        task_photos=now - timedelta(days=r.photos_days),
    )


def _card_of_open_work() -> ColumnElement[bool]:
    """The row is a card whose subject still waits on someone: cards_of() / the card's buttons need it."""
    m = OutboundMessage
    transfer = exists().where(
        Transfer.state.not_in(TRANSFER_CLOSED),
        m.card_task_id.like(literal("transfer-") + cast(Transfer.id, String) + literal("-%")),
    )
    count = exists().where(
        StockCount.state == "pending", m.card_task_id == literal("count-") + cast(StockCount.id, String)
    )
    task = exists().where(
        TaskInstance.state == "open", m.card_task_id == literal("task-") + cast(TaskInstance.id, String)
    )
    return and_(m.card_task_id.is_not(None), or_(transfer, count, task))


def candidates(table: str, cut: datetime, limit: int) -> Select[int]:
    """The ids of up to `limit` rows of `table` that may be deleted now."""
    stmt: Select[int]
    if table == "inbox":
        e = InboundEvent
        stmt = select(e.id).where(
            e.state.in_(INBOX_FINISHED), e.received_at < cut, or_(e.processed_at.is_(None), e.processed_at < cut)
        )
    elif table == "outbox":
        m = OutboundMessage
        stmt = select(m.id).where(
            m.state.in_(OUTBOX_FINISHED), m.next_attempt_at < cut, m.created_at < cut,
            or_(m.sent_at.is_(None), m.sent_at < cut), not_(_card_of_open_work()),
        )
    elif table == "user_locations":
        stmt = select(UserLocation.id).where(UserLocation.at < cut)
    elif table == "task_photos":
        p = TaskPhoto
        open_task = exists().where(TaskInstance.id == p.task_id, TaskInstance.state == "open")
        stmt = select(p.id).where(p.received_at < cut, p.state.not_in(PHOTO_IN_PROGRESS), not_(open_task))
    else:
        raise ValueError(f"no retention rule for table {table!r}")
    return stmt.limit(limit)


@dataclass(frozen=True)
class Batch:
    deleted: int
    files: list[str]  # data_dir-relative photo files no remaining row refers to: unlink after the commit


async def prune_batch(session: AsyncSession, table: str, cut: datetime, limit: int, now: datetime) -> Batch:
    """Delete up to `limit` prunable rows of `table` in the caller's transaction and add them to the totals."""
    stmt = candidates(table, cut, limit)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # another server's batch: leave it to that server
    ids = list((await session.execute(stmt)).scalars())
    if not ids:
        return Batch(0, [])
    model: Any = {"inbox": InboundEvent, "outbox": OutboundMessage, "user_locations": UserLocation,
                  "task_photos": TaskPhoto}[table]
    files: list[str] = []
    if table == "task_photos":
        paths = set((await session.execute(
            select(TaskPhoto.path).where(TaskPhoto.id.in_(ids), TaskPhoto.path.is_not(None))
        )).scalars())
        await session.execute(delete(model).where(model.id.in_(ids)))
        if paths:  # a duplicate photo shares its original's file: keep it while any row still points at it
            kept = set((await session.execute(select(TaskPhoto.path).where(TaskPhoto.path.in_(paths)))).scalars())
            files = sorted(p for p in paths - kept if p)
    else:
        await session.execute(delete(model).where(model.id.in_(ids)))
    await _add_total(session, table, len(ids), now)
    return Batch(len(ids), files)


async def _add_total(session: AsyncSession, table: str, n: int, now: datetime) -> None:
    insert = insert_for(session)
    stmt = insert(RetentionStat).values(table_name=table, pruned=n, last_pruned_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["table_name"],
        set_={"pruned": RetentionStat.pruned + stmt.excluded.pruned, "last_pruned_at": stmt.excluded.last_pruned_at},
    )
    await session.execute(stmt)


async def totals(session: AsyncSession) -> dict[str, int]:
    """Rows deleted so far per table (0 for a table never pruned)."""
    rows = dict(list(await session.execute(select(RetentionStat.table_name, RetentionStat.pruned))))
    return {t: int(rows.get(t, 0)) for t in TABLES}


async def oldest_kept(session: AsyncSession) -> dict[str, datetime | None]:
    """The time of the oldest row kept per table, read off the primary key (ids grow with time), so a scrape
    costs one index probe per table, never a scan."""
    columns: dict[str, Any] = {
        "inbox": (InboundEvent.received_at, InboundEvent.id),
        "outbox": (OutboundMessage.created_at, OutboundMessage.id),
        "user_locations": (UserLocation.at, UserLocation.id),
        "task_photos": (TaskPhoto.received_at, TaskPhoto.id),
    }
    out: dict[str, datetime | None] = {}
    for table, (at, ident) in columns.items():
        out[table] = (await session.execute(select(at).order_by(ident).limit(1))).scalar_one_or_none()
    return out
