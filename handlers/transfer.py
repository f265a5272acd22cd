"""调拨 / 签收 / 取消调拨 commands and the transfer approve / reject / ship / receive buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import InvalidInput, InvalidQuantity, InvalidState, UnknownEntity
from bot.events import CardClick, TextMessage
from bot.messages import render
from handlers import transfer_notify as notify
from handlers.parse import ascii_id, clip, is_unit, items, looks_like_qty, parse_id, parse_qty, resolve_sku
from handlers.router import Context, Router
from handlers.transfer_notify import request_transfer as request_transfer  # the flow, shared with the API
from models import transfer as tr
from models.alert import react
from models.org import store_manager
from models.outbox import update_card_button
from models.transfer_ship import ship

R = TypeVar("R")

router = Router("transfer")

CANCEL_USAGE = "取消写法：取消调拨 <调拨单号>，例如「取消调拨 12」。"
URGENT_WORDS = {"急", "加急", "紧急", "urgent", "!", "！"}
DECIDERS = {"approved": "approved_by", "rejected": "rejected_by", "cancelled": "cancelled_by",
            "shipped": "shipped_by", "received": "received_by", "partially_received": "received_by"}
BUTTON_LABELS = {"approve": "已同意", "reject": "已拒绝", "ship": "已出库", "receive": "已签收"}


def parse_request(args: list[str]) -> tuple[str, list[tuple[str, int]], bool]:
    """`S002 A001 5 可口可乐 3罐 急` → ("S002", [("A001", 5), ("可口可乐", 3)], urgent); SKUs still as typed."""
    urgent = any(a.lower() in URGENT_WORDS for a in args)
    rest = [a for a in args if a.lower() not in URGENT_WORDS]
    wanted = items(rest[1:])
    if not wanted or any(item.qty is None for item in wanted):
        raise InvalidQuantity("transfer needs <from-store> followed by <sku> <qty> pairs", render("transfer_usage"))
    if len(wanted) > tr.MAX_LINES:
        raise InvalidQuantity(f"{len(wanted)} lines", f"一张调拨单写 1 到 {tr.MAX_LINES} 个商品。")
    return rest[0], [(item.sku, parse_qty(item.qty or "", tr.MAX_LINE_QTY)) for item in wanted], urgent


@router.command("调拨", "transfer")
async def transfer_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    from_store, wanted, urgent = parse_request(args)
    lines = [tr.LineRequest((await resolve_sku(ctx.session, query)).code, qty) for query, qty in wanted]
    await request_transfer(ctx.session, ctx.user, from_store=clip(from_store, 64), to_store=None, lines=lines,
                           now=ctx.now, urgent=urgent)


async def _received_quantities(session: AsyncSession, t: tr.Transfer, args: list[str]) -> dict[int, int] | None:
    """`[]` → all as shipped; `[4]` → one-line transfers only; `[A001 4 A002 3]` → per SKU."""
    args = [a for a in args if not is_unit(a)]  # "签收 12 4 个"
    if not args:
        return None
    lines = await tr.lines_of(session, t.id)
    if len(args) == 1 and looks_like_qty(args[0]):
        if len(lines) != 1:
            example = " ".join(f"{sku.code} {line.shipped or line.qty}" for line, sku in lines[:2])
            raise InvalidQuantity("one quantity for a multi-line transfer",
                                  render("transfer_receive_usage", multi=True, id=t.id, example=example))
        return {lines[0][1].id: parse_qty(args[0], tr.MAX_LINE_QTY)}
    counts: dict[int, int] = {}
    for item in items(args):
        if item.qty is None:
            raise InvalidQuantity("receive needs <sku> <qty> pairs", render("transfer_receive_usage", multi=False))
        sku = await resolve_sku(session, item.sku)
        counts[sku.id] = parse_qty(item.qty, tr.MAX_LINE_QTY)
    return counts


@router.command("签收", "receive")
async def receive_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    if not args:
        await ctx.reply(render("transfer_receive_usage", multi=False))
        return
    ident = parse_id(args[0], what="调拨单号", usage=render("transfer_receive_usage", multi=False))
    t = await tr.get_transfer(ctx.session, ident)
    received = await _received_quantities(ctx.session, t, args[1:])
    await _receive(ctx, t, received, clicked=None)


@router.command("取消调拨", "cancel-transfer")
async def cancel_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        await ctx.reply(CANCEL_USAGE)
        return
    t = await tr.get_transfer(ctx.session, parse_id(args[0], what="调拨单号", usage=CANCEL_USAGE))
    was = t.state
    await tr.cancel(ctx.session, t, ctx.user, ctx.now)
    kind = "approve" if was == "requested" else "ship"
    await notify.settle_cards(ctx.session, t, kind, "已取消", "已取消", ctx.now, skip=set())
    source, dest = await notify.stores_of(ctx.session, t)
    manager = await store_manager(ctx.session, source.id)
    await notify.tell(ctx.session, [t.requested_by, ctx.user.userid, *([manager.userid] if manager else [])],
                      render("transfer_cancelled", id=t.id, source=notify.label(source), dest=notify.label(dest),
                             by=ctx.user.name), ctx.now, f"{t.id}:cancelled")


@router.button("transfer")
async def transfer_button(event: CardClick, ctx: Context, action: str, ident: str) -> None:
    step: Callable[[Context, tr.Transfer, CardClick], Awaitable[None]] | None = {
        "approve": _approve, "reject": _reject, "ship": ship_transfer,
    }.get(action)
    transfer_id = ascii_id(ident)
    if transfer_id is None:
        raise InvalidInput(f"transfer button {ident[:40]!r}", render("button_stale"))
    t = await tr.get_transfer(ctx.session, transfer_id)
    if action in notify.REJECT_REASONS:
        await _reject(ctx, t, event, notify.REJECT_REASONS[action])
    elif action == "receive":
        await _receive(ctx, t, None, clicked=event)
    elif step is None:
        raise UnknownEntity("transfer action", action, "这个按钮已失效，请在最新的卡片上操作。")
    else:
        await step(ctx, t, event)


async def _lost_race(ctx: Context, t: tr.Transfer, event: CardClick | None, err: InvalidState) -> None:
    """The transfer moved on before this action: grey the clicked card with the current state and say so, naming
    who decided when that was someone else (the other supervisor, an admin)."""
    current = await tr.get_transfer(ctx.session, t.id)
    if event is not None:
        await update_card_button(ctx.session, event.from_user, event.response_code,
                                 tr.STATE_NAMES.get(current.state, current.state)[:10], now=ctx.now)
    by = DECIDERS.get(current.state)
    who = getattr(current, by) if by else None
    if who and who != ctx.user.userid:
        await ctx.reply(render("transfer_preempted", id=t.id, by=await notify.actor_name(ctx.session, who),
                               state=tr.STATE_NAMES.get(current.state, current.state),
                               reason=current.reject_reason if current.state == "rejected" else None))
        return
    await ctx.reply(err.user_message)


class _Lost:
    """The transition lost a race: the user was already told the current state."""


async def _transition(ctx: Context, t: tr.Transfer, event: CardClick | None, step: Awaitable[R]) -> R | _Lost:
    """Run one guarded state transition in a savepoint; a loser gets its card greyed and the current state."""
    try:
        async with ctx.session.begin_nested():
            return await step
    except InvalidState as err:
        await _lost_race(ctx, t, event, err)
        return _Lost()


async def _approve(ctx: Context, t: tr.Transfer, event: CardClick) -> None:
    done = await _transition(ctx, t, event, tr.approve(ctx.session, t, ctx.user, ctx.now))
    if isinstance(done, _Lost):
        return
    if not done:
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已同意，待另一督导", now=ctx.now)
        others = await notify.pending_approvers(ctx.session, t)
        await notify.tell(ctx.session, [t.requested_by], render(
            "transfer_waiting_other", id=t.id, by=ctx.user.name, others=notify.names(others)), ctx.now,
            f"{t.id}:approved-by:{ctx.user.userid}")
        return
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已同意", now=ctx.now)
    decided = {a.decided_by for a in await tr.approvals_of(ctx.session, t.id) if a.decided_by}
    await notify.settle_cards(ctx.session, t, "approve", f"已由{ctx.user.name}同意", "已同意", ctx.now,
                              skip={ctx.user.userid} | decided)
    source, _dest = await notify.stores_of(ctx.session, t)
    await notify.tell(ctx.session, [t.requested_by], render(
        "transfer_approved", id=t.id, by=ctx.user.name, source=notify.label(source)), ctx.now, f"{t.id}:approved")
    await notify.send_ship_card(ctx.session, t, ctx.now)


async def _reject(ctx: Context, t: tr.Transfer, event: CardClick, reason: str | None = None) -> None:
    """Reject (with the reason button's words, if any): the requester hears why and what to do instead, and a
    supervisor of the other region whose approval this overrules hears by whom."""
    if isinstance(await _transition(ctx, t, event, tr.reject(ctx.session, t, ctx.user, ctx.now, reason)), _Lost):
        return
    # read after the guarded UPDATE took the row lock: an approval committed while we waited is seen
    approved_before = [u for u in (await ctx.session.execute(
        select(tr.TransferApproval.decided_by).where(tr.TransferApproval.transfer_id == t.id,
                                                     tr.TransferApproval.decision == "approved")
    )).scalars() if u and u != ctx.user.userid]
    await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已拒绝", now=ctx.now)
    why = f"（{reason}）" if reason else ""
    await notify.settle_cards(ctx.session, t, "approve", f"已被{ctx.user.name}拒绝{why}", "已拒绝", ctx.now,
                              skip={ctx.user.userid, *approved_before})
    await notify.tell(ctx.session, [t.requested_by], render("transfer_rejected", id=t.id, by=ctx.user.name,
                                                            reason=reason), ctx.now, f"{t.id}:rejected")
    await notify.tell(ctx.session, approved_before, render(
        "transfer_overruled", id=t.id, by=ctx.user.name, reason=reason), ctx.now, f"{t.id}:overruled")


async def _react(ctx: Context, store_id: int, t: tr.Transfer) -> None:
    """Shipping can take the source under its safety line and receiving can clear an alert: check at once."""
    pairs = [(store_id, line.sku_id) for line, _sku in await tr.lines_of(ctx.session, t.id)]
    cfg = ctx.deps.config
    await react(ctx.session, rules=cfg.rules, alerts=cfg.alerts, now=ctx.now, pairs=pairs)


async def ship_transfer(ctx: Context, t: tr.Transfer, event: CardClick | None,
                        quantities: dict[int, int] | None = None) -> None:
    """Ship what the source has (the card's button) or the quantities typed (`发货`): never below zero."""
    shipped = await _transition(ctx, t, event, ship(ctx.session, t, ctx.user, ctx.now, quantities))
    if isinstance(shipped, _Lost):
        return
    partial = any(s.shipped < s.approved for s in shipped)
    label = "部分出库" if partial else "已出库"
    if event is not None:
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await _react(ctx, t.from_store_id, t)
    await notify.settle_cards(ctx.session, t, "ship", f"已由{ctx.user.name}出库", label, ctx.now,
                              skip={ctx.user.userid} if event is not None else set())
    await notify.send_receive_cards(ctx.session, t, ctx.now)
    if partial or event is None:
        await ctx.reply(render("transfer_ship_done", id=t.id, lines=shipped, partial=partial))


async def _receive(ctx: Context, t: tr.Transfer, received: dict[int, int] | None, clicked: CardClick | None) -> None:
    short = await _transition(ctx, t, clicked, tr.receive(ctx.session, t, ctx.user, ctx.now, received))
    if isinstance(short, _Lost):
        return
    button = "部分签收" if short else "已签收"
    await _react(ctx, t.to_store_id, t)
    if clicked is not None:
        await update_card_button(ctx.session, ctx.user.userid, clicked.response_code, button, now=ctx.now)
    await notify.settle_cards(ctx.session, t, "receive", f"已由{ctx.user.name}签收", button, ctx.now,
                              skip={ctx.user.userid} if clicked else set())
    source, dest = await notify.stores_of(ctx.session, t)
    manager = await store_manager(ctx.session, source.id)
    codes = {line.sku_id: sku.code for line, sku in await tr.lines_of(ctx.session, t.id)}
    text = render("transfer_received", id=t.id, dest=notify.label(dest),
                  summary=await notify.summary(ctx.session, t, "received"),
                  short=[f"{codes[d.sku_id]} 实发 {d.shipped}、实收 {d.received}" for d in short])
    # a short receipt reaches the source's manager as the discrepancy notice alone, not twice
    source_manager = [manager.userid] if manager and not short else []
    await notify.tell(ctx.session, [ctx.user.userid, t.requested_by, *source_manager], text, ctx.now,
                      f"{t.id}:received")
    if short:
        await notify.notify_discrepancy(ctx.session, t, short, ctx.now)
