"""Who is told about a task's progress, in which words: a count task ticked by a 盘点, a task completed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import render
from models.org import Staff
from models.outbox import send_text
from models.task import Completion, CountProgress, record_task_count


def done_text(done: Completion) -> str:
    """What the person who completed a task reads, e.g. after the last 盘点 of a count task."""
    return render("task_done", title=done.task.title, state=done.state, points=done.points)


async def tick_count_tasks(session: AsyncSession, user: Staff, store_id: int, sku_id: int, now: datetime) -> list[str]:
    """A 盘点 of (store, SKU) ticks the count tasks listing it: the counter hears how many SKUs are left on each
    of their tasks that moved on; returns the texts to answer for the tasks it completed."""
    progress: list[CountProgress] = []
    done = await record_task_count(session, user, store_id, sku_id, now, progress=progress)
    for step in progress:
        await send_text(session, user.userid, render("task_count_progress", title=step.task.title, left=step.left),
                        now=now, dedupe_key=f"task-count-progress:{step.task.id}:{step.line_id}")
    return [done_text(c) for c in done]
