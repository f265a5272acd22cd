"""Who hears what when counts replace each other: superseded approval cards, their counters, late counts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import render
from bot.wecom.cards import card_task_id
from handlers.transfer_notify import code_usable
from models.catalog import Sku
from models.count import StockCount
from models.org import Store, staff_by_userid
from models.outbox import cancel_unsent, latest_card, send_text, update_card_button

SUPERSEDED_LABEL = "已被新盘点取代"


def local_time(store: Store, at: datetime) -> str:
    """"11-24 09:05" in the store's own time zone."""
    try:
        zone = ZoneInfo(store.timezone or "Asia/Shanghai")
    except (ValueError, KeyError):
        zone = ZoneInfo("Asia/Shanghai")
    return at.astimezone(zone).strftime("%m-%d %H:%M")


async def person(session: AsyncSession, userid: str) -> str:
    staff = await staff_by_userid(session, userid)
    return staff.name if staff else userid


def approval_card_id(count_id: int) -> str:
    return card_task_id("count", count_id)


async def settle_superseded(
    session: AsyncSession, old: StockCount, new: StockCount, store: Store, sku: Sku, now: datetime
) -> None:
    """An older pending count was replaced: its approval card is withdrawn (not sent yet), updated (its code is
    still good), or its approver is told by text; a different counter hears that their count was replaced."""
    view = {"id": old.id, "new_id": new.id, "sku": sku.code, "item": sku.name, "counted": old.counted,
            "at": local_time(store, old.counted_at), "new_at": local_time(store, new.counted_at),
            "new_counted": new.counted, "by": await person(session, new.counted_by)}
    row = await latest_card(session, approval_card_id(old.id))
    if row is not None and not await cancel_unsent(session, row.id) and row.state != "failed":
        if code_usable(row, now) and row.response_code:
            await update_card_button(session, row.recipient, row.response_code, SUPERSEDED_LABEL, now=now)
        else:
            await send_text(session, row.recipient, render("stock_count_superseded", to_approver=True, **view),
                            now=now, dedupe_key=f"count-superseded:{old.id}:{row.recipient}")
    if old.counted_by != new.counted_by:
        await send_text(session, old.counted_by, render("stock_count_superseded", to_approver=False, **view),
                        now=now, dedupe_key=f"count-superseded:{old.id}:{old.counted_by}")


async def outdated_text(
    session: AsyncSession, count: StockCount, newer: StockCount | None, store: Store, sku: Sku, on_hand: int
) -> str:
    """The reply to a count that arrived after a newer count (or an import) of the same SKU."""
    return render(
        "stock_count_outdated", sku=sku.code, item=sku.name, counted=count.counted,
        at=local_time(store, count.counted_at), newer_at=local_time(store, newer.counted_at) if newer else None,
        newer_by=await person(session, newer.counted_by) if newer else None,
        newer_counted=newer.counted if newer else None, on_hand=on_hand,
    )
