"""库存 / 盘点 commands, scan-in/out conversations and the count-approval and alert buttons."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.errors import InvalidQuantity, InvalidState, NotAllowed, UnknownEntity
from bot.events import CardClick, ScanCode, TextMessage
from bot.messages import render
from bot.wecom.cards import button_card
from handlers import count_notify, task_notify
from handlers.alert_delivery import digest_alert_ids
from handlers.parse import ascii_id, clip, looks_like_qty, normalize_text, parse_qty
from handlers.router import UNHANDLED, Context, Router
from models import conversation
from models.alert import Alert, AlertDigest, acknowledge, may_handle, react, snooze
from models.catalog import Sku, find_sku
from models.count import STATE_NAMES as COUNT_STATE_NAMES
from models.count import StockCount, decide, record_count, refusal
from models.org import Staff, Store, responsible
from models.outbox import send_card, send_text, update_card_button
from models.stock import book_move, get_level

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
              ("盘点人", counter.name), ("盘点时间", count_notify.local_time(store, count.counted_at))],
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


@router.button("alert")
async def alert_button(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    key_id = ascii_id(ident)
    if action not in ("ack", "snooze", "ackall", "snoozeall") or key_id is None:
        return UNHANDLED
    if action.endswith("all"):
        digest = await ctx.session.get(AlertDigest, key_id)
        ids = await digest_alert_ids(ctx.session, key_id) if digest else []
    else:
        ids = [key_id]
    allowed = []
    for alert_id in ids:
        alert = await ctx.session.get(Alert, alert_id)
        store = await ctx.session.get(Store, alert.store_id) if alert else None
        if store is not None and may_handle(ctx.user, store):
            allowed.append(alert_id)
    if not allowed:
        raise NotAllowed(f"{ctx.user.userid} may not handle alerts {ids}", render("stock_not_allowed",
                                                                                   action="处理库存提醒"))
    if action.startswith("ack"):
        n = await acknowledge(ctx.session, allowed, ctx.user.userid, ctx.now)
        label = "已确认"
    else:
        n = await snooze(ctx.session, allowed, ctx.now + timedelta(hours=SNOOZE_HOURS))
        label = f"已暂停{SNOOZE_HOURS}小时"
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await ctx.reply(render("stock_alert_done", what=f"{label} {n} 条提醒" if n else "这些提醒已处理过"))
    return None


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

