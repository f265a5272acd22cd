"""Task jobs: generation on schedule, reminders, overdue and missed, monthly leaderboards."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.deps import Deps
from bot.messages import render
from bot.queues.photos import retry_pending
from handlers.task_chase import ChaseResult, chase
from handlers.task_gen import generate_due
from models.org import Region, Store
from models.outbox import send_to_chat
from models.points import leaderboard
from models.task import local
from models.task_count import tick_counted_from_ledger
from scheduler.spec import JobSpec

log = logging.getLogger(__name__)

BOARD_HOUR = 9  # store-local hour on the 1st from which the leaderboard goes out
BOARD_SIZE = 10


async def generate_tasks(deps: Deps) -> list[int]:
    """Every template period due in the last due window (catch-up after downtime is the same pass)."""
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        created = await generate_due(session, deps.config, now)
    if created:
        log.info("generated %d task instances", len(created))
    return created


async def chase_tasks(deps: Deps) -> ChaseResult:
    async with deps.sessions() as session, session.begin():
        return await chase(session, deps.config, deps.clock.now())


async def tick_counts(deps: Deps) -> list[int]:
    """Fallback for count tasks: lines counted in the stock ledger are ticked even if 盘点 did not tell us."""
    async with deps.sessions() as session, session.begin():
        return await tick_counted_from_ledger(session, deps.clock.now())


async def retry_photos(deps: Deps) -> int:
    return await retry_pending(deps)


def previous_month(local_now: datetime) -> str:
    first = local_now.replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def board_due(local_now: datetime) -> bool:
    """Pure: the 1st of the month, from BOARD_HOUR store-local on."""
    return local_now.day == 1 and local_now.hour >= BOARD_HOUR


async def post_leaderboards(deps: Deps) -> int:
    """On the 1st (store-local) each store's group chat gets its region's top 10 of last month, once."""
    now = deps.clock.now()
    posted = 0
    async with deps.sessions() as session, session.begin():
        stores = (await session.execute(select(Store).where(Store.chat_id.is_not(None)).order_by(Store.id))).scalars()
        boards: dict[tuple[int, str], str] = {}
        for store in stores:
            here = local(now, store.timezone)
            if not store.chat_id or not board_due(here):
                continue
            month = previous_month(here)
            key = (store.region_id, month)
            if key not in boards:
                region = await session.get(Region, store.region_id)
                lines = await leaderboard(session, store.region_id, month, BOARD_SIZE)
                boards[key] = render("task_leaderboard", region=region.name if region else "", month=month,
                                     lines=lines)
            sent = await send_to_chat(session, store.chat_id, "text", {"content": boards[key]}, now=now,
                                      dedupe_key=f"task-board:{store.id}:{month}")
            posted += sent is not None
    return posted


def jobs(deps: Deps) -> list[JobSpec]:
    """Every minute: generate and chase. A one-off pass at start is the catch-up for periods fired during a
    downtime (generate_due looks back over each template's due window)."""
    return [
        JobSpec("tasks.catch_up", generate_tasks, DateTrigger()),  # no run date = as soon as the scheduler starts
        JobSpec("tasks.generate", generate_tasks, IntervalTrigger(minutes=1)),
        JobSpec("tasks.chase", chase_tasks, IntervalTrigger(minutes=1)),
        JobSpec("tasks.photos", retry_photos, IntervalTrigger(minutes=1)),
        JobSpec("tasks.counts", tick_counts, IntervalTrigger(minutes=5)),
        JobSpec("tasks.leaderboard", post_leaderboards, IntervalTrigger(minutes=30)),
    ]
