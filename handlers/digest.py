"""The region supervisor's morning digest: alerts still open, transfers overdue, tasks missed yesterday.

One markdown message per supervisor per store-local day; the outbox's unique dedupe_key
(`supervisor-digest:<userid>:<date>`) makes a second pass, a restart or a second process send nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.messages import render
from models.alert import Alert
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.outbox import OutboundMessage, send_markdown
from models.task import TaskInstance
from models.transfer import Transfer
from models.transfer_waits import Waits, due_steps

MAX_ITEMS = 5  # per section: the digest stays well inside WeCom's 2,048 bytes
ALERT_NAMES = {"negative_stock": "负库存，请复盘", "low_stock": "低于安全库存", "no_movement": "多日没有动销"}


@dataclass(frozen=True)
class Digest:
    region: str
    day: date
    alerts: list[str]
    transfers: list[str]
    missed: list[str]

    def text(self) -> str:
        return render("supervisor_digest", d=self, max_items=MAX_ITEMS)


def digest_due(local_now: datetime, at: time, catch_up: timedelta) -> bool:
    """Pure: from the digest time on, within the catch-up window of that store-local day."""
    start = local_now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return start <= local_now < start + catch_up


def dedupe_key(userid: str, day: date) -> str:
    return f"supervisor-digest:{userid}:{day.isoformat()}"


def _hours(since: datetime | None, now: datetime) -> int:
    return int((now - since).total_seconds() // 3600) if since else 0


async def build_digest(
    session: AsyncSession, settings: Settings, region: Region, stores: list[Store], now: datetime, day: date
) -> Digest:
    """What a supervisor needs to know this morning about their region's stores."""
    by_id = {s.id: s for s in stores}
    tz = ZoneInfo(stores[0].timezone) if stores else ZoneInfo("Asia/Shanghai")
    alerts = [
        f"{by_id[a.store_id].name} {sku.code} {sku.name}：{ALERT_NAMES.get(a.kind, a.kind)}（现有 {a.on_hand}）"
        for a, sku in await session.execute(
            select(Alert, Sku).join(Sku, Sku.id == Alert.sku_id)
            .where(Alert.store_id.in_(by_id), Alert.state == "open").order_by(Alert.created_at, Alert.id)
        )
    ]
    waits = Waits.from_rules(settings.rules)
    transfers: list[str] = []
    stmt = select(Transfer).where(
        Transfer.state.in_(("requested", "shipped")),
        Transfer.from_store_id.in_(by_id) | Transfer.to_store_id.in_(by_id),
    )
    for t in (await session.execute(stmt.order_by(Transfer.id))).scalars():
        if not due_steps(now, t, waits):
            continue
        source, dest = await session.get(Store, t.from_store_id), await session.get(Store, t.to_store_id)
        route = f"{source.name if source else '?'}→{dest.name if dest else '?'}"
        if t.state == "requested":
            transfers.append(f"#{t.id} {route}：等审批已 {_hours(t.created_at, now)} 小时，发「待审批」处理")
        else:
            transfers.append(f"#{t.id} {route}：出库 {_hours(t.shipped_at, now)} 小时还没签收")
    start = datetime.combine(day - timedelta(days=1), time(), tzinfo=tz)
    missed = [
        f"{by_id[task.store_id].name}「{task.title}」（{name}）"
        for task, name in await session.execute(
            select(TaskInstance, Staff.name).join(Staff, Staff.id == TaskInstance.assignee_id)
            .where(TaskInstance.store_id.in_(by_id), TaskInstance.fire_at >= start,
                   TaskInstance.fire_at < start + timedelta(days=1), TaskInstance.due_at < now,
                   TaskInstance.state.in_(("missed", "open")))
            .order_by(TaskInstance.store_id, TaskInstance.fire_at, TaskInstance.id)
        )
    ]
    return Digest(region.name, day, alerts, transfers, missed)


async def send_supervisor_digests(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Queue today's digest for every supervisor whose region's morning has come; returns how many were queued.

    Cheap when nothing is due (it runs every minute): two reads, then work only for the regions whose time came.
    """
    at = settings.alerts.digest_time()
    if at is None:
        return 0
    catch_up = timedelta(hours=settings.alerts.supervisor_digest_catch_up_hours)
    by_region: dict[int, list[Store]] = {}
    for store in (await session.execute(select(Store).order_by(Store.id))).scalars():
        by_region.setdefault(store.region_id, []).append(store)
    sups = select(Staff).where(Staff.role == "supervisor", Staff.active, Staff.region_id.is_not(None))
    sent = 0
    for sup in list((await session.execute(sups.order_by(Staff.id))).scalars()):
        stores = by_region.get(sup.region_id or 0, [])
        if not stores:
            continue
        local_now = now.astimezone(ZoneInfo(stores[0].timezone))
        if not digest_due(local_now, at, catch_up):
            continue
        key = dedupe_key(sup.userid, local_now.date())
        if (await session.execute(select(OutboundMessage.id).where(OutboundMessage.dedupe_key == key))).first():
            continue  # sent already today: skip the queries
        region = await session.get(Region, sup.region_id)
        if region is None:
            continue
        digest = await build_digest(session, settings, region, stores, now, local_now.date())
        sent += await send_markdown(session, sup.userid, digest.text(), now=now, dedupe_key=key) is not None
    return sent
