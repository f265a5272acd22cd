"""Task generation: which periods are due (pure), who is assigned, and one insert path for the schedule,
`POST /api/tasks/run`, broadcasts and improvement plans; the unique constraint makes every path idempotent."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings, TaskTemplate
from bot.messages import render
from bot.wecom.cards import button_card, card_task_id
from models.base import insert_for
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.outbox import OutboundMessage, content_hash
from models.task import PROOF_NAMES, TaskCountLine, TaskInstance, hhmm, period_key
from models.task_count import choose_count_skus

CHUNK = 400  # rows per multi-row INSERT (SQLite caps bound parameters)


@dataclass(frozen=True)
class NewTask:
    """What one instance is, before it exists; `slot` separates per-person instances of one period."""

    template_key: str
    kind: str
    title: str
    body: str
    proof: str
    store: Store
    assignee: Staff
    period: str
    fire_at: datetime
    due_at: datetime
    closes_at: datetime
    points: int
    geofence_meters: int | None = None
    count_skus: int = 0
    team: tuple[Staff, ...] = ()  # everyone of the role at the store (the assignee included): each gets the card


def _trigger(template: TaskTemplate, tz: str) -> CronTrigger:
    return CronTrigger.from_crontab(template.schedule, timezone=ZoneInfo(tz))


def due_periods(template: TaskTemplate, store_tz: str, last_run: datetime, now: datetime) -> list[datetime]:
    """Fire times (store-local, aware) of the template after last_run and up to now, oldest first."""
    trigger = _trigger(template, store_tz)
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, last_run + timedelta(microseconds=1))
    while fire is not None and fire <= now:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return fires


def current_period(template: TaskTemplate, store_tz: str, now: datetime) -> datetime:
    """What a manual run creates: the latest fire time at or before now while its due window is still open,
    else the next one (so the schedule later finds it already made); now itself for a cron that never fires."""
    trigger = _trigger(template, store_tz)
    for days in (1, 32, 370):
        fires = due_periods(template, store_tz, now - timedelta(days=days), now)
        if fires:
            if now <= fires[-1] + timedelta(minutes=template.due_minutes):
                return fires[-1]
            break
    upcoming: datetime | None = trigger.get_next_fire_time(None, now)
    return upcoming or now.astimezone(ZoneInfo(store_tz)).replace(second=0, microsecond=0)


def next_fire(template: TaskTemplate, fire_local: datetime) -> datetime | None:
    fire: datetime | None = _trigger(template, str(fire_local.tzinfo)).get_next_fire_time(
        fire_local, fire_local + timedelta(microseconds=1)
    )
    return fire


def closes_at(due_at: datetime, following: datetime | None, overdue_wait_minutes: int) -> datetime:
    """The window closes at the next period (late work still counts until then), never before the overdue
    notice has had its chance."""
    floor = due_at + timedelta(minutes=overdue_wait_minutes + 1)
    return max(following, floor) if following is not None else max(due_at + timedelta(days=1), floor)


def jitter_seconds(task_id: int, spread: int) -> int:
    """A stable spread of pushes over `spread` seconds, so 2,000 stores do not all send at :00."""
    if spread <= 0:
        return 0
    return int.from_bytes(hashlib.blake2b(str(task_id).encode(), digest_size=4).digest(), "big") % (spread + 1)


async def stores_in_scope(session: AsyncSession, template: TaskTemplate, codes: Sequence[str] = ()) -> list[Store]:
    stmt = select(Store).order_by(Store.id)
    if template.stores:
        stmt = stmt.where(Store.code.in_(template.stores))
    if template.regions:
        stmt = stmt.join(Region, Region.id == Store.region_id).where(Region.code.in_(template.regions))
    if codes:
        stmt = stmt.where(Store.code.in_(codes))
    return list((await session.execute(stmt)).scalars())


async def staff_by_store(session: AsyncSession, store_ids: Iterable[int], role: str) -> dict[int, list[Staff]]:
    out: dict[int, list[Staff]] = defaultdict(list)
    ids = list(store_ids)
    for i in range(0, len(ids), CHUNK):
        stmt = select(Staff).where(Staff.store_id.in_(ids[i : i + CHUNK]), Staff.role == role, Staff.active)
        for person in (await session.execute(stmt.order_by(Staff.id))).scalars():
            assert person.store_id is not None
            out[person.store_id].append(person)
    return out


def template_tasks(
    template: TaskTemplate, slots: Sequence[tuple[Store, datetime]], people: dict[int, list[Staff]],
    settings: Settings, now: datetime, *, manual: bool = False,
) -> list[NewTask]:
    """One NewTask per store: the assignee rotates through the store's people of the role by day.

    A manual run gives at least the full due window from now, so a task fired late is not overdue on arrival.
    """
    out: list[NewTask] = []
    wait = settings.task_rules.overdue_notify_after_minutes
    following: dict[datetime, datetime | None] = {}
    for store, fire_local in slots:
        staff = people.get(store.id)
        if not staff:
            continue  # nobody of that role at the store: nothing to assign
        if fire_local not in following:
            following[fire_local] = next_fire(template, fire_local)
        fire_utc = fire_local.astimezone(now.tzinfo)
        due = fire_utc + timedelta(minutes=template.due_minutes)
        if manual:  # pushed now, even when the period it stands for starts later today
            due = max(due, now + timedelta(minutes=template.due_minutes))
            fire_utc = min(fire_utc, now)
        out.append(NewTask(
            template.key, "scheduled", template.title, template.body, template.proof, store,
            staff[fire_local.toordinal() % len(staff)], period_key(fire_local), fire_utc, due,
            closes_at(due, following[fire_local], wait), template.points,
            template.geofence_meters,
            (template.count_skus or settings.task_rules.cycle_count_size) if template.proof == "count" else 0,
            tuple(staff),
        ))
    return out


async def create_tasks(
    session: AsyncSession, settings: Settings, new: Sequence[NewTask], now: datetime, *, jitter: bool = False,
    skus: dict[int, list[int]] | None = None,
) -> list[int]:
    """Insert the instances (a conflict on (template, store, period) inserts nothing), list the count SKUs
    and queue each new instance's card: at its fire time (now for manual runs and broadcasts), spread over
    `push_jitter_seconds` only with `jitter` (the scheduled fan-out); `skus` (store id → SKU ids) replaces the
    cycle-count choice. Returns the ids of what was created."""
    created: list[tuple[int, NewTask]] = []
    by_key = {(n.template_key, n.store.id, n.period): n for n in new}
    rows = [
        {
            "template_key": n.template_key, "kind": n.kind, "title": n.title, "body": n.body, "proof": n.proof,
            "store_id": n.store.id, "assignee_id": n.assignee.id, "period_key": n.period, "fire_at": n.fire_at,
            "due_at": n.due_at, "closes_at": n.closes_at, "points": n.points,
            "geofence_meters": n.geofence_meters, "state": "open", "created_at": now, "flagged": False,
        }
        for n in by_key.values()
    ]
    table = TaskInstance.__table__
    stmt = insert_for(session)(table).on_conflict_do_nothing(index_elements=["template_key", "store_id", "period_key"])
    stmt = stmt.returning(table.c.id, table.c.template_key, table.c.store_id, table.c.period_key)
    for i in range(0, len(rows), CHUNK):  # executemany: one compiled statement, batched by the driver layer
        result = await session.execute(stmt, rows[i : i + CHUNK])
        created.extend((tid, by_key[(key, sid, per)]) for tid, key, sid, per in result.all())
    counting = [(tid, n) for tid, n in created if n.count_skus]
    if skus is not None:  # the caller names the SKUs to count per store (a recount of one SKU)
        lists = {n.store.id: skus.get(n.store.id, []) for _, n in counting}
    elif counting:
        lists = await choose_count_skus(session, {n.store.id: n.count_skus for _, n in counting}, now)
    else:
        lists = {}
    line_rows = [
        {"task_id": tid, "store_id": n.store.id, "sku_id": sku, "listed_at": now}
        for tid, n in counting for sku in lists.get(n.store.id, [])
    ]
    if line_rows:
        await session.execute(insert_for(session)(TaskCountLine.__table__), line_rows)
    names = await _sku_names({s for ids in lists.values() for s in ids}, session)
    spread = settings.task_rules.push_jitter_seconds if jitter else 0
    cards = [
        (person.userid, task_card(tid, n, [names[s] for s in lists.get(n.store.id, [])], person),
         f"task-card:{tid}" if person.id == n.assignee.id else f"task-card:{tid}:{person.userid}",
         max(now, n.fire_at) + timedelta(seconds=jitter_seconds(tid, spread)))
        for tid, n in created for person in recipients(n)
    ]
    await queue_cards(session, cards, now)
    return [tid for tid, _ in created]


async def _sku_names(ids: set[int], session: AsyncSession) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await session.execute(select(Sku.id, Sku.code, Sku.name).where(Sku.id.in_(ids)))).all()
    return {sid: f"{code} {name}" for sid, code, name in rows}


def recipients(n: NewTask) -> list[Staff]:
    """Who gets the task's card: the assignee first, then the rest of the team."""
    return [n.assignee, *(p for p in n.team if p.id != n.assignee.id)]


def task_card(task_id: int, n: NewTask, sku_names: Sequence[str], to: Staff | None = None) -> dict[str, Any]:
    """The card each of the team gets: a done button for confirm tasks, otherwise a button that explains the
    proof. The assignee's card is `task-<id>`, a teammate's `task-<id>-<userid>` (task ids are unique per app)."""
    tz = n.store.timezone
    to = to or n.assignee
    rows = [("门店", n.store.name), ("截止", hhmm(n.due_at, tz)), ("交付", PROOF_NAMES.get(n.proof, n.proof)),
            ("积分", str(n.points))]
    if len(n.team) > 1:
        rows.append(("轮值", f"{n.assignee.name}（谁做都算，积分归做的人）"))
    if n.proof == "count":
        rows.append(("进度", f"还差 {len(sku_names)} 个"))
    guide = render("task_guide", proof=n.proof, skus=sku_names, task_id=task_id)
    if n.proof == "confirm":
        buttons = [("完成", f"task:done:{task_id}", 1)]
    else:
        buttons = [("怎么交", f"task:how:{task_id}", 2)]
    return button_card(
        task_id=card_task_id("task", task_id) if to.id == n.assignee.id else card_task_id("task", task_id, to.userid),
        title=n.title,
        desc=n.body,
        sub_title=guide,
        rows=rows,
        buttons=buttons,
    )


async def queue_cards(
    session: AsyncSession, cards: Sequence[tuple[str, dict[str, Any], str, datetime]], now: datetime
) -> None:
    """Bulk models.outbox.enqueue for many cards (same row shape and dedupe rule), so 10,000 cards are a
    handful of statements."""
    rows = [
        {
            "channel": "app", "recipient": userid, "msgtype": "template_card", "payload": card,
            "dedupe_key": key, "card_task_id": card["task_id"], "state": "pending", "attempts": 0,
            "next_attempt_at": not_before, "created_at": now,
            "content_hash": content_hash(userid, "template_card", card),
        }
        for userid, card, key, not_before in cards
    ]
    if rows:
        stmt = insert_for(session)(OutboundMessage.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"])
        await session.execute(stmt, rows)


def group_by_tz(stores: Sequence[Store]) -> dict[str, list[Store]]:
    out: dict[str, list[Store]] = defaultdict(list)
    for s in stores:
        out[s.timezone or "Asia/Shanghai"].append(s)
    return out


async def generate_due(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """The scheduler's path: every template period that fired in the last due window and has no instance yet.

    Looking back over the due window (not just the last minute) is the catch-up after downtime.
    """
    created: list[int] = []
    for template in settings.tasks:
        slots: list[tuple[Store, datetime]] = []
        for tz, stores in group_by_tz(await stores_in_scope(session, template)).items():
            for fire in due_periods(template, tz, now - timedelta(minutes=template.due_minutes), now):
                slots.extend((s, fire) for s in stores)
        if slots:
            created += await _generate(session, settings, template, slots, now, manual=False)
    return created


async def run_now(
    session: AsyncSession, settings: Settings, template: TaskTemplate, store_codes: Sequence[str], now: datetime
) -> list[int]:
    """POST /api/tasks/run: the current period of the template for these stores (all in scope when empty)."""
    slots: list[tuple[Store, datetime]] = []
    for tz, stores in group_by_tz(await stores_in_scope(session, template, store_codes)).items():
        fire = current_period(template, tz, now)
        slots.extend((s, fire) for s in stores)
    return await _generate(session, settings, template, slots, now, manual=True)


async def _generate(
    session: AsyncSession, settings: Settings, template: TaskTemplate, slots: list[tuple[Store, datetime]],
    now: datetime, *, manual: bool,
) -> list[int]:
    periods = {period_key(fire) for _, fire in slots}
    stmt = select(TaskInstance.store_id, TaskInstance.period_key).where(
        TaskInstance.template_key == template.key, TaskInstance.period_key.in_(periods)
    )
    existing = {(sid, per) for sid, per in (await session.execute(stmt)).all()}
    todo = [(s, f) for s, f in slots if (s.id, period_key(f)) not in existing]
    if not todo:
        return []
    people = await staff_by_store(session, {s.id for s, _ in todo}, template.assignee_role)
    new = template_tasks(template, todo, people, settings, now, manual=manual)
    return await create_tasks(session, settings, new, now, jitter=not manual)
