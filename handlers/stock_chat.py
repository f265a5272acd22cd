"""盘点 and 库存 as people type them: codes, barcodes or names, units, several items, a store in one's scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bot.errors import DomainError, InvalidQuantity, NotAllowed
from bot.events import CardClick, TextMessage
from bot.messages import render
from bot.wecom.cards import button_card, card_task_id
from handlers.parse import Item, SeveralSkus, ascii_id, clip, items, parse_qty, resolve_sku
from handlers.router import UNHANDLED, Context, Router
from handlers.stock import do_count
from models.catalog import Sku
from models.org import Store, find_store, stores_in_scope
from models.outbox import update_card_button
from models.stock import StockLevel, get_level
from models.transfer import in_transit

router = Router("stock_chat")

MAX_COUNT_ITEMS = 10  # one reply summarises them all, and must fit WeCom's 2,048 bytes
MAX_STORE_ROWS = 15  # 库存 across a region or the chain: the lowest this many


@dataclass
class _Collecting(Context):
    """A Context whose replies are kept, so several counts answer in one message."""

    said: list[str] = field(default_factory=list)

    async def reply(self, text: str, *, dedupe_key: str | None = None) -> None:
        self.said.append(text)

    async def reply_markdown(self, text: str, *, dedupe_key: str | None = None) -> None:
        self.said.append(text)


async def _own_store(ctx: Context, action: str) -> Store:
    store = await ctx.session.get(Store, ctx.user.store_id) if ctx.user.store_id else None
    if store is None:
        raise NotAllowed(f"{ctx.user.userid} has no store", render("stock_no_store", action=action))
    return store


def _missing_qty(item: Item) -> InvalidQuantity:
    return InvalidQuantity(f"no quantity for {item.sku[:40]!r}", render("stock_count_missing", sku=clip(item.sku)))


@router.command("盘点", "count")
async def count_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """`盘点 A005 47`, `盘点 可口可乐 3罐`, `盘点 A005 47 A006 21` (one reply for all), `盘点 S001 A005 47`."""
    if not args:
        await ctx.reply(render("stock_count_usage"))
        return
    store = await _own_store(ctx, "盘点")
    if len(args) >= 3 and (named := await find_store(ctx.session, args[0])) is not None:
        if named.id != store.id:
            raise NotAllowed(f"count for store {named.code}", render("stock_other_store", own=store.name,
                                                                     other=named.name))
        args = args[1:]
    wanted = items(args)
    if len(wanted) > MAX_COUNT_ITEMS:
        await ctx.reply(render("stock_count_too_many", max=MAX_COUNT_ITEMS))
        return
    if len(wanted) == 1:
        [item] = wanted
        if item.qty is None:
            await ctx.reply(render("stock_count_usage"))
            return
        sku = await resolve_sku(ctx.session, item.sku)
        await do_count(ctx, store, sku, parse_qty(item.qty, ctx.deps.config.pos.max_line_qty))
        return
    await ctx.reply(render("stock_count_multi", lines=[await _count_one(ctx, store, item) for item in wanted]))


async def _count_one(ctx: Context, store: Store, item: Item) -> dict[str, object]:
    """One line of a several-item count, in its own savepoint: a bad line is reported, the others stand."""
    collect = _Collecting(deps=ctx.deps, session=ctx.session, user=ctx.user, now=ctx.now, event=ctx.event)
    try:
        async with ctx.session.begin_nested():
            if item.qty is None:
                raise _missing_qty(item)
            sku = await resolve_sku(ctx.session, item.sku)
            await do_count(collect, store, sku, parse_qty(item.qty, ctx.deps.config.pos.max_line_qty))
    except DomainError as err:
        return {"ok": False, "sku": clip(item.sku), "text": err.user_message}
    return {"ok": True, "sku": sku.code, "text": "\n".join(collect.said)}


@router.command("库存", "stock")
async def level_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """`库存 A001` at one's store; `库存 S002 A001` in one's scope; a supervisor or admin without a store: all."""
    if not args:
        await ctx.reply(render("stock_level_usage"))
        return
    named = await find_store(ctx.session, args[0]) if len(args) >= 2 else None
    try:
        sku = await resolve_sku(ctx.session, " ".join(args[1:] if named else args))
    except SeveralSkus as several:
        if named is not None:
            raise
        await ctx.reply_card(_pick_card(several, event.msg_id), dedupe_key=f"sku-pick:{event.msg_id}")
        return
    await _levels(ctx, sku, named)


def _pick_card(several: SeveralSkus, msg_id: str) -> dict[str, Any]:
    """One tap per candidate: `stock:level:<sku id>` answers as `库存 <SKU>` would."""
    return button_card(
        task_id=card_task_id("skupick", msg_id), title="选择商品",
        desc=f"「{several.query}」对应多个商品，点一个查看库存",
        buttons=[(f"{s.code} {s.name}", f"stock:level:{s.id}", 1) for s in several.skus],
        sub_title="还有更多，没找到就写得更具体些。" if several.more else "",
    )


@router.button("stock")
async def pick_button(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    sku_id = ascii_id(ident)
    sku = await ctx.session.get(Sku, sku_id) if action == "level" and sku_id is not None else None
    if sku is None:
        return UNHANDLED
    if event.response_code:
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, f"已选 {sku.code}"[:20],
                                 now=ctx.now)
    await _levels(ctx, sku, None)
    return None


async def _levels(ctx: Context, sku: Sku, named: Store | None) -> None:
    scope = await stores_in_scope(ctx.session, ctx.user)
    if named is not None:
        if named.id not in {s.id for s in scope}:
            raise NotAllowed(f"{ctx.user.userid} may not see store {named.code}",
                             render("stock_scope", other=named.name, role=ctx.user.role,
                                    own=scope[0].name if scope else ""))
        await _one_store(ctx, named, sku)
    elif ctx.user.store_id is not None:
        await _one_store(ctx, await _own_store(ctx, "查库存"), sku)
    elif ctx.user.role in ("supervisor", "admin") and scope:
        await _many_stores(ctx, scope, sku)
    else:
        await _own_store(ctx, "查库存")  # raises: tells them to get a store


async def _one_store(ctx: Context, store: Store, sku: Sku) -> None:
    level = await get_level(ctx.session, store.id, sku.id)
    moving = await in_transit(ctx.session, store.id, sku.id)
    await ctx.reply(render("stock_level", store=store.name, sku=sku.code, item=sku.name,
                           on_hand=level.on_hand if level else 0, safety=level.safety_stock if level else 0,
                           in_transit=moving))


async def _many_stores(ctx: Context, stores: list[Store], sku: Sku) -> None:
    """Every store in scope, lowest on-hand first (a store without a level counts as 0)."""
    stmt = select(StockLevel.store_id, StockLevel.on_hand, StockLevel.safety_stock).where(
        StockLevel.sku_id == sku.id, StockLevel.store_id.in_([s.id for s in stores]))
    levels = {store_id: (on_hand, safety) for store_id, on_hand, safety in await ctx.session.execute(stmt)}
    rows = sorted(({"store": s.name, "code": s.code, "on_hand": levels.get(s.id, (0, 0))[0],
                    "safety": levels.get(s.id, (0, 0))[1]} for s in stores),
                  key=lambda r: (r["on_hand"], r["code"]))
    await ctx.reply(render("stock_level_stores", sku=sku.code, item=sku.name, rows=rows[:MAX_STORE_ROWS],
                           more=max(0, len(rows) - MAX_STORE_ROWS), example=rows[0]["code"]))
