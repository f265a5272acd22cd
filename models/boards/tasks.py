"""任务 board: completion and lateness per store and day, missed stocktakes, improvement plans, and the photo
review gallery (time, place, store, duplicate and out-of-store flags; a manager's accept / reject)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import dialect_name
from models.boards.filters import Filters, Selection, local_day
from models.org import Staff
from models.photo_review import PhotoReview
from models.task import TaskInstance
from models.task_proof import TaskPhoto

TASK_STATE_NAMES = {"open": "进行中", "done": "按时完成", "late_done": "逾期完成", "missed": "未完成"}
ROW_LIMIT = 100
PHOTO_LIMIT = 60
# A photo whose camera time is this far from its arrival was probably not taken for this task.
PHOTO_TIME_SLACK = timedelta(hours=2)


@dataclass(frozen=True)
class DayLine:
    day: str
    store_id: int
    total: int
    done: int
    late: int
    missed: int
    open: int

    @property
    def completion(self) -> float | None:
        closed = self.total - self.open
        return (self.done + self.late) / closed if closed else None


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    store_id: int
    title: str
    state: str
    assignee: str
    due_at: datetime
    completed_at: datetime | None

    @property
    def state_name(self) -> str:
        return TASK_STATE_NAMES.get(self.state, self.state)


@dataclass(frozen=True)
class PhotoRow:
    photo_id: int
    store_id: int | None
    task_title: str | None
    sender: str
    received_at: datetime
    exif_at: datetime | None
    latitude: float | None
    longitude: float | None
    distance_m: float | None
    out_of_store: bool
    duplicate: bool
    state: str
    has_file: bool
    decision: str | None

    @property
    def time_suspect(self) -> bool:
        """No camera time, or one far from when the photo arrived."""
        return self.exif_at is None or abs(self.exif_at - self.received_at) > PHOTO_TIME_SLACK

    @property
    def place_unknown(self) -> bool:
        return self.latitude is None or self.longitude is None


@dataclass
class TasksBoard:
    days: list[DayLine] = field(default_factory=list)
    missed_counts: list[TaskRow] = field(default_factory=list)
    plans: list[TaskRow] = field(default_factory=list)
    photos: list[PhotoRow] = field(default_factory=list)


async def by_store_and_day(session: AsyncSession, sel: Selection, filters: Filters) -> list[DayLine]:
    """Task instances due in the range per store and board-local day, by state."""
    day = local_day(TaskInstance.due_at, dialect_name(session)).label("day")
    t = TaskInstance
    stmt = (
        select(day, t.store_id, func.count(), func.count().filter(t.state == "done"),
               func.count().filter(t.state == "late_done"), func.count().filter(t.state == "missed"),
               func.count().filter(t.state == "open"))
        .where(sel.where(t.store_id), t.due_at >= filters.start, t.due_at < filters.end)
        .group_by(day, t.store_id).order_by(day, t.store_id)
    )
    return [DayLine(d, s, *(int(v) for v in rest)) for d, s, *rest in await session.execute(stmt)]


async def _task_rows(session: AsyncSession, sel: Selection, filters: Filters, *conds: object) -> list[TaskRow]:
    t = TaskInstance
    stmt = (
        select(t.id, t.store_id, t.title, t.state, Staff.name, t.due_at, t.completed_at)
        .join(Staff, Staff.id == t.assignee_id)
        .where(sel.where(t.store_id), t.due_at >= filters.start, t.due_at < filters.end, *conds)  # type: ignore[arg-type]
        .order_by(t.due_at.desc(), t.id.desc()).limit(ROW_LIMIT)
    )
    return [TaskRow(*r) for r in await session.execute(stmt)]


async def missed_counts(session: AsyncSession, sel: Selection, filters: Filters) -> list[TaskRow]:
    """Stocktake (count-proof) tasks that closed without being done."""
    return await _task_rows(session, sel, filters, TaskInstance.proof == "count", TaskInstance.state == "missed")


async def improvement_plans(session: AsyncSession, sel: Selection, filters: Filters) -> list[TaskRow]:
    """The managers' improvement plans after missed stocktakes, in any state."""
    return await _task_rows(session, sel, filters, TaskInstance.kind == "improvement")


async def photos(session: AsyncSession, sel: Selection, filters: Filters, limit: int = PHOTO_LIMIT,
                 photo_id: int | None = None) -> list[PhotoRow]:
    """Photos received in the range from the selected stores, newest first, with their review."""
    p = TaskPhoto
    stmt = (
        select(p.id, p.store_id, TaskInstance.title, Staff.name, p.received_at, p.exif_at, p.latitude, p.longitude,
               p.distance_m, p.flagged, p.state == "duplicate", p.state, p.path.is_not(None), PhotoReview.decision)
        .join(Staff, Staff.id == p.staff_id)
        .outerjoin(TaskInstance, TaskInstance.id == p.task_id)
        .outerjoin(PhotoReview, PhotoReview.photo_id == p.id)
        .where(sel.where(p.store_id))
    )
    if photo_id is not None:
        stmt = stmt.where(p.id == photo_id)
    else:
        stmt = stmt.where(p.received_at >= filters.start, p.received_at < filters.end)
    stmt = stmt.order_by(p.received_at.desc(), p.id.desc()).limit(limit)
    rows: list[Any] = list(await session.execute(stmt))
    return [PhotoRow(*r) for r in rows]


async def photo_store(session: AsyncSession, photo_id: int) -> tuple[int | None, str | None] | None:
    """(store id, file path) of a photo; None when there is no such photo."""
    row = (await session.execute(select(TaskPhoto.store_id, TaskPhoto.path).where(TaskPhoto.id == photo_id))).first()
    return None if row is None else (row[0], row[1])


async def tasks_board(session: AsyncSession, sel: Selection, filters: Filters) -> TasksBoard:
    return TasksBoard(
        days=await by_store_and_day(session, sel, filters),
        missed_counts=await missed_counts(session, sel, filters),
        plans=await improvement_plans(session, sel, filters),
        photos=await photos(session, sel, filters),
    )
