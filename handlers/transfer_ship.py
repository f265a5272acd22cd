"""发货 / ship: the source ships a transfer, all it has or less than approved, by chat instead of the card."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import InvalidQuantity, UnknownEntity
from bot.events import TextMessage
from bot.messages import render
from handlers.parse import parse_id
from handlers.router import Context, Router
from handlers.transfer import ship_transfer
from models import transfer as tr
from models.catalog import find_sku

router = Router("transfer_ship")

_MAX_DIGITS = len(str(tr.MAX_LINE_QTY))


def _number(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_DIGITS:
        raise InvalidQuantity(f"ship quantity {raw[:20]!r} is not a number", f"发货数量「{raw[:20]}」应是 0 或正整数。")
    return int(raw)


async def _quantities(session: AsyncSession, t: tr.Transfer, args: list[str]) -> dict[int, int] | None:
    """`[]` → what the source has; `[20]` → one-line transfers only; `[A001 20 A002 3]` → per SKU."""
    if not args:
        return None
    lines = await tr.lines_of(session, t.id)
    if len(args) == 1:
        if len(lines) != 1:
            raise InvalidQuantity("one quantity for a multi-line transfer",
                                  render("transfer_ship_usage", id=t.id, multi=True,
                                         example=" ".join(f"{sku.code} {line.qty}" for line, sku in lines[:2])))
        return {lines[0][1].id: _number(args[0])}
    if len(args) % 2:
        raise InvalidQuantity("ship needs <sku> <qty> pairs", render("transfer_ship_usage", id=t.id, multi=False))
    out: dict[int, int] = {}
    for code, qty in zip(args[::2], args[1::2], strict=True):
        sku = await find_sku(session, code) or await find_sku(session, code.upper())
        if sku is None:
            raise UnknownEntity("sku", code[:40], f"找不到商品 {code[:40]}，请核对编码或条码。")
        out[sku.id] = _number(qty)
    return out


@router.command("发货", "ship")
async def ship_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    if not args:
        await ctx.reply(render("transfer_ship_usage", id=None, multi=False))
        return
    ident = parse_id(args[0], what="调拨单号", usage=render("transfer_ship_usage", id=None, multi=False))
    t = await tr.get_transfer(ctx.session, ident)
    await ship_transfer(ctx, t, None, await _quantities(ctx.session, t, args[1:]))
