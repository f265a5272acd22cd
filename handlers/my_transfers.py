"""我的调拨 / my transfers: the sender's store's open transfers, in and out, with their states and next step."""

from __future__ import annotations

from typing import Any

from bot.events import TextMessage
from bot.messages import render
from handlers.parse import normalize_text
from handlers.router import Context, Router
from models.waiting import open_transfers

router = Router("my_transfers")

MAX_LINES = 10
NAMES = ("我的调拨", "本店调拨", "调拨进度", "my transfers", "mytransfers", "transfers")


def _match(event: TextMessage, _ctx: Context) -> dict[str, Any] | None:
    return {} if normalize_text(event.content).lower() in NAMES else None


@router.on(TextMessage, _match)
async def my_transfers(event: TextMessage, ctx: Context) -> None:
    transfers = await open_transfers(ctx.session, ctx.user, MAX_LINES)
    await ctx.reply(render("my_transfers", transfers=transfers[:MAX_LINES], more=len(transfers) > MAX_LINES,
                           has_store=ctx.user.store_id is not None, role=ctx.user.role))
