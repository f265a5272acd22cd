"""Task instances per (template, store, period): their states, completion by proof, and count-proof progress.

A scheduled instance is the store's: one per store and period, on the card of everyone of the template's role
there; the assignee (one of them, rotating by day) is who answers for a miss, and whoever does it completes it
for all (their cards are updated) and gets the points. A broadcast makes one instance per person.
State: open -> done | late_done (completed after due_at) | missed (still open when closes_at passed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from bot.errors import InvalidState, NotAllowed, UnknownEntity
from models.base import Base
from models.catalog import Sku
from models.org import Staff, Store
from models.outbox import OutboundMessage
from models.points import award
from models.task_proof import TaskBroadcast, TaskPhoto, UserLocation

__all__ = ["TaskBroadcast", "TaskCountLine", "TaskInstance", "TaskPhoto", "UserLocation"]

KINDS = ("scheduled", "broadcast", "improvement")
STATES = ("open", "done", "late_done", "missed")
PROOF_NAMES = {"photo": "拍照", "count": "盘点", "confirm": "点完成", "text": "文字回复"}


class TaskInstance(Base):
    __tablename__ = "task_instances"
    __table_args__ = (
        UniqueConstraint("template_key", "store_id", "period_key"),  # one instance per template, store, period
        Index("ix_task_instances_state_due", "state", "due_at"),
        Index("ix_task_instances_assignee_state", "assignee_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16), default="scheduled")
    title: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text, default="")
    proof: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    assignee_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    period_key: Mapped[str] = mapped_column(String(128))  # store-local fire time, e.g. 2026-11-24T09:00
    fire_at: Mapped[datetime]
    due_at: Mapped[datetime]
    closes_at: Mapped[datetime]  # still open then -> missed
    points: Mapped[int] = mapped_column(default=0)
    geofence_meters: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    answer: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(default=False)
    reminded_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]


class TaskCountLine(Base):
    """One SKU on a count task's cycle-count list; the task completes when every line is counted."""

    __tablename__ = "task_count_lines"
    __table_args__ = (UniqueConstraint("task_id", "sku_id"), Index("ix_task_count_lines_sku", "sku_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    listed_at: Mapped[datetime]
    counted_at: Mapped[datetime | None]
    counted_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


@dataclass(frozen=True)
class Completion:
    task: TaskInstance
    state: str  # done | late_done
    points: int
    by: Staff  # who completed it (and got the points)


@dataclass(frozen=True)
class CountProgress:
    """A count task one line further on, not finished: which line was ticked and which SKUs are left."""

    task: TaskInstance
    line_id: int
    left: list[str]


def local(at: datetime, tz: str) -> datetime:
    return at.astimezone(ZoneInfo(tz))


def hhmm(at: datetime, tz: str) -> str:
    """A time as staff read it: store-local, 'HH:MM', with the date when it is not today."""
    return local(at, tz).strftime("%m-%d %H:%M")


def period_key(fire_local: datetime) -> str:
    return fire_local.strftime("%Y-%m-%dT%H:%M")


async def get_task(session: AsyncSession, task_id: int | str) -> TaskInstance:
    try:
        ident = int(task_id)
    except ValueError as err:
        raise UnknownEntity("task", task_id, f"没有编号为 {task_id} 的任务，发「任务」查看你的任务。") from err
    task = await session.get(TaskInstance, ident)
    if task is None:
        raise UnknownEntity("task", task_id, f"没有编号为 {task_id} 的任务，发「任务」查看你的任务。")
    return task


def can_complete(task: TaskInstance, user: Staff) -> bool:
    """The assignee, or anyone of the task's store for a scheduled store task (one instance per store)."""
    if task.assignee_id == user.id:
        return True
    return task.kind == "scheduled" and user.store_id == task.store_id


CompletedHook = Callable[[AsyncSession, Completion, datetime, str | None], Awaitable[object]]
_ON_COMPLETED: list[CompletedHook] = []


def on_completed(hook: CompletedHook) -> CompletedHook:
    """Register who hears that a task was completed (handlers.task_notify settles its cards): models never call
    up into handlers, so the flow registers itself here when it is imported. The hook gets the completion, the
    time and the userid whose card the completing click already updates (None when nobody clicked)."""
    _ON_COMPLETED.append(hook)
    return hook


async def complete(
    session: AsyncSession, task: TaskInstance, user: Staff, now: datetime, *, answer: str | None = None,
    flagged: bool = False, clicked: bool = False,
) -> Completion:
    """Close an open task (done before due_at, late_done after), book its points once and have its cards settled.

    The state change is a conditional UPDATE, so a replayed click or two processes complete it once.
    `clicked`: the completer tapped their own card, which the click's handler updates with the click's code.
    """
    if not can_complete(task, user):
        raise NotAllowed(
            f"user {user.userid} may not complete task {task.id}", "这个任务不是你的，发「任务」查看你的任务。"
        )
    state = "done" if now <= task.due_at else "late_done"
    stmt = (
        update(TaskInstance)
        .where(TaskInstance.id == task.id, TaskInstance.state == "open")
        .values(state=state, completed_at=now, completed_by=user.id, answer=answer, flagged=flagged)
        .returning(TaskInstance.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        raise InvalidState(f"task {task.id} is not open", "这个任务已经结束了，不用再交。")
    await session.refresh(task)
    points = task.points if state == "done" else task.points // 2
    await award(session, task, user, points, reason=state, now=now)
    done = Completion(task, state, points, user)
    for hook in _ON_COMPLETED:
        await hook(session, done, now, user.userid if clicked else None)
    return done


def card_filter(task_id: int) -> ColumnElement[bool]:
    """The outbox rows of a task's cards: `task-<id>` (the assignee's) and `task-<id>-<userid>` (the team's)."""
    return or_(OutboundMessage.card_task_id == f"task-{task_id}",
               OutboundMessage.card_task_id.like(f"task-{task_id}-%"))


async def open_tasks_for(session: AsyncSession, user: Staff, proof: str | None = None) -> list[TaskInstance]:
    """The user's open tasks, oldest first: their own, and their store's scheduled tasks for their role (whoever
    of the role is on the rota today, anyone of it may do it)."""
    mine = TaskInstance.assignee_id == user.id
    if user.store_id is not None:
        team = select(Staff.id).where(Staff.store_id == user.store_id, Staff.role == user.role)
        mine = or_(mine, (TaskInstance.kind == "scheduled") & (TaskInstance.store_id == user.store_id)
                   & TaskInstance.assignee_id.in_(team))
    stmt = select(TaskInstance).where(mine, TaskInstance.state == "open")
    if proof is not None:
        stmt = stmt.where(TaskInstance.proof == proof)
    return list((await session.execute(stmt.order_by(TaskInstance.fire_at, TaskInstance.id))).scalars())


async def open_store_tasks(session: AsyncSession, store_id: int, proof: str) -> list[TaskInstance]:
    stmt = select(TaskInstance).where(
        TaskInstance.store_id == store_id, TaskInstance.state == "open", TaskInstance.proof == proof
    )
    return list((await session.execute(stmt.order_by(TaskInstance.fire_at, TaskInstance.id))).scalars())


async def store_of(session: AsyncSession, task: TaskInstance) -> Store:
    store = await session.get(Store, task.store_id)
    assert store is not None  # foreign key
    return store


async def count_lines(session: AsyncSession, task_id: int) -> list[TaskCountLine]:
    stmt = select(TaskCountLine).where(TaskCountLine.task_id == task_id).order_by(TaskCountLine.id)
    return list((await session.execute(stmt)).scalars())


async def record_task_count(
    session: AsyncSession, user: Staff, store_id: int, sku_id: int, at: datetime, *,
    progress: list[CountProgress] | None = None,
) -> list[Completion]:
    """A SKU was counted at a store (the 盘点 flow calls this): tick it on every open count task listing it;
    a task whose every line is now counted completes, credited to `user`. Returns the completions; `progress`
    collects the user's own tasks that moved on but are not finished (handlers/task_notify.py tells them)."""
    stmt = (
        select(TaskCountLine, TaskInstance)
        .join(TaskInstance, TaskInstance.id == TaskCountLine.task_id)
        .where(
            TaskCountLine.store_id == store_id,
            TaskCountLine.sku_id == sku_id,
            TaskCountLine.counted_at.is_(None),
            TaskInstance.state == "open",
            TaskInstance.fire_at <= at,
        )
    )
    done: list[Completion] = []
    for line, task in (await session.execute(stmt)).all():
        line.counted_at, line.counted_by = at, user.id
        await session.flush()
        left = await remaining_skus(session, task.id)
        await _drop_unsent_progress(session, task.id, user.userid)  # several SKUs in one 盘点: one word, not three
        if not left:
            credited = user if can_complete(task, user) else await session.get(Staff, task.assignee_id)
            assert credited is not None
            done.append(await complete(session, task, credited, at))
        elif can_complete(task, user) and progress is not None:
            progress.append(CountProgress(task, line.id, left))
    return done


async def _drop_unsent_progress(session: AsyncSession, task_id: int, userid: str) -> None:
    """A newer progress note (or the completion) makes an unsent one stale: `盘点 A001 5 A002 7 A003 9` reads
    as one answer that ends with the task done, not "还差 2 个" and "还差 1 个" before it."""
    await session.execute(
        update(OutboundMessage).where(
            OutboundMessage.recipient == userid, OutboundMessage.state == "pending",
            OutboundMessage.dedupe_key.like(f"task-count-progress:{task_id}:%"),
        ).values(state="cancelled", last_error="superseded by a newer count of the same task")
        .execution_options(synchronize_session=False)
    )


async def remaining_skus(session: AsyncSession, task_id: int) -> list[str]:
    """'code name' of the listed SKUs not counted yet."""
    stmt = (
        select(Sku.code, Sku.name).join(TaskCountLine, TaskCountLine.sku_id == Sku.id)
        .where(TaskCountLine.task_id == task_id, TaskCountLine.counted_at.is_(None)).order_by(TaskCountLine.id)
    )
    return [f"{code} {name}" for code, name in (await session.execute(stmt)).all()]
