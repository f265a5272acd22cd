"""A recount task for one SKU in one store: what a negative-stock alert's "安排复盘" opens."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers.task_gen import NewTask, closes_at, create_tasks, staff_by_store
from models.catalog import Sku
from models.org import Staff, Store
from models.task import TaskInstance

DUE_MINUTES = 120
POINTS = 5


def recount_key(alert_id: int) -> str:
    """One recount per alert: the task's template key (unique per store and period with it)."""
    return f"recount-{alert_id}"


async def open_recount(
    session: AsyncSession, settings: Settings, store: Store, sku: Sku, alert_id: int, now: datetime,
) -> TaskInstance | None:
    """A count task listing this SKU for the store's clerks (the manager when there are none), through the task
    machinery's one insert path: the card lists the SKU, `盘点` ticks it, and a second call adds nothing.
    None when the store has nobody to do it."""
    key = recount_key(alert_id)
    people = await staff_by_store(session, [store.id], "staff") or await staff_by_store(session, [store.id], "manager")
    team: list[Staff] = people.get(store.id, [])
    if team:
        due = now + timedelta(minutes=DUE_MINUTES)
        new = NewTask(
            key, "scheduled", f"复盘 {sku.code} {sku.name}", f"{sku.name} 账上是负数，请点清实物后回复盘点。",
            "count", store, team[now.toordinal() % len(team)], "alert", now, due,
            closes_at(due, None, settings.task_rules.overdue_notify_after_minutes), POINTS, None, 1, tuple(team),
        )
        await create_tasks(session, settings, [new], now, skus={store.id: [sku.id]})
    stmt = select(TaskInstance).where(TaskInstance.template_key == key, TaskInstance.store_id == store.id)
    return (await session.execute(stmt.order_by(TaskInstance.id).limit(1))).scalar_one_or_none()
