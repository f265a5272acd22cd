"""库存 / 盘点 commands, scan-in/out conversations and the count-approval and alert buttons."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.errors import InvalidQuantity, InvalidState, NotAllowed, UnknownEntity
from bot.events import CardClick, ScanCode, TextMessage
from bot.messages import render
from bot.wecom.cards import button_card, card_task_id
from handlers import count_notify, task_notify
from handlers.alert_delivery import (
    digest_alert_ids,
    digest_campaign_alert_ids,
    settle_campaign_handled,
    settle_handled,
)
from handlers.parse import ascii_id, clip, looks_like_qty, normalize_text, parse_qty
from handlers.router import UNHANDLED, Context, Router
from handlers.task_recount import open_recount
from handlers.transfer_notify import request_transfer
from models import conversation
from models.alert import Alert, AlertDigest, acknowledge, handle_on, may_handle, react, snooze, surplus_store
from models.campaign_alert import acknowledge as acknowledge_campaign_alert
from models.catalog import Sku, find_sku
from models.count import STATE_NAMES as COUNT_STATE_NAMES
from models.count import StockCount, decide, record_count, refusal
from models.org import Staff, Store, responsible, staff_by_userid
from models.outbox import send_card, send_text, update_card_button
from models.stock import book_move, get_level
from models.transfer import LineRequest

router = Router("stock")

SCAN_ACTIONS = {"scan_in": "入库", "scan_out": "出库（报损）", "scan_count": "盘点"}
SNOOZE_HOURS = 24


def _qty(ctx: Context, raw: str) -> int:
    """A sane non-negative whole quantity ("47", "47个"), or a DomainError that says what to send instead."""
    return parse_qty(raw, ctx.deps.config.pos.max_line_qty)


async def _own_store(ctx: Context, action: str) -> Store:
    store = await ctx.session.get(Store, ctx.user.store_id) if ctx.user.store_id else None
    if store is None:
        raise NotAllowed(f"{ctx.user.userid} has no store", render("stock_no_store", action=action))
    return store


async def _react(ctx: Context, pairs: list[tuple[int, int]]) -> None:
    cfg = ctx.deps.config
    await react(ctx.session, rules=cfg.rules, alerts=cfg.alerts, now=ctx.now, pairs=pairs)


async def do_count(ctx: Context, store: Store, sku: Sku, qty: int) -> None:
    """Record a count (compared with the quantity at the message's time) and book it or ask the manager; a newer
    count replaces older pending ones, an older one than a count already recorded books nothing."""
    recorded = await record_count(
        ctx.session, rules=ctx.deps.config.rules, store_id=store.id, sku_id=sku.id, counted=qty,
        userid=ctx.user.userid, counted_at=ctx.event.create_time, now=ctx.now,
    )
    count = recorded.count
    for old in recorded.superseded:
        await count_notify.settle_superseded(ctx.session, old, count, store, sku, ctx.now)
    view = {"store": store.name, "sku": sku.code, "item": sku.name, "counted": qty, "system": count.system_qty,
            "diff": count.diff}
    level = await get_level(ctx.session, store.id, sku.id)
    on_hand = level.on_hand if level else 0
    if count.state == "outdated":
        await ctx.reply(await count_notify.outdated_text(ctx.session, count, recorded.newer, store, sku, on_hand))
    elif count.state == "booked":
        await _react(ctx, [(store.id, sku.id)])
        await ctx.reply(render("stock_count_booked", on_hand=on_hand, **view))
    else:
        approver = next(iter(await responsible(ctx.session, store, "approver")), None)
        if approver is None:
            raise NotAllowed(f"store {store.code} has no manager", "本店没有店长或督导可以审批，请联系管理员。")
        card = approval_card(count, store, sku, ctx.user, replaces=[old.id for old in recorded.superseded])
        await send_card(ctx.session, approver.userid, card, now=ctx.now, dedupe_key=f"count-approval:{count.id}")
        await ctx.reply(render("stock_count_pending", manager=approver.name, **view))
    await _tick_count_tasks(ctx, store.id, sku.id)


async def _tick_count_tasks(ctx: Context, store_id: int, sku_id: int) -> None:
    for text in await task_notify.tick_count_tasks(ctx.session, ctx.user, store_id, sku_id, ctx.now):
        await ctx.reply(text)


def approval_card(count: StockCount, store: Store, sku: Sku, counter: Staff, replaces: list[int] | None = None,
                  ) -> dict[str, Any]:
    replaced = f"它取代了待审批的盘点单 {'、'.join(map(str, replaces))}。" if replaces else ""
    return button_card(
        task_id=count_notify.approval_card_id(count.id),
        title="盘点差异待审批",
        desc=f"{store.name} {sku.code} {sku.name}",
        rows=[("实点", str(count.counted)), ("系统", str(count.system_qty)), ("差异", f"{count.diff:+d}"),
              ("盘点人", f"{counter.name}（{store.name}）"),
              ("盘点时间", count_notify.local_time(store, count.counted_at))],
        buttons=[("同意入账", f"count:approve:{count.id}", 1), ("驳回", f"count:reject:{count.id}", 2)],
        sub_title=f"{replaced}同意后按实点数调整库存（盘点之后的销售照常扣减）；驳回则不调整。",
    )


@router.button("count")
async def count_button(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    count_id = ascii_id(ident)
    if action not in ("approve", "reject") or count_id is None:
        return UNHANDLED
    count = await ctx.session.get(StockCount, count_id)
    store = await ctx.session.get(Store, count.store_id) if count else None
    if count is None or store is None:
        raise UnknownEntity("count", ident, f"找不到盘点单 {ident}")
    if not may_handle(ctx.user, store):
        raise NotAllowed(f"{ctx.user.userid} may not decide count {ident}", render("stock_not_allowed",
                                                                                    action="审批盘点"))
    approve = action == "approve"
    try:
        count = await decide(ctx.session, count.id, approve=approve, userid=ctx.user.userid, now=ctx.now)
    except InvalidState as err:  # decided, superseded or outdated already: grey this card too, book nothing
        await update_card_button(ctx.session, ctx.user.userid, event.response_code,
                                 COUNT_STATE_NAMES.get(count.state, "已处理"), now=ctx.now)
        await ctx.reply(err.user_message)
        return None
    if count.state == "superseded":  # something newer (an import) states the quantity now: nothing booked
        await update_card_button(ctx.session, ctx.user.userid, event.response_code,
                                 count_notify.SUPERSEDED_LABEL, now=ctx.now)
        await ctx.reply(refusal(count))
        return None
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已同意" if approve else "已驳回",
                             now=ctx.now)
    if approve:
        await _react(ctx, [(count.store_id, count.sku_id)])
    sku = await ctx.session.get(Sku, count.sku_id)
    assert sku is not None
    text = render("stock_count_decided", sku=sku.code, item=sku.name, counted=count.counted, system=count.system_qty,
                  diff=count.booked_qty or 0, who=ctx.user.name, approved=approve)
    await send_text(ctx.session, count.counted_by, text, now=ctx.now, dedupe_key=f"count-decided:{count.id}")
    return None


ALERT_ACTIONS = ("ack", "snooze", "ackall", "snoozeall", "restocked", "transfer", "recount")
HANDLED_NAMES = {"ack": "已确认", "restocked": "已补货", "transfer": "已申请调拨", "recount": "已安排复盘"}


def handled_name(handled_as: str | None) -> str:
    """"transfer:12" → "已申请调拨 #12"; what a stale tap is told was done."""
    how, _, ref = (handled_as or "").partition(":")
    name = HANDLED_NAMES.get(how, "")
    return f"{name} #{ref}" if name and ref and how == "transfer" else name


@router.button("alert")
async def alert_button(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    key_id = ascii_id(ident)
    if action not in ALERT_ACTIONS or key_id is None:
        return UNHANDLED
    campaign_done = 0
    if action.endswith("all"):
        digest = await ctx.session.get(AlertDigest, key_id)
        ids = await digest_alert_ids(ctx.session, key_id) if digest else []
        if action == "ackall" and digest is not None and (digest.recipient == ctx.user.userid
                                                          or ctx.user.role == "admin"):
            campaign_done = await _ack_campaign_alerts(ctx, key_id)
            if not ids:
                return await _campaign_only_acked(ctx, event, key_id, campaign_done)
    else:
        ids = [key_id]
    found = [] if not ids else list((await ctx.session.execute(
        select(Alert, Store, Sku).join(Store, Store.id == Alert.store_id).join(Sku, Sku.id == Alert.sku_id)
        .where(Alert.id.in_(ids)).order_by(Alert.id).execution_options(populate_existing=True)
    )).all())
    if not found:
        await ctx.reply(render("button_stale"))
        return None
    allowed = [(a, st, sku) for a, st, sku in found if may_handle(ctx.user, st)]
    if not allowed:
        raise NotAllowed(f"{ctx.user.userid} may not handle alerts {ids}", render("stock_not_allowed",
                                                                                   action="处理库存提醒"))
    live = [(a, st, sku) for a, st, sku in allowed if a.state == "open"]
    if not live:
        await _alert_settled(ctx, event, [a for a, _st, _sku in allowed])
        return None
    if action in ("snooze", "snoozeall"):
        return await _alert_snooze(ctx, event, live)
    if action in ("ack", "ackall"):
        n = await acknowledge(ctx.session, [a.id for a, _st, _sku in live], ctx.user.userid, ctx.now)
        if not n:  # a twin tap or someone else got there first
            await _alert_settled(ctx, event, [a for a, _st, _sku in live])
            return None
        await settle_handled(ctx.session, [a.id for a, _st, _sku in live], ctx.user.name, ctx.now,
                             tapped=event.task_id)
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已确认", now=ctx.now)
        also = f"和 {campaign_done} 条活动提醒" if campaign_done else ""
        await ctx.reply(render("alert_done", what=f"已确认 {n} 条库存提醒{also}", next="到货入库后提醒会自动解除。"))
        return None
    alert, store, sku = live[0]
    if action == "transfer":
        return await _alert_transfer(ctx, event, alert, store, sku)
    if not await acknowledge(ctx.session, [alert.id], ctx.user.userid, ctx.now, handled_as=action):
        await _alert_settled(ctx, event, [alert])  # a twin tap or someone else got there first
        return None
    await settle_handled(ctx.session, [alert.id], ctx.user.name, ctx.now, tapped=event.task_id)
    if action == "restocked":
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已补货", now=ctx.now)
        await ctx.reply(render("alert_done", what=f"{sku.code} {sku.name} 记为已补货",
                               next="到货后请扫码入库，库存回到安全线以上提醒会自动解除。"))
        return None
    task = await open_recount(ctx.session, ctx.deps.config, store, sku, alert.id, ctx.now)
    if task is None:
        raise NotAllowed(f"store {store.code} has nobody to recount", "本店没有店员可以复盘，请联系管理员。")
    await handle_on(ctx.session, alert.id, f"recount:{task.id}")
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已安排复盘", now=ctx.now)
    await ctx.reply(render("alert_recount", sku=sku.code, item=sku.name, store=store.name, task=task.title))
    return None


async def _ack_campaign_alerts(ctx: Context, digest_id: int) -> int:
    """"全部确认" on a digest also acknowledges its campaign health alerts (their chain stops); returns how many."""
    done = [alert_id for alert_id in await digest_campaign_alert_ids(ctx.session, digest_id)
            if await acknowledge_campaign_alert(ctx.session, alert_id, ctx.user.userid)]
    if done:
        await settle_campaign_handled(ctx.session, done, ctx.user.name, ctx.now,
                                      tapped=card_task_id("alertdigest", digest_id))
    return len(done)


async def _campaign_only_acked(ctx: Context, event: CardClick, digest_id: int, done: int) -> None:
    """A digest of campaign alerts only: the tap acknowledged them (or someone had already)."""
    if not await digest_campaign_alert_ids(ctx.session, digest_id):
        await ctx.reply(render("button_stale"))
        return
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已确认" if done else "已处理",
                             now=ctx.now)
    if done:
        await ctx.reply(render("alert_done", what=f"已确认 {done} 条活动提醒", next="问题解决后提醒会自动解除。"))
    else:
        await ctx.reply(render("alert_handled", by="", how="", many=True))


async def _alert_settled(ctx: Context, event: CardClick, alerts: list[Alert]) -> None:
    """A tap on a card whose alerts are no longer open: they cleared by themselves, or someone handled them."""
    if all(a.state == "resolved" and a.acknowledged_at is None for a in alerts):
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已解除", now=ctx.now)
        await ctx.reply(render("alert_cleared", many=len(alerts) > 1))
        return
    done = next((a for a in alerts if a.acknowledged_by), alerts[0])
    person = await staff_by_userid(ctx.session, done.acknowledged_by) if done.acknowledged_by else None
    by = "你" if done.acknowledged_by == ctx.user.userid else (person.name if person else "")
    how = handled_name(done.handled_as)
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, how or "已处理", now=ctx.now)
    await ctx.reply(render("alert_handled", by=by, how=how, many=len(alerts) > 1))


async def _alert_snooze(ctx: Context, event: CardClick, live: list[tuple[Alert, Store, Sku]]) -> None:
    """Quiet the alerts for 24 hours, except a negative stock: that one needs a recount, and is told so."""
    negative = [sku for a, _st, sku in live if a.kind == "negative_stock"]
    quiet = [a.id for a, _st, _sku in live if a.kind != "negative_stock"]
    refusal = render("alert_no_snooze", skus="、".join(f"{s.code} {s.name}" for s in negative)) if negative else ""
    if not quiet:
        await ctx.reply(refusal)
        return
    n = await snooze(ctx.session, quiet, ctx.now + timedelta(hours=SNOOZE_HOURS))
    label = f"已暂停{SNOOZE_HOURS}小时"
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await ctx.reply(render("alert_done", what=f"{label} {n} 条库存提醒", next=refusal or "到时还没解除会再提醒。"))


async def _alert_transfer(ctx: Context, event: CardClick, alert: Alert, store: Store, sku: Sku) -> None:
    """Request the missing quantity from the region's store with the most to spare, through the one transfer
    request path (chat and API); the alert is acknowledged first, so a second tap requests nothing."""
    if alert.kind != "low_stock":  # a negative stock needs a recount first; a slow seller needs no goods
        await ctx.reply(render("alert_no_transfer", sku=sku.code, item=sku.name,
                               negative=alert.kind == "negative_stock"))
        return
    donor = await surplus_store(ctx.session, store, sku.id)
    if donor is None:
        await ctx.reply(render("alert_no_donor", sku=sku.code, item=sku.name))
        return
    if not await acknowledge(ctx.session, [alert.id], ctx.user.userid, ctx.now, handled_as="transfer"):
        await _alert_settled(ctx, event, [alert])
        return
    await settle_handled(ctx.session, [alert.id], ctx.user.name, ctx.now, tapped=event.task_id)
    level = await get_level(ctx.session, store.id, sku.id)
    short = (level.safety_stock - level.on_hand) if level else 1
    qty = max(1, min(short, donor[1]))
    t = await request_transfer(ctx.session, ctx.user, from_store=donor[0].code, to_store=None,
                               lines=[LineRequest(sku.code, qty)], now=ctx.now)
    await handle_on(ctx.session, alert.id, f"transfer:{t.id}")
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, handled_name(f"transfer:{t.id}"),
                             now=ctx.now)


def _scan_filter(event: ScanCode, _ctx: Context) -> dict[str, Any] | None:
    return {} if event.key in SCAN_ACTIONS else None


@router.on(ScanCode, _scan_filter)
async def scanned(event: ScanCode, ctx: Context) -> None:
    store = await _own_store(ctx, "扫码登记")
    code = event.scan_result.rpartition(",")[2].strip()  # barcodes arrive as "EAN_13,6900000000011"
    sku = await find_sku(ctx.session, code)
    if sku is None:
        await ctx.reply(render("stock_scan_unknown", code=clip(code, 40)))
        return
    ttl = ctx.deps.config.rules.conversation_ttl_minutes
    await conversation.start(ctx.session, userid=ctx.user.userid, kind=event.key, store_id=store.id, sku_id=sku.id,
                             now=ctx.now, ttl_minutes=ttl)
    await ctx.reply(render("stock_scan_ask", sku=sku.code, item=sku.name, action=SCAN_ACTIONS[event.key], ttl=ttl))


def _number_filter(event: TextMessage, _ctx: Context) -> dict[str, Any] | None:
    """A message that is just a number ("12", "12个"): the quantity of a scan conversation, if one is live."""
    return {"raw": text} if looks_like_qty(text := normalize_text(event.content)) else None


@router.on(TextMessage, _number_filter)
async def scanned_quantity(event: TextMessage, ctx: Context, raw: str) -> Any:
    """The number typed after a scan books it; without a live conversation the number is someone else's."""
    if not await conversation.peek(ctx.session, ctx.user.userid, ctx.now):
        await conversation.take(ctx.session, ctx.user.userid, ctx.now)  # drop an expired one, if any
        return UNHANDLED
    qty = _qty(ctx, raw)  # a bad number keeps the conversation: the person may retype
    conv = await conversation.take(ctx.session, ctx.user.userid, ctx.now)
    assert conv is not None
    store, sku = await ctx.session.get(Store, conv.store_id), await ctx.session.get(Sku, conv.sku_id)
    assert store is not None and sku is not None
    if conv.kind == "scan_count":
        await do_count(ctx, store, sku, qty)
        return None
    if qty == 0:
        raise InvalidQuantity("zero scan quantity", render("stock_bad_qty", qty=raw,
                                                           max=ctx.deps.config.pos.max_line_qty))
    signed, kind = (qty, "receipt") if conv.kind == "scan_in" else (-qty, "damage")
    result = await book_move(ctx.session, store_id=store.id, sku_id=sku.id, kind=kind, qty=signed, at=ctx.now,
                             ref=f"scan:{event.msg_id}", actor=ctx.user.userid)
    await _react(ctx, [(store.id, sku.id)])
    await ctx.reply(render("stock_scan_booked", action=SCAN_ACTIONS[conv.kind], sku=sku.code, item=sku.name,
                           qty=qty, on_hand=result.balance_after))
    return None

