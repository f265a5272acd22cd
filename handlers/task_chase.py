"""Chasing open tasks: due-soon reminders, overdue notices to the manager, missed when the window closes,
and an improvement plan after two missed stocktakes in a row at a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings, TaskRulesSettings
from bot.messages import render
from handlers.task_gen import NewTask, create_tasks
from models.org import Staff, store_manager
from models.outbox import send_text
from models.points import award
from models.task import TaskInstance, hhmm, store_of


@dataclass
class ChaseResult:
    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    plans: list[int] = field(default_factory=list)


def reminder_due(task: TaskInstance, now: datetime, rules: TaskRulesSettings) -> bool:
    """Open, not reminded yet, and inside the last remind_before_minutes before due."""
    if task.state != "open" or task.reminded_at is not None or rules.remind_before_minutes == 0:
        return False
    return task.due_at - timedelta(minutes=rules.remind_before_minutes) <= now < task.due_at


def overdue_due(task: TaskInstance, now: datetime, rules: TaskRulesSettings) -> bool:
    """Open, the manager not told yet, and past due by overdue_notify_after_minutes."""
    if task.state != "open" or task.escalated_at is not None:
        return False
    return now >= task.due_at + timedelta(minutes=rules.overdue_notify_after_minutes)


def window_closed(task: TaskInstance, now: datetime) -> bool:
    return task.state == "open" and now >= task.closes_at


async def chase(session: AsyncSession, settings: Settings, now: datetime) -> ChaseResult:
    """One pass over the open tasks that need something now; every notice is sent once (dedupe keys)."""
    rules = settings.task_rules
    result = ChaseResult()
    soon = now + timedelta(minutes=rules.remind_before_minutes)
    late = now - timedelta(minutes=rules.overdue_notify_after_minutes)
    stmt = select(TaskInstance).where(  # only what needs something now, not every open overdue task each minute
        TaskInstance.state == "open",
        or_(
            TaskInstance.closes_at <= now,
            and_(TaskInstance.escalated_at.is_(None), TaskInstance.due_at <= late),
            and_(TaskInstance.reminded_at.is_(None), TaskInstance.due_at <= soon, TaskInstance.due_at > now),
        ),
    )
    for task in (await session.execute(stmt.order_by(TaskInstance.fire_at, TaskInstance.id))).scalars():
        if window_closed(task, now):
            if await mark_missed(session, settings, task, now, result):
                result.missed.append(task.id)
        elif overdue_due(task, now, rules):
            await _escalate(session, task, now)
            result.escalated.append(task.id)
        elif reminder_due(task, now, rules):
            await _remind(session, task, now)
            result.reminded.append(task.id)
    return result


async def _remind(session: AsyncSession, task: TaskInstance, now: datetime) -> None:
    task.reminded_at = now
    assignee = await session.get(Staff, task.assignee_id)
    store = await store_of(session, task)
    if assignee is not None:
        text = render("task_remind", title=task.title, due=hhmm(task.due_at, store.timezone), proof=task.proof,
                      task_id=task.id)
        await send_text(session, assignee.userid, text, now=now, dedupe_key=f"task-remind:{task.id}")


async def _escalate(session: AsyncSession, task: TaskInstance, now: datetime) -> None:
    task.escalated_at = now
    store = await store_of(session, task)
    manager = await store_manager(session, task.store_id)
    assignee = await session.get(Staff, task.assignee_id)
    if manager is None or assignee is None:
        return
    text = render("task_overdue", title=task.title, store=store.name, who=assignee.name,
                  due=hhmm(task.due_at, store.timezone), task_id=task.id, self_assigned=manager.id == assignee.id)
    await send_text(session, manager.userid, text, now=now, dedupe_key=f"task-overdue:{task.id}")


async def mark_missed(
    session: AsyncSession, settings: Settings, task: TaskInstance, now: datetime, result: ChaseResult
) -> bool:
    """Close as missed (0 points, booked so the ledger shows it); a second missed stocktake in a row at the
    store brings the manager an improvement plan."""
    from sqlalchemy import update

    stmt = (
        update(TaskInstance).where(TaskInstance.id == task.id, TaskInstance.state == "open")
        .values(state="missed").returning(TaskInstance.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return False
    await session.refresh(task)
    assignee = await session.get(Staff, task.assignee_id)
    if assignee is not None:
        await award(session, task, assignee, 0, reason="missed", now=now)
    if task.proof == "count" and task.kind == "scheduled" and await _previous_missed(session, task):
        plan = await _improvement_plan(session, settings, task, now)
        if plan is not None:
            result.plans.append(plan)
    return True


async def _previous_missed(session: AsyncSession, task: TaskInstance) -> bool:
    stmt = (
        select(TaskInstance.state)
        .where(
            TaskInstance.template_key == task.template_key,
            TaskInstance.store_id == task.store_id,
            TaskInstance.fire_at < task.fire_at,
        )
        .order_by(TaskInstance.fire_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none() == "missed"


async def _improvement_plan(
    session: AsyncSession, settings: Settings, task: TaskInstance, now: datetime
) -> int | None:
    """The manager's checklist task, due in improvement_plan_due_days; one per missed pair (unique period)."""
    manager = await store_manager(session, task.store_id)
    if manager is None:
        return None
    store = await store_of(session, task)
    due = now + timedelta(days=settings.task_rules.improvement_plan_due_days)
    body = render("task_improvement_body", title=task.title, store=store.name)
    plan = NewTask(
        f"improve-{task.template_key}"[:80], "improvement", f"{task.title}改进计划", body, "confirm", store,
        manager, task.period_key, now, due, due + timedelta(days=1), 0,
    )
    created = await create_tasks(session, settings, [plan], now)
    if not created:
        return None
    text = render("task_improvement", title=task.title, store=store.name, due=hhmm(due, store.timezone),
                  task_id=created[0])
    await send_text(session, manager.userid, text, now=now, dedupe_key=f"task-improve:{created[0]}")
    return created[0]
