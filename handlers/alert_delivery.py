"""Alert delivery people can live with: quiet hours per store and one digest card per person per window.

Notices (models/alert.py: AlertNotice, one per alert, chain step and person) wait until their window closes; then
`flush_digests` merges every due notice of one person into ONE card. The window row (AlertDigest, unique per
recipient and window start) is inserted with ON CONFLICT DO NOTHING and the card's outbox dedupe_key is
`alert-digest:<digest id>`, so a restart or a second process never sends a window twice.

Buttons (a card holds at most 6): "全部确认" `alert:ackall:<digest id>`, "暂停24小时" `alert:snoozeall:<digest id>`
(absent when any item is a negative stock), then the next step for the worst items, as many as fit:
`alert:transfer:<alert id>` "从<门店>调货" (the region's store with the most to spare; only on the card of someone who
may request for that store), `alert:restocked:<alert id>` "已补货", `alert:recount:<alert id>` "安排复盘" (negative
stock), `alert:ack:<alert id>` (no movement). A card whose alerts all cleared by themselves is greyed
(`settle_cleared`), and so are the other cards of alerts handled from one card (`settle_handled`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.messages import render
from bot.wecom.cards import MAX_BUTTONS, MAX_ROWS, button_card, card_task_id
from models.alert import Alert, AlertDigest, AlertNotice, on_cleared, surplus_store
from models.base import insert_for
from models.campaign import Campaign
from models.campaign_alert import CampaignAlert
from models.catalog import Sku
from models.org import Store, staff_by_userid
from models.outbox import cancel_unsent, latest_card, send_card, send_text, update_card_button
from models.stock import StockLevel

KIND_NAMES = {"negative_stock": "负库存", "low_stock": "低于安全库存", "no_movement": "滞销"}
CAMPAIGN_KIND_NAMES = {"audience_low": "人群太少", "failure_share": "发送失败多", "unconfirmed": "店员未确认发送",
                       "cap_80": "券快领完", "cap_100": "券已领完", "redemption_low": "核销太少"}
CLEARED_LABEL = "已自动解除"
CODE_TTL = timedelta(hours=72)  # WeCom: a response_code edits its card once, within 72 hours
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
        stock_ids = sorted({n.alert_id for n in notices if n.alert_id is not None})
        campaign_ids = sorted({n.campaign_alert_id for n in notices if n.campaign_alert_id is not None})
        escalated = any(n.step > 0 for n in notices if n.campaign_alert_id is not None)
        await campaign_text(session, digest_id, campaign_ids, recipient, now, escalated=escalated)
        card = await digest_card(session, settings, digest_id, stock_ids, recipient, campaign_ids=campaign_ids)
        if card is not None:
            await send_card(session, recipient, card, now=now, dedupe_key=f"alert-digest:{digest_id}")
            sent += 1
    return sent


async def _open_campaign_alerts(session: AsyncSession, ids: list[int]) -> list[tuple[CampaignAlert, Campaign]]:
    if not ids:
        return []
    rows = (await session.execute(
        select(CampaignAlert, Campaign).join(Campaign, Campaign.id == CampaignAlert.campaign_pk)
        .where(CampaignAlert.id.in_(ids), CampaignAlert.state == "open").order_by(CampaignAlert.id)
    )).all()
    return [(a, c) for a, c in rows]


async def campaign_text(session: AsyncSession, digest_id: int, campaign_ids: list[int], recipient: str,
                        now: datetime, *, escalated: bool) -> bool:
    """The campaign rows of a digest in full: each alert's sentence says what to do (a card row is too short for
    it). Sent just before the digest card, once per digest by its dedupe key."""
    found = await _open_campaign_alerts(session, campaign_ids)
    if not found:
        return False
    text = render("customer_alert_digest", items=[a.message for a, _c in found], escalated=escalated)
    await send_text(session, recipient, text, now=now, dedupe_key=f"alert-digest-text:{digest_id}")
    return True


async def digest_card(
    session: AsyncSession, settings: Settings, digest_id: int, alert_ids: list[int], recipient: str | None = None,
    *, campaign_ids: list[int] | None = None,
) -> dict[str, object] | None:
    """The digest card: product names, the next step for the worst items in one tap (a transfer from the region's
    store with the most to spare, named; 已补货; a recount for a negative stock), and no snooze when any item is a
    negative stock, which must be recounted, not quieted. Campaign health alerts of the same window follow the
    stock rows (one row per campaign problem, `campaign:ack:<id>` to acknowledge one); "全部确认" covers both."""
    rows = list(
        (await session.execute(
            select(Alert, Store, Sku, StockLevel.on_hand, StockLevel.safety_stock)
            .join(Store, Store.id == Alert.store_id).join(Sku, Sku.id == Alert.sku_id)
            .join(StockLevel, (StockLevel.store_id == Alert.store_id) & (StockLevel.sku_id == Alert.sku_id))
            .where(Alert.id.in_(alert_ids), Alert.state == "open")
        )).all()
    ) if alert_ids else []
    campaigns = await _open_campaign_alerts(session, campaign_ids or [])
    if not rows and not campaigns:
        return None  # everything cleared or was acknowledged before the window closed
    rows.sort(key=lambda r: (r[0].level != "critical", _RANK.get(r[0].kind, 9), r[3] - r[4], r[0].id))
    limit = min(settings.alerts.digest_max_items, MAX_ROWS)
    shown = rows[:limit]
    shown_campaigns = campaigns[: max(0, limit - len(shown))]
    stores = sorted({r[1].name for r in rows})
    person = await staff_by_userid(session, recipient) if recipient else None
    negative = any(r[0].kind == "negative_stock" for r in rows)
    buttons: list[tuple[str, str, int]] = [("全部确认", f"alert:ackall:{digest_id}", 1)]
    if rows and not negative:
        buttons.append(("暂停24小时", f"alert:snoozeall:{digest_id}", 2))
    lines = []
    for alert, store, sku, on_hand, safety in shown:
        state = f"{KIND_NAMES.get(alert.kind, alert.kind)} 现有{on_hand} 安全{safety}"
        steps: list[tuple[str, str, int]] = []
        if alert.kind == "negative_stock":
            state += "｜请复盘"
            steps.append((f"安排复盘 {sku.code}", f"alert:recount:{alert.id}", 1))
        elif alert.kind == "low_stock":
            donor = await surplus_store(session, store, sku.id)
            state += f"｜{donor[0].name}可调{donor[1]}" if donor else "｜区内无店可调"
            if donor and person is not None and person.store_id == store.id:
                steps.append((f"从{donor[0].name}调货", f"alert:transfer:{alert.id}", 1))
            steps.append((f"已补货 {sku.code}", f"alert:restocked:{alert.id}", 2))
        else:
            steps.append((f"确认{sku.code}", f"alert:ack:{alert.id}", 2))
        buttons.extend(steps)
        lines.append((f"{store.name} {sku.code} {sku.name}", state))
    for calert, campaign in shown_campaigns:
        lines.append((f"活动 {campaign.name}"[:30], CAMPAIGN_KIND_NAMES.get(calert.kind, calert.kind)))
        buttons.append((f"知道了 #{calert.id}", f"campaign:ack:{calert.id}", 1))
    more = len(rows) + len(campaigns) - len(shown) - len(shown_campaigns)
    parts = []
    if rows:
        parts.append(f"{'、'.join(stores)} 共 {len(rows)} 条库存提醒")
    if campaigns:
        parts.append(f"{len(campaigns)} 条活动提醒（做法见上一条消息）")
    desc = "；".join(parts) + (f"，另有 {more} 条见看板" if more else "")
    hint = "负库存不能暂停，请先安排复盘。" if negative else "点“全部确认”表示已安排补货或处理；"
    title = "库存提醒汇总" if not campaigns else ("活动健康提醒" if not rows else "库存与活动提醒汇总")
    return button_card(
        task_id=card_task_id("alertdigest", digest_id),
        title=title, desc=desc, rows=lines, buttons=buttons[:MAX_BUTTONS],
        sub_title=f"{hint}点卡片看完整清单。",
        url=f"{settings.server.public_url.rstrip('/')}/dashboard",
    )


async def _digests_of(session: AsyncSession, alert_ids: list[int]) -> list[int]:
    found: set[int] = set()
    for i in range(0, len(alert_ids), 500):  # bounded IN lists: a full pass may resolve thousands at once
        found.update(d for d in (await session.execute(
            select(AlertNotice.digest_id).where(AlertNotice.alert_id.in_(alert_ids[i : i + 500]),
                                                AlertNotice.digest_id.is_not(None))
        )).scalars() if d is not None)
    return sorted(found)


async def _grey(session: AsyncSession, digest_id: int, label: str, now: datetime) -> int:
    """Grey one digest card with the response_code WeCom returned when it was sent (once, within 72 hours), or
    withdraw it if it has not gone out yet."""
    card = await latest_card(session, card_task_id("alertdigest", digest_id))
    if card is None or card.channel != "app":
        return 0
    if card.state == "pending":
        return int(await cancel_unsent(session, card.id))
    if card.state == "sent" and card.response_code and card.sent_at and now - card.sent_at < CODE_TTL:
        return int(await update_card_button(session, card.recipient, card.response_code, label, now=now) is not None)
    return 0


@on_cleared
async def settle_cleared(session: AsyncSession, alert_ids: list[int], now: datetime) -> int:
    """Alerts just resolved by themselves (stock back above the line): every digest card whose alerts all
    cleared untouched is greyed ("已自动解除"). A card someone tapped was greyed by that tap already. Returns how
    many cards changed."""
    changed = 0
    for digest_id in await _digests_of(session, alert_ids):
        states = (await session.execute(
            select(Alert.state, Alert.acknowledged_at, Alert.snoozed_until)
            .where(Alert.id.in_(await digest_alert_ids(session, digest_id)))
        )).all()
        if all(state == "resolved" and not acked and not snoozed for state, acked, snoozed in states) \
                and not await _campaign_open(session, digest_id):
            changed += await _grey(session, digest_id, CLEARED_LABEL, now)
    return changed


async def settle_handled(session: AsyncSession, alert_ids: list[int], by: str, now: datetime, *,
                         tapped: str = "") -> int:
    """Alerts just handled from one card (`tapped`, its task_id): the other digest cards holding them (the
    supervisor's escalated copy, an earlier digest) whose alerts are now all handled say by whom."""
    changed = 0
    for digest_id in await _digests_of(session, alert_ids):
        if card_task_id("alertdigest", digest_id) == tapped:
            continue  # greyed by the tap itself
        states = (await session.execute(
            select(Alert.state).where(Alert.id.in_(await digest_alert_ids(session, digest_id)))
        )).scalars().all()
        if all(state != "open" for state in states) and not await _campaign_open(session, digest_id):
            changed += await _grey(session, digest_id, f"已由{by}处理"[:20], now)
    return changed


async def settle_campaign_handled(session: AsyncSession, campaign_ids: list[int], by: str, now: datetime, *,
                                  tapped: str = "") -> int:
    """Campaign alerts just acknowledged from one card: the other digest cards holding them (the owner's copy, a
    supervisor's escalated one) whose alerts, stock and campaign, are now all handled say by whom."""
    found: set[int] = set()
    for i in range(0, len(campaign_ids), 500):
        found.update(d for d in (await session.execute(
            select(AlertNotice.digest_id).where(AlertNotice.campaign_alert_id.in_(campaign_ids[i : i + 500]),
                                                AlertNotice.digest_id.is_not(None))
        )).scalars() if d is not None)
    changed = 0
    for digest_id in sorted(found):
        if card_task_id("alertdigest", digest_id) == tapped:
            continue  # greyed by the tap itself
        stock = await digest_alert_ids(session, digest_id)
        states = (await session.execute(select(Alert.state).where(Alert.id.in_(stock)))).scalars().all() \
            if stock else []
        if all(state != "open" for state in states) and not await _campaign_open(session, digest_id):
            changed += await _grey(session, digest_id, f"已由{by}处理"[:20], now)
    return changed


async def _campaign_open(session: AsyncSession, digest_id: int) -> bool:
    """Whether a digest still carries an open campaign alert (its card stays live for that one)."""
    ids = await digest_campaign_alert_ids(session, digest_id)
    return bool(ids) and bool(await _open_campaign_alerts(session, ids))


async def digest_alert_ids(session: AsyncSession, digest_id: int) -> list[int]:
    """The stock alerts of one digest."""
    stmt = select(AlertNotice.alert_id).where(AlertNotice.digest_id == digest_id,
                                              AlertNotice.alert_id.is_not(None)).distinct()
    return sorted(i for i in (await session.execute(stmt)).scalars() if i is not None)


async def digest_campaign_alert_ids(session: AsyncSession, digest_id: int) -> list[int]:
    """The campaign health alerts of one digest."""
    stmt = select(AlertNotice.campaign_alert_id).where(AlertNotice.digest_id == digest_id,
                                                       AlertNotice.campaign_alert_id.is_not(None)).distinct()
    return sorted(i for i in (await session.execute(stmt)).scalars() if i is not None)
