"""Alert delivery people can live with: quiet hours per store and one digest card per person per window.

Notices (models/alert.py: AlertNotice, one per alert, chain step and person) wait until their window closes; then
`flush_digests` merges every due notice of one person into ONE card. The window row (AlertDigest, unique per
recipient and window start) is inserted with ON CONFLICT DO NOTHING and the card's outbox dedupe_key is
`alert-digest:<digest id>`, so a restart or a second process never sends a window twice.

Buttons (a card holds at most 6): "全部确认" `alert:ackall:<digest id>`, "暂停24小时" `alert:snoozeall:<digest id>`,
then `alert:ack:<alert id>` for the worst items, as many as fit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.wecom.cards import MAX_BUTTONS, MAX_ROWS, button_card, card_task_id
from models.alert import Alert, AlertDigest, AlertNotice
from models.base import insert_for
from models.catalog import Sku
from models.org import Store
from models.outbox import send_card
from models.stock import StockLevel

KIND_NAMES = {"negative_stock": "负库存", "low_stock": "低于安全库存", "no_movement": "滞销"}
_RANK = {"negative_stock": 0, "low_stock": 1, "no_movement": 2}


def window_start(at: datetime, seconds: int) -> datetime:
    """The start of the digest window `at` falls in (windows are aligned to the epoch)."""
    if seconds <= 0:
        return at
    ts = int(at.timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


async def flush_digests(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Send one card per person whose oldest due notice's window has closed (or who had notices held by quiet
    hours, released now). Returns how many digests were queued."""
    alerts = settings.alerts
    pending = (
        await session.execute(
            select(AlertNotice).where(AlertNotice.digest_id.is_(None), AlertNotice.due_at <= now)
            .order_by(AlertNotice.id)
        )
    ).scalars().all()
    by_person: dict[str, list[AlertNotice]] = defaultdict(list)
    for notice in pending:
        by_person[notice.recipient].append(notice)
    sent = 0
    for recipient, notices in by_person.items():
        anchor = min(n.due_at for n in notices)
        start = window_start(anchor, alerts.digest_seconds)
        released = any(n.due_at > n.created_at for n in notices)  # held by quiet hours: out at opening
        if not released and start + timedelta(seconds=alerts.digest_seconds) > now:
            continue
        digest_id = (
            await session.execute(
                insert_for(session)(AlertDigest)
                .values(recipient=recipient, window_start=start, created_at=now, items=len(notices))
                .on_conflict_do_nothing(index_elements=["recipient", "window_start"])
                .returning(AlertDigest.id)
            )
        ).scalar_one_or_none()
        if digest_id is None:
            continue  # another process took this window
        ids = [n.id for n in notices]
        await session.execute(
            update(AlertNotice).where(AlertNotice.id.in_(ids), AlertNotice.digest_id.is_(None))
            .values(digest_id=digest_id).execution_options(synchronize_session=False)
        )
        card = await digest_card(session, settings, digest_id, sorted({n.alert_id for n in notices}))
        if card is not None:
            await send_card(session, recipient, card, now=now, dedupe_key=f"alert-digest:{digest_id}")
            sent += 1
    return sent


async def digest_card(
    session: AsyncSession, settings: Settings, digest_id: int, alert_ids: list[int]
) -> dict[str, object] | None:
    rows = list(
        (await session.execute(
            select(Alert, Store, Sku, StockLevel.on_hand, StockLevel.safety_stock)
            .join(Store, Store.id == Alert.store_id).join(Sku, Sku.id == Alert.sku_id)
            .join(StockLevel, (StockLevel.store_id == Alert.store_id) & (StockLevel.sku_id == Alert.sku_id))
            .where(Alert.id.in_(alert_ids), Alert.state == "open")
        )).all()
    )
    if not rows:
        return None  # everything cleared or was acknowledged before the window closed
    rows.sort(key=lambda r: (r[0].level != "critical", _RANK.get(r[0].kind, 9), r[3] - r[4], r[0].id))
    limit = min(settings.alerts.digest_max_items, MAX_ROWS)
    shown = rows[:limit]
    stores = sorted({r[1].name for r in rows})
    lines = [
        (f"{r[1].name} {r[2].code}", f"{KIND_NAMES.get(r[0].kind, r[0].kind)} 现有{r[3]} 安全{r[4]}")
        for r in shown
    ]
    more = len(rows) - len(shown)
    desc = f"{'、'.join(stores)} 共 {len(rows)} 条库存提醒" + (f"，另有 {more} 条见看板" if more else "")
    buttons: list[tuple[str, str, int]] = [
        ("全部确认", f"alert:ackall:{digest_id}", 1),
        ("暂停24小时", f"alert:snoozeall:{digest_id}", 2),
    ]
    buttons.extend((f"确认{r[2].code}", f"alert:ack:{r[0].id}", 2) for r in shown[: MAX_BUTTONS - len(buttons)])
    return button_card(
        task_id=card_task_id("alertdigest", digest_id),
        title="库存提醒汇总", desc=desc, rows=lines, buttons=buttons,
        sub_title="点“全部确认”表示已安排补货或处理；点卡片看完整清单。",
        url=f"{settings.server.public_url.rstrip('/')}/dashboard",
    )


async def digest_alert_ids(session: AsyncSession, digest_id: int) -> list[int]:
    stmt = select(AlertNotice.alert_id).where(AlertNotice.digest_id == digest_id).distinct()
    return sorted((await session.execute(stmt)).scalars())
