"""The points ledger (one entry per user and task instance) and the monthly leaderboards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_for
from models.org import Region, Staff, Store


class Scored(Protocol):
    """What a points entry needs of a task (models.task.TaskInstance): its id and store."""

    @property
    def id(self) -> int: ...

    @property
    def store_id(self) -> int: ...

REASONS = ("done", "late_done", "missed")


class PointsEntry(Base):
    """Append-only: an entry is never edited; a task gives a user at most one entry (unique constraint)."""

    __tablename__ = "points_ledger"
    __table_args__ = (UniqueConstraint("staff_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    month: Mapped[str] = mapped_column(String(7), index=True)  # store-local, e.g. 2026-11
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class Standing:
    points: int
    rank: int
    ranked: int  # people in the region with points this month (the user included)
    gap: int | None  # points to the person ahead; None when first
    region_name: str


@dataclass(frozen=True)
class BoardLine:
    rank: int
    name: str
    store: str
    points: int


def month_of(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m")


async def award(
    session: AsyncSession, task: Scored, user: Staff, points: int, *, reason: str, now: datetime
) -> bool:
    """Book the task's entry for this user; False when it was booked before (a replay awards nothing more)."""
    store = await session.get(Store, task.store_id)
    assert store is not None
    insert = insert_for(session)
    stmt = insert(PointsEntry).values(
        staff_id=user.id, task_id=task.id, store_id=store.id, region_id=store.region_id,
        month=month_of(now, store.timezone), points=points, reason=reason, created_at=now,
    )
    returning = stmt.on_conflict_do_nothing(index_elements=["staff_id", "task_id"]).returning(PointsEntry.id)
    return (await session.execute(returning)).scalar_one_or_none() is not None


async def _region_totals(session: AsyncSession, region_id: int, month: str) -> list[tuple[int, int]]:
    """(staff_id, points) for the region and month, best first; ties by staff id so the order is stable."""
    total = func.sum(PointsEntry.points)
    stmt = (
        select(PointsEntry.staff_id, total)
        .where(PointsEntry.region_id == region_id, PointsEntry.month == month)
        .group_by(PointsEntry.staff_id)
        .order_by(total.desc(), PointsEntry.staff_id)
    )
    return [(int(sid), int(pts or 0)) for sid, pts in (await session.execute(stmt)).all()]


async def _user_region(session: AsyncSession, user: Staff) -> int | None:
    if user.region_id is not None:
        return user.region_id
    if user.store_id is None:
        return None
    store = await session.get(Store, user.store_id)
    return store.region_id if store else None


async def standing(session: AsyncSession, user: Staff, month: str) -> Standing | None:
    """The user's points this month, rank in the region and the gap to the person ahead."""
    region_id = await _user_region(session, user)
    if region_id is None:
        return None
    region = await session.get(Region, region_id)
    totals = await _region_totals(session, region_id, month)
    mine = next((pts for sid, pts in totals if sid == user.id), 0)
    ahead = [pts for sid, pts in totals if pts > mine]
    rank = len(ahead) + 1
    ranked = len(totals) if any(sid == user.id for sid, _ in totals) else len(totals) + 1
    gap = min(ahead) - mine if ahead else None
    return Standing(mine, rank, ranked, gap, region.name if region else "")


async def leaderboard(session: AsyncSession, region_id: int, month: str, top: int = 10) -> list[BoardLine]:
    """The region's top `top` for the month (ties share a rank); nobody's bottom place is ever listed."""
    totals = [(sid, pts) for sid, pts in await _region_totals(session, region_id, month) if pts > 0][:top]
    if not totals:
        return []
    ids = [sid for sid, _ in totals]
    rows = (
        await session.execute(
            select(Staff.id, Staff.name, Store.name).outerjoin(Store, Store.id == Staff.store_id)
            .where(Staff.id.in_(ids))
        )
    ).all()
    names = {sid: (name, store or "") for sid, name, store in rows}
    lines: list[BoardLine] = []
    for sid, pts in totals:
        rank = 1 + sum(1 for _, p in totals if p > pts)
        name, store = names.get(sid, ("?", ""))
        lines.append(BoardLine(rank, name, store, pts))
    return lines
